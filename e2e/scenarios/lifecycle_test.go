//go:build e2e

package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/e2e/cluster"
)

// canaryDeletedMidway deletes a Rollout whose canary holds 20 % of the traffic at a pause that
// waits for a person, after the user has put a Deployment of their own behind the same labels:
// KULTA's finalizer hands the traffic back before the Rollout goes. The route ends as the user
// wrote it (stable 100, canary 0, no rule of KULTA's), both Services get back exactly the
// selectors the user wrote, the ReplicaSets are garbage-collected, and the Gateway keeps
// sending every request to the stable Service, where the Deployment's Pods answer it.
func canaryDeletedMidway(ctx context.Context, t *testing.T, w *world) {
	a := canaryApp(w, w.newNamespace(ctx, t, "delete-midway"), "store", "5s")
	a.strategy.Canary.Analysis = nil
	a.strategy.Canary.Steps = []kultav1alpha1.CanaryStep{
		{SetWeight: ptr.To[int32](20)}, {Pause: &kultav1alpha1.RolloutPause{}}, {SetWeight: ptr.To[int32](50)},
	}
	// The stable Service selects on a key besides app, and the canary Service on the type
	// label that KULTA drops while it pins Services: restoring must give back both exactly.
	a.podLabels = map[string]string{"tier": "web"}
	a.selectors = map[string]map[string]string{
		a.services[0]: {"app": a.name, "tier": "web"},
		a.services[1]: {"app": a.name, kultav1alpha1.RolloutTypeLabel: "canary"},
	}
	a.deploy(ctx, t, goodImage)
	watch := a.watchWeights(ctx, t)
	generation := a.setImage(ctx, t, betterImage)
	paused := a.waitRollout(ctx, t, time.Minute, func(ro *kultav1alpha1.Rollout) (bool, string) {
		if ro.Status.ObservedGeneration < generation || ro.Status.Phase != kultav1alpha1.PhasePaused || ptr.Deref(ro.Status.CurrentStepIndex, 0) != 1 {
			return false, "not paused at step 1 of the new generation"
		}
		return true, ""
	})
	a.expectRoute(ctx, t, "80/20")
	if !controllerutil.ContainsFinalizer(paused, kultav1alpha1.CleanupFinalizer) {
		t.Errorf("Rollout finalizers %v, want %s", paused.Finalizers, kultav1alpha1.CleanupFinalizer)
	}
	for _, name := range a.services {
		a.expectPinned(ctx, t, name)
	}

	a.createFallback(ctx, t, goodImage)
	began := time.Now()
	if err := w.client.Delete(ctx, paused); err != nil {
		t.Fatalf("deleting Rollout %s/%s: %v", a.namespace, a.name, err)
	}
	waitFor(ctx, t, 30*time.Second, func() error {
		ro, err := a.get(ctx)
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case err != nil:
			return err
		}
		return fmt.Errorf("Rollout %s/%s still there (finalizers %v): %s", a.namespace, a.name, ro.Finalizers, ro.Status.Message)
	})
	t.Logf("Rollout gone %s after its deletion", time.Since(began).Round(time.Millisecond))

	a.expectRouteHistory(ctx, t, watch, "100/0", "80/20", "100/0")
	handedBack := time.Now()
	route, err := a.route(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(route.Spec.Rules, a.userRoute.Spec.Rules) {
		t.Errorf("route rules after the deletion:\n%s\nwant them as the user wrote them:\n%s", asJSON(route.Spec.Rules), asJSON(a.userRoute.Spec.Rules))
	}
	for _, name := range a.services {
		svc := a.service(ctx, t, name)
		if want := a.userSelector(name); !maps.Equal(svc.Spec.Selector, want) {
			t.Errorf("Service %s selects %v after the deletion, want %v as the user wrote it", name, svc.Spec.Selector, want)
		}
		if v, ok := svc.Annotations[kultav1alpha1.OriginalSelectorAnnotation]; ok {
			t.Errorf("Service %s still carries %s=%s after the deletion", name, kultav1alpha1.OriginalSelectorAnnotation, v)
		}
	}
	waitFor(ctx, t, time.Minute, func() error {
		owned := client.HasLabels{kultav1alpha1.PodTemplateHashLabel}
		var sets appsv1.ReplicaSetList
		if err := w.client.List(ctx, &sets, client.InNamespace(a.namespace), owned); err != nil {
			return fmt.Errorf("listing ReplicaSets: %w", err)
		}
		var pods corev1.PodList
		if err := w.client.List(ctx, &pods, client.InNamespace(a.namespace), owned); err != nil {
			return fmt.Errorf("listing Pods: %w", err)
		}
		if len(sets.Items) > 0 || len(pods.Items) > 0 {
			return fmt.Errorf("%d ReplicaSets and %d Pods of the deleted Rollout left", len(sets.Items), len(pods.Items))
		}
		return nil
	})
	t.Logf("ReplicaSets and Pods collected %s after the deletion", time.Since(began).Round(time.Millisecond))
	a.expectServedByStableOnly(ctx, t, handedBack)
}

// createFallback creates the Deployment NAME at image whose three Pods carry the app's labels,
// as a user who takes the application back from KULTA would, and waits until they are ready.
// Its own selector also needs track: deployment, so it never claims the Rollout's Pods.
func (a *app) createFallback(ctx context.Context, t *testing.T, image string) {
	t.Helper()
	labels := map[string]string{"app": a.name, "track": "deployment"}
	maps.Copy(labels, a.podLabels)
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.namespace, Name: a.name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": a.name, "track": "deployment"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: image, Ports: []corev1.ContainerPort{{ContainerPort: 80}},
				}}},
			},
		},
	}
	create(ctx, t, a.w.client, deploy)
	waitFor(ctx, t, time.Minute, func() error {
		if err := a.w.client.Get(ctx, client.ObjectKeyFromObject(deploy), deploy); err != nil {
			return fmt.Errorf("reading Deployment %s/%s: %w", a.namespace, a.name, err)
		}
		if deploy.Status.ReadyReplicas != 3 {
			return fmt.Errorf("Deployment %s/%s has %d ready Pods, want 3", a.namespace, a.name, deploy.Status.ReadyReplicas)
		}
		return nil
	})
}

// expectPinned checks that KULTA pinned the Service name to a revision and recorded the
// selector the user wrote on it.
func (a *app) expectPinned(ctx context.Context, t *testing.T, name string) {
	t.Helper()
	svc := a.service(ctx, t, name)
	if svc.Spec.Selector[kultav1alpha1.PodTemplateHashLabel] == "" {
		t.Errorf("Service %s selects %v mid-rollout, want it pinned to a revision", name, svc.Spec.Selector)
	}
	raw, ok := svc.Annotations[kultav1alpha1.OriginalSelectorAnnotation]
	var recorded map[string]string
	if !ok || json.Unmarshal([]byte(raw), &recorded) != nil || !maps.Equal(recorded, a.userSelector(name)) {
		t.Errorf("Service %s records %s=%q mid-rollout, want the user's selector %v", name, kultav1alpha1.OriginalSelectorAnnotation, raw, a.userSelector(name))
	}
}

// expectServedByStableOnly checks, through the request counts Prometheus scrapes from the
// Gateway simulator, that the stable Service answers requests while the canary Service gets
// none. since is when the route was seen back at 100/0; counting starts with a scrape a second
// later, or after the simulator's ticks begun before have ended, which holds every request sent
// before.
func (a *app) expectServedByStableOnly(ctx context.Context, t *testing.T, since time.Time) {
	t.Helper()
	stable, canary := a.services[0], a.services[1]
	// A simulator tick that read the route before since, and is slow to end under load, has
	// recorded its requests once Settle returns; a scrape after that holds them.
	if err := a.w.simulator.Settle(ctx); err != nil {
		t.Fatal(err)
	}
	from := since.Add(time.Second)
	if settled := time.Now(); settled.After(from) {
		from = settled
	}
	stableBefore, canaryBefore := a.served(ctx, t, stable, from), a.served(ctx, t, canary, from)
	// Three seconds of the route's 100 requests a second; the simulator may lose ticks under load.
	to := time.Now().Add(3 * time.Second)
	if got := a.served(ctx, t, stable, to) - stableBefore; got < 100 {
		t.Errorf("Service %s answered %v requests in the 3s after the hand-back, want about 300", stable, got)
	} else {
		t.Logf("Service %s answered %v requests in the 3s after the hand-back", stable, got)
	}
	if got := a.served(ctx, t, canary, to) - canaryBefore; got != 0 {
		t.Errorf("Service %s answered %v requests in the 3s after the route sent it 0 %%", canary, got)
	}
}

// served is the number of requests the Gateway simulator has recorded for the app's Service,
// as Prometheus scraped it at or after the time after.
func (a *app) served(ctx context.Context, t *testing.T, service string, after time.Time) float64 {
	t.Helper()
	selector := fmt.Sprintf(`http_requests_total{namespace=%q, service=%q}`, a.namespace, service)
	var served float64
	waitFor(ctx, t, 30*time.Second, func() error {
		// The scrape's time first: the count read next is from that scrape or a later one.
		at, ok, err := a.w.prometheus.Query(ctx, "min(timestamp("+selector+"))")
		switch {
		case err != nil:
			return err
		case !ok || at < float64(after.UnixMilli())/1000:
			return fmt.Errorf("prometheus has no sample of %s scraped after %s", selector, after.Format(time.StampMilli))
		}
		served, _, err = a.w.prometheus.Query(ctx, "sum("+selector+")")
		return err
	})
	return served
}

// service reads the app's Service name.
func (a *app) service(ctx context.Context, t *testing.T, name string) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{}
	if err := a.w.client.Get(ctx, client.ObjectKey{Namespace: a.namespace, Name: name}, svc); err != nil {
		t.Fatalf("reading Service %s/%s: %v", a.namespace, name, err)
	}
	return svc
}

// asJSON renders v for a failure message.
func asJSON(v any) string {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(out)
}

// stableDelay is how long the Pods of the slow stable revision take to turn Ready.
const stableDelay = 20 * time.Second

// slowStableKeepsFailedPods rolls a simple-strategy application whose stable revision's Pods
// take stableDelay to turn Ready onto an image whose fast Pods fail one request in ten. The
// rolling update scales stable to nothing; the analysis fails, and the stable revision comes
// back slowly. Throughout, no fewer than the three replicas' worth of Pods are ready behind the
// Service, and the failed revision keeps all its Pods until every stable Pod is available; then
// it goes to none, and the Rollout ends Failed on the stable revision at full scale.
func slowStableKeepsFailedPods(ctx context.Context, t *testing.T, w *world) {
	a := simpleApp(w, w.newNamespace(ctx, t, "slow-stable"), "ledger")
	a.podAnnotations = map[string]string{cluster.PodReadyDelayAnnotation: stableDelay.String()}
	began := time.Now()
	stableHash := a.deploy(ctx, t, goodImage)
	took := time.Since(began)
	if took < stableDelay {
		t.Fatalf("first revision Completed after %s, before its Pods' ready delay of %s: the kwok stage does not delay them", took.Round(time.Millisecond), stableDelay)
	}
	t.Logf("slow first revision %s Completed after %s", stableHash, took.Round(time.Millisecond))

	floor := a.watchReadyFloor(ctx, t)
	sampler := a.sampleRevisions(ctx, t, stableHash)
	began = time.Now()
	generation := a.editTemplate(ctx, t, func(tpl *kultav1alpha1.PodTemplate) {
		tpl.Spec.Containers[0].Image = badImage
		delete(tpl.Metadata.Annotations, cluster.PodReadyDelayAnnotation)
	})
	failed := a.waitRollout(ctx, t, 2*time.Minute, func(ro *kultav1alpha1.Rollout) (bool, string) {
		if ro.Status.ObservedGeneration < generation || ro.Status.Phase != kultav1alpha1.PhaseFailed {
			return false, "not Failed at the new generation"
		}
		return true, ""
	})
	failedAt := time.Now()
	badHash := failed.Status.CurrentPodTemplateHash
	t.Logf("Failed after %s: %s", failedAt.Sub(began).Round(time.Millisecond), failed.Status.Message)
	if rollback := lastDecision(failed, kultav1alpha1.ActionRollback); rollback == nil || rollback.Reason != "AnalysisFailed" {
		t.Errorf("last rollback decision %+v, want one with reason AnalysisFailed; decisions %v", rollback, actions(failed))
	}
	if failed.Status.StablePodTemplateHash != stableHash {
		t.Errorf("stable revision %s after the rollback, want %s unchanged", failed.Status.StablePodTemplateHash, stableHash)
	}

	a.expectRevisions(ctx, t, 90*time.Second, stableHash, 3, badHash)
	// The scale-down and stable's return may be seconds old or only just have happened: take
	// samples past this moment before stopping, so the sampler has seen them.
	sampler.waitPast(ctx, t, time.Now())
	samples, err := sampler.stop()
	if err != nil {
		t.Errorf("sampling ReplicaSets: %v", err)
	}
	checkHeldUntilStable(t, samples, 3, failedAt)
	if lowest, err := floor.stop(); err != nil {
		t.Errorf("watching ready Pods: %v", err)
	} else if lowest < 3 {
		t.Errorf("only %d Pods were ready behind Service %s at one point, want never fewer than 3", lowest, a.name)
	}
	// The reconcile that scales the failed revision down writes the status after it; once the
	// wait is over, the message no longer explains it.
	waitFor(ctx, t, 30*time.Second, func() error {
		ro, err := a.get(ctx)
		if err != nil {
			return err
		}
		if strings.Contains(ro.Status.Message, "keeps") {
			return fmt.Errorf("status message still explains the wait: %s", ro.Status.Message)
		}
		return nil
	})
	final, err := a.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("final status message: %s", final.Status.Message)
	if final.Status.Phase != kultav1alpha1.PhaseFailed || final.Status.StablePodTemplateHash != stableHash || final.Status.AvailableReplicas != 3 {
		t.Errorf("after the scale-down: phase %s, stable %s, %d available; want Failed on %s with 3 available",
			final.Status.Phase, final.Status.StablePodTemplateHash, final.Status.AvailableReplicas, stableHash)
	}
}

// checkHeldUntilStable checks the samples of an update rolled back at failedAt: the new
// revision never lost a replica while the stable one had fewer than want available, and the
// stable revision came back slowly enough (half its Pods' ready delay) for that to matter.
func checkHeldUntilStable(t *testing.T, samples []revisionSample, want int32, failedAt time.Time) {
	t.Helper()
	var peak int32
	var shrunk, stableBack *revisionSample
	for i := range samples {
		s := &samples[i]
		if s.newReplicas < peak && shrunk == nil {
			shrunk = s
			if s.stableAvailable < want {
				t.Errorf("at %s the failed revision wanted %d of its %d Pods while stable had %d of %d available",
					s.at.Format(time.StampMilli), s.newReplicas, peak, s.stableAvailable, want)
			}
		}
		peak = max(peak, s.newReplicas)
		if stableBack == nil && s.at.After(failedAt) && s.stableAvailable >= want {
			stableBack = s
		}
	}
	switch {
	case peak == 0:
		t.Errorf("the failed revision never had Pods in %d samples", len(samples))
	case shrunk == nil || stableBack == nil:
		t.Errorf("the failed revision was never scaled down (%t) or stable never came back (%t) in %d samples", shrunk == nil, stableBack == nil, len(samples))
	default:
		t.Logf("after the rollback: stable fully available after %s, failed revision scaled down after %s",
			stableBack.at.Sub(failedAt).Round(time.Millisecond), shrunk.at.Sub(failedAt).Round(time.Millisecond))
		if held := shrunk.at.Sub(failedAt); held < stableDelay/2 {
			t.Errorf("the failed revision was scaled down %s after the rollback, want it kept while stable's Pods take %s to turn Ready", held.Round(time.Millisecond), stableDelay)
		}
	}
}

// revisionSample is one look at an app's ReplicaSets.
type revisionSample struct {
	at time.Time
	// stableAvailable is the stable revision's available Pods.
	stableAvailable int32
	// newReplicas is the Pods every other revision wants (spec.replicas).
	newReplicas int32
}

// revisionSampler lists an app's ReplicaSets every 200 ms, in one read so that the revisions
// are seen at the same moment.
type revisionSampler struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	samples []revisionSample
	err     error
}

// sampleRevisions samples the app's ReplicaSets, stableHash being the stable revision, until
// stop.
func (a *app) sampleRevisions(ctx context.Context, t *testing.T, stableHash string) *revisionSampler {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	s := &revisionSampler{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			var list appsv1.ReplicaSetList
			err := a.w.client.List(ctx, &list, client.InNamespace(a.namespace), client.MatchingLabels{"app": a.name})
			sample := revisionSample{at: time.Now()}
			for i := range list.Items {
				rs := &list.Items[i]
				if rs.Labels[kultav1alpha1.PodTemplateHashLabel] == stableHash {
					sample.stableAvailable = rs.Status.AvailableReplicas
				} else {
					sample.newReplicas += ptr.Deref(rs.Spec.Replicas, 0)
				}
			}
			s.mu.Lock()
			switch {
			case ctx.Err() != nil:
			case err != nil:
				s.err = fmt.Errorf("listing ReplicaSets of %s/%s: %w", a.namespace, a.name, err)
			default:
				s.samples = append(s.samples, sample)
			}
			s.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { _, _ = s.stop() })
	return s
}

// waitPast waits until the sampler has a sample taken after at.
func (s *revisionSampler) waitPast(ctx context.Context, t *testing.T, at time.Time) {
	t.Helper()
	waitFor(ctx, t, 10*time.Second, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if n := len(s.samples); n > 0 && s.samples[n-1].at.After(at) {
			return nil
		}
		return fmt.Errorf("no sample of the ReplicaSets after %s yet", at.Format(time.StampMilli))
	})
}

// stop ends the sampling and returns the samples, oldest first.
func (s *revisionSampler) stop() ([]revisionSample, error) {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]revisionSample(nil), s.samples...), s.err
}
