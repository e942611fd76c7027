package rollout

import (
	"time"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/metrics"
)

// transitionKinds maps decision actions to the kind label of kulta_rollout_transitions_total.
var transitionKinds = map[kultav1alpha1.DecisionAction]string{
	kultav1alpha1.ActionStepAdvance: "step",
	kultav1alpha1.ActionPromotion:   "promotion",
	kultav1alpha1.ActionComplete:    "promotion",
	kultav1alpha1.ActionRollback:    "rollback",
	kultav1alpha1.ActionFail:        "abort",
	kultav1alpha1.ActionPause:       "pause",
	kultav1alpha1.ActionResume:      "resume",
	kultav1alpha1.ActionConclude:    "conclusion",
	kultav1alpha1.ActionInitialize:  "start",
}

// observeMetrics publishes the Rollout's state, the Deployment it adopts (workload, nil without
// one) and the transitions this reconcile decided (the planned decisions stamped with now), from
// memory: nothing here reads the API server.
func observeMetrics(before, after *kultav1alpha1.Rollout, workload *Workload, planned []kultav1alpha1.Decision, now time.Time) {
	metrics.Observe(after)
	if workload == nil {
		metrics.ObserveWorkload(after.Namespace, after.Name, nil)
	} else {
		metrics.ObserveWorkload(after.Namespace, after.Name, &metrics.Workload{
			Name: workload.Name, Replicas: workload.Replicas, Available: workload.Available, Adopted: workload.Adopted,
		})
	}
	strategy := string(after.Status.Strategy)
	for _, d := range planned {
		if !d.Timestamp.Time.Equal(now) {
			continue
		}
		metrics.Transition(after.Namespace, after.Name, transitionKinds[d.Action], d.Reason)
		switch d.Action {
		case kultav1alpha1.ActionStepAdvance:
			if start := before.Status.StepStartTime; start != nil {
				metrics.StepDuration.WithLabelValues(strategy).Observe(now.Sub(start.Time).Seconds())
			}
			if paused := before.Status.PauseStartTime; paused != nil {
				metrics.PausedSeconds.WithLabelValues(after.Namespace, after.Name).Add(now.Sub(paused.Time).Seconds())
			}
		case kultav1alpha1.ActionComplete, kultav1alpha1.ActionRollback, kultav1alpha1.ActionFail:
			result := "completed"
			if d.Action != kultav1alpha1.ActionComplete {
				result = "failed"
			}
			if started := revisionStart(before); !started.IsZero() {
				metrics.RolloutDuration.WithLabelValues(strategy, result).Observe(now.Sub(started).Seconds())
			}
		}
	}
}

// revisionStart is when the current revision's rollout began: its last NewRevision decision.
func revisionStart(ro *kultav1alpha1.Rollout) time.Time {
	for i := len(ro.Status.Decisions) - 1; i >= 0; i-- {
		if d := ro.Status.Decisions[i]; d.Reason == "NewRevision" || d.Reason == "Retry" {
			return d.Timestamp.Time
		}
	}
	return time.Time{}
}
