//go:build e2e

package scenarios

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// blueGreenAutoPromotion updates a blue-green application: the new revision comes up at full
// scale behind the preview Service, its analysis runs on the traffic of the preview route, the
// active Service switches to it on its own after the preview time, and the old revision is
// scaled down after its delay. The main route keeps all traffic on the active Service.
func blueGreenAutoPromotion(ctx context.Context, t *testing.T, w *world) {
	// The preview's analysis must show its error rate under 5 % before the promotion, which
	// takes about 320 requests (a few seconds of the preview route's traffic) once they reach
	// Prometheus; the preview lasts long enough for the test to see it.
	const previewSeconds = 20
	a := blueGreenApp(w, w.newNamespace(ctx, t, "blue-green"), "checkout", previewSeconds)
	oldHash := a.deploy(ctx, t, goodImage)
	watch := a.watchWeights(ctx, t)
	began := time.Now()
	generation := a.setImage(ctx, t, betterImage)

	preview := a.waitRollout(ctx, t, time.Minute, func(ro *kultav1alpha1.Rollout) (bool, string) {
		if ro.Status.ObservedGeneration < generation || ro.Status.Phase != kultav1alpha1.PhasePreview {
			return false, "not in Preview at the new generation"
		}
		return true, ""
	})
	newHash := preview.Status.CurrentPodTemplateHash
	t.Logf("preview of %s after %s: %s", newHash, time.Since(began).Round(time.Millisecond), preview.Status.Message)
	if got := a.selectorHash(ctx, t, a.services[1]); got != newHash {
		t.Errorf("preview Service selects revision %q during the preview, want %s", got, newHash)
	}
	if got := a.selectorHash(ctx, t, a.services[0]); got != oldHash {
		t.Errorf("active Service selects revision %q during the preview, want %s", got, oldHash)
	}

	ro := a.waitCompleted(ctx, t, oldHash, 90*time.Second)
	promotedAfter := time.Since(began)
	t.Logf("promoted after %s", promotedAfter.Round(time.Millisecond))
	complete := lastDecision(ro, kultav1alpha1.ActionComplete)
	if complete == nil || complete.Reason != "AutoPromotion" {
		t.Errorf("last completion %+v, want one with reason AutoPromotion", complete)
	} else if m, ok := complete.Metrics["error-rate"]; !ok || !m.Passed {
		t.Errorf("promotion evidence %+v, want a passing error-rate of the preview", complete.Metrics)
	}
	pause := lastDecision(ro, kultav1alpha1.ActionPause)
	if pause == nil || pause.Reason != "PreviewReady" {
		t.Fatalf("last pause %+v, want PreviewReady", pause)
	}
	if held := complete.Timestamp.Sub(pause.Timestamp.Time); held < previewSeconds*time.Second {
		t.Errorf("promoted %s after the preview was ready, want at least %ds", held, previewSeconds)
	}
	if got := a.selectorHash(ctx, t, a.services[0]); got != newHash {
		t.Errorf("active Service selects revision %q after the promotion, want %s", got, newHash)
	}
	a.expectRevisions(ctx, t, time.Minute, newHash, 3, oldHash)
	a.expectRouteHistory(ctx, t, watch, "100/0")
	a.expectEvents(ctx, t, blueGreenUpdated.events...)
	a.expectCDEvents(ctx, t, blueGreenUpdated.cdevents...)
}

// abTestBWins runs an experiment whose variant B (the new image) fails one request in a
// hundred against A's eight: the experiment concludes with B the winner, keeps the routing until
// kulta.io/promote, and then makes B stable.
func abTestBWins(ctx context.Context, t *testing.T, w *world) {
	a := abApp(w, w.newNamespace(ctx, t, "ab"), "search")
	aHash := a.deploy(ctx, t, variantA)
	watch := a.watchWeights(ctx, t)
	began := time.Now()
	generation := a.setImage(ctx, t, variantB)

	concluded := a.waitRollout(ctx, t, 2*time.Minute, func(ro *kultav1alpha1.Rollout) (bool, string) {
		if ro.Status.ObservedGeneration < generation || ro.Status.Phase != kultav1alpha1.PhaseConcluded {
			return false, "not Concluded at the new generation"
		}
		return true, ""
	})
	bHash := concluded.Status.CurrentPodTemplateHash
	exp := concluded.Status.ABExperiment
	if exp == nil || exp.ConcludedAt == nil {
		t.Fatalf("concluded without an experiment status: %+v", exp)
	}
	t.Logf("concluded after %s: %s", time.Since(began).Round(time.Millisecond), exp.Message)
	if exp.Winner != kultav1alpha1.VariantB || exp.ConclusionReason != "SignificanceReached" {
		t.Errorf("winner %q (%s), want B by SignificanceReached: %s", exp.Winner, exp.ConclusionReason, exp.Message)
	}
	if concluded.Status.StablePodTemplateHash != aHash {
		t.Errorf("stable revision %s before the promotion, want A's %s", concluded.Status.StablePodTemplateHash, aHash)
	}
	if got := a.selectorHash(ctx, t, a.services[1]); got != bHash {
		t.Errorf("variant B Service selects %q, want %s", got, bHash)
	}
	a.expectRoute(ctx, t, "100/0 +B")

	a.promote(ctx, t)
	ro := a.waitCompleted(ctx, t, aHash, time.Minute)
	if ro.Status.StablePodTemplateHash != bHash {
		t.Errorf("stable revision %s after the promotion, want B's %s", ro.Status.StablePodTemplateHash, bHash)
	}
	a.expectRoute(ctx, t, "100/0")
	a.expectRevisions(ctx, t, time.Minute, bHash, 3, aHash)
	a.expectRouteHistory(ctx, t, watch, "100/0", "100/0 +B", "100/0")
	a.expectEvents(ctx, t, abUpdated.events...)
	a.expectCDEvents(ctx, t, abUpdated.cdevents...)
}

// simpleRollingUpdate replaces three Pods one at a time (maxSurge 1, maxUnavailable 0): at no
// point are fewer than three Pods ready, the analysis of the new revision passes, and the old
// revision ends with none.
func simpleRollingUpdate(ctx context.Context, t *testing.T, w *world) {
	a := simpleApp(w, w.newNamespace(ctx, t, "simple"), "api")
	oldHash := a.deploy(ctx, t, goodImage)
	floor := a.watchReadyFloor(ctx, t)
	began := time.Now()
	a.setImage(ctx, t, betterImage)
	ro := a.waitCompleted(ctx, t, oldHash, 2*time.Minute)
	newHash := ro.Status.StablePodTemplateHash
	t.Logf("revision %s Completed after %s", newHash, time.Since(began).Round(time.Millisecond))
	a.expectRevisions(ctx, t, time.Minute, newHash, 3, oldHash)
	if lowest, err := floor.stop(); err != nil {
		t.Errorf("watching ready Pods: %v", err)
	} else if lowest < 3 {
		t.Errorf("only %d Pods were ready at one point of the update, want never fewer than 3 (maxUnavailable 0)", lowest)
	}
	if passed := passedAnalyses(ro); passed < 1 {
		t.Errorf("no decision backed by a passing error-rate analysis; decisions: %v", actions(ro))
	}
	a.expectEvents(ctx, t, simpleUpdated.events...)
	a.expectCDEvents(ctx, t, simpleUpdated.cdevents...)
}

// selectorHash is the revision hash the Service selects, or "" when it selects none.
func (a *app) selectorHash(ctx context.Context, t *testing.T, service string) string {
	t.Helper()
	svc := &corev1.Service{}
	if err := a.w.client.Get(ctx, client.ObjectKey{Namespace: a.namespace, Name: service}, svc); err != nil {
		t.Fatalf("reading Service %s/%s: %v", a.namespace, service, err)
	}
	return svc.Spec.Selector[kultav1alpha1.PodTemplateHashLabel]
}

// promote sets kulta.io/promote=true on the Rollout, as `kubectl kulta promote` does.
func (a *app) promote(ctx context.Context, t *testing.T) {
	t.Helper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"true"}}}`, kultav1alpha1.PromoteAnnotation)
	ro := &kultav1alpha1.Rollout{}
	ro.Namespace, ro.Name = a.namespace, a.name
	if err := a.w.client.Patch(ctx, ro, client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
		t.Fatalf("promoting %s/%s: %v", a.namespace, a.name, err)
	}
}

// readyFloor records the fewest ready Pods of the app seen while it polls.
type readyFloor struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	lowest int
	err    error
}

// watchReadyFloor polls the app's ready Pods (of every revision) until stop.
func (a *app) watchReadyFloor(ctx context.Context, t *testing.T) *readyFloor {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	f := &readyFloor{cancel: cancel, done: make(chan struct{}), lowest: -1}
	go func() {
		defer close(f.done)
		for {
			n, err := a.readyPods(ctx, "")
			f.mu.Lock()
			switch {
			case ctx.Err() != nil:
			case err != nil:
				f.err = err
			case f.lowest < 0 || n < f.lowest:
				f.lowest = n
			}
			f.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() {
		if _, err := f.stop(); err != nil {
			t.Logf("ready-Pod watch: %v", err)
		}
	})
	return f
}

// stop ends the polling and returns the fewest ready Pods seen.
func (f *readyFloor) stop() (int, error) {
	f.cancel()
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lowest, f.err
}
