package rollout

import (
	"testing"
	"time"

	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testutil"
)

// TestMirrorRouteSequences walks canaries with setMirrorRoute steps, unhappy paths first: a copy
// of the requests reaches the canary before any weight, an analysis step judges it on them, and
// every mirror route goes at the end, on abort, on a failed analysis and when the canary never
// has a Pod to take the copies.
func TestMirrorRouteSequences(t *testing.T) {
	errorRate := kultav1alpha1.Metric{Name: "error-rate", Threshold: "5"}
	mirrorThenAnalyse := testutil.WithCanarySteps(
		testutil.MirrorRouteStep("shadow", 50),
		testutil.AnalyzeStep(errorRate),
		testutil.Weight(20), testutil.MirrorRouteStep("shadow", 0),
		testutil.PauseFor("30s"), testutil.Weight(100))
	// Mixed steps, as issue #18 lists them: testers by header, a mirror of the API calls, a
	// weight, an analysis step, then a person's promotion.
	mixed := testutil.WithCanarySteps(
		testutil.HeaderRouteStep("testers", testutil.HeaderExact("X-Canary", "yes")),
		testutil.MirrorRouteStep("api", 0, kultav1alpha1.HeaderRouteMatch{HeaderName: "X-Api", HeaderValue: &kultav1alpha1.StringMatch{Prefix: ptr.To("v2")}}),
		testutil.Weight(20),
		testutil.AnalyzeStep(errorRate),
		testutil.PauseUntilPromoted(),
		testutil.Weight(100))
	cases := map[string]struct {
		ro     *kultav1alpha1.Rollout
		script func(w *world)
	}{
		// The canary's Pod never turns ready: no mirror route is written (copies would meet a
		// Service without Pods), and the progress deadline rolls back.
		"canary-mirror-route-never-ready": {canaryRollout(mirrorThenAnalyse), func(w *world) {
			w.settle("install", 5)
			w.kubelet = false
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("no Pod ready", 5*time.Minute)
			w.tick("still none", 5*time.Minute)
			w.tick("deadline passed", time.Second)
		}},
		// The analysis of the mirrored requests fails: the mirror goes with the rollback, before
		// any user reached the canary.
		"canary-mirror-route-analysis-fails": {canaryRollout(mirrorThenAnalyse), func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary Pod ready, mirror set", time.Second)
			w.verdict = kultav1alpha1.VerdictFail
			w.tick("analysis step due", time.Second)
			w.tick("analysis fails", time.Second)
			w.tick("rolled back", 31*time.Second)
			w.tick("scaled down", time.Second)
		}},
		// Aborted while mirroring, then a fixed image: the new canary mirrors again once its Pod
		// is ready, and its analysis starts afresh.
		"canary-mirror-route-abort-then-fix": {canaryRollout(mirrorThenAnalyse), func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary Pod ready, mirror set", time.Second)
			w.verdict = kultav1alpha1.VerdictInconclusive
			w.tick("analysis step due", time.Second)
			w.annotate(kultav1alpha1.AbortAnnotation)
			w.tick("abort", time.Second)
			w.tick("rolled back", 31*time.Second)
			w.verdict = kultav1alpha1.VerdictPass
			w.setImage("nginx:1.29")
			w.tick("fixed image", time.Second)
			w.tick("canary Pod ready, mirror set", time.Second)
			w.tick("analysis passes", time.Second)
			w.tick("route at 20%, mirror removed", time.Second)
			w.tick("paused", 30*time.Second)
			w.tick("pause over", time.Second)
			w.tick("route at 100%", time.Second)
			w.tick("promoted", time.Second)
		}},
		"canary-mirror-route-happy-path": {canaryRollout(mirrorThenAnalyse), func(w *world) {
			w.verdict = kultav1alpha1.VerdictPass
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary Pod ready, mirror set", time.Second)
			w.tick("analysis passes", time.Second)
			w.tick("route at 20%, mirror removed, paused", 30*time.Second)
			w.tick("pause over", time.Second)
			w.tick("route at 100%", time.Second)
			w.tick("promoted", time.Second)
		}},
		// Mixed steps: the header and mirror routes are in place through the weight and the
		// analysis, and go with the promotion.
		"canary-mixed-steps": {canaryRollout(mixed), func(w *world) {
			w.verdict = kultav1alpha1.VerdictPass
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary Pod ready: header and mirror routes", time.Second)
			w.tick("route at 20%", time.Second)
			w.tick("analysis passes, paused", time.Second)
			w.tick("waiting for promotion", time.Minute)
			w.annotate(kultav1alpha1.PromoteAnnotation)
			w.tick("promoted past the pause", time.Second)
			w.tick("route at 100%", time.Second)
			w.tick("promoted", time.Second)
			w.tick("steady", time.Second)
		}},
		// Mixed steps whose analysis fails: header and mirror routes go with the rollback.
		"canary-mixed-steps-analysis-fails": {canaryRollout(mixed), func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary Pod ready: header and mirror routes", time.Second)
			w.tick("route at 20%", time.Second)
			w.verdict = kultav1alpha1.VerdictFail
			w.tick("analysis step due", time.Second)
			w.tick("analysis fails", time.Second)
			w.tick("rolled back", 31*time.Second)
			w.tick("scaled down", time.Second)
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, tc.ro)
			tc.script(w)
			w.golden(name)
			if len(w.headers) != 0 || len(w.ro.Status.HeaderRoutes) != 0 {
				t.Errorf("routes %v (status %v) left at the end, want none", w.headers, w.ro.Status.HeaderRoutes)
			}
		})
	}
}
