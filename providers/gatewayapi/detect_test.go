package gatewayapi_test

import (
	"context"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testenv"
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
		{"", gatewayapi.Capabilities{HTTPRoute: true, GRPCRoute: true, RuleNames: true}},
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
	want := gatewayapi.Capabilities{HTTPRoute: true, GRPCRoute: true, RuleNames: true}
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
