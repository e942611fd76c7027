package occurrence

import (
	"sort"
	"time"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/events"
	"github.com/false-systems/kulta/internal/revision"
)

// historyLength is how many decisions an occurrence's history keeps.
const historyLength = 5

// Build turns a transition into an occurrence with the given id, in cluster (may be empty). The
// timestamp is the transition's time. t.Rollout must not be nil.
func Build(t events.Transition, id, cluster string) Occurrence {
	ro := t.Rollout
	strategy := StrategyPrefix(ro)
	suffix, severity, outcome := classify(t)
	occ := Occurrence{
		ID:        id,
		Timestamp: t.Time.UTC().Format(time.RFC3339Nano),
		Source:    Source,
		Type:      strategy + ".rollout." + suffix,
		Severity:  severity,
		Outcome:   outcome,
		Context: Context{
			Cluster:         cluster,
			Namespace:       ro.Namespace,
			CorrelationKeys: correlationKeys(t),
		},
		Data:      Data{Rollout: rolloutData(ro, strategy), Decision: step(t.Decision)},
		Entities:  entities(ro),
		Reasoning: reasoning(t),
		History:   history(t),
	}
	if needsError(t) {
		occ.Error = explain(t, strategy)
	}
	return occ
}

// StrategyPrefix names a Rollout's strategy as occurrence types do: canary, bluegreen, abtesting
// or rolling (the simple strategy). It reads spec.strategy, then status.strategy; a Rollout with
// neither (which the API rejects) counts as rolling.
func StrategyPrefix(ro *kultav1alpha1.Rollout) string {
	s := ro.Spec.Strategy
	switch {
	case s.Canary != nil:
		return "canary"
	case s.BlueGreen != nil:
		return "bluegreen"
	case s.ABTesting != nil:
		return "abtesting"
	case s.Simple != nil:
		return "rolling"
	}
	switch ro.Status.Strategy {
	case kultav1alpha1.StrategyCanary:
		return "canary"
	case kultav1alpha1.StrategyBlueGreen:
		return "bluegreen"
	case kultav1alpha1.StrategyABTesting:
		return "abtesting"
	default:
		return "rolling"
	}
}

// classify maps a transition to the type suffix, severity and outcome:
//
//	Started, StepAdvanced, Promoted → progressing, info, in_progress
//	Paused                          → paused, info (warning after a failed analysis), in_progress
//	Completed, Concluded            → completed, info, success
//	RolledBack, Failed              → failed, error (warning when the template was reverted), failure
func classify(t events.Transition) (string, Severity, Outcome) {
	switch t.Kind {
	case events.Paused:
		if pausedByFailure(t) {
			return "paused", SeverityWarning, OutcomeInProgress
		}
		return "paused", SeverityInfo, OutcomeInProgress
	case events.Completed, events.Concluded:
		return "completed", SeverityInfo, OutcomeSuccess
	case events.RolledBack, events.Failed:
		if t.Decision.Reason == reasonRevertedToStable {
			return "failed", SeverityWarning, OutcomeFailure
		}
		return "failed", SeverityError, OutcomeFailure
	default:
		return "progressing", SeverityInfo, OutcomeInProgress
	}
}

func pausedByFailure(t events.Transition) bool {
	return t.Kind == events.Paused && t.Decision.Reason == reasonAnalysisFailed
}

func needsError(t events.Transition) bool {
	return t.Kind == events.RolledBack || t.Kind == events.Failed || pausedByFailure(t)
}

func correlationKeys(t events.Transition) []CorrelationKey {
	ro := t.Rollout
	keys := []CorrelationKey{
		{Type: "rollout", Value: ro.Name},
		{Type: "namespace", Value: ro.Namespace},
	}
	if h := ro.Status.CurrentPodTemplateHash; h != "" {
		keys = append(keys, CorrelationKey{Type: "revision", Value: h})
	}
	if h := ro.Status.StablePodTemplateHash; h != "" {
		keys = append(keys, CorrelationKey{Type: "stable_revision", Value: h})
	}
	decision := t.Decision.Timestamp.UTC().Format(time.RFC3339) + "/" + string(t.Decision.Action) + "/" + t.Decision.Reason
	return append(keys, CorrelationKey{Type: "decision", Value: decision})
}

func rolloutData(ro *kultav1alpha1.Rollout, strategy string) RolloutData {
	st := &ro.Status
	return RolloutData{
		Name:           ro.Name,
		Namespace:      ro.Namespace,
		Strategy:       strategy,
		Phase:          st.Phase,
		Step:           st.CurrentStepIndex,
		Weight:         st.CurrentWeight,
		Image:          image(ro),
		Revision:       st.CurrentPodTemplateHash,
		StableRevision: st.StablePodTemplateHash,
		Replicas:       st.Replicas,
		ReadyReplicas:  st.ReadyReplicas,
		Message:        st.Message,
	}
}

func image(ro *kultav1alpha1.Rollout) string {
	if c := ro.Spec.Template.Spec.Containers; len(c) > 0 {
		return c[0].Image
	}
	return ""
}

// entities lists the Rollout, its current and stable ReplicaSets, and the strategy's Services.
func entities(ro *kultav1alpha1.Rollout) []Entity {
	ns := ro.Namespace
	out := []Entity{{
		Type: "rollout", Name: ro.Name, Namespace: ns, Version: ro.ResourceVersion,
		ID: events.RolloutURI(ns, ro.Name),
	}}
	replicaSet := func(hash, role string) {
		name := revision.Name(ro.Name, hash)
		out = append(out, Entity{Type: "replicaset", Name: name, Namespace: ns, Role: role, ID: "/apis/apps/v1/namespaces/" + ns + "/replicasets/" + name})
	}
	current, stable := ro.Status.CurrentPodTemplateHash, ro.Status.StablePodTemplateHash
	if current != "" {
		replicaSet(current, "current")
	}
	if stable != "" && stable != current {
		replicaSet(stable, "stable")
	}
	for _, svc := range services(&ro.Spec.Strategy) {
		out = append(out, Entity{Type: "service", Name: svc.name, Namespace: ns, Role: svc.role, ID: "/api/v1/namespaces/" + ns + "/services/" + svc.name})
	}
	return out
}

type service struct{ role, name string }

func services(s *kultav1alpha1.RolloutStrategy) []service {
	switch {
	case s.Canary != nil:
		return []service{{"stableService", s.Canary.StableService}, {"canaryService", s.Canary.CanaryService}}
	case s.BlueGreen != nil:
		return []service{{"activeService", s.BlueGreen.ActiveService}, {"previewService", s.BlueGreen.PreviewService}}
	case s.ABTesting != nil:
		return []service{{"variantAService", s.ABTesting.VariantAService}, {"variantBService", s.ABTesting.VariantBService}}
	default:
		return nil
	}
}

// reasoning gathers the decision's metric values, status.analysis and the experiment's state;
// it is nil when there is none of them.
func reasoning(t events.Transition) *Reasoning {
	r := &Reasoning{Summary: t.Decision.Message}
	names := make([]string, 0, len(t.Decision.Metrics))
	for name := range t.Decision.Metrics {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		m := t.Decision.Metrics[name]
		r.Evidence = append(r.Evidence, Evidence{Metric: name, Value: m.Value, Threshold: m.Threshold, Passed: m.Passed})
	}
	st := &t.Rollout.Status
	if a := st.Analysis; a != nil {
		r.Analysis = &Analysis{Revision: a.Revision, Verdict: a.Verdict, Reason: a.Reason, Message: a.Message}
	}
	if e := st.ABExperiment; e != nil {
		r.Experiment = &Experiment{Winner: e.Winner, ConclusionReason: e.ConclusionReason, Message: e.Message, SampleSizeA: e.SampleSizeA, SampleSizeB: e.SampleSizeB}
	}
	if len(r.Evidence) == 0 && r.Analysis == nil && r.Experiment == nil {
		return nil
	}
	return r
}

// history is the last historyLength decisions up to and including the transition's own.
func history(t events.Transition) *History {
	decisions := t.Rollout.Status.Decisions
	end := -1
	for i := len(decisions) - 1; i >= 0; i-- {
		if d := decisions[i]; d.Timestamp.Equal(&t.Decision.Timestamp) && d.Action == t.Decision.Action && d.Reason == t.Decision.Reason {
			end = i + 1
			break
		}
	}
	if end < 0 {
		decisions = append(append([]kultav1alpha1.Decision(nil), decisions...), t.Decision)
		end = len(decisions)
	}
	start := max(0, end-historyLength)
	h := &History{}
	for _, d := range decisions[start:end] {
		h.Steps = append(h.Steps, step(d))
	}
	return h
}

func step(d kultav1alpha1.Decision) Step {
	status := "completed"
	if d.Action == kultav1alpha1.ActionRollback || d.Action == kultav1alpha1.ActionFail {
		status = "failed"
	}
	return Step{
		Timestamp:   d.Timestamp.UTC().Format(time.RFC3339),
		Action:      d.Action,
		Reason:      d.Reason,
		Description: d.Message,
		Status:      status,
		FromStep:    d.FromStep,
		ToStep:      d.ToStep,
	}
}
