package nginx_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/conformance"
	"github.com/false-systems/kulta/providers/nginx"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env))
}

// TestConformance runs the suite on the NGINX provider. Cross-namespace routing is unsupported:
// trafficRouting.nginx names Ingresses in the Rollout's namespace, where the canary Ingress must
// live beside its stable Ingress. Cookie matches are supported for the value "always" only, the
// one ingress-nginx's canary-by-cookie routes to the canary (TestHeaderRouteLifecycle checks
// that any other is refused).
func TestConformance(t *testing.T) {
	e := testenv.Require(t, env)
	conformance.Run(t, conformance.Harness{
		Name:      "nginx",
		Client:    e.Client,
		NewRouter: func(c client.Client) providers.TrafficRouter { return &nginx.Router{Client: c} },
		NewFixture: func(t testing.TB, _ bool) conformance.Fixture {
			return newIngressFixture(t)
		},
		// ingress-nginx publishes no acceptance of a canary Ingress.
		AcceptedWithoutController: true,
		CookieValue:               "always",
		Unsupported:               []conformance.Feature{conformance.FeatureCrossNamespaceRoute, conformance.FeatureAllConditions, conformance.FeatureMirror},
	})
}

// ingressFixture is the NGINX provider's conformance fixture: the user's Ingress app-ingress,
// routing / to app-stable and /legacy to another Service, annotated owner=team-a, and the
// stored Rollout (the canary Ingress is owned by it, so it needs a UID).
type ingressFixture struct {
	f *fixture
}

func newIngressFixture(t testing.TB) ingressFixture {
	stable := newIngress("", "app-ingress",
		withPath("app.example.com", "/", "app-stable", 80),
		withPath("app.example.com", "/legacy", "unrelated", 80))
	stable.Annotations = map[string]string{"owner": "team-a"}
	return ingressFixture{f: newFixture(t, testutil.Rollout("", "app", withNGINX("app-ingress")), stable)}
}

func (n ingressFixture) Rollout() *kultav1alpha1.Rollout { return n.f.ro }

func (n ingressFixture) canary(t testing.TB) *networkingv1.Ingress {
	return n.f.canary(t, "app-ingress")
}

// Weights reads the canary Ingress's annotations as ingress-nginx does; no canary Ingress is
// all on stable.
func (n ingressFixture) Weights(t testing.TB) providers.Weights {
	t.Helper()
	canary := n.canary(t)
	w := nginx.WeightsOf(canary, nginx.DefaultAnnotationPrefix)
	if w == nil {
		t.Fatalf("canary Ingress %v carries no weight ingress-nginx can read", canary.Annotations)
	}
	return *w
}

func (n ingressFixture) HasHeaderRoute(t testing.TB, hr providers.HeaderRoute) bool {
	t.Helper()
	canary := n.canary(t)
	if canary == nil {
		return false
	}
	a := func(k string) string { return canary.Annotations[nginx.DefaultAnnotationPrefix+"/"+k] }
	if h := hr.Header; h != nil && (a("canary-by-header") != h.Name || a("canary-by-header-value") != h.Value) {
		return false
	}
	if c := hr.Cookie; c != nil && a("canary-by-cookie") != c.Name {
		return false
	}
	return true
}

// Snapshot prints the canary Ingress's annotations and spec, or that there is none: the user's
// Ingress is never written (Intact checks it).
func (n ingressFixture) Snapshot(t testing.TB) string {
	t.Helper()
	canary := n.canary(t)
	if canary == nil {
		return "no canary Ingress"
	}
	out, err := json.Marshal(map[string]any{"annotations": canary.Annotations, "spec": canary.Spec})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func (n ingressFixture) Intact(t testing.TB) {
	t.Helper()
	n.f.stablesUntouched(t)
	if got := n.f.get(t, "app-ingress"); got.Annotations["owner"] != "team-a" {
		t.Errorf("annotation lost: %v", got.Annotations)
	}
}

// Drift sets the canary Ingress's weight back to 0.
func (n ingressFixture) Drift(t testing.TB) {
	t.Helper()
	canary := n.canary(t)
	canary.Annotations[nginx.DefaultAnnotationPrefix+"/canary-weight"] = "0"
	if err := n.f.e.Client.Update(context.Background(), canary); err != nil {
		t.Fatalf("drifting the canary Ingress: %v", err)
	}
}

func (n ingressFixture) Unusable() []conformance.Unusable {
	other := n.f.ro.DeepCopy()
	other.Spec.Strategy.Canary.StableService, other.Spec.Strategy.Canary.CanaryService = "x-stable", "x-canary"
	missing := n.f.ro.DeepCopy()
	missing.Spec.Strategy.Canary.TrafficRouting.NGINX.StableIngress = "nope"
	return []conformance.Unusable{
		{Case: "services not referenced", Rollout: other, Object: "app-ingress"},
		{Case: "Ingress missing", Rollout: missing, Object: "nope"},
	}
}
