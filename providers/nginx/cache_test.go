package nginx_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/nginx"
)

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
	trim := nginx.NewProvider(nil).Trim
	c, err := cache.New(f.e.Config, cache.Options{
		Scheme: f.e.Scheme, DefaultNamespaces: map[string]cache.Config{f.ro.Namespace: {}},
		DefaultTransform: func(obj any) (any, error) {
			trimmed, ok := trim(obj)
			if !ok {
				return nil, fmt.Errorf("the cache was given %T, want an Ingress", obj)
			}
			return trimmed, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetInformer(ctx, &networkingv1.Ingress{}); err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}
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
