package nginx_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/nginx"
)

// startCache starts an informer cache of the fixture's namespace holding Ingresses as
// kulta-controller's does: trimmed by the provider's Trim and indexed by its Indexes.
func startCache(ctx context.Context, t *testing.T, f *fixture) cache.Cache {
	t.Helper()
	p := nginx.NewProvider(nil)
	c, err := cache.New(f.e.Config, cache.Options{
		Scheme: f.e.Scheme, DefaultNamespaces: map[string]cache.Config{f.ro.Namespace: {}},
		DefaultTransform: func(obj any) (any, error) {
			trimmed, ok := p.Trim(obj)
			if !ok {
				return nil, fmt.Errorf("the cache was given %T, want an Ingress", obj)
			}
			return trimmed, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, ix := range p.Indexes {
		if err := c.IndexField(ctx, ix.Object, ix.Field, ix.Extract); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.GetInformer(ctx, &networkingv1.Ingress{}); err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}
	return c
}

// listingReader records how many Ingresses each List of the reader it wraps returned.
type listingReader struct {
	client.Reader
	mu     sync.Mutex
	listed []int
}

func (l *listingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if err := l.Reader.List(ctx, list, opts...); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.listed = append(l.listed, meta.LenList(list))
	return nil
}

// lists returns what each List since the last call returned.
func (l *listingReader) lists() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.listed
	l.listed = nil
	return out
}

// TestRouterReadsOnlyItsOwnCanaryIngresses runs the router on a real cache in a namespace where
// other Rollouts keep canary Ingresses: Verify and SetWeights read only the Rollout's own canary
// Ingresses from the cache (through CanaryIngressIndex), however many others carry
// CanaryIngressLabel; a canary Ingress of a stable Ingress the Rollout stops naming is still
// found, reported and deleted, and the neighbours' are never touched.
func TestRouterReadsOnlyItsOwnCanaryIngresses(t *testing.T) {
	f := newFixture(t, testutil.Rollout("", "web", withNGINX("public", "internal")),
		newIngress("", "public", withPath("shop.example.com", "/", "web-stable", 80)),
		newIngress("", "internal", withPath("shop.internal", "/", "web-stable", 80)))
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	w := providers.Weights{Stable: 60, Canary: 40}
	// Neighbours: Rollouts of the namespace routing through the same stable Ingress, each with
	// its canary Ingress, written by a router of their own.
	plain := &nginx.Router{Client: f.e.Client}
	var neighbours []string
	for i := range 5 {
		other := testutil.Rollout(f.ro.Namespace, fmt.Sprintf("other-%d", i), withNGINX("public"), testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) {
			c.StableService, c.CanaryService = "web-stable", "web-canary"
		}))
		if err := f.e.Client.Create(ctx, other); err != nil {
			t.Fatal(err)
		}
		if err := plain.SetWeights(ctx, other, w); err != nil {
			t.Fatal(err)
		}
		neighbours = append(neighbours, nginx.CanaryIngressName(other.Name, "public"))
	}
	c := startCache(ctx, t, f)
	reader := &listingReader{Reader: c}
	r := &nginx.Router{Client: f.e.Client, Reader: reader, APIReader: f.e.Client}
	// cachedCanaries waits until the cache's index holds n canary Ingresses of web.
	cachedCanaries := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			var list networkingv1.IngressList
			err := c.List(ctx, &list, client.MatchingFields{nginx.CanaryIngressIndex: string(f.ro.UID)})
			if err == nil && len(list.Items) == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the cache holds %d canary Ingresses of web (%v), want %d", len(list.Items), err, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// atMost checks that every List the router made since the last check read at most n.
	atMost := func(what string, n int) {
		t.Helper()
		lists := reader.lists()
		if len(lists) == 0 {
			t.Errorf("%s listed no canary Ingresses", what)
		}
		for _, got := range lists {
			if got > n {
				t.Errorf("%s: a List read %d canary Ingresses, want at most web's %d (%d neighbours in the namespace)", what, got, n, len(neighbours))
			}
		}
	}

	if err := r.SetWeights(ctx, f.ro, w); err != nil {
		t.Fatal(err)
	}
	atMost("SetWeights creating web's two", 2)
	cachedCanaries(2)
	verify(t, r, f.ro, w)
	atMost("Verify", 2)

	publicOnly := f.ro.DeepCopy()
	publicOnly.Spec.Strategy.Canary.TrafficRouting.NGINX = &kultav1alpha1.NGINXRouting{StableIngress: "public"}
	v := verify(t, r, publicOnly, w)
	if v.Accepted || !strings.Contains(v.Message, "web-internal-canary") {
		t.Errorf("Verify with a canary Ingress left over: accepted %v, %q", v.Accepted, v.Message)
	}
	atMost("Verify with one left over", 2)
	if err := r.SetWeights(ctx, publicOnly, w); err != nil {
		t.Fatal(err)
	}
	atMost("SetWeights removing the one left over", 2)
	if f.canary(t, "internal") != nil || f.canary(t, "public") == nil {
		t.Error("the left-over canary Ingress must go, the other stay")
	}
	cachedCanaries(1)
	if v := verify(t, r, publicOnly, w); !v.Accepted {
		t.Errorf("Verify once the left-over canary Ingress is gone: %s", v.Message)
	}
	atMost("Verify after the removal", 1)
	for _, name := range neighbours {
		ing := f.get(t, name)
		if ing == nil {
			t.Fatalf("neighbour canary Ingress %s was deleted", name)
		}
		if got := ing.Annotations["nginx.ingress.kubernetes.io/canary-weight"]; got != "40" {
			t.Errorf("neighbour canary Ingress %s has weight %q, want the 40 its router set", name, got)
		}
	}
	f.stablesUntouched(t)
}

// TestRouterReadsFromCache runs the router on a real informer cache holding trimmed Ingresses,
// as kulta-controller's does: at rest and once the cache holds what the router wrote, Verify
// and unchanged weights read nothing from the API server; a change is one read from the API
// server and one write; right after a write or a delete the router does not trust a cache
// that has not caught up.
func TestRouterReadsFromCache(t *testing.T) {
	f := newFixture(t, testutil.Rollout("", "app", withNGINX("app")), newIngress("", "app", withNoise(),
		withPath("shop.example.com", "/", "app-stable", 80)))
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	c := startCache(ctx, t, f)
	api := &testutil.CountingReader{Reader: f.e.Client}
	writes := &countingClient{Client: f.e.Client}
	r := &nginx.Router{Client: writes, Reader: c, APIReader: api}
	step := func(name string, do func() error, wantGets, wantWrites int32) {
		t.Helper()
		if err := do(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if gets, n := api.Gets.Swap(0), writes.writes(); gets != wantGets || n != wantWrites {
			t.Errorf("%s: %d reads from the API server and %d writes, want %d and %d", name, gets, n, wantGets, wantWrites)
		}
	}
	setWeights := func(w providers.Weights) func() error {
		return func() error { return r.SetWeights(ctx, f.ro, w) }
	}
	verifyWeights := func(want providers.Weights) func() error {
		return func() error {
			v, err := r.Verify(ctx, f.ro)
			if err == nil && (v.Weights == nil || *v.Weights != want || !v.Accepted) {
				err = fmt.Errorf("weights %v, accepted %v (%s); want %v, accepted", v.Weights, v.Accepted, v.Message, want)
			}
			return err
		}
	}
	// cached waits until the cache holds the canary Ingress at the API server's version, or
	// no longer holds it.
	cached := func(present bool) {
		t.Helper()
		key := client.ObjectKey{Namespace: f.ro.Namespace, Name: nginx.CanaryIngressName("app", "app")}
		want := versionOf(f.canary(t, "app"))
		deadline := time.Now().Add(10 * time.Second)
		for {
			ing := &networkingv1.Ingress{}
			err := c.Get(ctx, key, ing)
			if (present && err == nil && ing.ResourceVersion == want) || (!present && client.IgnoreNotFound(err) == nil && err != nil) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the cache did not catch up (present %v): %v", present, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	at := providers.Weights{Stable: 80, Canary: 20}
	step("100/0 at rest", setWeights(providers.Weights{Stable: 100}), 0, 0)
	step("Verify at rest", verifyWeights(providers.Weights{Stable: 100}), 0, 0)
	// Every write is decided from the cache: a create that would find the canary Ingress already
	// there, and patches and deletions with the cached copy's resourceVersion as precondition.
	step("80/20", setWeights(at), 0, 1)
	if err := verifyWeights(at)(); err != nil {
		t.Errorf("Verify right after the write: %v", err)
	}
	api.Gets.Store(0)
	cached(true)
	step("Verify from the cache", verifyWeights(at), 0, 0)
	step("80/20 again", setWeights(at), 0, 0)
	step("50/50", setWeights(providers.Weights{Stable: 50, Canary: 50}), 0, 1)
	cached(true)
	step("100/0", setWeights(providers.Weights{Stable: 100}), 0, 1)
	step("Verify right after the delete", verifyWeights(providers.Weights{Stable: 100}), 0, 0)
	cached(false)
	step("Verify once the cache caught up", verifyWeights(providers.Weights{Stable: 100}), 0, 0)
	f.stablesUntouched(t)
}
