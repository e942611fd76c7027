package nginx_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr/testr"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/nginx"
)

// countingClient counts the writes that reach the client it wraps.
type countingClient struct {
	client.Client
	count atomic.Int32
}

func (c *countingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	c.count.Add(1)
	return c.Client.Create(ctx, obj, opts...)
}

func (c *countingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	c.count.Add(1)
	return c.Client.Patch(ctx, obj, patch, opts...)
}

func (c *countingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	c.count.Add(1)
	return c.Client.Update(ctx, obj, opts...)
}

func (c *countingClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	c.count.Add(1)
	return c.Client.Delete(ctx, obj, opts...)
}

// writes returns how many writes were made since the last call.
func (c *countingClient) writes() int32 { return c.count.Swap(0) }

// IngressOption changes a test Ingress under construction.
type IngressOption func(*networkingv1.Ingress)

// newIngress is an Ingress of class nginx in ns, changed by opts.
func newIngress(ns, name string, opts ...IngressOption) *networkingv1.Ingress {
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       networkingv1.IngressSpec{IngressClassName: ptr.To("nginx")},
	}
	for _, opt := range opts {
		opt(ing)
	}
	return ing
}

// withPath adds a Prefix path on host to service at port, to the rule for host (added if new).
func withPath(host, path, service string, port int32) IngressOption {
	return func(ing *networkingv1.Ingress) {
		p := networkingv1.HTTPIngressPath{Path: path, PathType: ptr.To(networkingv1.PathTypePrefix), Backend: networkingv1.IngressBackend{
			Service: &networkingv1.IngressServiceBackend{Name: service, Port: networkingv1.ServiceBackendPort{Number: port}},
		}}
		for i := range ing.Spec.Rules {
			if ing.Spec.Rules[i].Host == host {
				ing.Spec.Rules[i].HTTP.Paths = append(ing.Spec.Rules[i].HTTP.Paths, p)
				return
			}
		}
		ing.Spec.Rules = append(ing.Spec.Rules, networkingv1.IngressRule{Host: host,
			IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{p}}}})
	}
}

// withNoise gives the Ingress what a real one carries and a canary Ingress must not copy:
// ingress-nginx and cert-manager annotations, a label and TLS.
func withNoise() IngressOption {
	return func(ing *networkingv1.Ingress) {
		ing.Labels = map[string]string{"team": "storefront"}
		ing.Annotations = map[string]string{
			"nginx.ingress.kubernetes.io/ssl-redirect":    "true",
			"nginx.ingress.kubernetes.io/proxy-body-size": "8m",
			"cert-manager.io/cluster-issuer":              "letsencrypt",
		}
		ing.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"shop.example.com"}, SecretName: "shop-tls"}}
	}
}

// fixture is a Rollout stored in a fresh namespace with the stable Ingresses it names.
type fixture struct {
	e       *testenv.Env
	ro      *kultav1alpha1.Rollout
	stables []*networkingv1.Ingress
}

// newFixture creates the Ingresses and then ro in a fresh namespace, filling in their
// namespace, and records the Ingresses as stored.
func newFixture(t testing.TB, ro *kultav1alpha1.Rollout, ingresses ...*networkingv1.Ingress) *fixture {
	t.Helper()
	e := testenv.Require(t, env)
	ns := e.CreateNamespace(t, "nginx")
	f := &fixture{e: e}
	for _, ing := range ingresses {
		ing.Namespace = ns
		if err := e.Client.Create(context.Background(), ing); err != nil {
			t.Fatalf("creating Ingress %s: %v", ing.Name, err)
		}
		f.stables = append(f.stables, ing)
	}
	ro.Namespace = ns
	if err := e.Client.Create(context.Background(), ro); err != nil {
		t.Fatalf("creating Rollout: %v", err)
	}
	f.ro = ro
	return f
}

// get reads an Ingress of the fixture's namespace from the API server; nil when there is none.
func (f *fixture) get(t testing.TB, name string) *networkingv1.Ingress {
	t.Helper()
	ing := &networkingv1.Ingress{}
	err := f.e.Client.Get(context.Background(), types.NamespacedName{Namespace: f.ro.Namespace, Name: name}, ing)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("reading Ingress %s: %v", name, err)
	}
	return ing
}

// canary reads the canary Ingress of stable Ingress name.
func (f *fixture) canary(t testing.TB, name string) *networkingv1.Ingress {
	t.Helper()
	return f.get(t, nginx.CanaryIngressName(f.ro.Name, name))
}

// stablesUntouched checks that every stable Ingress is as it was created.
func (f *fixture) stablesUntouched(t testing.TB) {
	t.Helper()
	for _, ing := range f.stables {
		if got := f.get(t, ing.Name); got == nil || got.ResourceVersion != ing.ResourceVersion {
			t.Errorf("stable Ingress %s was written (resourceVersion %s, created at %s)", ing.Name, versionOf(got), ing.ResourceVersion)
		}
	}
}

func versionOf(ing *networkingv1.Ingress) string {
	if ing == nil {
		return "gone"
	}
	return ing.ResourceVersion
}

func verify(t *testing.T, r providers.TrafficRouter, ro *kultav1alpha1.Rollout, want providers.Weights) providers.Verification {
	t.Helper()
	v, err := r.Verify(testContext(t), ro)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if v.Weights == nil || *v.Weights != want {
		t.Errorf("Verify weights %v, want %v", v.Weights, want)
	}
	return v
}

func testContext(t *testing.T) context.Context {
	return ctrl.LoggerInto(context.Background(), testr.New(t))
}

func routeErrorReason(err error) string {
	var routeErr *providers.RouteError
	if errors.As(err, &routeErr) && errors.Is(err, providers.ErrRouteNotUsable) {
		return routeErr.Reason
	}
	return ""
}

// backendsOf lists "host path -> service" for every path of ing.
func backendsOf(ing *networkingv1.Ingress) []string {
	var out []string
	for _, rule := range ing.Spec.Rules {
		for _, p := range rule.HTTP.Paths {
			out = append(out, rule.Host+p.Path+" -> "+p.Backend.Service.Name)
		}
	}
	return out
}

// TestCanaryLifecycle steps a canary through its weights on a real API server: no canary
// Ingress at rest, one created at the first weight, its weight moved at each step with no
// write when nothing changes, and deleted again at 100/0. The user's Ingress is never written.
func TestCanaryLifecycle(t *testing.T) {
	f := newFixture(t, testutil.Rollout("", "web", withNGINX("web")), newIngress("", "web", withNoise(),
		withPath("shop.example.com", "/", "web-stable", 80),
		withPath("shop.example.com", "/api", "api", 80),
		withPath("www.shop.example.com", "/", "web-stable", 80)))
	ctx := testContext(t)
	c := &countingClient{Client: f.e.Client}
	r := &nginx.Router{Client: c}

	if err := r.SetWeights(ctx, f.ro, providers.Weights{Stable: 100}); err != nil {
		t.Fatal(err)
	}
	if n := c.writes(); n != 0 || f.canary(t, "web") != nil {
		t.Fatalf("at 100/0: %d writes, canary Ingress %v; want none", n, f.canary(t, "web"))
	}
	if v := verify(t, r, f.ro, providers.Weights{Stable: 100}); !v.Accepted {
		t.Errorf("without a canary Ingress Verify is not accepted: %s", v.Message)
	}

	for _, w := range []int32{20, 50, 100} {
		weights := providers.Weights{Stable: 100 - w, Canary: w}
		if err := r.SetWeights(ctx, f.ro, weights); err != nil {
			t.Fatalf("SetWeights(%v): %v", weights, err)
		}
		if n := c.writes(); n != 1 {
			t.Errorf("SetWeights(%v): %d writes, want 1", weights, n)
		}
		canary := f.canary(t, "web")
		if canary == nil {
			t.Fatalf("SetWeights(%v) left no canary Ingress", weights)
		}
		if got := canary.Annotations["nginx.ingress.kubernetes.io/canary-weight"]; got != strconv.Itoa(int(w)) {
			t.Errorf("canary-weight %q, want %d", got, w)
		}
		if v := verify(t, r, f.ro, weights); !v.Accepted {
			t.Errorf("Verify not accepted: %s", v.Message)
		}
		if err := r.SetWeights(ctx, f.ro, weights); err != nil {
			t.Fatal(err)
		}
		if n := c.writes(); n != 0 {
			t.Errorf("setting %v again wrote %d times", weights, n)
		}
	}
	canary := f.canary(t, "web")
	if got, want := strings.Join(backendsOf(canary), ", "), "shop.example.com/ -> web-canary, www.shop.example.com/ -> web-canary"; got != want {
		t.Errorf("canary Ingress paths %s, want %s", got, want)
	}
	if len(canary.Spec.TLS) > 0 || canary.Annotations["nginx.ingress.kubernetes.io/ssl-redirect"] != "" || canary.Labels["team"] != "" {
		t.Errorf("the stable Ingress's TLS, annotations or labels leaked into the canary Ingress: %+v", canary.ObjectMeta)
	}
	if ref := metav1.GetControllerOf(canary); ref == nil || ref.UID != f.ro.UID || ref.Kind != "Rollout" || !ptr.Deref(ref.BlockOwnerDeletion, false) {
		t.Errorf("canary Ingress controller %+v, want Rollout web (UID %s), blocking its deletion", ref, f.ro.UID)
	}

	if err := r.SetWeights(ctx, f.ro, providers.Weights{Stable: 100}); err != nil {
		t.Fatal(err)
	}
	if f.canary(t, "web") != nil {
		t.Error("the canary Ingress outlived the canary's weight")
	}
	if v := verify(t, r, f.ro, providers.Weights{Stable: 100}); !v.Accepted {
		t.Errorf("Verify: %s", v.Message)
	}
	c.writes()
	if err := r.SetWeights(ctx, f.ro, providers.Weights{Stable: 100}); err != nil {
		t.Fatal(err)
	}
	if n := c.writes(); n != 0 {
		t.Errorf("100/0 again wrote %d times", n)
	}
	if err := r.SetWeights(ctx, f.ro, providers.Weights{Stable: 90, Canary: 20}); err == nil {
		t.Error("weights that do not add up to 100 were accepted")
	}
	f.stablesUntouched(t)
}

// TestHeaderRouteLifecycle runs an A/B Rollout's header route: the canary Ingress exists for
// it at weight 0 and goes with it; a second header route, and a cookie match ingress-nginx
// cannot express, are refused without a write.
func TestHeaderRouteLifecycle(t *testing.T) {
	f := newFixture(t, testutil.Rollout("", "web", testutil.WithABTesting(), withNGINX("web")),
		newIngress("", "web", withPath("shop.example.com", "/", "web-a", 80)))
	ctx := testContext(t)
	c := &countingClient{Client: f.e.Client}
	r := &nginx.Router{Client: c}
	hr, ok := providers.ManagedHeaderRoute(f.ro)
	if !ok {
		t.Fatal("the A/B Rollout asks for no header route")
	}

	if err := r.SetHeaderRoute(ctx, f.ro, hr); err != nil {
		t.Fatal(err)
	}
	canary := f.canary(t, "web")
	if canary == nil {
		t.Fatal("no canary Ingress for the header route")
	}
	for k, want := range map[string]string{"canary-by-header": "X-Variant", "canary-by-header-value": "B", "canary-weight": "0"} {
		if got := canary.Annotations["nginx.ingress.kubernetes.io/"+k]; got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if got := strings.Join(backendsOf(canary), ", "); got != "shop.example.com/ -> web-b" {
		t.Errorf("canary Ingress paths %s", got)
	}
	c.writes()
	for _, step := range []func() error{
		func() error { return r.SetHeaderRoute(ctx, f.ro, hr) },
		func() error { return r.SetWeights(ctx, f.ro, providers.Weights{Stable: 100}) },
		func() error { return r.RemoveHeaderRoute(ctx, f.ro, "kulta-other-variant-b") },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.writes(); n != 0 || f.canary(t, "web") == nil {
		t.Errorf("the same header route, 100/0 and removing another route: %d writes, want none and the canary Ingress kept", n)
	}
	if v := verify(t, r, f.ro, providers.Weights{Stable: 100}); !v.Accepted {
		t.Errorf("Verify: %s", v.Message)
	}
	other := providers.HeaderRoute{Name: "kulta-other-variant-b", Header: hr.Header}
	if err := r.SetHeaderRoute(ctx, f.ro, other); routeErrorReason(err) != nginx.ReasonOneHeaderRoutePerIngress {
		t.Errorf("a second header route: got %v, want a RouteError %s", err, nginx.ReasonOneHeaderRoutePerIngress)
	}

	if err := r.RemoveHeaderRoute(ctx, f.ro, hr.Name); err != nil {
		t.Fatal(err)
	}
	if f.canary(t, "web") != nil {
		t.Error("the canary Ingress outlived its header route at weight 0")
	}

	c.writes()
	cookie := providers.HeaderRoute{Name: hr.Name, Cookie: &kultav1alpha1.CookieMatch{Name: "ab", Value: "B"}}
	err := r.SetHeaderRoute(ctx, f.ro, cookie)
	if routeErrorReason(err) != providers.ReasonUnsupportedMatch || !strings.Contains(err.Error(), "spec.strategy.abTesting.variantBMatch.cookie.value") {
		t.Errorf("cookie value B: got %v, want UnsupportedMatch naming the field", err)
	}
	if n := c.writes(); n != 0 {
		t.Errorf("an unsupported match wrote %d times", n)
	}
	cookie.Cookie.Value = "always"
	if err := r.SetHeaderRoute(ctx, f.ro, cookie); err != nil {
		t.Fatal(err)
	}
	if got := f.canary(t, "web").Annotations["nginx.ingress.kubernetes.io/canary-by-cookie"]; got != "ab" {
		t.Errorf("canary-by-cookie %q, want ab", got)
	}
	f.stablesUntouched(t)
}

// TestCanaryFollowsStableIngress edits the user's Ingress mid-rollout: Verify says the canary
// Ingress is behind, naming what differs, and the next SetWeights rewrites it to match. A
// stable Ingress that stops routing to the stable Service, or is deleted, is a RouteError.
func TestCanaryFollowsStableIngress(t *testing.T) {
	f := newFixture(t, testutil.Rollout("", "web", withNGINX("web")),
		newIngress("", "web", withPath("shop.example.com", "/", "web-stable", 80)))
	ctx := testContext(t)
	c := &countingClient{Client: f.e.Client}
	r := &nginx.Router{Client: c}
	w := providers.Weights{Stable: 70, Canary: 30}
	if err := r.SetWeights(ctx, f.ro, w); err != nil {
		t.Fatal(err)
	}

	stable := f.get(t, "web")
	stable.Spec.IngressClassName = ptr.To("nginx-internal")
	stable.Spec.Rules[0].HTTP.Paths[0].Path = "/shop"
	withPath("new.example.com", "/", "web-stable", 80)(stable)
	if err := f.e.Client.Update(ctx, stable); err != nil {
		t.Fatal(err)
	}
	v := verify(t, r, f.ro, w)
	if v.Accepted || !strings.Contains(v.Message, "spec.ingressClassName, spec.rules") || !strings.Contains(v.Message, nginx.CanaryIngressName("web", "web")) {
		t.Errorf("Verify after the stable Ingress changed: accepted %v, %q; want not accepted, naming the canary Ingress and the fields", v.Accepted, v.Message)
	}
	c.writes()
	if err := r.SetWeights(ctx, f.ro, w); err != nil {
		t.Fatal(err)
	}
	if n := c.writes(); n != 1 {
		t.Errorf("%d writes to follow the stable Ingress, want 1", n)
	}
	canary := f.canary(t, "web")
	if got, want := strings.Join(backendsOf(canary), ", "), "shop.example.com/shop -> web-canary, new.example.com/ -> web-canary"; got != want || ptr.Deref(canary.Spec.IngressClassName, "") != "nginx-internal" {
		t.Errorf("canary Ingress %s class %v, want %s class nginx-internal", got, canary.Spec.IngressClassName, want)
	}
	if v := verify(t, r, f.ro, w); !v.Accepted {
		t.Errorf("Verify once rewritten: %s", v.Message)
	}

	stable = f.get(t, "web")
	for i := range stable.Spec.Rules {
		stable.Spec.Rules[i].HTTP.Paths[0].Backend.Service.Name = "somewhere-else"
	}
	if err := f.e.Client.Update(ctx, stable); err != nil {
		t.Fatal(err)
	}
	if err := r.SetWeights(ctx, f.ro, w); routeErrorReason(err) != nginx.ReasonIngressDoesNotReferenceServices {
		t.Errorf("SetWeights: got %v, want %s", err, nginx.ReasonIngressDoesNotReferenceServices)
	}
	if _, err := r.Verify(ctx, f.ro); routeErrorReason(err) != nginx.ReasonIngressDoesNotReferenceServices {
		t.Errorf("Verify: got %v, want %s", err, nginx.ReasonIngressDoesNotReferenceServices)
	}

	if err := f.e.Client.Delete(ctx, stable); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Verify(ctx, f.ro); routeErrorReason(err) != nginx.ReasonIngressNotFound {
		t.Errorf("Verify: got %v, want %s", err, nginx.ReasonIngressNotFound)
	}
	if err := r.SetWeights(ctx, f.ro, w); routeErrorReason(err) != nginx.ReasonIngressNotFound {
		t.Errorf("SetWeights: got %v, want %s", err, nginx.ReasonIngressNotFound)
	}
	// Taking the weight away needs no stable Ingress: the canary Ingress just goes.
	if err := r.SetWeights(ctx, f.ro, providers.Weights{Stable: 100}); err != nil || f.canary(t, "web") != nil {
		t.Errorf("100/0 without the stable Ingress: %v, canary Ingress %v; want it deleted", err, f.canary(t, "web"))
	}
}

// TestSeveralIngressesAndCleanup routes through two stable Ingresses: each gets its canary
// Ingress; one the Rollout stops naming is reported and then deleted; Cleanup deletes the rest,
// and only the Rollout's, whatever became of the stable Ingresses.
func TestSeveralIngressesAndCleanup(t *testing.T) {
	f := newFixture(t, testutil.Rollout("", "web", withNGINX("public", "internal")),
		newIngress("", "public", withPath("shop.example.com", "/", "web-stable", 80)),
		newIngress("", "internal", withPath("shop.internal", "/", "web-stable", 80)))
	ctx := testContext(t)
	r := &nginx.Router{Client: f.e.Client}
	w := providers.Weights{Stable: 60, Canary: 40}
	if err := r.SetWeights(ctx, f.ro, w); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"public", "internal"} {
		if f.canary(t, name) == nil {
			t.Fatalf("no canary Ingress for %s", name)
		}
	}
	verify(t, r, f.ro, w)

	// Another Rollout's canary Ingress in the namespace, carrying the same label.
	other := testutil.Rollout(f.ro.Namespace, "other", withNGINX("public"), testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) {
		c.StableService, c.CanaryService = "web-stable", "web-canary"
	}))
	if err := f.e.Client.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := r.SetWeights(ctx, other, w); err != nil {
		t.Fatal(err)
	}

	publicOnly := f.ro.DeepCopy()
	publicOnly.Spec.Strategy.Canary.TrafficRouting.NGINX = &kultav1alpha1.NGINXRouting{StableIngress: "public"}
	v := verify(t, r, publicOnly, w)
	if v.Accepted || !strings.Contains(v.Message, "web-internal-canary") {
		t.Errorf("Verify with a canary Ingress left over: accepted %v, %q", v.Accepted, v.Message)
	}
	if err := r.SetWeights(ctx, publicOnly, w); err != nil {
		t.Fatal(err)
	}
	if f.canary(t, "internal") != nil || f.canary(t, "public") == nil {
		t.Error("the left-over canary Ingress must go, the other stay")
	}
	if err := r.SetWeights(ctx, f.ro, w); err != nil {
		t.Fatal(err)
	}

	if err := f.e.Client.Delete(ctx, f.get(t, "internal")); err != nil {
		t.Fatal(err)
	}
	f.stables = f.stables[:1]
	// A canary Ingress whose label someone removed is still the Rollout's.
	public := f.canary(t, "public")
	delete(public.Labels, nginx.CanaryIngressLabel)
	if err := f.e.Client.Update(ctx, public); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := r.Cleanup(ctx, f.ro); err != nil {
			t.Fatalf("Cleanup: %v", err)
		}
	}
	for _, name := range []string{"public", "internal"} {
		if ing := f.canary(t, name); ing != nil {
			t.Errorf("canary Ingress %s survived clean-up", ing.Name)
		}
	}
	if f.get(t, nginx.CanaryIngressName("other", "public")) == nil {
		t.Error("Cleanup deleted another Rollout's canary Ingress")
	}
	verify(t, r, publicOnly, providers.Weights{Stable: 100})
	f.stablesUntouched(t)
}

// TestCanaryIngressNameTaken: an Ingress KULTA does not own under the canary Ingress's name is
// a RouteError, and is never written or deleted.
func TestCanaryIngressNameTaken(t *testing.T) {
	f := newFixture(t, testutil.Rollout("", "web", withNGINX("web")),
		newIngress("", "web", withPath("shop.example.com", "/", "web-stable", 80)),
		newIngress("", nginx.CanaryIngressName("web", "web"), withPath("shop.example.com", "/", "web-canary", 80)))
	ctx := testContext(t)
	r := &nginx.Router{Client: f.e.Client}
	if err := r.SetWeights(ctx, f.ro, providers.Weights{Stable: 50, Canary: 50}); routeErrorReason(err) != nginx.ReasonCanaryIngressNameTaken {
		t.Errorf("SetWeights: got %v, want %s", err, nginx.ReasonCanaryIngressNameTaken)
	}
	if _, err := r.Verify(ctx, f.ro); routeErrorReason(err) != nginx.ReasonCanaryIngressNameTaken {
		t.Errorf("Verify: got %v, want %s", err, nginx.ReasonCanaryIngressNameTaken)
	}
	if err := r.SetWeights(ctx, f.ro, providers.Weights{Stable: 100}); routeErrorReason(err) != nginx.ReasonCanaryIngressNameTaken {
		t.Errorf("SetWeights(100/0): got %v, want %s", err, nginx.ReasonCanaryIngressNameTaken)
	}
	if err := r.Cleanup(ctx, f.ro); err != nil {
		t.Errorf("Cleanup: %v", err)
	}
	f.stablesUntouched(t)

	unstored := f.ro.DeepCopy()
	unstored.UID = ""
	if err := r.SetWeights(ctx, unstored, providers.Weights{Stable: 100}); err == nil || routeErrorReason(err) != "" {
		t.Errorf("a Rollout without a UID: got %v, want a plain error", err)
	}
}

// TestMirrorRouteRefused: ingress-nginx cannot copy a share of requests to the canary, so a
// mirror route is an UnsupportedMatch RouteError naming the route, and nothing is written.
func TestMirrorRouteRefused(t *testing.T) {
	c := &countingClient{}
	r := &nginx.Router{Client: c}
	ro := testutil.Rollout("shop", "web", testutil.WithCanarySteps(testutil.MirrorRouteStep("shadow", 10)))
	hr, ok := providers.StepRoute(ro, ro.Spec.Strategy.Canary.Steps[0])
	if !ok {
		t.Fatal("the step sets no route")
	}
	err := r.SetHeaderRoute(context.Background(), ro, hr)
	var re *providers.RouteError
	if !errors.As(err, &re) || re.Reason != providers.ReasonUnsupportedMatch || !strings.Contains(re.Message, "kulta-web.shadow") {
		t.Fatalf("SetHeaderRoute of a mirror route: %v, want an UnsupportedMatch RouteError naming kulta-web.shadow", err)
	}
	if n := c.writes(); n != 0 {
		t.Errorf("a refused mirror route wrote %d times", n)
	}
}
