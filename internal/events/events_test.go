package events

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

func TestKindOf(t *testing.T) {
	for _, tc := range []struct {
		action kultav1alpha1.DecisionAction
		reason string
		want   Kind
		ok     bool
	}{
		{kultav1alpha1.ActionInitialize, "Initialization", Started, true},
		{kultav1alpha1.ActionInitialize, "NewRevision", Started, true},
		{kultav1alpha1.ActionInitialize, "ExperimentStarted", StepAdvanced, true},
		{kultav1alpha1.ActionResume, "Retry", Started, true},
		{kultav1alpha1.ActionResume, "AnalysisFailedContinuing", "", false},
		{kultav1alpha1.ActionStepAdvance, "WeightReached", StepAdvanced, true},
		{kultav1alpha1.ActionPause, "PauseStarted", Paused, true},
		{kultav1alpha1.ActionPause, "AnalysisFailed", Paused, true},
		{kultav1alpha1.ActionPromotion, "ManualOverride", Promoted, true},
		{kultav1alpha1.ActionComplete, "AllStepsCompleted", Completed, true},
		{kultav1alpha1.ActionRollback, "AnalysisFailed", RolledBack, true},
		{kultav1alpha1.ActionFail, "ProgressDeadlineExceeded", Failed, true},
		{kultav1alpha1.ActionConclude, "SignificanceReached", Concluded, true},
		{"Unknown", "Whatever", "", false},
	} {
		got, ok := KindOf(kultav1alpha1.Decision{Action: tc.action, Reason: tc.reason})
		if got != tc.want || ok != tc.ok {
			t.Errorf("KindOf(%s/%s) = %q, %v; want %q, %v", tc.action, tc.reason, got, ok, tc.want, tc.ok)
		}
	}
}

func decision(seconds int, action kultav1alpha1.DecisionAction, reason string) kultav1alpha1.Decision {
	return kultav1alpha1.Decision{
		Timestamp: metav1.NewTime(time.Date(2026, 3, 1, 12, 0, seconds, 0, time.UTC)),
		Action:    action, Reason: reason, ToStep: ptr.To[int32](1),
	}
}

func TestTransitions(t *testing.T) {
	before := &kultav1alpha1.Rollout{}
	before.Status.Decisions = []kultav1alpha1.Decision{
		decision(0, kultav1alpha1.ActionInitialize, "NewRevision"),
		decision(10, kultav1alpha1.ActionStepAdvance, "WeightReached"),
	}
	after := before.DeepCopy()
	after.Status.Decisions = append(after.Status.Decisions[1:], // the oldest one rotated out
		decision(20, kultav1alpha1.ActionResume, "AnalysisFailedContinuing"),
		decision(20, kultav1alpha1.ActionStepAdvance, "PauseDurationExpired"),
		decision(20, kultav1alpha1.ActionPause, "PauseStarted"),
	)
	got := Transitions(before, after)
	if len(got) != 2 || got[0].Kind != StepAdvanced || got[1].Kind != Paused {
		t.Fatalf("transitions %+v, want StepAdvanced then Paused", got)
	}
	if got[0].Rollout == after || got[0].Rollout != got[1].Rollout {
		t.Errorf("want one shared copy of the Rollout")
	}
	if !got[0].Time.Equal(after.Status.Decisions[2].Timestamp.Time) || got[0].Decision.Reason != "PauseDurationExpired" {
		t.Errorf("transition %+v does not carry its decision", got[0])
	}
	if n := len(Transitions(nil, after)); n != 3 {
		t.Errorf("a Rollout seen first: %d transitions, want 3 (every decision worth one)", n)
	}
	if n := len(Transitions(after, after)); n != 0 {
		t.Errorf("no new decisions: %d transitions, want 0", n)
	}
}

type recorder struct{ kinds []Kind }

func (r *recorder) Emit(t Transition) { r.kinds = append(r.kinds, t.Kind) }

func TestSinksFanOut(t *testing.T) {
	a, b := &recorder{}, &recorder{}
	Sinks{a, nil, b}.Emit(Transition{Kind: Completed})
	if len(a.kinds) != 1 || len(b.kinds) != 1 {
		t.Errorf("fan-out reached %d and %d sinks' Emit, want 1 each", len(a.kinds), len(b.kinds))
	}
}

func TestRolloutURI(t *testing.T) {
	if got := RolloutURI("shop", "checkout"); got != "/apis/kulta.io/v1alpha1/namespaces/shop/rollouts/checkout" {
		t.Errorf("RolloutURI = %s", got)
	}
}
