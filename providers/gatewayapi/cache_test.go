package gatewayapi_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/gatewayapi"
)

var routeGVK = schema.GroupVersionKind{Group: gatewayapi.Group, Version: "v1", Kind: "HTTPRoute"}

// frozenReader is a cache that never moves on: it holds one copy of the route, or none.
type frozenReader struct {
	client.Reader
	route *unstructured.Unstructured
}

func (f *frozenReader) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	if f.route == nil {
		return apierrors.NewNotFound(schema.GroupResource{Group: gatewayapi.Group, Resource: "httproutes"}, key.Name)
	}
	obj.(*unstructured.Unstructured).Object = f.route.DeepCopy().Object
	return nil
}

type cacheFixture struct {
	ro  *kultav1alpha1.Rollout
	key types.NamespacedName
}

// newCacheFixture creates a route with weights 100/0 and a Rollout (not stored) naming it.
func newCacheFixture(t *testing.T, e *testenv.Env) cacheFixture {
	t.Helper()
	ns := e.CreateNamespace(t, "router-cache")
	ro := testutil.Rollout(ns, "app")
	ro.Spec.Strategy.Canary.TrafficRouting = &kultav1alpha1.TrafficRouting{GatewayAPI: &kultav1alpha1.GatewayAPIRouting{
		Routes: []kultav1alpha1.RouteReference{{Kind: kultav1alpha1.KindHTTPRoute, Name: "app-route", Namespace: ns}},
	}}
	route := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{
		"hostnames":  []any{"shop.example"},
		"parentRefs": []any{map[string]any{"name": "public"}},
		"rules": []any{map[string]any{"backendRefs": []any{
			map[string]any{"name": "app-stable", "port": int64(80), "weight": int64(100)},
			map[string]any{"name": "app-canary", "port": int64(80), "weight": int64(0)},
		}}},
	}}}
	route.SetGroupVersionKind(routeGVK)
	route.SetNamespace(ns)
	route.SetName("app-route")
	route.SetAnnotations(map[string]string{"team": "storefront"})
	if err := e.Client.Create(context.Background(), route); err != nil {
		t.Fatalf("creating route: %v", err)
	}
	return cacheFixture{ro: ro, key: types.NamespacedName{Namespace: ns, Name: "app-route"}}
}

func (f cacheFixture) read(t *testing.T, c client.Reader) *unstructured.Unstructured {
	t.Helper()
	route := &unstructured.Unstructured{}
	route.SetGroupVersionKind(routeGVK)
	if err := c.Get(context.Background(), f.key, route); err != nil {
		t.Fatalf("reading route: %v", err)
	}
	return route
}

// TestRouterReadsFromCache runs the router on a real informer cache holding routes trimmed and
// packed by the provider's trim, as kulta-controller's does: event handlers see the packed
// route's metadata; once the cache holds the route, Verify and SetWeights with unchanged
// weights read nothing from the API server, and a weight change is one write without a read,
// which keeps the fields the cache dropped.
func TestRouterReadsFromCache(t *testing.T) {
	e := testenv.Require(t, env)
	f := newCacheFixture(t, e)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The provider's trim, as kulta-controller's cache runs it (rollout.CacheOptions): routes
	// are trimmed and packed.
	trim := gatewayapi.NewProvider(nil, gatewayapi.Capabilities{HTTPRoute: true}).Trim
	c, err := cache.New(e.Config, cache.Options{
		Scheme: e.Scheme, DefaultNamespaces: map[string]cache.Config{f.key.Namespace: {}},
		DefaultTransform: func(obj any) (any, error) {
			trimmed, ok := trim(obj)
			if !ok {
				return nil, fmt.Errorf("the cache was given %T, want a route", obj)
			}
			return trimmed, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	informerRoute := &unstructured.Unstructured{}
	informerRoute.SetGroupVersionKind(routeGVK)
	informer, err := c.GetInformer(ctx, informerRoute)
	if err != nil {
		t.Fatal(err)
	}
	// Event handlers get what the cache holds: packed, with the metadata they read.
	held := make(chan client.Object, 16)
	if _, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { sendObject(held, obj) },
		UpdateFunc: func(_, obj any) { sendObject(held, obj) },
	}); err != nil {
		t.Fatal(err)
	}
	go func() {
		if err := c.Start(ctx); err != nil {
			t.Errorf("cache: %v", err)
		}
	}()
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}
	api := &testutil.CountingReader{Reader: e.Client}
	r := &gatewayapi.Router{Client: e.Client, Reader: c, APIReader: api}

	// Wait for the cache to hold the trimmed route, so the write below starts from it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		cached := &unstructured.Unstructured{}
		cached.SetGroupVersionKind(routeGVK)
		if err := c.Get(ctx, f.key, cached); err == nil {
			if len(cached.GetAnnotations()) != 0 {
				t.Fatalf("the cache holds the route untrimmed: annotations %v", cached.GetAnnotations())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cache never held the route")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case obj := <-held:
		if obj == nil {
			t.Fatal("the informer holds an object that is not a client.Object")
		}
		if _, unpacked := obj.(*unstructured.Unstructured); unpacked || obj.GetName() != f.key.Name || obj.GetResourceVersion() == "" {
			t.Errorf("the informer holds a %T named %q at resourceVersion %q, want the route packed with its metadata", obj, obj.GetName(), obj.GetResourceVersion())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event for the route")
	}
	w := providers.Weights{Stable: 80, Canary: 20}
	if err := r.SetWeights(ctx, f.ro, w); err != nil {
		t.Fatal(err)
	}
	if n := api.Gets.Load(); n != 0 {
		t.Errorf("a weight change read the API server %d times although the cache held the route, want no read: the patch carries the cached resourceVersion", n)
	}
	after := f.read(t, e.Client)
	if hosts, _, _ := unstructured.NestedStringSlice(after.Object, "spec", "hostnames"); len(hosts) != 1 || after.GetAnnotations()["team"] != "storefront" {
		t.Errorf("the write dropped what the cache trims: hostnames %v, annotations %v", hosts, after.GetAnnotations())
	}
	written := after.GetResourceVersion()
	// Wait until the cache has seen the write, as the reconciler would by waiting for the event.
	deadline = time.Now().Add(10 * time.Second)
	for f.read(t, c).GetResourceVersion() != written {
		if time.Now().After(deadline) {
			t.Fatal("the cache never saw the write")
		}
		time.Sleep(10 * time.Millisecond)
	}
	api.Gets.Store(0)
	v, err := r.Verify(ctx, f.ro)
	if err != nil {
		t.Fatal(err)
	}
	if v.Weights == nil || *v.Weights != w {
		t.Fatalf("Verify weights %v, want %v", v.Weights, w)
	}
	if err := r.SetWeights(ctx, f.ro, w); err != nil {
		t.Fatal(err)
	}
	if n := api.Gets.Load(); n != 0 {
		t.Errorf("%d reads reached the API server with a cache holding the router's last write", n)
	}
	stored := f.read(t, e.Client)
	if got := stored.GetResourceVersion(); got != written {
		t.Errorf("unchanged weights were written again: resourceVersion %s, want %s", got, written)
	}
	// KULTA's write keeps the other managers' fields on record.
	managers := map[string]bool{}
	for _, mf := range stored.GetManagedFields() {
		managers[mf.Manager] = true
	}
	if !managers[gatewayapi.FieldManager] || len(managers) < 2 {
		t.Errorf("managedFields after a write from the cache name %v, want KULTA's and the creator's", managers)
	}
}

// sendObject passes an informer's object on as a client.Object, without waiting; one that is
// not a client.Object is passed on as nil.
func sendObject(to chan<- client.Object, obj any) {
	o, _ := obj.(client.Object)
	select {
	case to <- o:
	default:
	}
}

// TestRouterStaleCache gives the router a cache stuck before its own write, or one that does
// not hold the route: it must read the API server rather than plan from the stale copy.
func TestRouterStaleCache(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := context.Background()

	t.Run("older than the router's write", func(t *testing.T) {
		f := newCacheFixture(t, e)
		frozen := &frozenReader{route: f.read(t, e.Client)}
		api := &testutil.CountingReader{Reader: e.Client}
		r := &gatewayapi.Router{Client: e.Client, Reader: frozen, APIReader: api}
		w := providers.Weights{Stable: 50, Canary: 50}
		if err := r.SetWeights(ctx, f.ro, w); err != nil {
			t.Fatal(err)
		}
		v, err := r.Verify(ctx, f.ro)
		if err != nil {
			t.Fatal(err)
		}
		if v.Weights == nil || *v.Weights != w {
			t.Fatalf("Verify after the write reports %v from the stale cache, want %v", v.Weights, w)
		}
		if api.Gets.Load() == 0 {
			t.Error("the API server was never read although the cache was older than the write")
		}
	})

	t.Run("someone else wrote after the cached copy", func(t *testing.T) {
		f := newCacheFixture(t, e)
		frozen := &frozenReader{route: f.read(t, e.Client)}
		other := f.read(t, e.Client)
		other.SetLabels(map[string]string{"edited-by": "someone-else"})
		if err := e.Client.Update(ctx, other); err != nil {
			t.Fatal(err)
		}
		r := &gatewayapi.Router{Client: e.Client, Reader: frozen, APIReader: e.Client}
		w := providers.Weights{Stable: 70, Canary: 30}
		if err := r.SetWeights(ctx, f.ro, w); err != nil {
			t.Fatalf("SetWeights over a stale cache must retry from the API server: %v", err)
		}
		got := f.read(t, e.Client)
		if got.GetLabels()["edited-by"] != "someone-else" {
			t.Error("the newer change was overwritten from the stale copy")
		}
		v, err := (&gatewayapi.Router{Client: e.Client}).Verify(ctx, f.ro)
		if err != nil {
			t.Fatal(err)
		}
		if v.Weights == nil || *v.Weights != w {
			t.Errorf("weights %v, want %v", v.Weights, w)
		}
	})

	t.Run("not in the cache yet", func(t *testing.T) {
		f := newCacheFixture(t, e)
		r := &gatewayapi.Router{Client: e.Client, Reader: &frozenReader{}, APIReader: e.Client}
		v, err := r.Verify(ctx, f.ro)
		if err != nil {
			t.Fatalf("a route the cache has not seen must be read from the API server: %v", err)
		}
		if v.Weights == nil || *v.Weights != (providers.Weights{Stable: 100}) {
			t.Errorf("weights %v, want 100/0", v.Weights)
		}
	})

	t.Run("missing everywhere", func(t *testing.T) {
		f := newCacheFixture(t, e)
		f.ro.Spec.Strategy.Canary.TrafficRouting.GatewayAPI.Routes[0].Name = "no-such-route"
		r := &gatewayapi.Router{Client: e.Client, Reader: &frozenReader{}, APIReader: e.Client}
		_, err := r.Verify(ctx, f.ro)
		var re *providers.RouteError
		if !errors.As(err, &re) || re.Reason != "HTTPRouteNotFound" {
			t.Errorf("Verify of a missing route: %v, want a RouteError HTTPRouteNotFound", err)
		}
	})
}
