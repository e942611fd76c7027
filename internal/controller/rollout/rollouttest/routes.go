package rollouttest

import (
	"context"
	"sync"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/providers"
)

func backendRef(svc string, weight int32) gatewayv1.BackendRef {
	return gatewayv1.BackendRef{
		BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(svc), Port: ptr.To[gatewayv1.PortNumber](80)},
		Weight:                 ptr.To(weight),
	}
}

// Route is an HTTPRoute attached to Gateway "public" that sends all traffic to stable.
func Route(ns, name, stable, canary string) *gatewayv1.HTTPRoute {
	return &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "public"}}},
			Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{
				{BackendRef: backendRef(stable, 100)}, {BackendRef: backendRef(canary, 0)},
			}}},
		},
	}
}

// GRPCRoute is a GRPCRoute attached to Gateway "public" that sends all traffic to stable.
func GRPCRoute(ns, name, stable, canary string) *gatewayv1.GRPCRoute {
	return &gatewayv1.GRPCRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: gatewayv1.GRPCRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "public"}}},
			Rules: []gatewayv1.GRPCRouteRule{{BackendRefs: []gatewayv1.GRPCBackendRef{
				{BackendRef: backendRef(stable, 100)}, {BackendRef: backendRef(canary, 0)},
			}}},
		},
	}
}

// StableIngress is an ingress-nginx Ingress (class "nginx") of ns sending every request for
// host to port 80 of service: what trafficRouting.nginx.stableIngress names.
func StableIngress(ns, name, host, service string) *networkingv1.Ingress {
	return &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: networkingv1.IngressSpec{IngressClassName: ptr.To("nginx"), Rules: []networkingv1.IngressRule{{Host: host,
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: "/", PathType: ptr.To(networkingv1.PathTypePrefix),
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: service, Port: networkingv1.ServiceBackendPort{Number: 80}}},
			}}}},
		}}},
	}
}

// RouteWeights reads the stable and canary weights of the first rule that has both.
func RouteWeights(route *gatewayv1.HTTPRoute, stable, canary string) (providers.Weights, bool) {
	for _, rule := range route.Spec.Rules {
		var w providers.Weights
		found := 0
		for _, ref := range rule.BackendRefs {
			switch string(ref.Name) {
			case stable:
				w.Stable = ptr.Deref(ref.Weight, 1)
				found++
			case canary:
				w.Canary = ptr.Deref(ref.Weight, 1)
				found++
			}
		}
		if found == 2 {
			return w, true
		}
	}
	return providers.Weights{}, false
}

// WatchWeights watches one HTTPRoute and returns a function giving the distinct weights it
// has carried so far, in order: what a Gateway would have seen.
func WatchWeights(t *testing.T, e *testenv.Env, ns, name, stable, canary string) func() []providers.Weights {
	t.Helper()
	return WatchRoute(t, e, ns, name, func(route *gatewayv1.HTTPRoute) (providers.Weights, bool) {
		return RouteWeights(route, stable, canary)
	}, func(a, b providers.Weights) bool { return a == b })
}

// WatchRoute watches one HTTPRoute and returns a function giving, in order, the values extract
// took from its versions, a value equal to the one before it left out.
func WatchRoute[T any](t *testing.T, e *testenv.Env, ns, name string, extract func(*gatewayv1.HTTPRoute) (T, bool), equal func(a, b T) bool) func() []T {
	t.Helper()
	return WatchObject(t, e, &gatewayv1.HTTPRouteList{}, ns, name, extract, equal)
}

// WatchRollout watches one Rollout and returns a function giving every version of it seen so
// far, oldest first: the checks and decisions a single read would miss.
func WatchRollout(t *testing.T, e *testenv.Env, ns, name string) func() []*kultav1alpha1.Rollout {
	t.Helper()
	return WatchObject(t, e, &kultav1alpha1.RolloutList{}, ns, name,
		func(ro *kultav1alpha1.Rollout) (*kultav1alpha1.Rollout, bool) { return ro, true },
		func(_, _ *kultav1alpha1.Rollout) bool { return false })
}

// WatchObject watches the object named name of list's kind and returns a function giving, in
// order, the values extract took from its versions, a value equal to the one before it left
// out. The watch ends with the test.
func WatchObject[O client.Object, T any](t *testing.T, e *testenv.Env, list client.ObjectList, ns, name string, extract func(O) (T, bool), equal func(a, b T) bool) func() []T {
	t.Helper()
	wc, err := client.NewWithWatch(e.Config, client.Options{Scheme: e.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := wc.Watch(ctx, list, client.InNamespace(ns), client.MatchingFields{"metadata.name": name})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []T
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			if ev.Type != watch.Added && ev.Type != watch.Modified {
				continue
			}
			obj, ok := ev.Object.(O)
			if !ok {
				continue
			}
			if value, ok := extract(obj); ok {
				mu.Lock()
				if len(seen) == 0 || !equal(seen[len(seen)-1], value) {
					seen = append(seen, value)
				}
				mu.Unlock()
			}
		}
	}()
	return func() []T {
		mu.Lock()
		defer mu.Unlock()
		return append([]T(nil), seen...)
	}
}
