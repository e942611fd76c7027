package istio_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	apinetworkingv1 "istio.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/istio"
)

// frozenReader is a cache that never moves on: it holds one copy of each object, or none.
type frozenReader struct {
	client.Reader
	objects map[string]*unstructured.Unstructured
}

func (f *frozenReader) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	u := obj.(*unstructured.Unstructured)
	held, ok := f.objects[u.GetKind()]
	if !ok {
		return apierrors.NewNotFound(schema.GroupResource{Group: istio.Group, Resource: u.GetKind()}, key.Name)
	}
	u.Object = held.DeepCopy().Object
	return nil
}

// newCacheFixture creates a subset-level split (VirtualService app with annotations and hosts
// the cache trims, and DestinationRule app) and a Rollout (not stored) naming them.
func newCacheFixture(t *testing.T, e *testenv.Env) subsetFixture {
	t.Helper()
	ns := e.CreateNamespace(t, "router-cache")
	vs := newVirtualService(ns, "web", []*apinetworkingv1.HTTPRoute{
		httpRoute("primary", toSubset("web", "stable", 100), toSubset("web", "canary", 0)),
	}, withAnnotation("team", "storefront"))
	dr := newDestinationRule(ns, "web", "web", "stable", "canary")
	dr.Spec.TrafficPolicy = &apinetworkingv1.TrafficPolicy{LoadBalancer: &apinetworkingv1.LoadBalancerSettings{
		LbPolicy: &apinetworkingv1.LoadBalancerSettings_Simple{Simple: apinetworkingv1.LoadBalancerSettings_LEAST_REQUEST},
	}}
	// A subset's own policy: the subsets list is patched whole, so the cache must keep it.
	dr.Spec.Subsets[1].TrafficPolicy = &apinetworkingv1.TrafficPolicy{ConnectionPool: &apinetworkingv1.ConnectionPoolSettings{
		Tcp: &apinetworkingv1.ConnectionPoolSettings_TCPSettings{MaxConnections: 7},
	}}
	for _, obj := range []client.Object{vs, dr} {
		if err := e.Client.Create(context.Background(), obj); err != nil {
			t.Fatal(err)
		}
	}
	return subsetFixture{ns: ns, ro: testutil.Rollout(ns, "web", withIstio("web", []string{"primary"}, bySubsets("web")), withHashes("aaaa", "bbbb"))}
}

// startCache starts an informer cache over ns holding trimmed VirtualServices and
// DestinationRules, as kulta-controller's does with the provider's Trim.
func startCache(t *testing.T, e *testenv.Env, ns string) cache.Cache {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	trim := istio.NewProvider(nil).Trim
	c, err := cache.New(e.Config, cache.Options{
		Scheme: e.Scheme, DefaultNamespaces: map[string]cache.Config{ns: {}},
		DefaultTransform: func(obj any) (any, error) {
			trimmed, ok := trim(obj)
			if !ok {
				return nil, fmt.Errorf("the cache was given %T, want an Istio object", obj)
			}
			return trimmed, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range []client.Object{istio.VirtualServiceObject(), istio.DestinationRuleObject()} {
		if _, err := c.GetInformer(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		if err := c.Start(ctx); err != nil {
			t.Errorf("cache: %v", err)
		}
	}()
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("cache did not sync")
	}
	return c
}

// waitForCache waits until the cache holds the object of kind at resourceVersion version (any,
// when empty).
func waitForCache(t *testing.T, c client.Reader, kind, ns, version string) *unstructured.Unstructured {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		obj := &unstructured.Unstructured{}
		obj.SetAPIVersion(istio.Group + "/" + istio.Version)
		obj.SetKind(kind)
		err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "web"}, obj)
		if err == nil && (version == "" || obj.GetResourceVersion() == version) {
			return obj
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cache never held %s %s/web at %q (%v)", kind, ns, version, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRouterReadsFromCache runs the router on a real informer cache holding trimmed objects, as
// kulta-controller's does: once the cache holds its writes, Verify and SetWeights with unchanged
// weights read nothing from the API server, and a change is one read from the API server per
// object written, and keeps the fields the cache dropped.
func TestRouterReadsFromCache(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := testContext(t)
	f := newCacheFixture(t, e)
	c := startCache(t, e, f.ns)
	if cached := waitForCache(t, c, istio.KindVirtualService, f.ns, ""); len(cached.GetAnnotations()) != 0 {
		t.Fatalf("the cache holds the VirtualService untrimmed: annotations %v", cached.GetAnnotations())
	}
	waitForCache(t, c, istio.KindDestinationRule, f.ns, "")
	api := &testutil.CountingReader{Reader: e.Client}
	r := &istio.Router{Client: e.Client, Reader: c, APIReader: api}

	w := providers.Weights{Stable: 80, Canary: 20}
	if err := r.SetWeights(ctx, f.ro, w); err != nil {
		t.Fatal(err)
	}
	// The DestinationRule's labels and the VirtualService's weights are patched from the cached
	// copies, with their resourceVersions as preconditions.
	if n := api.Gets.Load(); n != 0 {
		t.Errorf("a change to both objects read the API server %d times, want no read", n)
	}
	vs := stored(t, e.Client, istio.KindVirtualService, f.ns, "web")
	if hosts, _, _ := unstructured.NestedStringSlice(vs.Object, "spec", "hosts"); len(hosts) != 1 || vs.GetAnnotations()["team"] != "storefront" {
		t.Errorf("the write dropped what the cache trims: hosts %v, annotations %v", hosts, vs.GetAnnotations())
	}
	dr := stored(t, e.Client, istio.KindDestinationRule, f.ns, "web")
	if _, found, _ := unstructured.NestedFieldNoCopy(dr.Object, "spec", "trafficPolicy"); !found {
		t.Error("the write dropped the DestinationRule's trafficPolicy, which the cache trims")
	}
	subsets, _, _ := unstructured.NestedSlice(dr.Object, "spec", "subsets")
	if len(subsets) != 2 {
		t.Fatalf("DestinationRule subsets %v, want two", subsets)
	}
	if n, _, _ := unstructured.NestedInt64(subsets[1].(map[string]any), "trafficPolicy", "connectionPool", "tcp", "maxConnections"); n != 7 {
		t.Errorf("the write dropped the canary subset's trafficPolicy: %v", subsets[1])
	}
	waitForCache(t, c, istio.KindVirtualService, f.ns, vs.GetResourceVersion())
	waitForCache(t, c, istio.KindDestinationRule, f.ns, dr.GetResourceVersion())

	api.Gets.Store(0)
	if v := verifyWeights(t, r, f.ro, w); !v.Accepted {
		t.Errorf("not accepted: %s", v.Message)
	}
	if err := r.SetWeights(ctx, f.ro, w); err != nil {
		t.Fatal(err)
	}
	if n := api.Gets.Load(); n != 0 {
		t.Errorf("%d reads reached the API server with a cache holding the router's last writes", n)
	}
	if got := stored(t, e.Client, istio.KindVirtualService, f.ns, "web").GetResourceVersion(); got != vs.GetResourceVersion() {
		t.Errorf("unchanged weights were written again: resourceVersion %s, want %s", got, vs.GetResourceVersion())
	}
	managers := map[string]bool{}
	for _, mf := range stored(t, e.Client, istio.KindVirtualService, f.ns, "web").GetManagedFields() {
		managers[mf.Manager] = true
	}
	if !managers[istio.FieldManager] || len(managers) < 2 {
		t.Errorf("managedFields after a write name %v, want KULTA's and the creator's", managers)
	}
}

// TestRouterStaleCache gives the router a cache stuck before its own write, behind someone
// else's, or without the objects: it must read the API server rather than plan from the copy.
func TestRouterStaleCache(t *testing.T) {
	e := testenv.Require(t, env)
	ctx := testContext(t)
	frozen := func(t *testing.T, f subsetFixture) *frozenReader {
		return &frozenReader{objects: map[string]*unstructured.Unstructured{
			istio.KindVirtualService:  stored(t, e.Client, istio.KindVirtualService, f.ns, "web"),
			istio.KindDestinationRule: stored(t, e.Client, istio.KindDestinationRule, f.ns, "web"),
		}}
	}

	t.Run("older than the router's write", func(t *testing.T) {
		f := newCacheFixture(t, e)
		api := &testutil.CountingReader{Reader: e.Client}
		r := &istio.Router{Client: e.Client, Reader: frozen(t, f), APIReader: api}
		w := providers.Weights{Stable: 50, Canary: 50}
		if err := r.SetWeights(ctx, f.ro, w); err != nil {
			t.Fatal(err)
		}
		api.Gets.Store(0)
		if v := verifyWeights(t, r, f.ro, w); !v.Accepted {
			t.Errorf("Verify after the write reads the stale cache's subsets: %s", v.Message)
		}
		if api.Gets.Load() != 2 {
			t.Errorf("Verify read the API server %d times, want once per object written", api.Gets.Load())
		}
	})

	t.Run("someone else wrote after the cached copy", func(t *testing.T) {
		f := newCacheFixture(t, e)
		r := &istio.Router{Client: e.Client, Reader: frozen(t, f), APIReader: e.Client}
		other := stored(t, e.Client, istio.KindVirtualService, f.ns, "web")
		other.SetLabels(map[string]string{"edited-by": "someone-else"})
		if err := e.Client.Update(ctx, other); err != nil {
			t.Fatal(err)
		}
		w := providers.Weights{Stable: 70, Canary: 30}
		if err := r.SetWeights(ctx, f.ro, w); err != nil {
			t.Fatalf("SetWeights over a stale cache must retry from the API server: %v", err)
		}
		if stored(t, e.Client, istio.KindVirtualService, f.ns, "web").GetLabels()["edited-by"] != "someone-else" {
			t.Error("the newer change was overwritten from the stale copy")
		}
		verifyWeights(t, &istio.Router{Client: e.Client}, f.ro, w)
	})

	t.Run("not in the cache yet", func(t *testing.T) {
		f := newCacheFixture(t, e)
		r := &istio.Router{Client: e.Client, Reader: &frozenReader{}, APIReader: e.Client}
		verifyWeights(t, r, f.ro, providers.Weights{Stable: 100})
	})

	t.Run("missing everywhere", func(t *testing.T) {
		f := newCacheFixture(t, e)
		ro := f.ro.DeepCopy()
		ro.Spec.Strategy.Canary.TrafficRouting.Istio.VirtualService.Name = "no-such-vs"
		r := &istio.Router{Client: e.Client, Reader: &frozenReader{}, APIReader: e.Client}
		_, err := r.Verify(ctx, ro)
		var re *providers.RouteError
		if !errors.As(err, &re) || re.Reason != istio.ReasonVirtualServiceNotFound {
			t.Errorf("Verify of a missing VirtualService: %v, want a RouteError %s", err, istio.ReasonVirtualServiceNotFound)
		}
	})
}
