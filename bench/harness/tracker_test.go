package harness

import (
	"testing"

	"k8s.io/utils/ptr"

	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
)

// TestTrackerTakesThePromotionForTheLastStep: the route at 80/20 and 50/50 lands steps 1 and 2;
// back at 100/0 after them it lands step 3 (the promotion KULTA makes of a last step of weight
// 100); at 100/0 before any step it lands nothing.
func TestTrackerTakesThePromotionForTheLastStep(t *testing.T) {
	tr := NewTracker()
	tr.StartWave("img:2")
	route := rollouttest.Route("ns", "web", "web-stable", "web-canary")
	set := func(stable, canary int32) {
		route = route.DeepCopy()
		refs := route.Spec.Rules[0].BackendRefs
		refs[0].Weight, refs[1].Weight = ptr.To(stable), ptr.To(canary)
		tr.onRoute(route)
	}
	landed := func() int { return len(tr.tracks["ns/web"].weightAt) }
	set(100, 0)
	if landed() != 0 {
		t.Fatalf("100/0 before the first step landed %d steps", landed())
	}
	set(80, 20)
	set(50, 50)
	if landed() != 2 {
		t.Fatalf("80/20 then 50/50 landed %d steps, want 2", landed())
	}
	set(100, 0)
	if landed() != 3 {
		t.Fatalf("100/0 after 50/50 landed %d steps, want 3", landed())
	}
	if _, ok := tr.tracks["ns/web"].weightAt[100]; !ok {
		t.Errorf("the promotion was not recorded as step 3 (weight 100): %v", tr.tracks["ns/web"].weightAt)
	}
}
