package harness

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

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

// AcceptedGeneration is the generation every parent accepted; the tracker counts a step's
// weights accepted only at the route's current generation.
func TestAcceptedGeneration(t *testing.T) {
	accepted := func(status metav1.ConditionStatus, generation int64) gatewayv1.RouteParentStatus {
		return gatewayv1.RouteParentStatus{Conditions: []metav1.Condition{{Type: "Accepted", Status: status, ObservedGeneration: generation}}}
	}
	route := rollouttest.Route("ns", "web", "web-stable", "web-canary")
	route.Generation = 3
	for name, c := range map[string]struct {
		parents []gatewayv1.RouteParentStatus
		want    int64
	}{
		"no parent reported":    {nil, -1},
		"one parent at 3":       {[]gatewayv1.RouteParentStatus{accepted(metav1.ConditionTrue, 3)}, 3},
		"two parents at 2":      {[]gatewayv1.RouteParentStatus{accepted(metav1.ConditionTrue, 2), accepted(metav1.ConditionTrue, 2)}, 2},
		"parents disagree":      {[]gatewayv1.RouteParentStatus{accepted(metav1.ConditionTrue, 3), accepted(metav1.ConditionTrue, 2)}, -1},
		"one parent refuses":    {[]gatewayv1.RouteParentStatus{accepted(metav1.ConditionTrue, 3), accepted(metav1.ConditionFalse, 3)}, -1},
		"no Accepted condition": {[]gatewayv1.RouteParentStatus{{}}, -1},
	} {
		route.Status.Parents = c.parents
		if got := AcceptedGeneration(route); got != c.want {
			t.Errorf("%s: AcceptedGeneration = %d, want %d", name, got, c.want)
		}
	}

	// The tracker takes step 1 as accepted only once the route's current generation is.
	tr := NewTracker()
	tr.StartWave("img:2")
	at20 := route.DeepCopy()
	refs := at20.Spec.Rules[0].BackendRefs
	refs[0].Weight, refs[1].Weight = ptr.To[int32](80), ptr.To[int32](20)
	at20.Status.Parents = []gatewayv1.RouteParentStatus{accepted(metav1.ConditionTrue, 2)}
	tr.onRoute(at20)
	if _, ok := tr.tracks["ns/web"].accepted[20]; ok {
		t.Fatal("weight 20 taken as accepted at an older generation")
	}
	at20 = at20.DeepCopy()
	at20.Status.Parents = []gatewayv1.RouteParentStatus{accepted(metav1.ConditionTrue, 3)}
	tr.onRoute(at20)
	if _, ok := tr.tracks["ns/web"].accepted[20]; !ok {
		t.Fatal("weight 20 not taken as accepted at the route's generation")
	}
}

// TestTrackerFollowsTheCanaryIngress: through NGINX, the canary Ingress at canary-weight 20 and
// 50 lands steps 1 and 2, each accepted once seen, and its deletion (a tombstone too) lands
// step 3; an Ingress that is not a Rollout's canary Ingress lands nothing.
func TestTrackerFollowsTheCanaryIngress(t *testing.T) {
	tr := NewTracker()
	tr.StartWave("img:2")
	ref := Ref{Namespace: "ns", Name: "web"}
	at := func(w int32) *networkingv1.Ingress {
		ing, err := floorIngressAt(ref, w)
		if err != nil {
			t.Fatal(err)
		}
		return ing
	}
	tr.onCanaryIngress(stableIngress(ref))
	if len(tr.tracks) != 0 {
		t.Fatalf("the stable Ingress was tracked: %v", tr.tracks)
	}
	tr.onCanaryIngress(at(20))
	tr.onCanaryIngress(at(50))
	track := tr.tracks["ns/web"]
	if track == nil || len(track.weightAt) != 2 || track.accepted[20].IsZero() || track.accepted[50].IsZero() {
		t.Fatalf("canary-weight 20 then 50: %+v, want both landed and accepted", track)
	}
	tr.onCanaryIngressDeleted(toolscache.DeletedFinalStateUnknown{Key: "ns/web-web-canary", Obj: at(50)})
	if _, ok := track.weightAt[100]; !ok || track.next != 3 {
		t.Errorf("the canary Ingress's deletion did not land step 3: %+v", track)
	}
}
