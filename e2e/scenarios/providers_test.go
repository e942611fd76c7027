//go:build e2e

package scenarios

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	apinetworkingv1 "istio.io/api/networking/v1"
	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/json"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/e2e/simulator"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
)

// The traffic providers an app's Rollout routes through (app.via).
const (
	viaGatewayAPI         = "gatewayAPI"
	viaIstio              = "istio"
	viaNGINX              = "nginx"
	viaGatewayAPIAndIstio = "gatewayAPI+istio"
)

// trafficProviders is the controller's --traffic-providers in every world.
var trafficProviders = []string{"gatewayAPI", "istio", "nginx"}

// istioRoute is the name of the managed HTTP route of an app's VirtualService.
const istioRoute = "primary"

// providerCanaryApp is canaryApp (5 s pauses) routed through via.
func providerCanaryApp(w *world, namespace, name, via string) *app {
	a := canaryApp(w, namespace, name, "5s")
	a.via = via
	a.strategy.Canary.TrafficRouting = a.routing()
	return a
}

// uses reports whether the app routes through provider (viaGatewayAPI, viaIstio, viaNGINX).
func (a *app) uses(provider string) bool {
	via := a.via
	if via == "" {
		via = viaGatewayAPI
	}
	return slices.Contains(strings.Split(via, "+"), provider)
}

// routing is the strategy's trafficRouting for the providers the app uses: the HTTPRoute NAME,
// the VirtualService NAME's route istioRoute, the Ingress NAME.
func (a *app) routing() *kultav1alpha1.TrafficRouting {
	tr := &kultav1alpha1.TrafficRouting{}
	if a.uses(viaGatewayAPI) {
		tr.GatewayAPI = &kultav1alpha1.GatewayAPIRouting{HTTPRoute: a.name}
	}
	if a.uses(viaIstio) {
		tr.Istio = &kultav1alpha1.IstioRouting{VirtualService: &kultav1alpha1.IstioVirtualService{Name: a.name, Routes: []string{istioRoute}}}
	}
	if a.uses(viaNGINX) {
		tr.NGINX = &kultav1alpha1.NGINXRouting{StableIngress: a.name}
	}
	return tr
}

// createRouting creates the objects of the providers the app uses, all traffic on its first
// Service: the HTTPRoute (kept as userRoute), the VirtualService, the Ingress.
func (a *app) createRouting(ctx context.Context, t *testing.T) {
	t.Helper()
	if a.uses(viaGatewayAPI) {
		backends := []gatewayv1.HTTPBackendRef{backend(a.services[0], 100)}
		if len(a.services) > 1 {
			backends = append(backends, backend(a.services[1], 0))
		}
		route := httpRoute(a.namespace, a.name, backends...)
		create(ctx, t, a.w.client, route)
		a.userRoute = route.DeepCopy()
	}
	if a.uses(viaIstio) {
		create(ctx, t, a.w.client, a.virtualService())
	}
	if a.uses(viaNGINX) {
		create(ctx, t, a.w.client, a.ingress())
	}
}

// virtualService is the app's VirtualService: a header route to the first Service that KULTA
// does not manage, then the managed route istioRoute over the first two Services, with a
// timeout and retries that must survive every step untouched.
func (a *app) virtualService() *istionetworkingv1.VirtualService {
	dest := func(service string, weight int32) *apinetworkingv1.HTTPRouteDestination {
		return &apinetworkingv1.HTTPRouteDestination{
			Destination: &apinetworkingv1.Destination{Host: service, Port: &apinetworkingv1.PortSelector{Number: 80}},
			Weight:      weight,
		}
	}
	return &istionetworkingv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.namespace, Name: a.name},
		Spec: apinetworkingv1.VirtualService{
			Hosts: []string{a.name},
			Http: []*apinetworkingv1.HTTPRoute{{
				Name:  "debug",
				Match: []*apinetworkingv1.HTTPMatchRequest{{Headers: map[string]*apinetworkingv1.StringMatch{"x-debug": {MatchType: &apinetworkingv1.StringMatch_Exact{Exact: "1"}}}}},
				Route: []*apinetworkingv1.HTTPRouteDestination{dest(a.services[0], 0)},
			}, {
				Name:    istioRoute,
				Route:   []*apinetworkingv1.HTTPRouteDestination{dest(a.services[0], 100), dest(a.services[1], 0)},
				Timeout: durationpb.New(3 * time.Second),
				Retries: &apinetworkingv1.HTTPRetry{Attempts: 2, PerTryTimeout: durationpb.New(time.Second), RetryOn: "5xx"},
			}},
		},
	}
}

// ingress is the app's stable Ingress for ingress-nginx: host NAME.example, path / to the first
// Service, with an annotation of the user's own.
func (a *app) ingress() *networkingv1.Ingress {
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.namespace, Name: a.name, Annotations: map[string]string{
			simulator.DefaultAnnotationPrefix + "/proxy-body-size": "8m",
		}},
		Spec: networkingv1.IngressSpec{
			IngressClassName: ptr.To(simulator.DefaultIngressClass),
			Rules: []networkingv1.IngressRule{{Host: a.name + ".example", IngressRuleValue: networkingv1.IngressRuleValue{
				HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
					Path: "/", PathType: ptr.To(networkingv1.PathTypePrefix),
					Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{
						Name: a.services[0], Port: networkingv1.ServiceBackendPort{Number: 80},
					}},
				}}},
			}}},
		},
	}
}

// canaryIngressName is the name KULTA gives the canary Ingress of the app's Ingress.
func (a *app) canaryIngressName() string { return a.name + "-" + a.name + "-canary" }

// trafficState is the split every provider the app uses carries, as "stable/canary", joined by
// " | " in the order Gateway API, Istio, NGINX. An Istio route or an Ingress that cannot be read
// as a split of the two Services is an error.
func (a *app) trafficState(ctx context.Context) (string, error) {
	var states []string
	if a.uses(viaGatewayAPI) {
		route, err := a.route(ctx)
		if err != nil {
			return "", err
		}
		states = append(states, a.weights(route))
	}
	if a.uses(viaIstio) {
		vs, err := a.readVirtualService(ctx)
		if err != nil {
			return "", err
		}
		state, err := istioWeights(vs, a.services[0], a.services[1])
		if err != nil {
			return "", err
		}
		states = append(states, state)
	}
	if a.uses(viaNGINX) {
		canary := &networkingv1.Ingress{}
		err := a.w.client.Get(ctx, client.ObjectKey{Namespace: a.namespace, Name: a.canaryIngressName()}, canary)
		switch {
		case apierrors.IsNotFound(err):
			states = append(states, "100/0")
		case err != nil:
			return "", fmt.Errorf("reading the canary Ingress %s/%s: %w", a.namespace, a.canaryIngressName(), err)
		default:
			w, err := strconv.Atoi(canary.Annotations[simulator.DefaultAnnotationPrefix+"/canary-weight"])
			if err != nil {
				return "", fmt.Errorf("canary Ingress %s/%s: canary-weight: %w", a.namespace, canary.Name, err)
			}
			states = append(states, fmt.Sprintf("%d/%d", 100-w, w))
		}
	}
	return strings.Join(states, " | "), nil
}

// readVirtualService reads the app's VirtualService.
func (a *app) readVirtualService(ctx context.Context) (*istionetworkingv1.VirtualService, error) {
	vs := &istionetworkingv1.VirtualService{}
	if err := a.w.client.Get(ctx, client.ObjectKey{Namespace: a.namespace, Name: a.name}, vs); err != nil {
		return nil, fmt.Errorf("reading VirtualService %s/%s: %w", a.namespace, a.name, err)
	}
	return vs, nil
}

// istioWeights is the managed route's weights of stable and canary as "stable/canary".
func istioWeights(vs *istionetworkingv1.VirtualService, stable, canary string) (string, error) {
	for _, route := range vs.Spec.GetHttp() {
		if route.GetName() != istioRoute {
			continue
		}
		weights := map[string]int32{}
		for _, d := range route.GetRoute() {
			weights[d.GetDestination().GetHost()] += d.GetWeight()
		}
		if len(weights) != 2 {
			return "", fmt.Errorf("VirtualService %s/%s route %s has destinations %v, want %s and %s", vs.Namespace, vs.Name, istioRoute, weights, stable, canary)
		}
		return fmt.Sprintf("%d/%d", weights[stable], weights[canary]), nil
	}
	return "", fmt.Errorf("VirtualService %s/%s has no route %s", vs.Namespace, vs.Name, istioRoute)
}

// trafficHistory records the app's trafficState as polling sees it, each change once.
type trafficHistory struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	seen []string
	err  error
}

// watchTraffic polls the app's trafficState every 100 ms until Stop. Every step of the
// scenarios lasts seconds, so polling sees each of them.
func (a *app) watchTraffic(ctx context.Context, t *testing.T) *trafficHistory {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	h := &trafficHistory{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for {
			state, err := a.trafficState(ctx)
			h.mu.Lock()
			switch {
			case err != nil && ctx.Err() == nil:
				h.err = err
			case err == nil && (len(h.seen) == 0 || h.seen[len(h.seen)-1] != state):
				h.seen = append(h.seen, state)
			}
			h.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(h.Stop)
	return h
}

// Stop ends the polling and waits for it. Calling it again is harmless.
func (h *trafficHistory) Stop() {
	h.cancel()
	<-h.done
}

// expectTrafficHistory waits until every provider the app uses carries the last of want and
// polling has seen it, stops h, and checks that each provider went through exactly want. The
// providers are written one after the other, so for a moment one may carry a step the next
// does not yet; what each of them went through is what counts.
func (a *app) expectTrafficHistory(ctx context.Context, t *testing.T, h *trafficHistory, want ...string) {
	t.Helper()
	n := strings.Count(a.via, "+") + 1
	last := strings.Repeat(want[len(want)-1]+" | ", n-1) + want[len(want)-1]
	waitFor(ctx, t, 30*time.Second, func() error {
		h.mu.Lock()
		defer h.mu.Unlock()
		if len(h.seen) == 0 || h.seen[len(h.seen)-1] != last {
			return fmt.Errorf("traffic of %s/%s went %q so far, want it to end at %s", a.namespace, a.name, h.seen, last)
		}
		return nil
	})
	h.Stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		t.Errorf("reading the traffic of %s/%s: %v", a.namespace, a.name, h.err)
	}
	for i := range n {
		var went []string
		for _, state := range h.seen {
			split := strings.Split(state, " | ")[i]
			if len(went) == 0 || went[len(went)-1] != split {
				went = append(went, split)
			}
		}
		if !slices.Equal(went, want) {
			t.Errorf("provider %d of %s on %s/%s went %q (all: %q), want %q", i+1, a.via, a.namespace, a.name, went, h.seen, want)
		}
	}
}

// expectUserObjectsKept checks that the user's VirtualService kept everything KULTA does not
// manage (the debug route, the timeout and retries) and that the user's Ingress is as created.
func (a *app) expectUserObjectsKept(ctx context.Context, t *testing.T) {
	t.Helper()
	if a.uses(viaIstio) {
		vs, err := a.readVirtualService(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := a.virtualService()
		got := vs.Spec.GetHttp()
		if len(got) != 2 || !sameJSON(t, got[0], want.Spec.Http[0]) || !sameJSON(t, got[1].GetTimeout(), want.Spec.Http[1].GetTimeout()) ||
			!sameJSON(t, got[1].GetRetries(), want.Spec.Http[1].GetRetries()) {
			t.Errorf("VirtualService %s/%s http = %s, want the debug route, timeout and retries as created", a.namespace, a.name, asJSON(got))
		}
	}
	if a.uses(viaNGINX) {
		ing := &networkingv1.Ingress{}
		if err := a.w.client.Get(ctx, client.ObjectKey{Namespace: a.namespace, Name: a.name}, ing); err != nil {
			t.Fatal(err)
		}
		if ing.Generation != 1 || !sameJSON(t, ing.Annotations, a.ingress().Annotations) {
			t.Errorf("the user's Ingress %s/%s was written: generation %d, annotations %v", a.namespace, a.name, ing.Generation, ing.Annotations)
		}
	}
}

// sameJSON reports whether a and b encode to the same JSON.
func sameJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ja) == string(jb)
}

// providerCanaryPasses updates a healthy application routed through via to a healthy image:
// every provider goes 100/0 → 80/20 → 50/50 → 100/0 together, the analysis passes at each
// weighted step on the traffic the simulated data planes sent through via, and nothing of the
// user's own configuration changes.
func providerCanaryPasses(ctx context.Context, t *testing.T, w *world, via string) {
	a := providerCanaryApp(w, w.newNamespace(ctx, t, "pass-"+strings.ToLower(strings.ReplaceAll(via, "+", "-"))), "web", via)
	oldHash := a.deploy(ctx, t, goodImage)
	history := a.watchTraffic(ctx, t)
	began := time.Now()
	a.setImage(ctx, t, betterImage)
	ro := a.waitCompleted(ctx, t, oldHash, 2*time.Minute)
	t.Logf("revision %s Completed through %s after %s", ro.Status.StablePodTemplateHash, via, time.Since(began).Round(time.Millisecond))
	if passed := passedAnalyses(ro); passed < 2 {
		t.Errorf("%d decisions backed by a passing error-rate analysis, want one for each of the 2 weighted steps; decisions: %+v", passed, ro.Status.Decisions)
	}
	if got, want := rollouttest.StepHistory(ro), []string{"0->1", "1->2", "2->3", "3->4"}; !slices.Equal(got, want) {
		t.Errorf("steps %v, want %v", got, want)
	}
	a.expectTrafficHistory(ctx, t, history, "100/0", "80/20", "50/50", "100/0")
	a.expectRevisions(ctx, t, time.Minute, ro.Status.StablePodTemplateHash, 3, oldHash)
	a.expectUserObjectsKept(ctx, t)
	if a.uses(viaNGINX) {
		a.expectNoCanaryIngress(ctx, t)
	}
}

// providerCanaryFails updates a healthy application routed through via to an image that fails
// one request in ten: the analysis of the traffic that reached the canary through via fails at
// the first step, and KULTA rolls back: all traffic to the unchanged stable revision on every
// provider (for NGINX, the canary Ingress is gone), then the canary has no Pods.
func providerCanaryFails(ctx context.Context, t *testing.T, w *world, via string) {
	a := providerCanaryApp(w, w.newNamespace(ctx, t, "fail-"+strings.ToLower(via)), "shop", via)
	stableHash := a.deploy(ctx, t, goodImage)
	history := a.watchTraffic(ctx, t)
	generation := a.setImage(ctx, t, badImage)
	ro := a.waitAnalysisRollback(ctx, t, generation, stableHash)
	t.Logf("Failed through %s: %s", via, ro.Status.Message)
	a.expectTrafficHistory(ctx, t, history, "100/0", "80/20", "100/0")
	a.expectRevisions(ctx, t, time.Minute, stableHash, 3, ro.Status.CurrentPodTemplateHash)
	a.expectUserObjectsKept(ctx, t)
	if a.uses(viaNGINX) {
		a.expectNoCanaryIngress(ctx, t)
	}
}

// expectNoCanaryIngress checks that KULTA's canary Ingress is gone.
func (a *app) expectNoCanaryIngress(ctx context.Context, t *testing.T) {
	t.Helper()
	err := a.w.client.Get(ctx, client.ObjectKey{Namespace: a.namespace, Name: a.canaryIngressName()}, &networkingv1.Ingress{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("canary Ingress %s/%s after the rollout: %v, want it deleted", a.namespace, a.canaryIngressName(), err)
	}
}
