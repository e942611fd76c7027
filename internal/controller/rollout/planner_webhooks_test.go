package rollout

import (
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testutil"
)

func hook(name string, kind kultav1alpha1.WebhookType) kultav1alpha1.Webhook {
	return testutil.Hook(name, kind, "http://hooks.example.com/"+name)
}

// TestWebhookSequences walks Rollouts with webhooks through the planner and the reconciler's
// gate loop (ComputeWithGates), unhappy paths first: gates that say no, never say yes, fail
// before traffic, a rollback webhook mid-way, a rollout webhook that keeps failing, an abort
// while held followed by a fix.
func TestWebhookSequences(t *testing.T) {
	steps := testutil.WithCanarySteps(testutil.Weight(20), testutil.PauseFor("30s"), testutil.Weight(50), testutil.Weight(100))
	gates := testutil.WithWebhooks(
		hook("ask", kultav1alpha1.WebhookConfirmRollout),
		hook("smoke", kultav1alpha1.WebhookPreRollout),
		hook("more", kultav1alpha1.WebhookConfirmTrafficIncrease),
		hook("promote", kultav1alpha1.WebhookConfirmPromotion),
		hook("tell", kultav1alpha1.WebhookPostRollout),
		hook("stop", kultav1alpha1.WebhookRollback),
	)
	cases := map[string]struct {
		ro     *kultav1alpha1.Rollout
		script func(w *world)
	}{
		// confirm-rollout says no: the new revision gets no Pod and no traffic; a yes starts it.
		"webhook-confirm-rollout-held-then-yes": {canaryRollout(steps, gates), func(w *world) {
			w.settle("install", 5)
			w.refuse = map[kultav1alpha1.WebhookType]bool{kultav1alpha1.WebhookConfirmRollout: true}
			w.setImage("nginx:1.28")
			w.tick("new image, held", 10*time.Second)
			w.tick("still held", 10*time.Second)
			w.refuse = nil
			w.tick("confirmed", time.Second)
			w.tick("canary ready: pre-rollout, 20%", time.Second)
			w.tick("routes at 20%", 30*time.Second)
			w.tick("pause over: 50%", time.Second)
			w.tick("canary ready", time.Second)
			w.tick("routes at 50%: 100%", time.Second)
			w.tick("canary full", time.Second)
			w.tick("routes at 100%: promotion", time.Second)
			w.tick("steady", time.Second)
		}},
		// confirm-rollout never says yes: the wait counts against the progress deadline.
		"webhook-confirm-rollout-never-answers": {canaryRollout(steps, gates), func(w *world) {
			w.settle("install", 5)
			w.refuse = map[kultav1alpha1.WebhookType]bool{kultav1alpha1.WebhookConfirmRollout: true}
			w.setImage("nginx:1.28")
			w.tick("new image, held", 5*time.Minute)
			w.tick("still held", 5*time.Minute)
			w.tick("deadline passed", time.Second)
			w.tick("failed, nothing asked", time.Second)
		}},
		// pre-rollout fails once the canary's Pods are ready: rolled back before any traffic.
		"webhook-pre-rollout-fails": {canaryRollout(steps, gates), func(w *world) {
			w.settle("install", 5)
			w.refuse = map[kultav1alpha1.WebhookType]bool{kultav1alpha1.WebhookPreRollout: true}
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary ready: pre-rollout fails", 31*time.Second)
			w.tick("scaled down", time.Second)
			w.tick("failed", time.Second)
		}},
		// confirm-traffic-increase holds the canary at 20% until it says yes; the weight waits,
		// the Pods for 50% are ready.
		"webhook-confirm-traffic-increase-held": {canaryRollout(steps, gates), func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary ready: 20%", time.Second)
			w.tick("routes at 20%", 30*time.Second)
			w.refuse = map[kultav1alpha1.WebhookType]bool{kultav1alpha1.WebhookConfirmTrafficIncrease: true}
			w.tick("pause over: 50% asked", time.Second)
			w.tick("canary ready, held", 10*time.Second)
			w.tick("still held", 10*time.Second)
			w.refuse = nil
			w.tick("yes: 50%", time.Second)
			w.tick("routes at 50%: 100% asked", time.Second)
			w.tick("canary full", time.Second)
			w.tick("promotion", time.Second)
		}},
		// confirm-promotion holds a healthy canary at 100% of its steps; the yes promotes, and
		// post-rollout is told once.
		"webhook-confirm-promotion-held-then-yes": {canaryRollout(steps, gates), func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary ready: 20%", time.Second)
			w.tick("routes at 20%", 30*time.Second)
			w.tick("pause over: 50%", time.Second)
			w.tick("canary ready", time.Second)
			w.refuse = map[kultav1alpha1.WebhookType]bool{kultav1alpha1.WebhookConfirmPromotion: true}
			w.tick("routes at 50%: 100%", time.Second)
			w.tick("canary full", time.Second)
			w.tick("routes at 100%: held", 10*time.Second)
			w.tick("still held", 10*time.Second)
			w.refuse = nil
			w.tick("yes: promoted", 31*time.Second)
			w.tick("old revision scaled down", time.Second)
			w.tick("steady", time.Second)
		}},
		// The rollback webhook says yes mid-way: rolled back, and post-rollout told of the failure.
		"webhook-rollback-mid-way": {canaryRollout(steps, gates), func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary ready: 20%", time.Second)
			w.tick("routes at 20%", 10*time.Second)
			w.rollback = true
			w.tick("rollback webhook says yes", 31*time.Second)
			w.tick("scaled down", time.Second)
			w.tick("failed, not polled", time.Second)
		}},
		// Aborted while confirm-promotion holds, then a fixed image: the new revision is asked
		// again from confirm-rollout on.
		"webhook-abort-while-held-then-fix": {canaryRollout(steps, gates), func(w *world) {
			w.settle("install", 5)
			w.refuse = map[kultav1alpha1.WebhookType]bool{kultav1alpha1.WebhookConfirmTrafficIncrease: true}
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary ready: 20% held", 10*time.Second)
			w.annotate(kultav1alpha1.AbortAnnotation)
			w.tick("abort", 31*time.Second)
			w.tick("scaled down", time.Second)
			w.refuse = nil
			w.setImage("nginx:1.29")
			w.tick("fixed image", time.Second)
			w.tick("canary ready: 20%", time.Second)
			w.tick("routes at 20%", 30*time.Second)
			w.tick("pause over: 50%", time.Second)
		}},
		// A rollout webhook (a load test) fails twice in a row with failureThreshold 2: the
		// analysis fails and failurePolicy Rollback rolls back; its metric passes meanwhile.
		"webhook-rollout-hook-fails": {canaryRollout(steps, withAnalysis(kultav1alpha1.FailurePolicyRollback), testutil.WithWebhooks(
			kultav1alpha1.Webhook{Name: "load", Type: kultav1alpha1.WebhookRollout, URL: "http://loadtester.test/", FailureThreshold: ptr.To[int32](2)},
		)), func(w *world) {
			w.verdict = kultav1alpha1.VerdictPass
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary ready: 20%", 10*time.Second)
			w.tick("warm-up over: check passes", 30*time.Second)
			w.refuse = map[kultav1alpha1.WebhookType]bool{kultav1alpha1.WebhookRollout: true}
			w.tick("load test fails once", 30*time.Second)
			w.tick("fails twice: rolled back", 31*time.Second)
			w.tick("scaled down", time.Second)
		}},
		// Rollout webhooks alone are the analysis: each weighted step waits for their check.
		"webhook-rollout-hook-alone": {canaryRollout(steps, testutil.WithWebhooks(hook("load", kultav1alpha1.WebhookRollout))), func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary ready: 20%", time.Second)
			w.tick("load test passes: step 1", time.Second)
			w.tick("load test passes again: paused", 30*time.Second)
			w.tick("pause over: 50%", time.Second)
			w.tick("canary ready", time.Second)
			w.tick("routes at 50%: checked", time.Second)
			w.tick("load test passes: 100%", time.Second)
			w.tick("canary full", time.Second)
			w.tick("routes at 100%: checked", time.Second)
			w.tick("load test passes: promoted", time.Second)
		}},
		// Without routes the canary's Pods are its traffic: the gate comes before they scale.
		"webhook-traffic-increase-without-routes": {func() *kultav1alpha1.Rollout {
			ro := canaryRollout(steps, testutil.WithWebhooks(hook("more", kultav1alpha1.WebhookConfirmTrafficIncrease)))
			ro.Spec.Strategy.Canary.TrafficRouting = nil
			return ro
		}(), func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image: 20% asked", time.Second)
			w.tick("canary ready", 30*time.Second)
			w.refuse = map[kultav1alpha1.WebhookType]bool{kultav1alpha1.WebhookConfirmTrafficIncrease: true}
			w.tick("pause over: held at 1 Pod", 10*time.Second)
			w.tick("still held", time.Second)
			w.refuse = nil
			w.tick("yes: 2 Pods", time.Second)
		}},
		// Blue-green: pre-rollout once the preview is ready, confirm-promotion before the
		// cutover, which auto-promotion waits for too.
		"webhook-bluegreen-confirm-promotion": {canaryRollout(testutil.WithBlueGreen(func(bg *kultav1alpha1.BlueGreenStrategy) {
			bg.AutoPromotionEnabled = ptr.To(true)
			bg.AutoPromotionSeconds = ptr.To[int32](30)
		}), testutil.WithWebhooks(hook("smoke", kultav1alpha1.WebhookPreRollout), hook("promote", kultav1alpha1.WebhookConfirmPromotion), hook("tell", kultav1alpha1.WebhookPostRollout))), func(w *world) {
			w.settle("install", 5)
			w.refuse = map[kultav1alpha1.WebhookType]bool{kultav1alpha1.WebhookConfirmPromotion: true}
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("preview ready: pre-rollout", 30*time.Second)
			w.tick("auto-promotion due: held", 10*time.Second)
			w.refuse = nil
			w.tick("yes: promoted", 30*time.Second)
			w.tick("delay over", time.Second)
		}},
		// A rolling update whose pre-rollout fails never starts.
		"webhook-simple-pre-rollout-fails": {func() *kultav1alpha1.Rollout {
			ro := canaryRollout(testutil.WithSimple(nil), testutil.WithWebhooks(hook("smoke", kultav1alpha1.WebhookPreRollout)))
			ro.Spec.MaxSurge = nil
			return ro
		}(), func(w *world) {
			w.settle("install", 5)
			w.refuse = map[kultav1alpha1.WebhookType]bool{kultav1alpha1.WebhookPreRollout: true}
			w.setImage("nginx:1.28")
			w.tick("new image: pre-rollout fails", time.Second)
			w.tick("failed", time.Second)
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, tc.ro)
			tc.script(w)
			w.golden(name)
			for _, line := range w.lines {
				if strings.Contains(line, "hooks.example.com") || strings.Contains(line, "loadtester") {
					t.Errorf("a webhook URL in the trace: %s", line)
				}
			}
		})
	}
}
