package events

import (
	"time"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// Kind is the kind of transition a Rollout went through.
type Kind string

// Kinds of transitions.
const (
	// Started: a new revision (or a retry of the current one) began rolling out.
	Started Kind = "Started"
	// StepAdvanced: the new revision moved to its next step and receives more traffic.
	StepAdvanced Kind = "StepAdvanced"
	// Paused: the rollout waits, for a duration, for promotion, or after a failed analysis.
	Paused Kind = "Paused"
	// Promoted: a person promoted the new revision past a failed analysis.
	Promoted Kind = "Promoted"
	// Completed: the new revision is stable and serves all traffic.
	Completed Kind = "Completed"
	// RolledBack: all traffic went back to the stable revision.
	RolledBack Kind = "RolledBack"
	// Failed: the rollout failed with nothing to roll back to.
	Failed Kind = "Failed"
	// Concluded: an A/B experiment ended.
	Concluded Kind = "Concluded"
)

// Transition is one change of a Rollout worth telling the outside world about.
type Transition struct {
	// Rollout is a copy of the Rollout after the transition, status included. Sinks must not
	// modify it; several transitions of one reconcile may share it.
	Rollout *kultav1alpha1.Rollout
	// Kind is what kind of transition this is.
	Kind Kind
	// Decision is the decision that caused it: reason, message, metrics and steps.
	Decision kultav1alpha1.Decision
	// Time is when the transition happened (the decision's timestamp).
	Time time.Time
	// StableImage is the first container image of the stable revision, when the caller knows
	// it. A rollback names it as the artifact that now serves; without it, sinks fall back to
	// spec.template's image.
	StableImage string
}

// Sink receives transitions. Emit must never block the caller for long and never fail it: an
// implementation that cannot deliver drops, counts and logs.
type Sink interface {
	Emit(t Transition)
}

// Sinks fans a transition out to several sinks, in order. Nil entries are skipped.
type Sinks []Sink

// Emit hands t to every sink.
func (s Sinks) Emit(t Transition) {
	for _, sink := range s {
		if sink != nil {
			sink.Emit(t)
		}
	}
}

var _ Sink = Sinks(nil)

// RolloutURI is the API path of a Rollout, /apis/kulta.io/v1alpha1/namespaces/NS/rollouts/NAME.
// Sinks use it to name the Rollout (CDEvents source and subject id, occurrence entity id).
func RolloutURI(namespace, name string) string {
	return "/apis/" + kultav1alpha1.GroupVersion.String() + "/namespaces/" + namespace + "/rollouts/" + name
}

// KindOf maps a decision to the kind of transition it records:
//
//	Initialize (Initialization, NewRevision, any other reason) → Started
//	Initialize with reason ExperimentStarted                   → StepAdvanced (variant B starts receiving traffic)
//	Resume with reason Retry                                   → Started (the revision rolls out again from the start)
//	StepAdvance                                                → StepAdvanced
//	Pause                                                      → Paused
//	Promotion                                                  → Promoted
//	Complete                                                   → Completed
//	Rollback                                                   → RolledBack
//	Fail                                                       → Failed
//	Conclude                                                   → Concluded
//
// It returns false for decisions that are not transitions worth an event: Resume for any other
// reason (such as continuing past a failed analysis as failurePolicy Continue says) and actions
// it does not know.
func KindOf(d kultav1alpha1.Decision) (Kind, bool) {
	switch d.Action {
	case kultav1alpha1.ActionInitialize:
		if d.Reason == "ExperimentStarted" {
			return StepAdvanced, true
		}
		return Started, true
	case kultav1alpha1.ActionResume:
		if d.Reason == "Retry" {
			return Started, true
		}
		return "", false
	case kultav1alpha1.ActionStepAdvance:
		return StepAdvanced, true
	case kultav1alpha1.ActionPause:
		return Paused, true
	case kultav1alpha1.ActionPromotion:
		return Promoted, true
	case kultav1alpha1.ActionComplete:
		return Completed, true
	case kultav1alpha1.ActionRollback:
		return RolledBack, true
	case kultav1alpha1.ActionFail:
		return Failed, true
	case kultav1alpha1.ActionConclude:
		return Concluded, true
	default:
		return "", false
	}
}

// Transitions returns the transitions recorded by the decisions that after has and before did
// not: the decisions appended to status.decisions after the last one before had. before may be
// nil (a Rollout seen for the first time). All transitions share one deep copy of after.
func Transitions(before, after *kultav1alpha1.Rollout) []Transition {
	if after == nil {
		return nil
	}
	var previous []kultav1alpha1.Decision
	if before != nil {
		previous = before.Status.Decisions
	}
	fresh := NewDecisions(previous, after.Status.Decisions)
	if len(fresh) == 0 {
		return nil
	}
	ro := after.DeepCopy()
	var out []Transition
	for _, d := range fresh {
		kind, ok := KindOf(d)
		if !ok {
			continue
		}
		out = append(out, Transition{Rollout: ro, Kind: kind, Decision: *d.DeepCopy(), Time: d.Timestamp.Time})
	}
	return out
}

// NewDecisions returns the decisions of after that follow the last decision of before. When
// before is empty, or its last decision is no longer in after, all of after is new.
func NewDecisions(before, after []kultav1alpha1.Decision) []kultav1alpha1.Decision {
	if len(before) == 0 {
		return after
	}
	last := before[len(before)-1]
	for i := len(after) - 1; i >= 0; i-- {
		if sameDecision(after[i], last) {
			return after[i+1:]
		}
	}
	return after
}

func sameDecision(a, b kultav1alpha1.Decision) bool {
	return a.Timestamp.Equal(&b.Timestamp) && a.Action == b.Action && a.Reason == b.Reason &&
		a.Message == b.Message && equalStep(a.FromStep, b.FromStep) && equalStep(a.ToStep, b.ToStep)
}

func equalStep(a, b *int32) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
