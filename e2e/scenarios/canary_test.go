//go:build e2e

package scenarios

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// goodImage is the image of the first revisions and of the healthy update.
const goodImage = "nginx:1.27"

// TestCanaryScenarios starts one world and runs the canary scenarios in it side by side, each
// in its own namespace.
func TestCanaryScenarios(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w := startWorld(ctx, t)
	t.Run("canary", func(t *testing.T) {
		t.Run("analysis passes", func(t *testing.T) {
			t.Parallel()
			canaryAnalysisPasses(ctx, t, w)
		})
		t.Run("analysis fails", func(t *testing.T) {
			t.Parallel()
			canaryAnalysisFails(ctx, t, w)
		})
	})
}

// canaryAnalysisPasses updates a healthy application to a healthy image: the route goes
// 100/0 → 80/20 → 50/50 → 100/0 and the new revision becomes stable with all its Pods.
func canaryAnalysisPasses(ctx context.Context, t *testing.T, w *world) {
	a := &app{w: w, namespace: w.newNamespace(ctx, t, "canary-pass"), name: "web"}
	began := time.Now()
	oldHash := a.deploy(ctx, t, goodImage)
	t.Logf("first revision %s Completed after %s", oldHash, time.Since(began).Round(time.Millisecond))

	watch := a.watchWeights(ctx, t)
	began = time.Now()
	a.setImage(ctx, t, "nginx:1.28")
	ro := a.waitCompleted(ctx, t, oldHash, 2*time.Minute)
	newHash := ro.Status.StablePodTemplateHash
	t.Logf("revision %s Completed after %s", newHash, time.Since(began).Round(time.Millisecond))
	if passed := passedAnalyses(ro); passed < 2 {
		t.Errorf("%d decisions backed by a passing error-rate analysis, want one for each of the 2 weighted steps; decisions: %+v", passed, ro.Status.Decisions)
	}

	waitFor(ctx, t, 30*time.Second, func() error {
		route := &gatewayv1.HTTPRoute{}
		if err := w.client.Get(ctx, client.ObjectKey{Namespace: a.namespace, Name: a.name}, route); err != nil {
			return fmt.Errorf("reading the route: %w", err)
		}
		if got := a.weights(route); got != "100/0" {
			return fmt.Errorf("route weights %s, want 100/0", got)
		}
		return nil
	})
	watch.Stop()
	seen, err := watch.Seen()
	if err != nil {
		t.Errorf("watching the route: %v", err)
	}
	if want := []string{"100/0", "80/20", "50/50", "100/0"}; !slices.Equal(seen, want) {
		t.Errorf("route weights went %v, want %v", seen, want)
	}

	waitFor(ctx, t, time.Minute, func() error {
		rs, err := a.replicaSet(ctx, newHash)
		if err != nil {
			return err
		}
		if rs.Spec.Replicas == nil || *rs.Spec.Replicas != 3 || rs.Status.ReadyReplicas != 3 {
			return fmt.Errorf("new ReplicaSet %s: %d ready of %v wanted, want 3 of 3", rs.Name, rs.Status.ReadyReplicas, rs.Spec.Replicas)
		}
		ready, err := a.readyPods(ctx, newHash)
		if err != nil {
			return err
		}
		if ready != 3 {
			return fmt.Errorf("%d ready Pods of the new revision, want 3", ready)
		}
		old, err := a.replicaSet(ctx, oldHash)
		if err != nil {
			return err
		}
		if old.Spec.Replicas == nil || *old.Spec.Replicas != 0 || old.Status.Replicas != 0 {
			return fmt.Errorf("old ReplicaSet %s: %v wanted, %d running, want 0", old.Name, old.Spec.Replicas, old.Status.Replicas)
		}
		return nil
	})
}

// canaryAnalysisFails updates a healthy application to an image that fails one request in ten:
// the analysis fails at the first step, KULTA rolls back (all traffic to the unchanged stable
// revision) and scales the canary down about 30 s later.
func canaryAnalysisFails(ctx context.Context, t *testing.T, w *world) {
	a := &app{w: w, namespace: w.newNamespace(ctx, t, "canary-fail"), name: "shop"}
	began := time.Now()
	stableHash := a.deploy(ctx, t, goodImage)
	t.Logf("first revision %s Completed after %s", stableHash, time.Since(began).Round(time.Millisecond))

	began = time.Now()
	generation := a.setImage(ctx, t, badImage)
	ro := a.waitRollout(ctx, t, 2*time.Minute, func(ro *kultav1alpha1.Rollout) (bool, string) {
		if ro.Status.ObservedGeneration < generation || ro.Status.Phase != kultav1alpha1.PhaseFailed {
			return false, "not Failed at the new generation"
		}
		return true, ""
	})
	failedAt := time.Now()
	t.Logf("Failed after %s: %s", failedAt.Sub(began).Round(time.Millisecond), ro.Status.Message)
	rollback := lastDecision(ro, kultav1alpha1.ActionRollback)
	if rollback == nil || rollback.Reason != "AnalysisFailed" {
		t.Errorf("last rollback decision %+v, want one with reason AnalysisFailed", rollback)
	}
	if ro.Status.StablePodTemplateHash != stableHash {
		t.Errorf("stable revision %s after the rollback, want %s unchanged", ro.Status.StablePodTemplateHash, stableHash)
	}
	canaryHash := ro.Status.CurrentPodTemplateHash

	waitFor(ctx, t, 30*time.Second, func() error {
		route := &gatewayv1.HTTPRoute{}
		if err := w.client.Get(ctx, client.ObjectKey{Namespace: a.namespace, Name: a.name}, route); err != nil {
			return fmt.Errorf("reading the route: %w", err)
		}
		if got := a.weights(route); got != "100/0" {
			return fmt.Errorf("route weights %s, want 100/0", got)
		}
		return nil
	})
	waitFor(ctx, t, time.Minute, func() error {
		rs, err := a.replicaSet(ctx, canaryHash)
		if err != nil {
			return err
		}
		if rs.Spec.Replicas == nil || *rs.Spec.Replicas != 0 {
			return fmt.Errorf("canary ReplicaSet %s wants %v replicas, want 0", rs.Name, rs.Spec.Replicas)
		}
		return nil
	})
	if after := time.Since(failedAt); after < 20*time.Second || after > 45*time.Second {
		t.Errorf("canary scaled to 0 %s after the rollback, want about 30s", after.Round(time.Millisecond))
	} else {
		t.Logf("canary scaled to 0 %s after the rollback", after.Round(time.Millisecond))
	}
	stable, err := a.replicaSet(ctx, stableHash)
	if err != nil {
		t.Fatal(err)
	}
	if stable.Spec.Replicas == nil || *stable.Spec.Replicas != 3 {
		t.Errorf("stable ReplicaSet %s wants %v replicas, want 3", stable.Name, stable.Spec.Replicas)
	}
	final, err := a.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if final.Status.Phase != kultav1alpha1.PhaseFailed || final.Status.StablePodTemplateHash != stableHash {
		t.Errorf("after the scale-down: phase %s, stable %s; want Failed on %s", final.Status.Phase, final.Status.StablePodTemplateHash, stableHash)
	}
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
