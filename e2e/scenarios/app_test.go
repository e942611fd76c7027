//go:build e2e

package scenarios

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// poll is how often the scenarios look at the cluster while they wait.
const poll = 250 * time.Millisecond

// app is one application under a canary Rollout: NAME-stable and NAME-canary Services, the
// HTTPRoute NAME on kulta-gateway, and the Rollout NAME.
type app struct {
	w         *world
	namespace string
	name      string
}

func (a *app) stable() string { return a.name + "-stable" }
func (a *app) canary() string { return a.name + "-canary" }

// deploy creates the Services, the route (all traffic on stable) and the Rollout at image, with
// steps 20 % / 5 s / 50 % / 5 s and an error-rate analysis that rolls back above 5 %, and
// waits until the first revision is Completed. It returns that revision's hash.
func (a *app) deploy(ctx context.Context, t *testing.T, image string) string {
	t.Helper()
	for _, name := range []string{a.stable(), a.canary()} {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: a.namespace, Name: name},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": a.name},
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80}},
			},
		}
		create(ctx, t, a.w.client, svc)
	}
	create(ctx, t, a.w.client, a.route())
	create(ctx, t, a.w.client, a.rollout(image))
	ro := a.waitCompleted(ctx, t, "", 90*time.Second)
	return ro.Status.StablePodTemplateHash
}

// route is the HTTPRoute with all traffic on the stable Service.
func (a *app) route() *gatewayv1.HTTPRoute {
	backend := func(name string, weight int32) gatewayv1.HTTPBackendRef {
		return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{
			BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(name), Port: ptr.To[gatewayv1.PortNumber](80)},
			Weight:                 ptr.To(weight),
		}}
	}
	return &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.namespace, Name: a.name},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{
				Name: "kulta-gateway", Namespace: ptr.To[gatewayv1.Namespace]("default"),
			}}},
			Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{backend(a.stable(), 100), backend(a.canary(), 0)}}},
		},
	}
}

// rollout is the canary Rollout of three replicas at image.
func (a *app) rollout(image string) *kultav1alpha1.Rollout {
	pause := &kultav1alpha1.RolloutPause{Duration: ptr.To(kultav1alpha1.Duration("5s"))}
	return &kultav1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.namespace, Name: a.name},
		Spec: kultav1alpha1.RolloutSpec{
			Replicas: ptr.To[int32](3),
			Selector: &kultav1alpha1.LabelSelector{MatchLabels: map[string]string{"app": a.name}},
			Template: kultav1alpha1.PodTemplate{
				Metadata: kultav1alpha1.PodTemplateMetadata{Labels: map[string]string{"app": a.name}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: image, Ports: []corev1.ContainerPort{{ContainerPort: 80}},
				}}},
			},
			Strategy: kultav1alpha1.RolloutStrategy{Canary: &kultav1alpha1.CanaryStrategy{
				StableService: a.stable(),
				CanaryService: a.canary(),
				Port:          ptr.To[int32](80),
				Steps: []kultav1alpha1.CanaryStep{
					{SetWeight: ptr.To[int32](20)}, {Pause: pause},
					{SetWeight: ptr.To[int32](50)}, {Pause: pause},
				},
				TrafficRouting: &kultav1alpha1.TrafficRouting{GatewayAPI: &kultav1alpha1.GatewayAPIRouting{HTTPRoute: a.name}},
				Analysis: &kultav1alpha1.Analysis{
					FailurePolicy: kultav1alpha1.FailurePolicyRollback,
					Metrics: []kultav1alpha1.Metric{{
						Name:          "error-rate",
						Threshold:     kultav1alpha1.NewDecimal(5),
						Interval:      ptr.To(kultav1alpha1.Duration("5s")),
						MinSampleSize: ptr.To[int32](20),
					}},
				},
			}},
		},
	}
}

// create creates obj or fails the test.
func create(ctx context.Context, t *testing.T, cl client.Client, obj client.Object) {
	t.Helper()
	if err := cl.Create(ctx, obj); err != nil {
		t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// get reads the Rollout.
func (a *app) get(ctx context.Context) (*kultav1alpha1.Rollout, error) {
	ro := &kultav1alpha1.Rollout{}
	if err := a.w.client.Get(ctx, client.ObjectKey{Namespace: a.namespace, Name: a.name}, ro); err != nil {
		return nil, fmt.Errorf("reading Rollout %s/%s: %w", a.namespace, a.name, err)
	}
	return ro, nil
}

// setImage changes the Rollout's image and returns the new generation.
func (a *app) setImage(ctx context.Context, t *testing.T, image string) int64 {
	t.Helper()
	ro, err := a.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := ro.DeepCopy()
	ro.Spec.Template.Spec.Containers[0].Image = image
	if err := a.w.client.Patch(ctx, ro, client.MergeFrom(before)); err != nil {
		t.Fatalf("setting the image of %s/%s: %v", a.namespace, a.name, err)
	}
	return ro.Generation
}

// waitRollout polls the Rollout until done says it is there, and returns it. done's message
// says what the Rollout is waiting on, for the failure report.
func (a *app) waitRollout(ctx context.Context, t *testing.T, timeout time.Duration, done func(*kultav1alpha1.Rollout) (bool, string)) *kultav1alpha1.Rollout {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ro, err := a.get(ctx)
		if err != nil {
			last = err.Error()
		} else {
			ok, why := done(ro)
			if ok {
				return ro
			}
			last = fmt.Sprintf("%s; phase %s: %s", why, ro.Status.Phase, ro.Status.Message)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Rollout %s/%s after %s: %s", a.namespace, a.name, timeout, last)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Rollout %s/%s: %v; last: %s", a.namespace, a.name, ctx.Err(), last)
		case <-time.After(poll):
		}
	}
}

// waitCompleted waits until the Rollout is Completed on a stable revision other than notHash.
func (a *app) waitCompleted(ctx context.Context, t *testing.T, notHash string, timeout time.Duration) *kultav1alpha1.Rollout {
	t.Helper()
	return a.waitRollout(ctx, t, timeout, func(ro *kultav1alpha1.Rollout) (bool, string) {
		st := ro.Status
		switch {
		case st.ObservedGeneration < ro.Generation:
			return false, "generation not observed yet"
		case st.Phase != kultav1alpha1.PhaseCompleted:
			return false, "not Completed"
		case st.StablePodTemplateHash == "" || st.StablePodTemplateHash == notHash:
			return false, "the new revision is not stable yet"
		case st.StablePodTemplateHash != st.CurrentPodTemplateHash:
			return false, "stable is not the current revision"
		}
		return true, ""
	})
}

// replicaSet returns the Rollout's ReplicaSet of revision hash.
func (a *app) replicaSet(ctx context.Context, hash string) (*appsv1.ReplicaSet, error) {
	var list appsv1.ReplicaSetList
	if err := a.w.client.List(ctx, &list, client.InNamespace(a.namespace),
		client.MatchingLabels{"app": a.name, kultav1alpha1.PodTemplateHashLabel: hash}); err != nil {
		return nil, fmt.Errorf("listing ReplicaSets of %s/%s: %w", a.namespace, a.name, err)
	}
	if len(list.Items) != 1 {
		return nil, fmt.Errorf("%d ReplicaSets of revision %s, want 1", len(list.Items), hash)
	}
	return &list.Items[0], nil
}

// readyPods counts the ready Pods of revision hash.
func (a *app) readyPods(ctx context.Context, hash string) (int, error) {
	var pods corev1.PodList
	if err := a.w.client.List(ctx, &pods, client.InNamespace(a.namespace),
		client.MatchingLabels{"app": a.name, kultav1alpha1.PodTemplateHashLabel: hash}); err != nil {
		return 0, fmt.Errorf("listing Pods of %s/%s: %w", a.namespace, a.name, err)
	}
	n := 0
	for i := range pods.Items {
		for _, c := range pods.Items[i].Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && pods.Items[i].DeletionTimestamp == nil {
				n++
			}
		}
	}
	return n, nil
}

// waitFor polls check until it returns nil, failing the test after timeout with its last error.
func waitFor(ctx context.Context, t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%v; last: %v", ctx.Err(), err)
		case <-time.After(poll):
		}
	}
}

// weights is the route's stable and canary weights as "stable/canary".
func (a *app) weights(route *gatewayv1.HTTPRoute) string {
	stable, canary := "-", "-"
	for _, rule := range route.Spec.Rules {
		if len(rule.Matches) > 0 && len(rule.Matches[0].Headers) > 0 {
			continue
		}
		for _, ref := range rule.BackendRefs {
			w := "1"
			if ref.Weight != nil {
				w = fmt.Sprint(*ref.Weight)
			}
			switch string(ref.Name) {
			case a.stable():
				stable = w
			case a.canary():
				canary = w
			}
		}
	}
	return stable + "/" + canary
}

// weightWatch records the route's weights as a watch sees them, each change once.
type weightWatch struct {
	stop func()
	done chan struct{}

	mu      sync.Mutex
	seen    []string
	err     error
	stopped bool // set before the watch is stopped: the error that stopping causes is not one
}

// watchWeights starts watching the route; Stop ends the watch and Seen tells what it saw.
func (a *app) watchWeights(ctx context.Context, t *testing.T) *weightWatch {
	t.Helper()
	w, err := a.w.watcher.Watch(ctx, &gatewayv1.HTTPRouteList{}, client.InNamespace(a.namespace))
	if err != nil {
		t.Fatalf("watching HTTPRoutes in %s: %v", a.namespace, err)
	}
	ww := &weightWatch{stop: w.Stop, done: make(chan struct{})}
	go func() {
		defer close(ww.done)
		for ev := range w.ResultChan() {
			route, ok := ev.Object.(*gatewayv1.HTTPRoute)
			if ev.Type == watch.Error || !ok {
				ww.mu.Lock()
				if !ww.stopped {
					ww.err = fmt.Errorf("watch event %s: %v", ev.Type, ev.Object)
				}
				ww.mu.Unlock()
				continue
			}
			if route.Name != a.name {
				continue
			}
			weights := a.weights(route)
			ww.mu.Lock()
			if len(ww.seen) == 0 || ww.seen[len(ww.seen)-1] != weights {
				ww.seen = append(ww.seen, weights)
			}
			ww.mu.Unlock()
		}
	}()
	t.Cleanup(ww.Stop)
	return ww
}

// Stop ends the watch and waits until its events are recorded. Calling it again is harmless.
func (ww *weightWatch) Stop() {
	ww.mu.Lock()
	ww.stopped = true
	ww.mu.Unlock()
	ww.stop()
	<-ww.done
}

// Seen returns the weights seen so far and the watch's error, if any.
func (ww *weightWatch) Seen() ([]string, error) {
	ww.mu.Lock()
	defer ww.mu.Unlock()
	return append([]string(nil), ww.seen...), ww.err
}
