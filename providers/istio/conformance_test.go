package istio_test

import (
	"context"
	"fmt"
	"testing"

	apinetworkingv1 "istio.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/conformance"
	"github.com/false-systems/kulta/providers/istio"
)

// TestConformance runs the suite for host-level and subset-level splits. Cross-namespace
// routing is unsupported: istio.virtualService names a VirtualService in the Rollout's
// namespace.
func TestConformance(t *testing.T) {
	e := testenv.Require(t, env)
	for mode, subsets := range map[string]bool{"HostLevel": false, "SubsetLevel": true} {
		t.Run(mode, func(t *testing.T) {
			conformance.Run(t, conformance.Harness{
				Name:      "istio " + mode,
				Client:    e.Client,
				NewRouter: func(c client.Client) providers.TrafficRouter { return &istio.Router{Client: c} },
				NewFixture: func(t testing.TB, _ bool) conformance.Fixture {
					return newVirtualServiceFixture(t, e, subsets)
				},
				// Istio reports no acceptance unless its status reporting refuses the generation.
				AcceptedWithoutController: true,
				Unsupported:               []conformance.Feature{conformance.FeatureCrossNamespaceRoute},
			})
		})
	}
}

// virtualServiceFixture is the Istio provider's conformance fixture: VirtualService app-route
// (and, split by subset, DestinationRule app) with a managed route "main" (stable 100, canary
// 0, with request header operations and retries) and an unmanaged route "other", annotated
// owner=team-a.
type virtualServiceFixture struct {
	c       client.Client
	ro      *kultav1alpha1.Rollout
	subsets bool
	// original is the VirtualService as the API server stored it.
	original *unstructured.Unstructured
}

const fixtureVS = "app-route"

func newVirtualServiceFixture(t testing.TB, e *testenv.Env, subsets bool) *virtualServiceFixture {
	t.Helper()
	ctx := context.Background()
	ns := e.CreateNamespace(t, "conformance")
	stable, canary := to("app-stable", 100), to("app-canary", 0)
	var mutate []func(*kultav1alpha1.IstioRouting)
	if subsets {
		stable, canary = toSubset("app", "stable", 100), toSubset("app", "canary", 0)
		mutate = append(mutate, bySubsets("app"))
		if err := e.Client.Create(ctx, newDestinationRule(ns, "app", "app", "stable", "canary")); err != nil {
			t.Fatalf("creating DestinationRule: %v", err)
		}
	}
	main := httpRoute("main", stable, canary)
	main.Headers = &apinetworkingv1.Headers{Request: &apinetworkingv1.Headers_HeaderOperations{Add: map[string]string{"x-team": "a"}}}
	main.Retries = &apinetworkingv1.HTTPRetry{Attempts: 3, RetryOn: "5xx"}
	other := httpRoute("other", to("unrelated", 0))
	other.Match = []*apinetworkingv1.HTTPMatchRequest{{Uri: &apinetworkingv1.StringMatch{MatchType: &apinetworkingv1.StringMatch_Prefix{Prefix: "/legacy"}}}}
	vs := newVirtualService(ns, fixtureVS, []*apinetworkingv1.HTTPRoute{main, other}, withAnnotation("owner", "team-a"))
	if err := e.Client.Create(ctx, vs); err != nil {
		t.Fatalf("creating VirtualService: %v", err)
	}
	f := &virtualServiceFixture{
		c: e.Client, subsets: subsets,
		ro: testutil.Rollout(ns, "app", withIstio(fixtureVS, []string{"main"}, mutate...), withHashes("aaaa", "bbbb")),
	}
	f.original = f.get(t)
	return f
}

func (f *virtualServiceFixture) get(t testing.TB) *unstructured.Unstructured {
	t.Helper()
	return stored(t, f.c, istio.KindVirtualService, f.ro.Namespace, fixtureVS)
}

func (f *virtualServiceFixture) routes(t testing.TB) []any {
	t.Helper()
	routes, _, _ := unstructured.NestedSlice(f.get(t).Object, "spec", "http")
	return routes
}

func (f *virtualServiceFixture) Rollout() *kultav1alpha1.Rollout { return f.ro }

// Weights reads route "main".
func (f *virtualServiceFixture) Weights(t testing.TB) providers.Weights {
	t.Helper()
	for _, item := range f.routes(t) {
		if route := item.(map[string]any); route["name"] == "main" {
			dests := route["route"].([]any)
			return providers.Weights{Stable: weight(dests[0]), Canary: weight(dests[1])}
		}
	}
	t.Fatal("managed route main missing")
	return providers.Weights{}
}

// HasHeaderRoute looks for the HTTP route named hr.Name, which must come first.
func (f *virtualServiceFixture) HasHeaderRoute(t testing.TB, hr providers.HeaderRoute) bool {
	t.Helper()
	for i, item := range f.routes(t) {
		if item.(map[string]any)["name"] == hr.Name {
			if i != 0 {
				t.Errorf("header route %s is HTTP route %d, want it first", hr.Name, i)
			}
			return true
		}
	}
	return false
}

// Snapshot prints the HTTP routes with every destination's weight, absent meaning 0.
func (f *virtualServiceFixture) Snapshot(t testing.TB) string {
	t.Helper()
	routes := f.routes(t)
	for _, item := range routes {
		dests, _ := item.(map[string]any)["route"].([]any)
		for _, dest := range dests {
			dest.(map[string]any)["weight"] = int64(weight(dest))
		}
	}
	return fmt.Sprint(routes)
}

func (f *virtualServiceFixture) Intact(t testing.TB) {
	t.Helper()
	vs := f.get(t)
	if vs.GetAnnotations()["owner"] != "team-a" {
		t.Errorf("annotation lost: %v", vs.GetAnnotations())
	}
	hosts, _, _ := unstructured.NestedStringSlice(vs.Object, "spec", "hosts")
	if len(hosts) != 1 || hosts[0] != fixtureVS {
		t.Errorf("spec.hosts changed: %v", hosts)
	}
	routes, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	originalRoutes, _, _ := unstructured.NestedSlice(f.original.Object, "spec", "http")
	for _, item := range routes {
		route := item.(map[string]any)
		switch route["name"] {
		case "other":
			if fmt.Sprint(route) != fmt.Sprint(originalRoutes[1]) {
				t.Errorf("unmanaged route changed:\n got %v\nwant %v", route, originalRoutes[1])
			}
		case "main":
			want := originalRoutes[0].(map[string]any)
			for _, key := range []string{"headers", "retries"} {
				if fmt.Sprint(route[key]) != fmt.Sprint(want[key]) {
					t.Errorf("managed route's %s changed: %v, want %v", key, route[key], want[key])
				}
			}
		}
	}
	if names := routeNames(routes); len(names) < 2 || names[len(names)-1] != "other" {
		t.Errorf("routes %v: the unmanaged route must stay, last", names)
	}
}

// Drift puts the manifest's weights back on route main.
func (f *virtualServiceFixture) Drift(t testing.TB) {
	t.Helper()
	vs := f.get(t)
	routes, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	for _, item := range routes {
		if route := item.(map[string]any); route["name"] == "main" {
			dests := route["route"].([]any)
			dests[0].(map[string]any)["weight"] = int64(100)
			delete(dests[1].(map[string]any), "weight")
		}
	}
	if err := unstructured.SetNestedSlice(vs.Object, routes, "spec", "http"); err != nil {
		t.Fatal(err)
	}
	if err := f.c.Update(context.Background(), vs); err != nil {
		t.Fatalf("drifting VirtualService: %v", err)
	}
}

// Unusable are a Rollout whose destinations the VirtualService (or DestinationRule) does not
// have, and one whose VirtualService is missing.
func (f *virtualServiceFixture) Unusable() []conformance.Unusable {
	other := f.ro.DeepCopy()
	object := fixtureVS
	if f.subsets {
		other.Spec.Strategy.Canary.TrafficRouting.Istio.DestinationRule.CanarySubsetName = "preview"
		object = "app"
	} else {
		other.Spec.Strategy.Canary.StableService, other.Spec.Strategy.Canary.CanaryService = "x-stable", "x-canary"
	}
	missing := f.ro.DeepCopy()
	missing.Spec.Strategy.Canary.TrafficRouting.Istio.VirtualService.Name = "nope"
	return []conformance.Unusable{
		{Case: "destinations not referenced", Rollout: other, Object: object},
		{Case: "VirtualService missing", Rollout: missing, Object: "nope"},
	}
}
