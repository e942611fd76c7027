package gatewayapi_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr/testr"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/gatewayapi"
)

// countingClient counts the route writes that reach the client it wraps.
type countingClient struct {
	client.Client
	updates atomic.Int32
}

func (c *countingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	c.updates.Add(1)
	return c.Client.Update(ctx, obj, opts...)
}

func (c *countingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	c.updates.Add(1)
	return c.Client.Patch(ctx, obj, patch, opts...)
}

// writes returns how many writes were made since the last call.
func (c *countingClient) writes() int32 { return c.updates.Swap(0) }

// testRule is a rule of a test route: a path prefix (HTTPRoute) or service (GRPCRoute) match,
// none when empty, and backendRefs to Services at port 80.
type testRule struct {
	name, match string
	backends    []testBackend
}

type testBackend struct {
	service string
	weight  int64
}

// newTestRoute is a route of kind in namespace ns attached to Gateway public, with rules. Rule
// names are left out when named is false, as an API server without them would prune them.
func newTestRoute(kind kultav1alpha1.RouteKind, ns, name string, named bool, rules ...testRule) *unstructured.Unstructured {
	var items []any
	for _, r := range rules {
		var refs []any
		for _, b := range r.backends {
			refs = append(refs, map[string]any{"name": b.service, "port": int64(80), "weight": b.weight})
		}
		rule := map[string]any{"backendRefs": refs}
		if named {
			rule["name"] = r.name
		}
		switch {
		case r.match == "":
			// No match: the rule takes every request (HTTPRoute's defaulted match says so).
		case kind == kultav1alpha1.KindGRPCRoute:
			rule["matches"] = []any{map[string]any{"method": map[string]any{"service": r.match}}}
		default:
			rule["matches"] = []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": r.match}}}
		}
		items = append(items, rule)
	}
	route := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{
		"parentRefs": []any{map[string]any{"name": "public"}},
		"rules":      items,
	}}}
	route.SetGroupVersionKind(schema.GroupVersionKind{Group: gatewayapi.Group, Version: "v1", Kind: string(kind)})
	route.SetNamespace(ns)
	route.SetName(name)
	return route
}

// abRollout is an A/B Rollout between NAME-a and NAME-b routed through the route of kind named
// route; it is not stored.
func abRollout(ns, name string, kind kultav1alpha1.RouteKind, route string) *kultav1alpha1.Rollout {
	return testutil.Rollout(ns, name, testutil.WithABTesting(func(ab *kultav1alpha1.ABTestingStrategy) {
		ab.TrafficRouting = &kultav1alpha1.TrafficRouting{GatewayAPI: &kultav1alpha1.GatewayAPIRouting{
			Routes: []kultav1alpha1.RouteReference{{Kind: kind, Name: route, Namespace: ns}},
		}}
	}))
}

func headerRouteOf(t *testing.T, ro *kultav1alpha1.Rollout) providers.HeaderRoute {
	t.Helper()
	hr, ok := providers.ManagedHeaderRoute(ro)
	if !ok {
		t.Fatalf("Rollout %s asks for no header route", ro.Name)
	}
	return hr
}

// storedRules reads the route's rules from the API server.
func storedRules(t *testing.T, c client.Client, route *unstructured.Unstructured) []any {
	t.Helper()
	stored := &unstructured.Unstructured{}
	stored.SetGroupVersionKind(route.GroupVersionKind())
	if err := c.Get(context.Background(), types.NamespacedName{Namespace: route.GetNamespace(), Name: route.GetName()}, stored); err != nil {
		t.Fatalf("reading %s %s: %v", route.GetKind(), route.GetName(), err)
	}
	rules, _, _ := unstructured.NestedSlice(stored.Object, "spec", "rules")
	return rules
}

func ruleNames(rules []any) []string {
	var names []string
	for _, item := range rules {
		name, _ := item.(map[string]any)["name"].(string)
		names = append(names, name)
	}
	return names
}

func verifyWeights(t *testing.T, r *gatewayapi.Router, ro *kultav1alpha1.Rollout, want providers.Weights) {
	t.Helper()
	v, err := r.Verify(context.Background(), ro)
	if err != nil {
		t.Fatalf("Verify %s: %v", ro.Name, err)
	}
	if v.Weights == nil || *v.Weights != want {
		t.Errorf("Verify %s: weights %v, want %v", ro.Name, v.Weights, want)
	}
}

func testContext(t *testing.T) context.Context {
	return ctrl.LoggerInto(context.Background(), testr.New(t))
}

// TestCleanupLeavesOtherRollouts shares one route between Rollouts web and web-api, whose
// header rules are kulta-web-variant-b-0 and kulta-web-api-variant-b-0: cleaning up web must
// leave web-api's rule and weights as they are, and only then does web-api's clean-up restore
// the route as it was created.
func TestCleanupLeavesOtherRollouts(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := testContext(t)
	ns := e.CreateNamespace(t, "cleanup")
	route := newTestRoute(kultav1alpha1.KindHTTPRoute, ns, "shop", true,
		testRule{"web", "/", []testBackend{{"web-a", 100}, {"web-b", 0}}},
		testRule{"api", "/api", []testBackend{{"web-api-a", 100}, {"web-api-b", 0}}})
	if err := e.Client.Create(ctx, route); err != nil {
		t.Fatal(err)
	}
	created := storedRules(t, e.Client, route)
	web := abRollout(ns, "web", kultav1alpha1.KindHTTPRoute, "shop")
	webAPI := abRollout(ns, "web-api", kultav1alpha1.KindHTTPRoute, "shop")
	c := &countingClient{Client: e.Client}
	r := &gatewayapi.Router{Client: c}
	half := providers.Weights{Stable: 50, Canary: 50}
	for _, ro := range []*kultav1alpha1.Rollout{web, webAPI} {
		if err := r.SetWeights(ctx, ro, half); err != nil {
			t.Fatal(err)
		}
		if err := r.SetHeaderRoute(ctx, ro, headerRouteOf(t, ro)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"kulta-web-variant-b-0", "web", "kulta-web-api-variant-b-0", "api"}
	if got := ruleNames(storedRules(t, e.Client, route)); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("rules %v, want %v", got, want)
	}

	if err := r.Cleanup(ctx, web); err != nil {
		t.Fatal(err)
	}
	want = []string{"web", "kulta-web-api-variant-b-0", "api"}
	if got := ruleNames(storedRules(t, e.Client, route)); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("after cleaning up web: rules %v, want %v", got, want)
	}
	verifyWeights(t, r, web, providers.Weights{Stable: 100})
	verifyWeights(t, r, webAPI, half)
	c.writes()
	if err := r.Cleanup(ctx, web); err != nil {
		t.Fatal(err)
	}
	if n := c.writes(); n != 0 {
		t.Errorf("cleaning up web again wrote the route %d times", n)
	}

	if err := r.Cleanup(ctx, webAPI); err != nil {
		t.Fatal(err)
	}
	if got := storedRules(t, e.Client, route); !equality.Semantic.DeepEqual(got, created) {
		t.Errorf("after both clean-ups the rules are\n%v\nwant them as created\n%v", got, created)
	}
}

// TestCleanupOfRoutesItCannotChange checks that a Rollout stays deletable whatever became of
// its routes: Cleanup returns nil for a route that is gone, one the Rollout may no longer use,
// one of a kind not served, and one that no longer references the Services, whose header rule
// it still removes.
func TestCleanupOfRoutesItCannotChange(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := testContext(t)
	ns := e.CreateNamespace(t, "cleanup-gone")
	other := e.CreateNamespace(t, "cleanup-other")

	t.Run("route gone", func(t *testing.T) {
		ro := abRollout(ns, "gone", kultav1alpha1.KindHTTPRoute, "no-such-route")
		r := &gatewayapi.Router{Client: e.Client}
		if err := r.Cleanup(ctx, ro); err != nil {
			t.Errorf("Cleanup with the route gone: %v", err)
		}
		var routeErr *providers.RouteError
		if err := r.SetWeights(ctx, ro, providers.Weights{Stable: 100}); !errors.As(err, &routeErr) || routeErr.Reason != "HTTPRouteNotFound" {
			t.Errorf("SetWeights with the route gone: %v, want HTTPRouteNotFound", err)
		}
	})

	t.Run("ReferenceGrant gone", func(t *testing.T) {
		route := newTestRoute(kultav1alpha1.KindHTTPRoute, other, "shared", true,
			testRule{"web", "/", []testBackend{{"web-a", 50}, {"web-b", 50}}})
		if err := e.Client.Create(ctx, route); err != nil {
			t.Fatal(err)
		}
		ro := abRollout(ns, "web", kultav1alpha1.KindHTTPRoute, "shared")
		ro.Spec.Strategy.ABTesting.TrafficRouting.GatewayAPI.Routes[0].Namespace = other
		before := storedRules(t, e.Client, route)
		if err := (&gatewayapi.Router{Client: e.Client}).Cleanup(ctx, ro); err != nil {
			t.Errorf("Cleanup of a route the Rollout may no longer use: %v", err)
		}
		if got := storedRules(t, e.Client, route); !equality.Semantic.DeepEqual(got, before) {
			t.Error("Cleanup changed a route the Rollout may not use")
		}
	})

	t.Run("kind not served", func(t *testing.T) {
		ro := abRollout(ns, "greeter", kultav1alpha1.KindGRPCRoute, "greeter")
		r := &gatewayapi.Router{Client: e.Client, Capabilities: &gatewayapi.Capabilities{HTTPRoute: true, RuleNames: true}}
		if err := r.Cleanup(ctx, ro); err != nil {
			t.Errorf("Cleanup of a GRPCRoute that is not served: %v", err)
		}
		var routeErr *providers.RouteError
		err := r.SetWeights(ctx, ro, providers.Weights{Stable: 100})
		if !errors.As(err, &routeErr) || routeErr.Reason != providers.ReasonRouteKindNotServed {
			t.Fatalf("SetWeights on a GRPCRoute that is not served: %v, want %s", err, providers.ReasonRouteKindNotServed)
		}
		if !strings.Contains(err.Error(), "GRPCRoute "+ns+"/greeter") {
			t.Errorf("the error must name the route: %v", err)
		}
		if _, err := r.Verify(ctx, ro); !errors.As(err, &routeErr) || routeErr.Reason != providers.ReasonRouteKindNotServed {
			t.Errorf("Verify on a GRPCRoute that is not served: %v, want %s", err, providers.ReasonRouteKindNotServed)
		}
	})

	t.Run("Services no longer referenced", func(t *testing.T) {
		route := newTestRoute(kultav1alpha1.KindHTTPRoute, ns, "moved", true,
			testRule{"web", "/", []testBackend{{"moved-a", 100}, {"moved-b", 0}}})
		if err := e.Client.Create(ctx, route); err != nil {
			t.Fatal(err)
		}
		ro := abRollout(ns, "moved", kultav1alpha1.KindHTTPRoute, "moved")
		r := &gatewayapi.Router{Client: e.Client}
		if err := r.SetHeaderRoute(ctx, ro, headerRouteOf(t, ro)); err != nil {
			t.Fatal(err)
		}
		// The user points the rule at other Services; KULTA's header rule is still there.
		rules := storedRules(t, e.Client, route)
		for _, ref := range rules[1].(map[string]any)["backendRefs"].([]any) {
			ref.(map[string]any)["name"] = "elsewhere-" + ref.(map[string]any)["name"].(string)
		}
		stored := route.DeepCopy()
		if err := e.Client.Get(ctx, client.ObjectKeyFromObject(route), stored); err != nil {
			t.Fatal(err)
		}
		if err := unstructured.SetNestedSlice(stored.Object, rules, "spec", "rules"); err != nil {
			t.Fatal(err)
		}
		if err := e.Client.Update(ctx, stored); err != nil {
			t.Fatal(err)
		}
		if err := r.Cleanup(ctx, ro); err != nil {
			t.Errorf("Cleanup of a route that no longer references the Services: %v", err)
		}
		if got := ruleNames(storedRules(t, e.Client, route)); strings.Join(got, ",") != "web" {
			t.Errorf("rules %v after clean-up, want KULTA's header rule gone and only web left", got)
		}
	})
}

// TestHeaderRouteIdentityModes runs the header route on the newest CRDs both as they are (rule
// names kept) and as if the API server pruned rule names: either way setting it again writes
// nothing, and removing it restores the rules.
func TestHeaderRouteIdentityModes(t *testing.T) {
	e := testenv.Require(t, env)
	for _, ruleNames := range []bool{true, false} {
		t.Run(map[bool]string{true: "by name", false: "by content"}[ruleNames], func(t *testing.T) {
			ctx := testContext(t)
			ns := e.CreateNamespace(t, "identity")
			route := newTestRoute(kultav1alpha1.KindHTTPRoute, ns, "web", ruleNames,
				testRule{"main", "/", []testBackend{{"web-a", 100}, {"web-b", 0}}})
			if err := e.Client.Create(ctx, route); err != nil {
				t.Fatal(err)
			}
			created := storedRules(t, e.Client, route)
			ro := abRollout(ns, "web", kultav1alpha1.KindHTTPRoute, "web")
			c := &countingClient{Client: e.Client}
			r := &gatewayapi.Router{Client: c, Capabilities: &gatewayapi.Capabilities{HTTPRoute: true, GRPCRoute: true, RuleNames: ruleNames}}
			headerRouteRoundTrip(t, ctx, r, c, route, ro, created, ruleNames)
		})
	}
}

// headerRouteRoundTrip sets ro's header route on route, twice, then removes it: the first set
// is one write of one rule more (named when named), the second writes nothing, the removal
// restores created.
func headerRouteRoundTrip(t *testing.T, ctx context.Context, r *gatewayapi.Router, c *countingClient, route *unstructured.Unstructured, ro *kultav1alpha1.Rollout, created []any, named bool) {
	t.Helper()
	hr := headerRouteOf(t, ro)
	c.writes()
	if err := r.SetHeaderRoute(ctx, ro, hr); err != nil {
		t.Fatal(err)
	}
	if n := c.writes(); n != 1 {
		t.Errorf("setting the header route wrote %d times, want once", n)
	}
	rules := storedRules(t, c.Client, route)
	if len(rules) != len(created)+1 {
		t.Fatalf("%d rules after SetHeaderRoute, want %d", len(rules), len(created)+1)
	}
	name, hasName := rules[0].(map[string]any)["name"]
	if named != hasName || (named && name != hr.Name+"-0") {
		t.Errorf("the header rule's name is %v (present %v), want it named %v", name, hasName, named)
	}
	ref := rules[0].(map[string]any)["backendRefs"].([]any)[0].(map[string]any)
	if ref["name"] != ro.Name+"-b" || ref["port"] != int64(80) {
		t.Errorf("the header rule's backendRef is %v, want %s-b at port 80", ref, ro.Name)
	}
	for range 2 {
		if err := r.SetHeaderRoute(ctx, ro, hr); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.writes(); n != 0 {
		t.Errorf("setting the same header route again wrote %d times", n)
	}
	if err := r.RemoveHeaderRoute(ctx, ro, hr.Name); err != nil {
		t.Fatal(err)
	}
	if got := storedRules(t, c.Client, route); !equality.Semantic.DeepEqual(got, created) {
		t.Errorf("after RemoveHeaderRoute the rules are\n%v\nwant\n%v", got, created)
	}
	if err := r.RemoveHeaderRoute(ctx, ro, hr.Name); err != nil {
		t.Fatal(err)
	}
	if n := c.writes(); n != 1 {
		t.Errorf("removing the header route twice wrote %d times, want once", n)
	}
}
