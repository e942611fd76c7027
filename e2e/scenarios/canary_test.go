//go:build e2e

package scenarios

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
)

// TestStrategies starts one world and runs a scenario of every strategy in it side by side,
// each in its own namespace.
func TestStrategies(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	w := startWorld(ctx, t, worldOptions{})
	// The group returns once its parallel scenarios have ended, before the world stops.
	t.Run("side by side", func(t *testing.T) {
		t.Run("canary analysis passes", func(t *testing.T) {
			t.Parallel()
			canaryAnalysisPasses(ctx, t, w)
		})
		t.Run("canary analysis fails", func(t *testing.T) {
			t.Parallel()
			canaryAnalysisFails(ctx, t, w)
		})
		t.Run("canary fixed forward after a rollback", func(t *testing.T) {
			t.Parallel()
			canaryFixedForward(ctx, t, w)
		})
		t.Run("blue-green preview analysis and auto-promotion", func(t *testing.T) {
			t.Parallel()
			blueGreenAutoPromotion(ctx, t, w)
		})
		t.Run("A/B test concludes B wins", func(t *testing.T) {
			t.Parallel()
			abTestBWins(ctx, t, w)
		})
		t.Run("simple rolling update", func(t *testing.T) {
			t.Parallel()
			simpleRollingUpdate(ctx, t, w)
		})
		t.Run("canary deleted midway hands traffic back", func(t *testing.T) {
			t.Parallel()
			canaryDeletedMidway(ctx, t, w)
		})
		t.Run("slow stable holds the failed revision", func(t *testing.T) {
			t.Parallel()
			slowStableKeepsFailedPods(ctx, t, w)
		})
		for _, via := range []string{viaIstio, viaNGINX} {
			t.Run("canary through "+via+" analysis passes", func(t *testing.T) {
				t.Parallel()
				providerCanaryPasses(ctx, t, w, via)
			})
			t.Run("canary through "+via+" analysis fails", func(t *testing.T) {
				t.Parallel()
				providerCanaryFails(ctx, t, w, via)
			})
		}
		t.Run("canary scaled apart from its weight, off stable's Nodes", func(t *testing.T) {
			t.Parallel()
			canaryScaleApart(ctx, t, w)
		})
		t.Run("Argo Rollouts canary converted by kubectl kulta convert", func(t *testing.T) {
			t.Parallel()
			argoCanaryConverted(ctx, t, w)
		})
		t.Run("Flagger canary converted by kubectl kulta convert", func(t *testing.T) {
			t.Parallel()
			flaggerCanaryConverted(ctx, t, w)
		})
		t.Run("Deployment adopted, updated and handed back without a failed request", func(t *testing.T) {
			t.Parallel()
			deploymentAdopted(ctx, t, w)
		})
		t.Run("canary through Gateway API and Istio at once", func(t *testing.T) {
			t.Parallel()
			providerCanaryPasses(ctx, t, w, viaGatewayAPIAndIstio)
		})
		t.Run("canary held for promotion by a webhook", func(t *testing.T) {
			t.Parallel()
			canaryHeldForPromotion(ctx, t, w)
		})
		t.Run("canary rolled back by a webhook", func(t *testing.T) {
			t.Parallel()
			canaryRolledBackByWebhook(ctx, t, w)
		})
	})
}

// canaryAnalysisPasses updates a healthy application to a healthy image: the route goes
// 100/0 → 80/20 → 50/50 → 100/0 and the new revision becomes stable with all its Pods.
func canaryAnalysisPasses(ctx context.Context, t *testing.T, w *world) {
	a := canaryApp(w, w.newNamespace(ctx, t, "canary-pass"), "web", "5s")
	began := time.Now()
	oldHash := a.deploy(ctx, t, goodImage)
	t.Logf("first revision %s Completed after %s", oldHash, time.Since(began).Round(time.Millisecond))

	watch := a.watchWeights(ctx, t)
	began = time.Now()
	a.setImage(ctx, t, betterImage)
	ro := a.waitCompleted(ctx, t, oldHash, 2*time.Minute)
	newHash := ro.Status.StablePodTemplateHash
	t.Logf("revision %s Completed after %s", newHash, time.Since(began).Round(time.Millisecond))
	if passed := passedAnalyses(ro); passed < 2 {
		t.Errorf("%d decisions backed by a passing error-rate analysis, want one for each of the 2 weighted steps; decisions: %+v", passed, ro.Status.Decisions)
	}
	if got, want := rollouttest.StepHistory(ro), []string{"0->1", "1->2", "2->3", "3->4"}; !slices.Equal(got, want) {
		t.Errorf("steps %v, want %v", got, want)
	}

	a.expectRouteHistory(ctx, t, watch, "100/0", "80/20", "50/50", "100/0")
	a.expectRevisions(ctx, t, time.Minute, newHash, 3, oldHash)
	a.expectEvents(ctx, t, canaryUpdated.events...)
	a.expectCDEvents(ctx, t, canaryUpdated.cdevents...)
}

// canaryAnalysisFails updates a healthy application to an image that fails one request in ten:
// the analysis fails at the first step, KULTA rolls back (all traffic to the unchanged stable
// revision) and scales the canary down about 30 s later.
func canaryAnalysisFails(ctx context.Context, t *testing.T, w *world) {
	a := canaryApp(w, w.newNamespace(ctx, t, "canary-fail"), "shop", "5s")
	began := time.Now()
	stableHash := a.deploy(ctx, t, goodImage)
	t.Logf("first revision %s Completed after %s", stableHash, time.Since(began).Round(time.Millisecond))

	watch := a.watchWeights(ctx, t)
	began = time.Now()
	generation := a.setImage(ctx, t, badImage)
	ro := a.waitAnalysisRollback(ctx, t, generation, stableHash)
	failedAt := time.Now()
	t.Logf("Failed after %s: %s", failedAt.Sub(began).Round(time.Millisecond), ro.Status.Message)
	canaryHash := ro.Status.CurrentPodTemplateHash

	a.expectRevisions(ctx, t, time.Minute, stableHash, 3, canaryHash)
	// The delay is 30 s; the upper bound leaves room for the ReplicaSet controller and the
	// kubelet on a loaded machine, the lower one shows that the delay was kept.
	if after := time.Since(failedAt); after < 20*time.Second || after > 60*time.Second {
		t.Errorf("canary scaled to 0 %s after the rollback, want about 30s", after.Round(time.Millisecond))
	} else {
		t.Logf("canary scaled to 0 %s after the rollback", after.Round(time.Millisecond))
	}
	a.expectRouteHistory(ctx, t, watch, "100/0", "80/20", "100/0")
	final, err := a.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if final.Status.Phase != kultav1alpha1.PhaseFailed || final.Status.StablePodTemplateHash != stableHash {
		t.Errorf("after the scale-down: phase %s, stable %s; want Failed on %s", final.Status.Phase, final.Status.StablePodTemplateHash, stableHash)
	}
	a.expectEvents(ctx, t, "Normal/RolloutCompleted", "Normal/RolloutStarted", "Warning/AnalysisFailed")
	w.expectMetric(ctx, t, fmt.Sprintf(`sum(kulta_rollout_transitions_total{namespace=%q, rollout=%q, kind="rollback", reason="AnalysisFailed"})`, a.namespace, a.name), 1)
	a.expectCDEvents(ctx, t, "service.deployed", "service.published", "service.deployed", "service.rolledback")
}

// canaryFixedForward rolls a faulty image back on its analysis, then pushes a fixed image with
// nothing else: as with Argo Rollouts, the new template starts a new rollout from the stable
// revision, which completes, and the faulty revision ends with no Pods.
func canaryFixedForward(ctx context.Context, t *testing.T, w *world) {
	a := canaryApp(w, w.newNamespace(ctx, t, "fix-forward"), "cart", "5s")
	stableHash := a.deploy(ctx, t, goodImage)
	generation := a.setImage(ctx, t, badImage)
	failed := a.waitRollout(ctx, t, 2*time.Minute, func(ro *kultav1alpha1.Rollout) (bool, string) {
		if ro.Status.ObservedGeneration < generation || ro.Status.Phase != kultav1alpha1.PhaseFailed {
			return false, "not Failed at the new generation"
		}
		return true, ""
	})
	badHash := failed.Status.CurrentPodTemplateHash
	t.Logf("revision %s rolled back: %s", badHash, failed.Status.Message)

	watch := a.watchWeights(ctx, t)
	a.setImage(ctx, t, betterImage)
	ro := a.waitCompleted(ctx, t, stableHash, 2*time.Minute)
	fixedHash := ro.Status.StablePodTemplateHash
	if fixedHash == badHash {
		t.Fatalf("the faulty revision %s became stable", badHash)
	}
	started := lastDecision(ro, kultav1alpha1.ActionInitialize)
	if started == nil || started.Reason != "NewRevision" || !strings.Contains(started.Message, "after failed revision "+badHash) {
		t.Errorf("the fixed revision's start %+v, want NewRevision after failed revision %s", started, badHash)
	}
	if got, want := rollouttest.StepHistory(ro), []string{"0->1", "1->2", "2->3", "3->4"}; !slices.Equal(got, want) {
		t.Errorf("steps of the fixed revision %v, want %v", got, want)
	}
	a.expectRouteHistory(ctx, t, watch, "100/0", "80/20", "50/50", "100/0")
	a.expectRevisions(ctx, t, time.Minute, fixedHash, 3, stableHash, badHash)
}

// waitAnalysisRollback waits until the Rollout is Failed at generation, and checks that its last
// rollback decision was for a failing error-rate analysis and that stableHash stayed stable.
func (a *app) waitAnalysisRollback(ctx context.Context, t *testing.T, generation int64, stableHash string) *kultav1alpha1.Rollout {
	t.Helper()
	ro := a.waitRollout(ctx, t, 2*time.Minute, func(ro *kultav1alpha1.Rollout) (bool, string) {
		if ro.Status.ObservedGeneration < generation || ro.Status.Phase != kultav1alpha1.PhaseFailed {
			return false, "not Failed at the new generation"
		}
		return true, ""
	})
	rollback := lastDecision(ro, kultav1alpha1.ActionRollback)
	if rollback == nil || rollback.Reason != "AnalysisFailed" {
		t.Errorf("last rollback decision %+v, want one with reason AnalysisFailed", rollback)
	} else if m, ok := rollback.Metrics["error-rate"]; !ok || m.Passed {
		t.Errorf("rollback evidence %+v, want a failing error-rate", rollback.Metrics)
	}
	if ro.Status.StablePodTemplateHash != stableHash {
		t.Errorf("stable revision %s after the rollback, want %s unchanged", ro.Status.StablePodTemplateHash, stableHash)
	}
	return ro
}

// lastDecision is the Rollout's latest decision with action, or nil.
func lastDecision(ro *kultav1alpha1.Rollout, action kultav1alpha1.DecisionAction) *kultav1alpha1.Decision {
	for i := len(ro.Status.Decisions) - 1; i >= 0; i-- {
		if ro.Status.Decisions[i].Action == action {
			return &ro.Status.Decisions[i]
		}
	}
	return nil
}

// passedAnalyses counts the Rollout's decisions whose evidence is a passing error-rate check.
func passedAnalyses(ro *kultav1alpha1.Rollout) int {
	n := 0
	for _, d := range ro.Status.Decisions {
		if m, ok := d.Metrics["error-rate"]; ok && m.Passed {
			n++
		}
	}
	return n
}
