package gatewayapi_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/gatewayapi"
)

// TestGatewayAPIReleases installs, on a real API server each, the standard CRDs of the oldest
// Gateway API release KULTA supports, of the first one with GRPCRoute at v1, and of the one this
// repository builds with. Detect must find what each serves, and the Router's weights, header
// route and clean-up must make the round trip on every route kind served, writing nothing when
// nothing changes, with the API server's own defaulting and pruning.
func TestGatewayAPIReleases(t *testing.T) {
	e := testenv.Require(t, env)
	cases := []struct {
		// version is the release; empty for this repository's gateway-api module, which the
		// package's API server already runs.
		version string
		want    gatewayapi.Capabilities
	}{
		{gatewayapi.MinimumVersion, gatewayapi.Capabilities{HTTPRoute: true}},
		{"v1.1.0", gatewayapi.Capabilities{HTTPRoute: true, GRPCRoute: true}},
		{"", gatewayapi.Capabilities{HTTPRoute: true, GRPCRoute: true, RuleNames: true, MirrorPercent: true}},
	}
	for _, tc := range cases {
		name := tc.version
		if name == "" {
			name = "module"
		}
		t.Run(name, func(t *testing.T) {
			target := e
			if tc.version != "" {
				dir, err := testenv.GatewayAPICRDDirAt(e.RepoRoot, tc.version)
				if err != nil {
					t.Fatal(err)
				}
				if target, err = testenv.StartWithGatewayAPI(dir); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() {
					if err := target.Stop(); err != nil {
						t.Error(err)
					}
				})
			}
			ctx := testContext(t)
			caps, err := gatewayapi.Detect(ctx, target.Client.RESTMapper(), target.Client)
			if err != nil {
				t.Fatal(err)
			}
			if caps != tc.want {
				t.Fatalf("Detect = %+v, want %+v", caps, tc.want)
			}
			for _, kind := range caps.Kinds() {
				t.Run(kind, func(t *testing.T) { roundTrip(t, target, caps, kultav1alpha1.RouteKind(kind)) })
				t.Run(kind+"/mirror", func(t *testing.T) { mirrorRoundTrip(t, target, caps, kultav1alpha1.RouteKind(kind)) })
			}
		})
	}
}

// roundTrip moves an A/B Rollout's traffic on a route of kind with a Router that knows caps:
// weights, header route, clean-up, each once and then again without a write.
func roundTrip(t *testing.T, e *testenv.Env, caps gatewayapi.Capabilities, kind kultav1alpha1.RouteKind) {
	ctx := testContext(t)
	ns := e.CreateNamespace(t, "release")
	other := "/other"
	if kind == kultav1alpha1.KindGRPCRoute {
		other = "other.Service"
	}
	route := newTestRoute(kind, ns, "web", caps.RuleNames,
		testRule{"main", "", []testBackend{{"web-a", 100}, {"web-b", 0}}},
		testRule{"other", other, []testBackend{{"unrelated", 1}}})
	if err := e.Client.Create(ctx, route); err != nil {
		t.Fatal(err)
	}
	created := storedRules(t, e.Client, route)
	ro := abRollout(ns, "web", kind, "web")
	c := &countingClient{Client: e.Client}
	r := &gatewayapi.Router{Client: c, Capabilities: &caps}

	w := providers.Weights{Stable: 80, Canary: 20}
	for range 2 {
		if err := r.SetWeights(ctx, ro, w); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.writes(); n != 1 {
		t.Errorf("setting the same weights twice wrote %d times, want once", n)
	}
	verifyWeights(t, r, ro, w)

	weighted := storedRules(t, e.Client, route)
	headerRouteRoundTrip(t, ctx, r, c, route, ro, weighted, caps.RuleNames)

	if err := r.SetHeaderRoute(ctx, ro, headerRouteOf(t, ro)); err != nil {
		t.Fatal(err)
	}
	verifyWeights(t, r, ro, w)
	c.writes()
	for range 2 {
		if err := r.Cleanup(ctx, ro); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.writes(); n != 1 {
		t.Errorf("cleaning up twice wrote %d times, want once", n)
	}
	if got := storedRules(t, e.Client, route); !equality.Semantic.DeepEqual(got, created) {
		t.Errorf("after clean-up the rules are\n%v\nwant them as created\n%v", got, created)
	}
}

// mirrorRoundTrip puts a canary's mirror routes on a route of kind, with a Router that knows
// caps, through the API server's own validation, defaulting and pruning: a mirror of 20% of the
// requests with a header (refused where the CRD has no requestMirror.percent), one of every
// request, weights that move the mirror rules' split with their managed rule's, a header route
// placed before the mirror rules, and a clean-up that leaves the route as created.
func mirrorRoundTrip(t *testing.T, e *testenv.Env, caps gatewayapi.Capabilities, kind kultav1alpha1.RouteKind) {
	ctx := testContext(t)
	ns := e.CreateNamespace(t, "mirror")
	route := newTestRoute(kind, ns, "web", caps.RuleNames,
		testRule{"main", "", []testBackend{{"web-stable", 100}, {"web-canary", 0}}})
	if err := e.Client.Create(ctx, route); err != nil {
		t.Fatal(err)
	}
	created := storedRules(t, e.Client, route)
	ro := testutil.Rollout(ns, "web", testutil.WithCanarySteps(
		testutil.MirrorRouteStep("shadow", 20, testutil.HeaderExact("X-Shadow", "1")),
		testutil.MirrorRouteStep("everything", 100),
		testutil.HeaderRouteStep("testers", testutil.HeaderExact("X-Canary", "yes"))),
		testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) {
			c.TrafficRouting = &kultav1alpha1.TrafficRouting{GatewayAPI: &kultav1alpha1.GatewayAPIRouting{
				Routes: []kultav1alpha1.RouteReference{{Kind: kind, Name: "web", Namespace: ns}},
			}}
		}))
	steps := ro.Spec.Strategy.Canary.Steps
	var routes []providers.HeaderRoute
	for i, step := range steps {
		hr, ok := providers.StepRoute(ro, step)
		if !ok {
			t.Fatalf("step %d sets no route", i)
		}
		routes = append(routes, hr)
	}
	shadow, everything, testers := routes[0], routes[1], routes[2]
	c := &countingClient{Client: e.Client}
	r := &gatewayapi.Router{Client: c, Capabilities: &caps}
	if err := r.SetWeights(ctx, ro, providers.Weights{Stable: 90, Canary: 10}); err != nil {
		t.Fatal(err)
	}

	err := r.SetHeaderRoute(ctx, ro, shadow)
	var re *providers.RouteError
	switch {
	case !caps.MirrorPercent:
		if !errors.As(err, &re) || re.Reason != providers.ReasonUnsupportedMatch || !strings.Contains(re.Message, "requestMirror.percent") {
			t.Fatalf("a 20%% mirror without requestMirror.percent in the CRD: error %v, want an UnsupportedMatch RouteError naming the field", err)
		}
	case err != nil:
		t.Fatal(err)
	}
	if err := r.SetHeaderRoute(ctx, ro, everything); err != nil {
		t.Fatal(err)
	}
	c.writes()
	for _, hr := range []providers.HeaderRoute{shadow, everything} {
		if hr.Mirror != nil && *hr.Mirror < 100 && !caps.MirrorPercent {
			continue
		}
		if err := r.SetHeaderRoute(ctx, ro, hr); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.writes(); n != 0 {
		t.Errorf("setting the same mirror routes again wrote %d times", n)
	}
	mirrors := 1
	if caps.MirrorPercent {
		mirrors = 2
	}
	rules := storedRules(t, e.Client, route)
	if len(rules) != len(created)+mirrors {
		t.Fatalf("%d rules with the mirror routes, want %d:\n%v", len(rules), len(created)+mirrors, rules)
	}
	percents := map[any]bool{}
	for _, item := range rules[:mirrors] {
		rule := item.(map[string]any)
		filters, _ := rule["filters"].([]any)
		if len(filters) != 1 {
			t.Fatalf("mirror rule %v has filters %v, want one RequestMirror", rule["name"], filters)
		}
		mirror := filters[0].(map[string]any)["requestMirror"].(map[string]any)
		if ref := mirror["backendRef"].(map[string]any); ref["name"] != "web-canary" || ref["port"] != int64(80) {
			t.Errorf("mirror rule %v copies to %v, want web-canary port 80", rule["name"], ref)
		}
		percents[mirror["percent"]] = true
		if got := backendWeights(rule); got != "web-stable=90 web-canary=10" {
			t.Errorf("mirror rule %v splits %s, want its managed rule's 90/10", rule["name"], got)
		}
	}
	if caps.MirrorPercent && !percents[int64(20)] {
		t.Errorf("no mirror rule copies 20%%: %v", percents)
	}
	if !percents[nil] {
		t.Errorf("no mirror rule copies every request (no percent): %v", percents)
	}

	w := providers.Weights{Stable: 50, Canary: 50}
	if err := r.SetWeights(ctx, ro, w); err != nil {
		t.Fatal(err)
	}
	verifyWeights(t, r, ro, w)
	if err := r.SetHeaderRoute(ctx, ro, testers); err != nil {
		t.Fatal(err)
	}
	rules = storedRules(t, e.Client, route)
	for i, item := range rules[:mirrors+1] {
		rule := item.(map[string]any)
		refs := rule["backendRefs"].([]any)
		switch {
		case i == 0 && len(refs) != 1:
			t.Errorf("rule 0 is %v, want the header route before the mirror rules", rule)
		case i > 0 && backendWeights(rule) != "web-stable=50 web-canary=50":
			t.Errorf("mirror rule %d splits %s after the weights moved, want 50/50", i, backendWeights(rule))
		}
	}
	c.writes()
	if err := r.SetHeaderRoute(ctx, ro, testers); err != nil {
		t.Fatal(err)
	}
	if n := c.writes(); n != 0 {
		t.Errorf("setting the same header route beside mirror routes wrote %d times", n)
	}

	ro.Status.HeaderRoutes = []string{"everything", "shadow", "testers"}
	if err := r.Cleanup(ctx, ro); err != nil {
		t.Fatal(err)
	}
	if got := storedRules(t, e.Client, route); !equality.Semantic.DeepEqual(got, created) {
		t.Errorf("after clean-up the rules are\n%v\nwant them as created\n%v", got, created)
	}
}

// backendWeights lists a rule's backendRefs as name=weight, in order.
func backendWeights(rule map[string]any) string {
	var parts []string
	for _, item := range rule["backendRefs"].([]any) {
		ref := item.(map[string]any)
		parts = append(parts, fmt.Sprintf("%v=%v", ref["name"], ref["weight"]))
	}
	return strings.Join(parts, " ")
}

// TestDetectWithoutPermissionToReadCRDs runs Detect as a user that may not read
// CustomResourceDefinitions: it still finds the served kinds, and counts rule names as pruned.
// Granted what the Helm chart grants, the same user finds the rule names.
func TestDetectWithoutPermissionToReadCRDs(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := testContext(t)
	userName := "detect-" + e.CreateNamespace(t, "detect")
	user, err := e.Environment().AddUser(envtest.User{Name: userName, Groups: []string{"system:authenticated"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(user.Config(), client.Options{Scheme: e.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	caps, err := gatewayapi.Detect(ctx, c.RESTMapper(), c)
	if err != nil {
		t.Fatal(err)
	}
	if want := (gatewayapi.Capabilities{HTTPRoute: true, GRPCRoute: true}); caps != want {
		t.Fatalf("Detect without permission = %+v, want %+v", caps, want)
	}

	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "detect-"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"get"},
			ResourceNames: []string{"httproutes.gateway.networking.k8s.io", "grpcroutes.gateway.networking.k8s.io"},
		}},
	}
	if err := e.Client.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "detect-"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: userName}},
	}
	if err := e.Client.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, obj := range []client.Object{binding, role} {
			if err := e.Client.Delete(context.Background(), obj); err != nil {
				t.Errorf("deleting %s: %v", obj.GetName(), err)
			}
		}
	})
	// The API server's RBAC authorizer learns of the binding through its informers.
	want := gatewayapi.Capabilities{HTTPRoute: true, GRPCRoute: true, RuleNames: true, MirrorPercent: true}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if caps, err = gatewayapi.Detect(ctx, c.RESTMapper(), c); err != nil {
			t.Fatal(err)
		}
		if caps == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Detect with the chart's permission = %+v, want %+v", caps, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
