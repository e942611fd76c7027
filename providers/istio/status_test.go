package istio_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/false-systems/kulta/providers/istio"
)

// withStatus is the VirtualService host-level at generation 3 with status.
func withStatus(t *testing.T, status map[string]any) *unstructured.Unstructured {
	t.Helper()
	vs := load(t, "host-level")
	vs.SetGeneration(3)
	if status != nil {
		vs.Object["status"] = status
	}
	return vs
}

func condition(conditionType, status string, generation any) map[string]any {
	c := map[string]any{"type": conditionType, "status": status, "reason": "Rejected", "message": "subset canary not found"}
	if generation != nil {
		c["observedGeneration"] = generation
	}
	return c
}

// TestAccepted checks the choice Accepted documents: accepted unless a Reconciled or Ready
// condition is False for the current generation, whichever way the generation is written.
func TestAccepted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status map[string]any
		want   bool
	}{
		{"no status", nil, true},
		{"empty status", map[string]any{}, true},
		{"reconciled", map[string]any{"conditions": []any{condition("Reconciled", "True", int64(3))}}, true},
		{"refused now", map[string]any{"conditions": []any{condition("Reconciled", "False", int64(3))}}, false},
		{"refused now, generation as a string", map[string]any{"conditions": []any{condition("Reconciled", "False", "3")}}, false},
		{"refused now, generation on the status", map[string]any{"observedGeneration": "3", "conditions": []any{condition("Reconciled", "False", nil)}}, false},
		{"ready false now", map[string]any{"conditions": []any{condition("Ready", "False", int64(3))}}, false},
		{"refused an older generation", map[string]any{"conditions": []any{condition("Reconciled", "False", int64(2))}}, true},
		{"refused, no generation", map[string]any{"conditions": []any{condition("Reconciled", "False", nil)}}, true},
		{"unknown now", map[string]any{"conditions": []any{condition("Reconciled", "Unknown", int64(3))}}, true},
		{"another condition false", map[string]any{"conditions": []any{condition("Synced", "False", int64(3))}}, true},
		{"analyzer messages only", map[string]any{"validationMessages": []any{map[string]any{"level": "ERROR", "type": map[string]any{"code": "IST0101"}}}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, msg := istio.Accepted(withStatus(t, tc.status))
			if ok != tc.want {
				t.Fatalf("Accepted = %v (%s), want %v", ok, msg, tc.want)
			}
			if !ok && (!strings.Contains(msg, "VirtualService shop/web generation 3") || !strings.Contains(msg, "subset canary not found")) {
				t.Errorf("the message must name the object, its generation and Istio's message: %s", msg)
			}
		})
	}
}
