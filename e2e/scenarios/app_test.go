//go:build e2e

package scenarios

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
)

// poll is how often the scenarios look at the cluster while they wait.
const poll = 250 * time.Millisecond

// app is one application under a Rollout NAME in its own namespace: the Services the strategy
// names, the routing objects (the HTTPRoute NAME on kulta-gateway unless via says otherwise)
// splitting traffic between the first two of them, and the Rollout.
type app struct {
	w         *world
	namespace string
	name      string
	// services are the Services the route splits between, in the order weights reports them:
	// stable and canary, active and preview, variants A and B, or the simple strategy's one
	// Service (NAME, selecting every Pod).
	services []string
	// extra are more objects deploy creates, such as a preview route.
	extra []client.Object
	// strategy is the Rollout's strategy for the app's Services.
	strategy kultav1alpha1.RolloutStrategy
	// selectors are the selectors the user writes on the Services, by Service name; a Service
	// not named selects app: NAME.
	selectors map[string]map[string]string
	// podLabels and podAnnotations are added to the Pod template's labels (app: NAME) and
	// annotations.
	podLabels, podAnnotations map[string]string
	// via names the traffic providers the Rollout routes through (viaGatewayAPI when empty),
	// which decides the routing objects deploy creates.
	via string
	// userRoute is the HTTPRoute as deploy created it, with the API server's defaults: what the
	// user wrote.
	userRoute *gatewayv1.HTTPRoute
	// nodeSelector and antiAffinity place the app's Pods; canaryMetadata and stableMetadata
	// label them by role.
	nodeSelector                   map[string]string
	antiAffinity                   kultav1alpha1.AntiAffinity
	canaryMetadata, stableMetadata *kultav1alpha1.PodMetadata
}

// errorRateAnalysis checks the error rate every 5 s over at least 20 requests and rolls back
// above 5 %.
func errorRateAnalysis() *kultav1alpha1.Analysis {
	return &kultav1alpha1.Analysis{
		FailurePolicy: kultav1alpha1.FailurePolicyRollback,
		Metrics: []kultav1alpha1.Metric{{
			Name:          "error-rate",
			Threshold:     kultav1alpha1.NewDecimal(5),
			Interval:      ptr.To(kultav1alpha1.Duration("5s")),
			MinSampleSize: ptr.To[int32](20),
		}},
	}
}

// canaryApp has NAME-stable and NAME-canary Services and steps 20 % / pause / 50 % / pause with
// an error-rate analysis; pause is the length of both pauses.
func canaryApp(w *world, namespace, name string, pause kultav1alpha1.Duration) *app {
	a := &app{w: w, namespace: namespace, name: name, services: []string{name + "-stable", name + "-canary"}}
	p := &kultav1alpha1.RolloutPause{Duration: ptr.To(pause)}
	a.strategy.Canary = &kultav1alpha1.CanaryStrategy{
		StableService: a.services[0],
		CanaryService: a.services[1],
		Port:          ptr.To[int32](80),
		Steps: []kultav1alpha1.CanaryStep{
			{SetWeight: ptr.To[int32](20)}, {Pause: p},
			{SetWeight: ptr.To[int32](50)}, {Pause: p},
		},
		TrafficRouting: a.routing(),
		Analysis:       errorRateAnalysis(),
	}
	return a
}

// blueGreenApp has NAME-active and NAME-preview Services and promotes automatically once the
// preview has been ready for autoPromotion seconds and its error-rate analysis passed. Smoke
// traffic reaches the preview through a second HTTPRoute, NAME-preview, as a team's preview
// hostname would.
func blueGreenApp(w *world, namespace, name string, autoPromotion int32) *app {
	a := &app{w: w, namespace: namespace, name: name, services: []string{name + "-active", name + "-preview"}}
	a.extra = []client.Object{httpRoute(namespace, name+"-preview", backend(a.services[1], 1))}
	a.strategy.BlueGreen = &kultav1alpha1.BlueGreenStrategy{
		ActiveService:         a.services[0],
		PreviewService:        a.services[1],
		Port:                  ptr.To[int32](80),
		AutoPromotionEnabled:  ptr.To(true),
		AutoPromotionSeconds:  ptr.To(autoPromotion),
		ScaleDownDelaySeconds: ptr.To[int32](5),
		TrafficRouting:        a.routing(),
		Analysis:              errorRateAnalysis(),
	}
	return a
}

// abApp has NAME-a and NAME-b Services; requests with the header X-Variant: B go to variant B,
// and the experiment compares the variants' error rates every 5 s.
func abApp(w *world, namespace, name string) *app {
	a := &app{w: w, namespace: namespace, name: name, services: []string{name + "-a", name + "-b"}}
	a.strategy.ABTesting = &kultav1alpha1.ABTestingStrategy{
		VariantAService: a.services[0],
		VariantBService: a.services[1],
		Port:            ptr.To[int32](80),
		VariantBMatch:   kultav1alpha1.ABMatch{Header: &kultav1alpha1.HeaderMatch{Name: "X-Variant", Value: "B"}},
		TrafficRouting:  a.routing(),
		Analysis: &kultav1alpha1.ABAnalysis{
			Interval:        ptr.To(kultav1alpha1.Duration("5s")),
			MinSampleSize:   ptr.To[int32](50),
			ConfidenceLevel: ptr.To(kultav1alpha1.Decimal("0.95")),
			Metrics:         []kultav1alpha1.ABMetric{{Name: "error-rate", Direction: kultav1alpha1.DirectionLower}},
		},
	}
	return a
}

// simpleApp is a rolling update one Pod at a time with none unavailable, behind one Service
// NAME that the route sends all traffic to, with an error-rate analysis of the new revision.
func simpleApp(w *world, namespace, name string) *app {
	a := &app{w: w, namespace: namespace, name: name, services: []string{name}}
	a.strategy.Simple = &kultav1alpha1.SimpleStrategy{Analysis: errorRateAnalysis()}
	return a
}

// deploy creates the Services, the routing objects (createRouting: all traffic on the first
// Service), the extra objects and the Rollout at image, and waits until the first revision is Completed. It returns that
// revision's hash.
func (a *app) deploy(ctx context.Context, t *testing.T, image string) string {
	t.Helper()
	for _, name := range a.services {
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: a.namespace, Name: name},
			Spec: corev1.ServiceSpec{
				Selector: a.userSelector(name),
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80}},
			},
		}
		create(ctx, t, a.w.client, svc)
	}
	a.createRouting(ctx, t)
	for _, obj := range a.extra {
		create(ctx, t, a.w.client, obj)
	}
	create(ctx, t, a.w.client, a.rollout(image))
	ro := a.waitCompleted(ctx, t, "", 90*time.Second)
	return ro.Status.StablePodTemplateHash
}

// userSelector is the selector the user writes on the Service name.
func (a *app) userSelector(name string) map[string]string {
	if sel, ok := a.selectors[name]; ok {
		return maps.Clone(sel)
	}
	return map[string]string{"app": a.name}
}

// backend is a backendRef to port 80 of the Service name.
func backend(name string, weight int32) gatewayv1.HTTPBackendRef {
	return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{
		BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(name), Port: ptr.To[gatewayv1.PortNumber](80)},
		Weight:                 ptr.To(weight),
	}}
}

// httpRoute is an HTTPRoute on kulta-gateway with one rule over backends.
func httpRoute(namespace, name string, backends ...gatewayv1.HTTPBackendRef) *gatewayv1.HTTPRoute {
	return &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{
				Name: "kulta-gateway", Namespace: ptr.To[gatewayv1.Namespace]("default"),
			}}},
			Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: backends}},
		},
	}
}

// rollout is the app's Rollout of three replicas at image.
func (a *app) rollout(image string) *kultav1alpha1.Rollout {
	labels := map[string]string{"app": a.name}
	maps.Copy(labels, a.podLabels)
	ro := &kultav1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.namespace, Name: a.name},
		Spec: kultav1alpha1.RolloutSpec{
			Replicas: ptr.To[int32](3),
			Selector: &kultav1alpha1.LabelSelector{MatchLabels: map[string]string{"app": a.name}},
			Template: kultav1alpha1.PodTemplate{
				Metadata: kultav1alpha1.PodTemplateMetadata{Labels: labels, Annotations: maps.Clone(a.podAnnotations)},
				Spec: corev1.PodSpec{NodeSelector: maps.Clone(a.nodeSelector), Containers: []corev1.Container{{
					Name: "app", Image: image, Ports: []corev1.ContainerPort{{ContainerPort: 80}},
				}}},
			},
			Strategy:       *a.strategy.DeepCopy(),
			AntiAffinity:   a.antiAffinity,
			CanaryMetadata: a.canaryMetadata.DeepCopy(),
			StableMetadata: a.stableMetadata.DeepCopy(),
		},
	}
	if a.strategy.Simple != nil {
		ro.Spec.MaxSurge = ptr.To(intstr.FromInt32(1))
		ro.Spec.MaxUnavailable = ptr.To(intstr.FromInt32(0))
	}
	return ro
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
	return a.editTemplate(ctx, t, func(tpl *kultav1alpha1.PodTemplate) { tpl.Spec.Containers[0].Image = image })
}

// editTemplate changes the Rollout's Pod template with edit and returns the new generation.
func (a *app) editTemplate(ctx context.Context, t *testing.T, edit func(*kultav1alpha1.PodTemplate)) int64 {
	t.Helper()
	ro, err := a.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := ro.DeepCopy()
	edit(&ro.Spec.Template)
	if err := a.w.client.Patch(ctx, ro, client.MergeFrom(before)); err != nil {
		t.Fatalf("changing the Pod template of %s/%s: %v", a.namespace, a.name, err)
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

// readyPods counts the ready Pods of revision hash, or of every revision when hash is "".
func (a *app) readyPods(ctx context.Context, hash string) (int, error) {
	var pods corev1.PodList
	selector := client.MatchingLabels{"app": a.name}
	if hash != "" {
		selector[kultav1alpha1.PodTemplateHashLabel] = hash
	}
	if err := a.w.client.List(ctx, &pods, client.InNamespace(a.namespace), selector); err != nil {
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

// weights is the weights of the route's rule that names the app's first two Services, as
// "first/second"; "-/-" when no rule names both (KULTA's variant B rule names only one).
func (a *app) weights(route *gatewayv1.HTTPRoute) string {
	if len(a.services) < 2 {
		return "-/-"
	}
	w, ok := rollouttest.RouteWeights(route, a.services[0], a.services[1])
	if !ok {
		return "-/-"
	}
	return fmt.Sprintf("%d/%d", w.Stable, w.Canary)
}

// routeState is the route's weights (see weights), followed by " +B" while a rule that matches
// headers sends requests to the second Service (the A/B experiment's variant B rule, a canary's
// header route), and " +M" while a rule copies requests to it (a canary's mirror route).
func (a *app) routeState(route *gatewayv1.HTTPRoute) string {
	state := a.weights(route)
	if len(a.services) < 2 {
		return state
	}
	header, mirror := false, false
	for _, rule := range route.Spec.Rules {
		for _, f := range rule.Filters {
			if m := f.RequestMirror; m != nil && string(m.BackendRef.Name) == a.services[1] {
				mirror = true
			}
		}
		if len(rule.Matches) == 0 || len(rule.Matches[0].Headers) == 0 || len(rule.BackendRefs) != 1 {
			continue
		}
		if string(rule.BackendRefs[0].Name) == a.services[1] {
			header = true
		}
	}
	if header {
		state += " +B"
	}
	if mirror {
		state += " +M"
	}
	return state
}

// weightWatch records the route's state (see routeState) as a watch sees it, each change once.
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
			weights := a.routeState(route)
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
