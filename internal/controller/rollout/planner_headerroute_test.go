package rollout

import (
	"slices"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testutil"
)

// TestHeaderRouteSequences walks canaries with setHeaderRoute steps, unhappy paths first: testers
// reach the canary by header before any weight, a second route by cookie joins, the first is
// removed by name, and every route goes at the end, on abort, on a rollback and when a new
// revision replaces the one in flight.
func TestHeaderRouteSequences(t *testing.T) {
	beta := kultav1alpha1.HeaderRouteMatch{Cookie: &kultav1alpha1.CookieMatch{Name: "beta", Value: "1"}}
	steps := testutil.WithCanarySteps(
		testutil.HeaderRouteStep("testers", testutil.HeaderExact("X-Canary", "yes")),
		testutil.Weight(20), testutil.PauseFor("1m"),
		testutil.HeaderRouteStep("beta", beta),
		testutil.Weight(50), testutil.HeaderRouteStep("testers"), testutil.PauseFor("30s"),
		testutil.Weight(100))
	cases := map[string]func(w *world){
		// Aborted with two header routes in place: both go with the weight.
		"canary-header-route-abort": func(w *world) {
			toHeaderRoutes(w)
			w.annotate(kultav1alpha1.AbortAnnotation)
			w.tick("abort", time.Second)
			w.tick("rolled back", 31*time.Second)
			w.tick("scaled down", time.Second)
		},
		// The canary's Pod never turns ready: no header route is set, so no tester's request
		// meets a Service without Pods; the progress deadline rolls back.
		"canary-header-route-never-ready": func(w *world) {
			w.settle("install", 5)
			w.kubelet = false
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("no Pod ready", 5*time.Minute)
			w.tick("still none", 5*time.Minute)
			w.tick("deadline passed", time.Second)
		},
		// A new image while the header routes are in place: the new revision starts from step
		// 0, the old routes go, and the first comes back once the new canary has a Pod.
		"canary-header-route-new-revision": func(w *world) {
			toHeaderRoutes(w)
			w.setImage("nginx:1.29")
			w.tick("new image mid-flight", time.Second)
			w.tick("new canary ready", time.Second)
			w.tick("route at 20%", time.Minute)
			w.tick("pause over", time.Second)
			w.tick("route at 50%", time.Second)
			w.tick("testers removed", 30*time.Second)
			w.tick("pause over", time.Second)
			w.tick("route at 100%", time.Second)
			w.tick("promoted", time.Second)
		},
		"canary-header-route-happy-path": func(w *world) {
			toHeaderRoutes(w)
			w.tick("route at 50%", time.Second)
			w.tick("testers removed", time.Second)
			w.tick("paused", 30*time.Second)
			w.tick("pause over", time.Second)
			w.tick("route at 100%", time.Second)
			w.tick("promoted", time.Second)
			w.tick("steady", time.Second)
		},
	}
	for name, script := range cases {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, canaryRollout(steps))
			script(w)
			w.golden(name)
			if len(w.headers) != 0 || len(w.ro.Status.HeaderRoutes) != 0 {
				t.Errorf("header routes %v (status %v) left at the end, want none", w.headers, w.ro.Status.HeaderRoutes)
			}
		})
	}
}

// toHeaderRoutes installs the first revision and walks a new one to the second header route:
// testers by header, then 20 %, a pause, and beta testers by cookie.
func toHeaderRoutes(w *world) {
	w.settle("install", 5)
	w.setImage("nginx:1.28")
	w.tick("new image", time.Second)
	w.tick("1 canary Pod ready", time.Second)
	w.tick("route at 20%", time.Second)
	w.tick("paused", time.Minute)
	w.tick("pause over", time.Second)
	if got, want := w.ro.Status.HeaderRoutes, []string{"beta", "testers"}; !slices.Equal(got, want) {
		w.t.Fatalf("status.headerRoutes = %v after the second setHeaderRoute, want %v", got, want)
	}
}

// TestHeaderRouteStepScalesTheCanary: a header route at weight 0 gives the canary one Pod, and
// the route is planned only once that Pod is available.
func TestHeaderRouteStepScalesTheCanary(t *testing.T) {
	w := newWorld(t, canaryRollout(testutil.WithCanarySteps(testutil.HeaderRouteStep("testers", testutil.HeaderExact("X-Canary", "yes")), testutil.Weight(50))))
	w.settle("install", 5)
	w.setImage("nginx:1.28")
	w.kubelet = false
	w.tick("new image", time.Second)
	canary := w.revs[w.hash()]
	if canary == nil || canary.Replicas != 1 {
		t.Fatalf("canary at weight 0 with a header route to come: %+v, want 1 Pod", canary)
	}
	if len(w.headers) != 0 || w.ro.Status.CurrentStepIndex == nil || *w.ro.Status.CurrentStepIndex != 0 {
		t.Fatalf("header routes %v at step %v before the canary's Pod is ready, want none at step 0", w.headers, w.ro.Status.CurrentStepIndex)
	}
	w.kubelet = true
	canary.Ready, canary.Available = 1, 1
	w.tick("canary Pod ready", time.Second)
	if _, set := w.headers["kulta-web.testers"]; !set || ptr.Deref(w.ro.Status.CurrentStepIndex, 0) != 1 {
		t.Errorf("header routes %v at step %v once the Pod is ready, want kulta-web.testers at step 1", w.headers, w.ro.Status.CurrentStepIndex)
	}
}

// TestHeaderRoutesWaitForACanaryPod: kulta.io/promote=full skips a setHeaderRoute step while no
// canary Pod is ready; its route is not written until one is, so no request it matches meets a
// canary Service without Pods.
func TestHeaderRoutesWaitForACanaryPod(t *testing.T) {
	w := newWorld(t, canaryRollout(testutil.WithCanarySteps(testutil.PauseUntilPromoted(),
		testutil.HeaderRouteStep("testers", testutil.HeaderExact("X-Canary", "yes")), testutil.Weight(50))))
	w.settle("install", 5)
	w.kubelet = false
	w.setImage("nginx:1.28")
	w.tick("new image", time.Second)
	w.ro.Annotations = map[string]string{kultav1alpha1.PromoteAnnotation: "full"}
	w.tick("promote=full", time.Second)
	w.tick("canary not ready", time.Second)
	if len(w.headers) != 0 {
		t.Fatalf("header routes %v while the canary has no available Pod, want none", w.headers)
	}
	w.kubelet = true
	w.tick("canary ready", time.Second)
	w.tick("promoted", time.Second)
	if len(w.headers) != 0 || w.ro.Status.Phase != kultav1alpha1.PhaseCompleted {
		t.Errorf("after the promotion: phase %s, header routes %v; want Completed and none", w.ro.Status.Phase, w.headers)
	}
}
