package istio_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	apinetworkingv1 "istio.io/api/networking/v1"
	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/istio"
)

// subsetFixture is a subset-level split of Rollout web: VirtualService web's route primary
// between subsets stable and canary of host web, and DestinationRule web.
type subsetFixture struct {
	ns string
	ro *kultav1alpha1.Rollout
}

func newSubsetFixture(t *testing.T, e *testenv.Env, opts ...testutil.RolloutOption) subsetFixture {
	t.Helper()
	ctx := context.Background()
	ns := e.CreateNamespace(t, "subsets")
	vs := newVirtualService(ns, "web", []*apinetworkingv1.HTTPRoute{
		httpRoute("primary", toSubset("web", "stable", 100), toSubset("web", "canary", 0)),
	})
	for _, obj := range []client.Object{vs, newDestinationRule(ns, "web", "web", "stable", "canary", "legacy")} {
		if err := e.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	opts = append(opts, withIstio("web", []string{"primary"}, bySubsets("web")))
	return subsetFixture{ns: ns, ro: testutil.Rollout(ns, "web", opts...)}
}

// subsetLabels returns, per subset of the stored DestinationRule, its pod-template-hash label.
func subsetLabels(t *testing.T, c client.Reader, ns string) map[string]string {
	t.Helper()
	subsets, _, _ := unstructured.NestedSlice(stored(t, c, istio.KindDestinationRule, ns, "web").Object, "spec", "subsets")
	out := map[string]string{}
	for _, item := range subsets {
		s := item.(map[string]any)
		labels, _ := s["labels"].(map[string]any)
		if labels["app"] != "web" {
			t.Errorf("subset %v lost its label app=web", s["name"])
		}
		hash, _ := labels[kultav1alpha1.PodTemplateHashLabel].(string)
		out[s["name"].(string)] = hash
	}
	return out
}

// TestSubsetLabelsFollowStatus runs a subset-level split through a rollout: the subsets select
// the revisions the status names, Verify reports subsets that select another revision as not
// accepted, naming the DestinationRule, and clean-up leaves the labels.
func TestSubsetLabelsFollowStatus(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := testContext(t)
	f := newSubsetFixture(t, e, withHashes("aaaa", "bbbb"))
	r := &istio.Router{Client: e.Client}

	if err := r.SetWeights(ctx, f.ro, providers.Weights{Stable: 80, Canary: 20}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"stable": "aaaa", "canary": "bbbb", "legacy": ""}
	if got := subsetLabels(t, e.Client, f.ns); !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("subset labels %v, want %v", got, want)
	}
	if v := verifyWeights(t, r, f.ro, providers.Weights{Stable: 80, Canary: 20}); !v.Accepted {
		t.Errorf("not accepted: %s", v.Message)
	}

	// A new revision: until the router writes again the canary subset selects the old one.
	f.ro.Status.CurrentPodTemplateHash = "cccc"
	v := verifyWeights(t, r, f.ro, providers.Weights{Stable: 80, Canary: 20})
	if v.Accepted || !strings.Contains(v.Message, "DestinationRule "+f.ns+`/web subset "canary"`) || !strings.Contains(v.Message, `want "cccc"`) {
		t.Errorf("Verify with the canary subset on the old revision: accepted %v, %q", v.Accepted, v.Message)
	}
	if err := r.SetWeights(ctx, f.ro, providers.Weights{Stable: 100}); err != nil {
		t.Fatal(err)
	}
	if v := verifyWeights(t, r, f.ro, providers.Weights{Stable: 100}); !v.Accepted {
		t.Errorf("not accepted after SetWeights: %s", v.Message)
	}

	// Promotion: both subsets select the new revision; clean-up leaves them so.
	f.ro.Status.StablePodTemplateHash = "cccc"
	if err := r.SetHeaderRoute(ctx, f.ro, providers.HeaderRoute{Name: providers.HeaderRouteName(f.ro), Header: &kultav1alpha1.HeaderMatch{Name: "X-Variant", Value: "B"}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Cleanup(ctx, f.ro); err != nil {
		t.Fatal(err)
	}
	want = map[string]string{"stable": "cccc", "canary": "cccc", "legacy": ""}
	if got := subsetLabels(t, e.Client, f.ns); !equality.Semantic.DeepEqual(got, want) {
		t.Errorf("after clean-up subset labels %v, want %v", got, want)
	}
	if names := routeNames(httpRoutes(t, e.Client, f.ns, "web")); strings.Join(names, ",") != "primary" {
		t.Errorf("after clean-up routes %v, want primary alone", names)
	}
}

// TestSubsetWriteOrder checks the order of the writes to the VirtualService and the
// DestinationRule: subsets first when the canary's weight rises, weights first otherwise, so
// traffic never reaches a subset before it selects the revision meant to serve it.
func TestSubsetWriteOrder(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := testContext(t)
	f := newSubsetFixture(t, e, withHashes("aaaa", "bbbb"))
	var writes []string
	r := &istio.Router{Client: e.Client, OnWrite: func(_ types.NamespacedName, kind, _ string) { writes = append(writes, kind) }}
	for _, step := range []struct {
		current string
		w       providers.Weights
		want    string
	}{
		{"bbbb", providers.Weights{Stable: 70, Canary: 30}, "DestinationRule,VirtualService"},
		// A new revision replaces the one in flight: the canary's traffic goes first.
		{"cccc", providers.Weights{Stable: 100}, "VirtualService,DestinationRule"},
		{"cccc", providers.Weights{Stable: 50, Canary: 50}, "VirtualService"},
	} {
		writes = nil
		f.ro.Status.CurrentPodTemplateHash = step.current
		if err := r.SetWeights(ctx, f.ro, step.w); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(writes, ","); got != step.want {
			t.Errorf("%v with canary %s: writes %s, want %s", step.w, step.current, got, step.want)
		}
	}
}

// TestVerifyReadsIstioStatus writes the status istiod's status reporting would: a Reconciled
// condition False for the current generation holds the step back, with Istio's message; once
// the spec moves on to a generation Istio has not judged, the VirtualService counts as
// accepted again.
func TestVerifyReadsIstioStatus(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := testContext(t)
	ns := e.CreateNamespace(t, "status")
	vs := newVirtualService(ns, "web", []*apinetworkingv1.HTTPRoute{httpRoute("primary", to("web-stable", 100), to("web-canary", 0))})
	if err := e.Client.Create(ctx, vs); err != nil {
		t.Fatal(err)
	}
	ro := testutil.Rollout(ns, "web", withIstio("web", nil))
	r := &istio.Router{Client: e.Client}

	u := stored(t, e.Client, istio.KindVirtualService, ns, "web")
	u.Object["status"] = map[string]any{"conditions": []any{map[string]any{
		"type": "Reconciled", "status": "False", "reason": "Rejected", "message": "1 of 3 proxies rejected the config",
		"observedGeneration": u.GetGeneration(),
	}}}
	if err := e.Client.Status().Update(ctx, u); err != nil {
		t.Fatal(err)
	}
	v := verifyWeights(t, r, ro, providers.Weights{Stable: 100})
	if v.Accepted || !strings.Contains(v.Message, "VirtualService "+ns+"/web") || !strings.Contains(v.Message, "proxies rejected") {
		t.Errorf("Verify with Reconciled=False: accepted %v, %q", v.Accepted, v.Message)
	}
	if err := r.SetWeights(ctx, ro, providers.Weights{Stable: 90, Canary: 10}); err != nil {
		t.Fatal(err)
	}
	if v := verifyWeights(t, r, ro, providers.Weights{Stable: 90, Canary: 10}); !v.Accepted {
		t.Errorf("a generation Istio has not judged yet counts as accepted: %s", v.Message)
	}
}

// TestCleanupLeavesOtherRollouts shares one VirtualService between Rollouts web and web-api,
// whose header routes are kulta-web-variant-b and kulta-web-api-variant-b: cleaning up web must
// leave web-api's route and weights as they are, and only then does web-api's clean-up restore
// the VirtualService as it was created.
func TestCleanupLeavesOtherRollouts(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := testContext(t)
	ns := e.CreateNamespace(t, "cleanup")
	vs := newVirtualService(ns, "shop", []*apinetworkingv1.HTTPRoute{
		httpRoute("web", to("web-a", 100), to("web-b", 0)),
		httpRoute("api", to("web-api-a", 100), to("web-api-b", 0)),
	})
	if err := e.Client.Create(ctx, vs); err != nil {
		t.Fatal(err)
	}
	created := httpRoutes(t, e.Client, ns, "shop")
	web := testutil.Rollout(ns, "web", testutil.WithABTesting(), withIstio("shop", []string{"web"}))
	webAPI := testutil.Rollout(ns, "web-api", testutil.WithABTesting(), withIstio("shop", []string{"api"}))
	c := &countingClient{Client: e.Client}
	r := &istio.Router{Client: c}
	half := providers.Weights{Stable: 50, Canary: 50}
	for _, ro := range []*kultav1alpha1.Rollout{web, webAPI} {
		hr, _ := providers.ManagedHeaderRoute(ro)
		if err := r.SetWeights(ctx, ro, half); err != nil {
			t.Fatal(err)
		}
		if err := r.SetHeaderRoute(ctx, ro, hr); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(routeNames(httpRoutes(t, e.Client, ns, "shop")), ","); got != "kulta-web-variant-b,web,kulta-web-api-variant-b,api" {
		t.Fatalf("routes %s", got)
	}
	if err := r.Cleanup(ctx, web); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(routeNames(httpRoutes(t, e.Client, ns, "shop")), ","); got != "web,kulta-web-api-variant-b,api" {
		t.Errorf("after cleaning up web: routes %s", got)
	}
	verifyWeights(t, r, web, providers.Weights{Stable: 100})
	verifyWeights(t, r, webAPI, half)
	c.writes()
	if err := r.Cleanup(ctx, web); err != nil {
		t.Fatal(err)
	}
	if n := c.writes(); n != 0 {
		t.Errorf("cleaning up web again wrote %d times", n)
	}
	if err := r.Cleanup(ctx, webAPI); err != nil {
		t.Fatal(err)
	}
	// KULTA writes weight 0 where it set another weight before; Istio reads no weight as 0.
	if got := httpRoutes(t, e.Client, ns, "shop"); !equality.Semantic.DeepEqual(withZeroWeights(got), withZeroWeights(created)) {
		t.Errorf("after both clean-ups the routes are\n%v\nwant them as created\n%v", got, created)
	}
}

// TestCleanupOfObjectsItCannotChange checks that a Rollout stays deletable whatever became of
// its objects: Cleanup returns nil when the VirtualService is gone, when the DestinationRule is
// gone (the header route still goes, the weights stay), and when the route no longer routes to
// the Services (the header route still goes).
func TestCleanupOfObjectsItCannotChange(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := testContext(t)

	t.Run("VirtualService gone", func(t *testing.T) {
		ro := testutil.Rollout(e.CreateNamespace(t, "gone"), "web", withIstio("no-such-vs", nil))
		r := &istio.Router{Client: e.Client}
		if err := r.Cleanup(ctx, ro); err != nil {
			t.Errorf("Cleanup with the VirtualService gone: %v", err)
		}
		var routeErr *providers.RouteError
		if err := r.SetWeights(ctx, ro, providers.Weights{Stable: 100}); !errors.As(err, &routeErr) || routeErr.Reason != istio.ReasonVirtualServiceNotFound {
			t.Errorf("SetWeights with the VirtualService gone: %v, want %s", err, istio.ReasonVirtualServiceNotFound)
		}
	})

	t.Run("DestinationRule gone", func(t *testing.T) {
		f := newSubsetFixture(t, e, testutil.WithABTesting(), withHashes("aaaa", "bbbb"))
		r := &istio.Router{Client: e.Client}
		hr, _ := providers.ManagedHeaderRoute(f.ro)
		if err := r.SetWeights(ctx, f.ro, providers.Weights{Stable: 50, Canary: 50}); err != nil {
			t.Fatal(err)
		}
		if err := r.SetHeaderRoute(ctx, f.ro, hr); err != nil {
			t.Fatal(err)
		}
		dr := istio.DestinationRuleObject()
		dr.SetNamespace(f.ns)
		dr.SetName("web")
		if err := e.Client.Delete(ctx, dr); err != nil {
			t.Fatal(err)
		}
		var routeErr *providers.RouteError
		if _, err := r.Verify(ctx, f.ro); !errors.As(err, &routeErr) || routeErr.Reason != istio.ReasonDestinationRuleNotFound {
			t.Errorf("Verify with the DestinationRule gone: %v, want %s", err, istio.ReasonDestinationRuleNotFound)
		}
		if err := r.Cleanup(ctx, f.ro); err != nil {
			t.Errorf("Cleanup with the DestinationRule gone: %v", err)
		}
		routes := httpRoutes(t, e.Client, f.ns, "web")
		if got := strings.Join(routeNames(routes), ","); got != "primary" {
			t.Errorf("routes %s after clean-up, want KULTA's header route gone", got)
		}
	})

	t.Run("Services no longer referenced", func(t *testing.T) {
		ns := e.CreateNamespace(t, "moved")
		vs := newVirtualService(ns, "web", []*apinetworkingv1.HTTPRoute{httpRoute("primary", to("web-a", 100), to("web-b", 0))})
		if err := e.Client.Create(ctx, vs); err != nil {
			t.Fatal(err)
		}
		ro := testutil.Rollout(ns, "web", testutil.WithABTesting(), withIstio("web", []string{"primary"}))
		r := &istio.Router{Client: e.Client}
		hr, _ := providers.ManagedHeaderRoute(ro)
		if err := r.SetHeaderRoute(ctx, ro, hr); err != nil {
			t.Fatal(err)
		}
		// The user points the route at other Services; KULTA's header route is still there.
		u := stored(t, e.Client, istio.KindVirtualService, ns, "web")
		routes, _, _ := unstructured.NestedSlice(u.Object, "spec", "http")
		for _, d := range routes[1].(map[string]any)["route"].([]any) {
			dest := d.(map[string]any)["destination"].(map[string]any)
			dest["host"] = "elsewhere-" + dest["host"].(string)
		}
		if err := unstructured.SetNestedSlice(u.Object, routes, "spec", "http"); err != nil {
			t.Fatal(err)
		}
		if err := e.Client.Update(ctx, u); err != nil {
			t.Fatal(err)
		}
		if err := r.Cleanup(ctx, ro); err != nil {
			t.Errorf("Cleanup of a route that no longer routes to the Services: %v", err)
		}
		if got := strings.Join(routeNames(httpRoutes(t, e.Client, ns, "web")), ","); got != "primary" {
			t.Errorf("routes %s after clean-up, want KULTA's header route gone", got)
		}
	})
}

// TestSeveralVirtualServices routes one Rollout through two VirtualServices, one of them by a
// TCP route: both carry every step, and Verify reports nil weights when one drifted.
func TestSeveralVirtualServices(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := testContext(t)
	ns := e.CreateNamespace(t, "several")
	web := newVirtualService(ns, "web", []*apinetworkingv1.HTTPRoute{httpRoute("primary", to("app-stable", 100), to("app-canary", 0))})
	tcp := newVirtualService(ns, "app-tcp", nil, func(vs *istionetworkingv1.VirtualService) {
		vs.Spec.Tcp = []*apinetworkingv1.TCPRoute{{
			Match: []*apinetworkingv1.L4MatchAttributes{{Port: 5432}},
			Route: []*apinetworkingv1.RouteDestination{
				{Destination: &apinetworkingv1.Destination{Host: "app-stable"}, Weight: 100},
				{Destination: &apinetworkingv1.Destination{Host: "app-canary"}},
			},
		}}
	})
	for _, obj := range []client.Object{web, tcp} {
		if err := e.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	ro := testutil.Rollout(ns, "app", withIstio("web", nil, func(i *kultav1alpha1.IstioRouting) {
		i.VirtualServices = []kultav1alpha1.IstioVirtualService{*i.VirtualService, {Name: "app-tcp", TCPRoutes: []kultav1alpha1.IstioTCPRoute{{Port: 5432}}}}
		i.VirtualService = nil
	}))
	r := &istio.Router{Client: e.Client}
	w := providers.Weights{Stable: 40, Canary: 60}
	if err := r.SetWeights(ctx, ro, w); err != nil {
		t.Fatal(err)
	}
	verifyWeights(t, r, ro, w)
	u := stored(t, e.Client, istio.KindVirtualService, ns, "app-tcp")
	if got, _, _ := unstructured.NestedSlice(u.Object, "spec", "tcp"); weight(got[0].(map[string]any)["route"].([]any)[1]) != 60 {
		t.Errorf("TCP route %v, want the canary at 60", got)
	}
	if err := r.SetWeights(ctx, &kultav1alpha1.Rollout{ObjectMeta: ro.ObjectMeta, Spec: func() kultav1alpha1.RolloutSpec {
		spec := *ro.Spec.DeepCopy()
		spec.Strategy.Canary.TrafficRouting.Istio.VirtualServices = spec.Strategy.Canary.TrafficRouting.Istio.VirtualServices[:1]
		return spec
	}()}, providers.Weights{Stable: 100}); err != nil {
		t.Fatal(err)
	}
	if v, err := r.Verify(ctx, ro); err != nil || v.Weights != nil {
		t.Errorf("VirtualServices that disagree: Verify weights %v, %v; want nil", v.Weights, err)
	}
}

// withZeroWeights is a copy of HTTP routes with each destination without a weight given weight
// 0, which is what Istio reads it as.
func withZeroWeights(routes []any) []any {
	out := make([]any, 0, len(routes))
	for _, item := range routes {
		route := runtime.DeepCopyJSONValue(item).(map[string]any)
		dests, _ := route["route"].([]any)
		for _, d := range dests {
			if dest := d.(map[string]any); dest["weight"] == nil {
				dest["weight"] = int64(0)
			}
		}
		out = append(out, route)
	}
	return out
}

// TestMirrorRoutesOnTheAPIServer puts a canary's mirror routes and a header route on a
// VirtualService that names no route, through the API server with Istio's CRD: each is written
// once, the weights move the mirror routes' split with the managed route's, the managed route is
// still found beside them, and the clean-up leaves the VirtualService as created.
func TestMirrorRoutesOnTheAPIServer(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := testContext(t)
	ns := e.CreateNamespace(t, "mirror")
	vs := newVirtualService(ns, "web", []*apinetworkingv1.HTTPRoute{httpRoute("", to("web-stable", 100), to("web-canary", 0))})
	if err := e.Client.Create(ctx, vs); err != nil {
		t.Fatal(err)
	}
	created := httpRoutes(t, e.Client, ns, "web")
	ro := testutil.Rollout(ns, "web", testutil.WithCanarySteps(
		testutil.MirrorRouteStep("shadow", 20),
		testutil.MirrorRouteStep("api", 0, testutil.HeaderExact("X-Api", "v2")),
		testutil.HeaderRouteStep("testers", testutil.HeaderExact("X-Canary", "yes"))), withIstio("web", nil))
	c := &countingClient{Client: e.Client}
	r := &istio.Router{Client: c}
	for range 2 {
		for _, step := range ro.Spec.Strategy.Canary.Steps {
			hr, ok := providers.StepRoute(ro, step)
			if !ok {
				t.Fatalf("step %+v sets no route", step)
			}
			if err := r.SetHeaderRoute(ctx, ro, hr); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := c.writes(); n != 3 {
		t.Errorf("setting three routes twice wrote %d times, want 3", n)
	}
	w := providers.Weights{Stable: 70, Canary: 30}
	if err := r.SetWeights(ctx, ro, w); err != nil {
		t.Fatal(err)
	}
	verifyWeights(t, r, ro, w)
	routes := httpRoutes(t, e.Client, ns, "web")
	if got := strings.Join(routeNames(routes), ","); got != "kulta-web.testers,kulta-web.api,kulta-web.shadow," {
		t.Fatalf("routes %s, want the header route, the mirror with a condition, the mirror of all, the managed route", got)
	}
	for _, i := range []int{1, 2} {
		route := routes[i].(map[string]any)
		if got := destinationWeights(route); got != "web-stable=70 web-canary=30" {
			t.Errorf("mirror route %v splits %s, want 70/30", route["name"], got)
		}
		mirrors, _ := route["mirrors"].([]any)
		if len(mirrors) != 1 {
			t.Fatalf("mirror route %v mirrors %v, want one mirror", route["name"], mirrors)
		}
		host, _, _ := unstructured.NestedString(mirrors[0].(map[string]any), "destination", "host")
		percent, _, _ := unstructured.NestedFieldNoCopy(mirrors[0].(map[string]any), "percentage", "value")
		if want := map[int]int64{1: 100, 2: 20}[i]; host != "web-canary" || percent != want {
			t.Errorf("mirror route %v copies %v%% to %s, want %d%% to web-canary", route["name"], percent, host, want)
		}
	}
	ro.Status.HeaderRoutes = []string{"api", "shadow", "testers"}
	if err := r.Cleanup(ctx, ro); err != nil {
		t.Fatal(err)
	}
	if got := httpRoutes(t, e.Client, ns, "web"); !equality.Semantic.DeepEqual(withZeroWeights(got), withZeroWeights(created)) {
		t.Errorf("after the clean-up the routes are\n%v\nwant them as created\n%v", got, created)
	}
}

// destinationWeights lists an HTTP route's destinations as host=weight, in order.
func destinationWeights(route map[string]any) string {
	var parts []string
	for _, item := range route["route"].([]any) {
		host, _, _ := unstructured.NestedString(item.(map[string]any), "destination", "host")
		weight, _, _ := unstructured.NestedFieldNoCopy(item.(map[string]any), "weight")
		parts = append(parts, fmt.Sprintf("%s=%v", host, weight))
	}
	return strings.Join(parts, " ")
}
