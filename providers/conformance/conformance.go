// Package conformance is the suite every TrafficRouter must pass, run against a real API server
// with the real route CRDs: weights, header routes, idempotency, conflict retries, drift,
// clean-up and unusable routes. A provider declares the features it does not support, and the
// suite skips exactly those.
//
// It is imported by providers' tests only.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
)

// Feature is an optional behaviour a provider may not support.
type Feature string

// Optional features.
const (
	FeatureCookieMatch         Feature = "CookieMatch"
	FeatureCrossNamespaceRoute Feature = "CrossNamespaceRoute"
)

// Harness tells the suite how to build and inspect one provider.
type Harness struct {
	// Kind is the route kind under test.
	Kind kultav1alpha1.RouteKind
	// Client is a direct client to the API server.
	Client client.Client
	// NewRouter returns the provider, writing through c.
	NewRouter func(c client.Client) providers.TrafficRouter
	// CreateNamespace makes a namespace for one test.
	CreateNamespace func(t *testing.T, prefix string) string
	// Unsupported lists the features the provider declares it lacks.
	Unsupported []Feature
}

func (h Harness) supports(f Feature) bool {
	for _, u := range h.Unsupported {
		if u == f {
			return false
		}
	}
	return true
}

// Run runs the whole suite.
func Run(t *testing.T, h Harness) {
	t.Run("Weights", func(t *testing.T) { testWeights(t, h) })
	t.Run("Idempotent", func(t *testing.T) { testIdempotent(t, h) })
	t.Run("HeaderRoute", func(t *testing.T) { testHeaderRoute(t, h) })
	t.Run("CookieRoute", func(t *testing.T) {
		if !h.supports(FeatureCookieMatch) {
			t.Skipf("%s declares %s unsupported", h.Kind, FeatureCookieMatch)
		}
		testCookieRoute(t, h)
	})
	t.Run("ConflictRetry", func(t *testing.T) { testConflictRetry(t, h) })
	t.Run("Drift", func(t *testing.T) { testDrift(t, h) })
	t.Run("Cleanup", func(t *testing.T) { testCleanup(t, h) })
	t.Run("NotUsable", func(t *testing.T) { testNotUsable(t, h) })
	t.Run("CrossNamespace", func(t *testing.T) {
		if !h.supports(FeatureCrossNamespaceRoute) {
			t.Skipf("%s declares %s unsupported", h.Kind, FeatureCrossNamespaceRoute)
		}
		testCrossNamespace(t, h)
	})
}

// fixture is a Rollout and its route, created in a fresh namespace.
type fixture struct {
	h       Harness
	ro      *kultav1alpha1.Rollout
	routeNS string
	name    string
	// original is the route as the API server stored it, defaults applied.
	original *unstructured.Unstructured
}

func newFixture(t *testing.T, h Harness, routeNS string) *fixture {
	t.Helper()
	ns := h.CreateNamespace(t, "conformance")
	if routeNS == "" {
		routeNS = ns
	}
	ro := testutil.Rollout(ns, "app")
	ref := kultav1alpha1.RouteReference{Kind: h.Kind, Name: "app-route", Namespace: routeNS}
	ro.Spec.Strategy.Canary.TrafficRouting = &kultav1alpha1.TrafficRouting{GatewayAPI: &kultav1alpha1.GatewayAPIRouting{Routes: []kultav1alpha1.RouteReference{ref}}}
	f := &fixture{h: h, ro: ro, routeNS: routeNS, name: "app-route"}
	if err := h.Client.Create(context.Background(), f.newRoute(ns)); err != nil {
		t.Fatalf("creating route: %v", err)
	}
	f.original = f.get(t)
	return f
}

// newRoute is a route with an unmanaged rule, a filter and an annotation the provider must keep.
func (f *fixture) newRoute(servicesNS string) *unstructured.Unstructured {
	backend := func(name string, weight int64) map[string]any {
		ref := map[string]any{"name": name, "port": int64(80), "weight": weight}
		if servicesNS != f.routeNS {
			ref["namespace"] = servicesNS
		}
		return ref
	}
	managed := map[string]any{
		"name":        "main",
		"backendRefs": []any{backend("app-stable", 100), backend("app-canary", 0)},
	}
	unmanaged := map[string]any{
		"name":        "other",
		"backendRefs": []any{backend("unrelated", 1)},
	}
	if f.h.Kind == kultav1alpha1.KindHTTPRoute {
		managed["filters"] = []any{map[string]any{"type": "RequestHeaderModifier", "requestHeaderModifier": map[string]any{
			"add": []any{map[string]any{"name": "X-Team", "value": "a"}},
		}}}
		unmanaged["matches"] = []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/legacy"}}}
	} else {
		unmanaged["matches"] = []any{map[string]any{"method": map[string]any{"service": "legacy.Service"}}}
	}
	route := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"parentRefs": []any{map[string]any{"name": "public"}},
			"rules":      []any{managed, unmanaged},
		},
	}}
	route.SetGroupVersionKind(schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: string(f.h.Kind)})
	route.SetNamespace(f.routeNS)
	route.SetName(f.name)
	route.SetAnnotations(map[string]string{"owner": "team-a"})
	return route
}

func (f *fixture) get(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	route := &unstructured.Unstructured{}
	route.SetGroupVersionKind(schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: string(f.h.Kind)})
	if err := f.h.Client.Get(context.Background(), types.NamespacedName{Namespace: f.routeNS, Name: f.name}, route); err != nil {
		t.Fatalf("reading route: %v", err)
	}
	return route
}

func (f *fixture) router() providers.TrafficRouter { return f.h.NewRouter(f.h.Client) }

// weights reads the managed rule's weights straight from the stored route.
func (f *fixture) weights(t *testing.T) providers.Weights {
	t.Helper()
	rules, _, _ := unstructured.NestedSlice(f.get(t).Object, "spec", "rules")
	for _, item := range rules {
		rule := item.(map[string]any)
		if rule["name"] != "main" {
			continue
		}
		refs := rule["backendRefs"].([]any)
		return providers.Weights{Stable: weight(refs[0]), Canary: weight(refs[1])}
	}
	t.Fatal("managed rule missing")
	return providers.Weights{}
}

func weight(item any) int32 {
	v, ok := item.(map[string]any)["weight"]
	if !ok {
		return 1
	}
	return int32(v.(int64))
}

// unmanagedIntact checks that everything but the managed weights and KULTA's own rules is as
// it was created.
func (f *fixture) unmanagedIntact(t *testing.T) {
	t.Helper()
	route := f.get(t)
	if route.GetAnnotations()["owner"] != "team-a" {
		t.Errorf("annotation lost: %v", route.GetAnnotations())
	}
	rules, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
	var names []string
	for _, item := range rules {
		rule := item.(map[string]any)
		name, _ := rule["name"].(string)
		names = append(names, name)
		switch name {
		case "other":
			want := f.original.Object["spec"].(map[string]any)["rules"].([]any)[1]
			if fmt.Sprint(rule) != fmt.Sprint(want) {
				t.Errorf("unmanaged rule changed:\n got %v\nwant %v", rule, want)
			}
		case "main":
			if f.h.Kind == kultav1alpha1.KindHTTPRoute && rule["filters"] == nil {
				t.Error("managed rule lost its filters")
			}
		}
	}
	if len(names) < 2 || names[len(names)-1] != "other" {
		t.Errorf("rules %v: the unmanaged rule must stay, last", names)
	}
}

func testWeights(t *testing.T, h Harness) {
	f := newFixture(t, h, "")
	ctx := context.Background()
	for _, w := range []providers.Weights{{Stable: 80, Canary: 20}, {Stable: 50, Canary: 50}, {Stable: 0, Canary: 100}, {Stable: 100}} {
		if err := f.router().SetWeights(ctx, f.ro, w); err != nil {
			t.Fatalf("SetWeights(%v): %v", w, err)
		}
		if got := f.weights(t); got != w {
			t.Errorf("route carries %v, want %v", got, w)
		}
		v, err := f.router().Verify(ctx, f.ro)
		if err != nil {
			t.Fatal(err)
		}
		if v.Weights == nil || *v.Weights != w {
			t.Errorf("Verify weights %v, want %v", v.Weights, w)
		}
		if v.Accepted {
			t.Error("Verify reports a route accepted that no Gateway has accepted")
		}
		f.unmanagedIntact(t)
	}
}

func testIdempotent(t *testing.T, h Harness) {
	f := newFixture(t, h, "")
	ctx := context.Background()
	w := providers.Weights{Stable: 70, Canary: 30}
	if err := f.router().SetWeights(ctx, f.ro, w); err != nil {
		t.Fatal(err)
	}
	version := f.get(t).GetResourceVersion()
	for range 3 {
		if err := f.router().SetWeights(ctx, f.ro, w); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.get(t).GetResourceVersion(); got != version {
		t.Errorf("setting the same weights again wrote the route (resourceVersion %s -> %s)", version, got)
	}
}

func headerRoute(cookie bool) providers.HeaderRoute {
	hr := providers.HeaderRoute{Name: "kulta-app-variant-b", Header: &kultav1alpha1.HeaderMatch{Name: "X-Variant", Value: "B", Type: kultav1alpha1.MatchExact}}
	if cookie {
		hr.Header = nil
		hr.Cookie = &kultav1alpha1.CookieMatch{Name: "ab", Value: "B"}
	}
	return hr
}

func testHeaderRoute(t *testing.T, h Harness) {
	testHeaderRouteWith(t, h, headerRoute(false))
}

func testCookieRoute(t *testing.T, h Harness) {
	testHeaderRouteWith(t, h, headerRoute(true))
}

func testHeaderRouteWith(t *testing.T, h Harness, hr providers.HeaderRoute) {
	f := newFixture(t, h, "")
	ctx := context.Background()
	before, _, _ := unstructured.NestedSlice(f.get(t).Object, "spec", "rules")
	if err := f.router().SetHeaderRoute(ctx, f.ro, hr); err != nil {
		t.Fatalf("SetHeaderRoute: %v", err)
	}
	rules, _, _ := unstructured.NestedSlice(f.get(t).Object, "spec", "rules")
	if len(rules) != len(before)+1 || rules[0].(map[string]any)["name"] != hr.Name+"-0" {
		t.Fatalf("want the header rule first, then the %d original rules; got %v", len(before), rules)
	}
	version := f.get(t).GetResourceVersion()
	if err := f.router().SetHeaderRoute(ctx, f.ro, hr); err != nil {
		t.Fatal(err)
	}
	if f.get(t).GetResourceVersion() != version {
		t.Error("setting the same header route again wrote the route")
	}
	f.unmanagedIntact(t)
	if err := f.router().RemoveHeaderRoute(ctx, f.ro, hr.Name); err != nil {
		t.Fatal(err)
	}
	after, _, _ := unstructured.NestedSlice(f.get(t).Object, "spec", "rules")
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("removing the header route did not restore the rules:\n got %v\nwant %v", after, before)
	}
}

// conflictingClient changes the route behind the provider's back just before its first write,
// so that write fails with a conflict.
type conflictingClient struct {
	client.Client
	fired bool
}

func (c *conflictingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if !c.fired {
		c.fired = true
		other := obj.DeepCopyObject().(client.Object)
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), other); err != nil {
			return fmt.Errorf("conflicting read: %w", err)
		}
		labels := other.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels["edited-by"] = "someone-else"
		other.SetLabels(labels)
		if err := c.Client.Update(ctx, other); err != nil {
			return fmt.Errorf("conflicting write: %w", err)
		}
	}
	if err := c.Client.Update(ctx, obj, opts...); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	return nil
}

func testConflictRetry(t *testing.T, h Harness) {
	f := newFixture(t, h, "")
	cc := &conflictingClient{Client: h.Client}
	w := providers.Weights{Stable: 60, Canary: 40}
	if err := h.NewRouter(cc).SetWeights(context.Background(), f.ro, w); err != nil {
		t.Fatalf("SetWeights after a conflict: %v", err)
	}
	if !cc.fired {
		t.Fatal("the provider never wrote")
	}
	route := f.get(t)
	if route.GetLabels()["edited-by"] != "someone-else" {
		t.Error("the concurrent change was overwritten")
	}
	if got := f.weights(t); got != w {
		t.Errorf("weights %v after retry, want %v", got, w)
	}
}

func testDrift(t *testing.T, h Harness) {
	f := newFixture(t, h, "")
	ctx := context.Background()
	w := providers.Weights{Stable: 75, Canary: 25}
	if err := f.router().SetWeights(ctx, f.ro, w); err != nil {
		t.Fatal(err)
	}
	// A GitOps sync puts the manifest's weights back.
	route := f.get(t)
	rules, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
	refs := rules[0].(map[string]any)["backendRefs"].([]any)
	refs[0].(map[string]any)["weight"] = int64(100)
	refs[1].(map[string]any)["weight"] = int64(0)
	if err := unstructured.SetNestedSlice(route.Object, rules, "spec", "rules"); err != nil {
		t.Fatal(err)
	}
	if err := h.Client.Update(ctx, route); err != nil {
		t.Fatal(err)
	}
	v, err := f.router().Verify(ctx, f.ro)
	if err != nil {
		t.Fatal(err)
	}
	if v.Weights == nil || *v.Weights != (providers.Weights{Stable: 100}) {
		t.Fatalf("Verify must report the drifted weights, got %v", v.Weights)
	}
	if err := f.router().SetWeights(ctx, f.ro, w); err != nil {
		t.Fatal(err)
	}
	if got := f.weights(t); got != w {
		t.Errorf("drift not corrected: %v", got)
	}
}

func testCleanup(t *testing.T, h Harness) {
	f := newFixture(t, h, "")
	ctx := context.Background()
	if err := f.router().SetWeights(ctx, f.ro, providers.Weights{Stable: 10, Canary: 90}); err != nil {
		t.Fatal(err)
	}
	if err := f.router().SetHeaderRoute(ctx, f.ro, headerRoute(false)); err != nil {
		t.Fatal(err)
	}
	if err := f.router().Cleanup(ctx, f.ro); err != nil {
		t.Fatal(err)
	}
	if got := f.weights(t); got != (providers.Weights{Stable: 100}) {
		t.Errorf("after clean-up the route carries %v, want all on stable", got)
	}
	rules, _, _ := unstructured.NestedSlice(f.get(t).Object, "spec", "rules")
	if len(rules) != 2 {
		t.Errorf("after clean-up %d rules, want the 2 original ones", len(rules))
	}
	f.unmanagedIntact(t)
}

func testNotUsable(t *testing.T, h Harness) {
	f := newFixture(t, h, "")
	ctx := context.Background()
	version := f.get(t).GetResourceVersion()

	other := f.ro.DeepCopy()
	other.Spec.Strategy.Canary.StableService, other.Spec.Strategy.Canary.CanaryService = "x-stable", "x-canary"
	missing := f.ro.DeepCopy()
	missing.Spec.Strategy.Canary.TrafficRouting.GatewayAPI.Routes[0].Name = "nope"
	for name, ro := range map[string]*kultav1alpha1.Rollout{"services not referenced": other, "route missing": missing} {
		err := f.router().SetWeights(ctx, ro, providers.Weights{Stable: 50, Canary: 50})
		var routeErr *providers.RouteError
		if !errors.As(err, &routeErr) || !errors.Is(err, providers.ErrRouteNotUsable) {
			t.Errorf("%s: want a RouteError, got %v", name, err)
			continue
		}
		if _, err := f.router().Verify(ctx, ro); !errors.Is(err, providers.ErrRouteNotUsable) {
			t.Errorf("%s: Verify must fail the same way, got %v", name, err)
		}
	}
	if f.get(t).GetResourceVersion() != version {
		t.Error("an unusable route was written")
	}
}

func testCrossNamespace(t *testing.T, h Harness) {
	routeNS := h.CreateNamespace(t, "routes")
	f := newFixture(t, h, routeNS)
	ctx := context.Background()
	w := providers.Weights{Stable: 90, Canary: 10}
	err := f.router().SetWeights(ctx, f.ro, w)
	var routeErr *providers.RouteError
	if !errors.As(err, &routeErr) || routeErr.Reason != "RouteNotPermitted" {
		t.Fatalf("without a ReferenceGrant: want RouteNotPermitted, got %v", err)
	}
	grant := &gatewayv1beta1.ReferenceGrant{
		ObjectMeta: metav1.ObjectMeta{Namespace: routeNS, Name: "allow-kulta"},
		Spec: gatewayv1beta1.ReferenceGrantSpec{
			From: []gatewayv1beta1.ReferenceGrantFrom{{Group: "kulta.io", Kind: "Rollout", Namespace: gatewayv1beta1.Namespace(f.ro.Namespace)}},
			To:   []gatewayv1beta1.ReferenceGrantTo{{Group: "gateway.networking.k8s.io", Kind: gatewayv1beta1.Kind(h.Kind), Name: ptr.To(gatewayv1beta1.ObjectName(f.name))}},
		},
	}
	if err := h.Client.Create(ctx, grant); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if err := f.router().SetWeights(ctx, f.ro, w); err != nil {
		t.Fatalf("with a ReferenceGrant: %v", err)
	}
	if got := f.weights(t); got != w {
		t.Errorf("weights %v, want %v", got, w)
	}
}
