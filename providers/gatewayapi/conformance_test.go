package gatewayapi_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/conformance"
	"github.com/false-systems/kulta/providers/gatewayapi"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env))
}

func harness(t *testing.T, kind kultav1alpha1.RouteKind, unsupported ...conformance.Feature) conformance.Harness {
	e := testenv.Require(t, env)
	return conformance.Harness{
		Name:   "gatewayAPI " + string(kind),
		Client: e.Client,
		NewRouter: func(c client.Client) providers.TrafficRouter {
			return &gatewayapi.Router{Client: c}
		},
		NewFixture: func(t testing.TB, crossNamespace bool) conformance.Fixture {
			return newRouteFixture(t, e, kind, crossNamespace)
		},
		// Routes are accepted by a Gateway controller, and the suite runs none.
		AcceptedWithoutController: false,
		Unsupported:               unsupported,
	}
}

func TestConformanceHTTPRoute(t *testing.T) {
	conformance.Run(t, harness(t, kultav1alpha1.KindHTTPRoute))
}

// GRPCRoute has no Cookie header in gRPC metadata that Gateways agree on, so cookie matches are
// declared unsupported; SetHeaderRoute refuses them with a RouteError.
func TestConformanceGRPCRoute(t *testing.T) {
	conformance.Run(t, harness(t, kultav1alpha1.KindGRPCRoute, conformance.FeatureCookieMatch))
}

// routeFixture is the Gateway API provider's conformance fixture: route app-route with a
// managed rule "main" (app-stable 100, app-canary 0; on an HTTPRoute, with a header filter) and
// an unmanaged rule "other", annotated owner=team-a.
type routeFixture struct {
	c       client.Client
	kind    kultav1alpha1.RouteKind
	ro      *kultav1alpha1.Rollout
	routeNS string
	// original is the route as the API server stored it, defaults applied.
	original *unstructured.Unstructured
}

const fixtureRoute = "app-route"

func newRouteFixture(t testing.TB, e *testenv.Env, kind kultav1alpha1.RouteKind, crossNamespace bool) *routeFixture {
	t.Helper()
	ns := e.CreateNamespace(t, "conformance")
	routeNS := ns
	if crossNamespace {
		routeNS = e.CreateNamespace(t, "routes")
	}
	ro := testutil.Rollout(ns, "app")
	ref := kultav1alpha1.RouteReference{Kind: kind, Name: fixtureRoute, Namespace: routeNS}
	ro.Spec.Strategy.Canary.TrafficRouting = &kultav1alpha1.TrafficRouting{GatewayAPI: &kultav1alpha1.GatewayAPIRouting{Routes: []kultav1alpha1.RouteReference{ref}}}
	f := &routeFixture{c: e.Client, kind: kind, ro: ro, routeNS: routeNS}
	if err := e.Client.Create(context.Background(), f.newRoute(ns)); err != nil {
		t.Fatalf("creating %s: %v", kind, err)
	}
	f.original = f.get(t)
	return f
}

// newRoute is the route, its backendRefs to Services in servicesNS.
func (f *routeFixture) newRoute(servicesNS string) *unstructured.Unstructured {
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
	if f.kind == kultav1alpha1.KindHTTPRoute {
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
	route.SetGroupVersionKind(f.gvk())
	route.SetNamespace(f.routeNS)
	route.SetName(fixtureRoute)
	route.SetAnnotations(map[string]string{"owner": "team-a"})
	return route
}

func (f *routeFixture) gvk() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: gatewayapi.Group, Version: "v1", Kind: string(f.kind)}
}

func (f *routeFixture) get(t testing.TB) *unstructured.Unstructured {
	t.Helper()
	route := &unstructured.Unstructured{}
	route.SetGroupVersionKind(f.gvk())
	if err := f.c.Get(context.Background(), client.ObjectKey{Namespace: f.routeNS, Name: fixtureRoute}, route); err != nil {
		t.Fatalf("reading %s: %v", f.kind, err)
	}
	return route
}

func (f *routeFixture) rules(t testing.TB) []any {
	t.Helper()
	rules, _, _ := unstructured.NestedSlice(f.get(t).Object, "spec", "rules")
	return rules
}

func (f *routeFixture) Rollout() *kultav1alpha1.Rollout { return f.ro }

// Weights reads rule "main"; a backendRef without a weight has weight 1, as Gateway API says.
func (f *routeFixture) Weights(t testing.TB) providers.Weights {
	t.Helper()
	weight := func(item any) int32 {
		v, ok := item.(map[string]any)["weight"]
		if !ok {
			return 1
		}
		return int32(v.(int64))
	}
	for _, item := range f.rules(t) {
		rule := item.(map[string]any)
		if rule["name"] == "main" {
			refs := rule["backendRefs"].([]any)
			return providers.Weights{Stable: weight(refs[0]), Canary: weight(refs[1])}
		}
	}
	t.Fatal("managed rule main missing")
	return providers.Weights{}
}

// HasHeaderRoute looks for the rules KULTA names hr.Name-N, which must come first.
func (f *routeFixture) HasHeaderRoute(t testing.TB, hr providers.HeaderRoute) bool {
	t.Helper()
	rules := f.rules(t)
	for i, item := range rules {
		name, _ := item.(map[string]any)["name"].(string)
		if strings.HasPrefix(name, hr.Name+"-") {
			if i != 0 {
				t.Errorf("header rule %s is rule %d, want it first", name, i)
			}
			return true
		}
	}
	return false
}

func (f *routeFixture) Snapshot(t testing.TB) string { return fmt.Sprint(f.rules(t)) }

func (f *routeFixture) Intact(t testing.TB) {
	t.Helper()
	route := f.get(t)
	if route.GetAnnotations()["owner"] != "team-a" {
		t.Errorf("annotation lost: %v", route.GetAnnotations())
	}
	if got, want := fmt.Sprint(route.Object["spec"].(map[string]any)["parentRefs"]), fmt.Sprint(f.original.Object["spec"].(map[string]any)["parentRefs"]); got != want {
		t.Errorf("parentRefs changed: %s, want %s", got, want)
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
			want := f.original.Object["spec"].(map[string]any)["rules"].([]any)[0].(map[string]any)
			if fmt.Sprint(rule["filters"]) != fmt.Sprint(want["filters"]) {
				t.Errorf("managed rule's filters changed: %v, want %v", rule["filters"], want["filters"])
			}
		}
	}
	if len(names) < 2 || names[len(names)-1] != "other" {
		t.Errorf("rules %v: the unmanaged rule must stay, last", names)
	}
}

// Drift puts the manifest's weights back on rule main.
func (f *routeFixture) Drift(t testing.TB) {
	t.Helper()
	route := f.get(t)
	rules, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
	for _, item := range rules {
		if rule := item.(map[string]any); rule["name"] == "main" {
			refs := rule["backendRefs"].([]any)
			refs[0].(map[string]any)["weight"] = int64(100)
			refs[1].(map[string]any)["weight"] = int64(0)
		}
	}
	if err := unstructured.SetNestedSlice(route.Object, rules, "spec", "rules"); err != nil {
		t.Fatal(err)
	}
	if err := f.c.Update(context.Background(), route); err != nil {
		t.Fatalf("drifting %s: %v", f.kind, err)
	}
}

func (f *routeFixture) Unusable() []conformance.Unusable {
	other := f.ro.DeepCopy()
	other.Spec.Strategy.Canary.StableService, other.Spec.Strategy.Canary.CanaryService = "x-stable", "x-canary"
	missing := f.ro.DeepCopy()
	missing.Spec.Strategy.Canary.TrafficRouting.GatewayAPI.Routes[0].Name = "nope"
	return []conformance.Unusable{
		{Case: "services not referenced", Rollout: other, Object: fixtureRoute},
		{Case: "route missing", Rollout: missing, Object: "nope"},
	}
}

// Permit creates a ReferenceGrant in the route's namespace for Rollouts of the Rollout's.
func (f *routeFixture) Permit(t testing.TB) {
	t.Helper()
	grant := &gatewayv1beta1.ReferenceGrant{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.routeNS, Name: "allow-kulta"},
		Spec: gatewayv1beta1.ReferenceGrantSpec{
			From: []gatewayv1beta1.ReferenceGrantFrom{{Group: "kulta.io", Kind: "Rollout", Namespace: gatewayv1beta1.Namespace(f.ro.Namespace)}},
			To:   []gatewayv1beta1.ReferenceGrantTo{{Group: gatewayapi.Group, Kind: gatewayv1beta1.Kind(f.kind), Name: ptr.To(gatewayv1beta1.ObjectName(fixtureRoute))}},
		},
	}
	if err := f.c.Create(context.Background(), grant); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating ReferenceGrant: %v", err)
	}
}
