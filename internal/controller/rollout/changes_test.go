package rollout

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// TestStatusChanges checks the names the log of a status write gives what it changed.
func TestStatusChanges(t *testing.T) {
	before := &kultav1alpha1.RolloutStatus{Phase: kultav1alpha1.PhaseProgressing, Replicas: 4, CurrentStepIndex: ptr.To[int32](0)}
	meta.SetStatusCondition(&before.Conditions, metav1.Condition{Type: kultav1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: "Waiting", Message: "1 of 4"})
	meta.SetStatusCondition(&before.Conditions, metav1.Condition{Type: kultav1alpha1.ConditionStalled, Status: metav1.ConditionFalse, Reason: "NoProblem"})
	after := before.DeepCopy()
	after.Replicas = 5
	after.CurrentStepIndex = ptr.To[int32](1)
	after.Conditions[0].Message = "2 of 4"
	meta.RemoveStatusCondition(&after.Conditions, kultav1alpha1.ConditionStalled)
	meta.SetStatusCondition(&after.Conditions, metav1.Condition{Type: kultav1alpha1.ConditionTrafficRouted, Status: metav1.ConditionTrue, Reason: "RoutesAccepted"})

	got := statusChanges(before, after)
	want := []string{"currentStepIndex", "replicas", "conditions.Ready.message", "conditions.TrafficRouted=True/RoutesAccepted", "conditions.Stalled"}
	if len(got) != len(want) {
		t.Fatalf("changes %v, want %v", got, want)
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			t.Errorf("changes %v lack %q", got, w)
		}
	}
	if got := statusChanges(before, before.DeepCopy()); len(got) != 0 {
		t.Errorf("no change named %v", got)
	}
}
