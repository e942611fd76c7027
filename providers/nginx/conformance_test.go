package nginx_test

import (
	"context"
	"errors"
	"fmt"
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

// providers/conformance is built around Gateway API routes: its fixture creates an HTTPRoute or
// GRPCRoute, configures trafficRouting.gatewayAPI, and reads weights and header rules from the
// route's rules. What follows is its suite ported, spec by spec, onto the provider-neutral
// hooks of conformanceHarness and target, which are what conformance.Harness needs to become
// (see TestConformance); nginxTarget implements them for this provider.

// conformanceHarness is conformance.Harness without the route kind.
type conformanceHarness struct {
	// Name names the provider in skip messages.
	Name string
	// Client is a direct client to the API server.
	Client client.Client
	// NewRouter returns the provider, writing through c.
	NewRouter func(c client.Client) providers.TrafficRouter
	// NewTarget creates, in a fresh namespace, the user's objects a Rollout named app routes
	// through (Services app-stable and app-canary on port 80), with parts the provider must leave
	// alone, and the Rollout itself, stored so that it has a UID.
	NewTarget func(t *testing.T) target
	// AcceptedOnWrite: the provider's Verify reports what it wrote accepted without any
	// controller's word (ingress-nginx publishes none); otherwise the suite, which runs no
	// controller, expects Verify to report it not accepted.
	AcceptedOnWrite bool
	// CookieValue is a cookie value the provider can match ("B" unless it says otherwise).
	CookieValue string
	// Unsupported lists the features the provider declares it lacks.
	Unsupported []conformance.Feature
}

// target is one provider's view of a fixture.
type target interface {
	// Rollout is the stored Rollout routed through the user's objects.
	Rollout() *kultav1alpha1.Rollout
	// Weights reads the split straight from the objects, not through the router.
	Weights(t *testing.T) providers.Weights
	// HasHeaderRoute reports whether the objects carry hr.
	HasHeaderRoute(t *testing.T, hr providers.HeaderRoute) bool
	// Version fingerprints every object the provider may write: unchanged means no write.
	Version(t *testing.T) string
	// UserIntact checks the user's objects are as created, but for what the provider may change.
	UserIntact(t *testing.T)
	// Revert changes the provider's objects behind its back, as a person or a GitOps sync
	// would, so that they send everything to stable.
	Revert(t *testing.T)
	// Unusable are variants of the Rollout the provider must refuse with a RouteError.
	Unusable() map[string]*kultav1alpha1.Rollout
}

func (h conformanceHarness) supports(f conformance.Feature) bool {
	for _, u := range h.Unsupported {
		if u == f {
			return false
		}
	}
	return true
}

// run is conformance.Run over the neutral hooks.
func (h conformanceHarness) run(t *testing.T) {
	t.Run("Weights", func(t *testing.T) { conformWeights(t, h) })
	t.Run("Idempotent", func(t *testing.T) { conformIdempotent(t, h) })
	t.Run("HeaderRoute", func(t *testing.T) { conformHeaderRoute(t, h, false) })
	t.Run("CookieRoute", func(t *testing.T) {
		if !h.supports(conformance.FeatureCookieMatch) {
			t.Skipf("%s declares %s unsupported", h.Name, conformance.FeatureCookieMatch)
		}
		conformHeaderRoute(t, h, true)
	})
	t.Run("ConflictRetry", func(t *testing.T) { conformConflictRetry(t, h) })
	t.Run("Drift", func(t *testing.T) { conformDrift(t, h) })
	t.Run("Cleanup", func(t *testing.T) { conformCleanup(t, h) })
	t.Run("NotUsable", func(t *testing.T) { conformNotUsable(t, h) })
	t.Run("CrossNamespace", func(t *testing.T) {
		if !h.supports(conformance.FeatureCrossNamespaceRoute) {
			t.Skipf("%s declares %s unsupported", h.Name, conformance.FeatureCrossNamespaceRoute)
		}
		t.Fatal("no cross-namespace spec in the neutral suite yet")
	})
}

// TestConformance runs the suite on the NGINX provider. Cross-namespace routing is unsupported:
// trafficRouting.nginx names Ingresses in the Rollout's namespace, where the canary Ingress must
// live beside its stable Ingress. Cookie matches are supported for the value "always" only, the
// one ingress-nginx's canary-by-cookie routes to the canary (TestHeaderRouteLifecycle checks
// that any other is refused).
func TestConformance(t *testing.T) {
	e := testenv.Require(t, env)
	conformanceHarness{
		Name:            "nginx",
		Client:          e.Client,
		NewRouter:       func(c client.Client) providers.TrafficRouter { return &nginx.Router{Client: c} },
		NewTarget:       newNGINXTarget,
		AcceptedOnWrite: true,
		CookieValue:     "always",
		Unsupported:     []conformance.Feature{conformance.FeatureCrossNamespaceRoute},
	}.run(t)
}

func conformWeights(t *testing.T, h conformanceHarness) {
	tg := h.NewTarget(t)
	ctx := context.Background()
	for _, w := range []providers.Weights{{Stable: 80, Canary: 20}, {Stable: 50, Canary: 50}, {Stable: 0, Canary: 100}, {Stable: 100}} {
		if err := h.NewRouter(h.Client).SetWeights(ctx, tg.Rollout(), w); err != nil {
			t.Fatalf("SetWeights(%v): %v", w, err)
		}
		if got := tg.Weights(t); got != w {
			t.Errorf("objects carry %v, want %v", got, w)
		}
		v, err := h.NewRouter(h.Client).Verify(ctx, tg.Rollout())
		if err != nil {
			t.Fatal(err)
		}
		if v.Weights == nil || *v.Weights != w {
			t.Errorf("Verify weights %v, want %v", v.Weights, w)
		}
		if v.Accepted != h.AcceptedOnWrite {
			t.Errorf("Verify accepted %v (%s), want %v with no controller running", v.Accepted, v.Message, h.AcceptedOnWrite)
		}
		tg.UserIntact(t)
	}
}

func conformIdempotent(t *testing.T, h conformanceHarness) {
	tg := h.NewTarget(t)
	ctx := context.Background()
	for _, w := range []providers.Weights{{Stable: 70, Canary: 30}, {Stable: 100}} {
		if err := h.NewRouter(h.Client).SetWeights(ctx, tg.Rollout(), w); err != nil {
			t.Fatal(err)
		}
		version := tg.Version(t)
		for range 3 {
			if err := h.NewRouter(h.Client).SetWeights(ctx, tg.Rollout(), w); err != nil {
				t.Fatal(err)
			}
		}
		if got := tg.Version(t); got != version {
			t.Errorf("setting %v again wrote (%s -> %s)", w, version, got)
		}
	}
}

func conformHeaderRoute(t *testing.T, h conformanceHarness, cookie bool) {
	tg := h.NewTarget(t)
	ctx := context.Background()
	hr := providers.HeaderRoute{Name: providers.HeaderRouteName(tg.Rollout()),
		Header: &kultav1alpha1.HeaderMatch{Name: "X-Variant", Value: "B", Type: kultav1alpha1.MatchExact}}
	if cookie {
		value := h.CookieValue
		if value == "" {
			value = "B"
		}
		hr.Header, hr.Cookie = nil, &kultav1alpha1.CookieMatch{Name: "ab", Value: value}
	}
	if err := h.NewRouter(h.Client).SetHeaderRoute(ctx, tg.Rollout(), hr); err != nil {
		t.Fatalf("SetHeaderRoute: %v", err)
	}
	if !tg.HasHeaderRoute(t, hr) {
		t.Fatal("the header route is not in place")
	}
	version := tg.Version(t)
	if err := h.NewRouter(h.Client).SetHeaderRoute(ctx, tg.Rollout(), hr); err != nil {
		t.Fatal(err)
	}
	if tg.Version(t) != version {
		t.Error("setting the same header route again wrote")
	}
	tg.UserIntact(t)
	if err := h.NewRouter(h.Client).RemoveHeaderRoute(ctx, tg.Rollout(), hr.Name); err != nil {
		t.Fatal(err)
	}
	if tg.HasHeaderRoute(t, hr) {
		t.Error("the header route survived its removal")
	}
	if got := tg.Weights(t); got != (providers.Weights{Stable: 100}) {
		t.Errorf("after removing the header route the objects carry %v", got)
	}
	tg.UserIntact(t)
}

// conflictingClient changes the object behind the provider's back just before the provider's
// first update or delete of it, so that the write fails with a conflict.
type conflictingClient struct {
	client.Client
	edited client.Object
}

func (c *conflictingClient) editFirst(ctx context.Context, obj client.Object) error {
	if c.edited != nil {
		return nil
	}
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
	c.edited = other
	return nil
}

func (c *conflictingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if err := c.editFirst(ctx, obj); err != nil {
		return err
	}
	if err := c.Client.Update(ctx, obj, opts...); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	return nil
}

func (c *conflictingClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	if err := c.editFirst(ctx, obj); err != nil {
		return err
	}
	if err := c.Client.Delete(ctx, obj, opts...); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}

// conformConflictRetry makes the provider's first update, then its first delete if it deletes,
// conflict with a concurrent change: it must retry from a fresh read and keep that change.
func conformConflictRetry(t *testing.T, h conformanceHarness) {
	tg := h.NewTarget(t)
	ctx := context.Background()
	// Objects the provider creates on its first write exist before the conflicting write.
	if err := h.NewRouter(h.Client).SetWeights(ctx, tg.Rollout(), providers.Weights{Stable: 80, Canary: 20}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []providers.Weights{{Stable: 60, Canary: 40}, {Stable: 100}} {
		cc := &conflictingClient{Client: h.Client}
		if err := h.NewRouter(cc).SetWeights(ctx, tg.Rollout(), w); err != nil {
			t.Fatalf("SetWeights(%v) after a conflict: %v", w, err)
		}
		if cc.edited == nil {
			t.Fatalf("SetWeights(%v): the provider never updated or deleted", w)
		}
		got := cc.edited.DeepCopyObject().(client.Object)
		err := h.Client.Get(ctx, client.ObjectKeyFromObject(got), got)
		switch {
		case err == nil && got.GetLabels()["edited-by"] != "someone-else":
			t.Errorf("SetWeights(%v): the concurrent change was overwritten", w)
		case err != nil && client.IgnoreNotFound(err) != nil:
			t.Fatal(err)
		}
		if got := tg.Weights(t); got != w {
			t.Errorf("weights %v after retry, want %v", got, w)
		}
	}
}

func conformDrift(t *testing.T, h conformanceHarness) {
	tg := h.NewTarget(t)
	ctx := context.Background()
	w := providers.Weights{Stable: 75, Canary: 25}
	if err := h.NewRouter(h.Client).SetWeights(ctx, tg.Rollout(), w); err != nil {
		t.Fatal(err)
	}
	tg.Revert(t)
	v, err := h.NewRouter(h.Client).Verify(ctx, tg.Rollout())
	if err != nil {
		t.Fatal(err)
	}
	if v.Weights == nil || *v.Weights != (providers.Weights{Stable: 100}) {
		t.Fatalf("Verify must report the drifted weights, got %v", v.Weights)
	}
	if err := h.NewRouter(h.Client).SetWeights(ctx, tg.Rollout(), w); err != nil {
		t.Fatal(err)
	}
	if got := tg.Weights(t); got != w {
		t.Errorf("drift not corrected: %v", got)
	}
}

func conformCleanup(t *testing.T, h conformanceHarness) {
	tg := h.NewTarget(t)
	ctx := context.Background()
	if err := h.NewRouter(h.Client).SetWeights(ctx, tg.Rollout(), providers.Weights{Stable: 10, Canary: 90}); err != nil {
		t.Fatal(err)
	}
	hr := providers.HeaderRoute{Name: providers.HeaderRouteName(tg.Rollout()), Header: &kultav1alpha1.HeaderMatch{Name: "X-Variant", Value: "B"}}
	if err := h.NewRouter(h.Client).SetHeaderRoute(ctx, tg.Rollout(), hr); err != nil {
		t.Fatal(err)
	}
	if err := h.NewRouter(h.Client).Cleanup(ctx, tg.Rollout()); err != nil {
		t.Fatal(err)
	}
	if got := tg.Weights(t); got != (providers.Weights{Stable: 100}) {
		t.Errorf("after clean-up the objects carry %v, want all on stable", got)
	}
	if tg.HasHeaderRoute(t, hr) {
		t.Error("the header route survived clean-up")
	}
	tg.UserIntact(t)
}

func conformNotUsable(t *testing.T, h conformanceHarness) {
	tg := h.NewTarget(t)
	ctx := context.Background()
	version := tg.Version(t)
	for name, ro := range tg.Unusable() {
		err := h.NewRouter(h.Client).SetWeights(ctx, ro, providers.Weights{Stable: 50, Canary: 50})
		var routeErr *providers.RouteError
		if !errors.As(err, &routeErr) || !errors.Is(err, providers.ErrRouteNotUsable) {
			t.Errorf("%s: want a RouteError, got %v", name, err)
			continue
		}
		if _, err := h.NewRouter(h.Client).Verify(ctx, ro); !errors.Is(err, providers.ErrRouteNotUsable) {
			t.Errorf("%s: Verify must fail the same way, got %v", name, err)
		}
	}
	if tg.Version(t) != version {
		t.Error("an unusable Rollout's objects were written")
	}
}

// nginxTarget is the NGINX provider's fixture: the user's Ingress app-ingress, routing / to
// app-stable and /legacy to another Service, annotated by its owner.
type nginxTarget struct {
	f *fixture
}

func newNGINXTarget(t *testing.T) target {
	stable := newIngress("", "app-ingress",
		withPath("app.example.com", "/", "app-stable", 80),
		withPath("app.example.com", "/legacy", "unrelated", 80))
	stable.Annotations = map[string]string{"owner": "team-a"}
	return nginxTarget{f: newFixture(t, testutil.Rollout("", "app", withNGINX("app-ingress")), stable)}
}

func (n nginxTarget) Rollout() *kultav1alpha1.Rollout { return n.f.ro }

func (n nginxTarget) canary(t *testing.T) *networkingv1.Ingress { return n.f.canary(t, "app-ingress") }

func (n nginxTarget) Weights(t *testing.T) providers.Weights {
	t.Helper()
	canary := n.canary(t)
	w := nginx.WeightsOf(canary, nginx.DefaultAnnotationPrefix)
	if w == nil {
		t.Fatalf("canary Ingress %v carries no weight ingress-nginx can read", canary.Annotations)
	}
	return *w
}

func (n nginxTarget) HasHeaderRoute(t *testing.T, hr providers.HeaderRoute) bool {
	t.Helper()
	canary := n.canary(t)
	if canary == nil {
		return false
	}
	a := func(k string) string { return canary.Annotations["nginx.ingress.kubernetes.io/"+k] }
	if h := hr.Header; h != nil && (a("canary-by-header") != h.Name || a("canary-by-header-value") != h.Value) {
		return false
	}
	if c := hr.Cookie; c != nil && a("canary-by-cookie") != c.Name {
		return false
	}
	return true
}

func (n nginxTarget) Version(t *testing.T) string {
	t.Helper()
	return "stable " + versionOf(n.f.get(t, "app-ingress")) + ", canary " + versionOf(n.canary(t))
}

func (n nginxTarget) UserIntact(t *testing.T) {
	t.Helper()
	n.f.stablesUntouched(t)
	if got := n.f.get(t, "app-ingress"); got.Annotations["owner"] != "team-a" {
		t.Errorf("annotation lost: %v", got.Annotations)
	}
}

func (n nginxTarget) Revert(t *testing.T) {
	t.Helper()
	canary := n.canary(t)
	canary.Annotations["nginx.ingress.kubernetes.io/canary-weight"] = "0"
	if err := n.f.e.Client.Update(context.Background(), canary); err != nil {
		t.Fatal(err)
	}
}

func (n nginxTarget) Unusable() map[string]*kultav1alpha1.Rollout {
	other := n.f.ro.DeepCopy()
	other.Spec.Strategy.Canary.StableService, other.Spec.Strategy.Canary.CanaryService = "x-stable", "x-canary"
	missing := n.f.ro.DeepCopy()
	missing.Spec.Strategy.Canary.TrafficRouting.NGINX.StableIngress = "nope"
	return map[string]*kultav1alpha1.Rollout{"services not referenced": other, "Ingress missing": missing}
}
