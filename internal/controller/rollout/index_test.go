package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	kultascheme "github.com/false-systems/kulta/internal/scheme"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/gatewayapi"
)

// TestRolloutIndexMapsObjectsToRollouts feeds the index as the Rollout informer does (packed
// Rollouts, then changes and deletions) and checks the lookups the watches make: a Service or a
// Deployment maps to the Rollouts of its own namespace that name it, a route to the Rollouts of
// any namespace that route through it, each Rollout once; a Rollout changed or deleted leaves
// the keys it no longer has.
func TestRolloutIndexMapsObjectsToRollouts(t *testing.T) {
	gw := gatewayapi.NewProvider(nil, gatewayapi.Capabilities{HTTPRoute: true})
	r := &Reconciler{Providers: []providers.Provider{gw}}
	r.index = newRolloutIndex(r.indexKeysOf)
	packed := func(ro *kultav1alpha1.Rollout) client.Object {
		t.Helper()
		cached, err := packRollout(ro)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := cached.(*packedRollout); !ok {
			t.Fatalf("Rollout %s/%s cached as %T, want it packed", ro.Namespace, ro.Name, cached)
		}
		return cached.(client.Object)
	}
	// shop/web and shop/api share a route; edge/web has Services of the same names as
	// shop/web's, in its own namespace, and routes through shop's route too; shop/adopter
	// adopts a Deployment.
	r.index.set(packed(testutil.Rollout("shop", "web", testutil.WithHTTPRoute("front"))))
	r.index.set(packed(testutil.Rollout("shop", "api", testutil.WithHTTPRoute("front"))))
	edge := testutil.Rollout("edge", "web")
	edge.Spec.Strategy.Canary.TrafficRouting = &kultav1alpha1.TrafficRouting{GatewayAPI: &kultav1alpha1.GatewayAPIRouting{
		Routes: []kultav1alpha1.RouteReference{{Name: "front", Namespace: "shop"}}}}
	r.index.set(packed(edge))
	adopter := testutil.Rollout("shop", "adopter")
	adopter.Spec.WorkloadRef = &kultav1alpha1.WorkloadRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "legacy"}
	r.index.set(packed(adopter))

	ctx := context.Background()
	names := func(reqs []reconcile.Request) []string {
		out := requestNames(reqs)
		sort.Strings(out)
		return out
	}
	service := func(ns, name string) client.Object {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}
	deployment := func(ns, name string) client.Object {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}
	route := func(ns, name string) client.Object {
		rt := gatewayapi.RouteObject("HTTPRoute")
		rt.SetNamespace(ns)
		rt.SetName(name)
		return rt
	}
	check := func(when string, cases []struct {
		what string
		got  []reconcile.Request
		want []string
	}) {
		t.Helper()
		for _, c := range cases {
			if got := names(c.got); !slices.Equal(got, c.want) {
				t.Errorf("%s: %s maps to %v, want %v", when, c.what, got, c.want)
			}
		}
	}
	byName, byRoute := r.rolloutsNaming(byService), r.rolloutsReading(gw.Watches[0])
	check("indexed", []struct {
		what string
		got  []reconcile.Request
		want []string
	}{
		{"shop's Service web-stable", byName(ctx, service("shop", "web-stable")), []string{"shop/web"}},
		{"edge's Service web-canary", byName(ctx, service("edge", "web-canary")), []string{"edge/web"}},
		{"a Service no Rollout names", byName(ctx, service("other", "web-stable")), nil},
		{"a Deployment named as a Service", r.rolloutsNaming(byWorkload)(ctx, deployment("shop", "web-stable")), nil},
		{"the adopted Deployment", r.rolloutsNaming(byWorkload)(ctx, deployment("shop", "legacy")), []string{"shop/adopter"}},
		{"a Deployment of that name elsewhere", r.rolloutsNaming(byWorkload)(ctx, deployment("edge", "legacy")), nil},
		{"shop's route", byRoute(ctx, route("shop", "front")), []string{"edge/web", "shop/api", "shop/web"}},
		{"a route of that name elsewhere", byRoute(ctx, route("edge", "front")), nil},
	})

	// shop/api moves to another route; edge/web is deleted; shop/adopter's deletion is missed
	// by the informer, which hands over its last state; shop/web is changed into one that
	// cannot be read.
	r.index.set(packed(testutil.Rollout("shop", "api", testutil.WithHTTPRoute("back"))))
	for _, deleted := range []any{packed(edge), toolscache.DeletedFinalStateUnknown{Key: "shop/adopter", Obj: packed(adopter)}} {
		if err := r.index.remove(deleted); err != nil {
			t.Fatal(err)
		}
	}
	// What the informer never gives is refused by name, and removes nothing.
	for _, odd := range []any{toolscache.DeletedFinalStateUnknown{Key: "a/b/c"}, "shop/api"} {
		if err := r.index.remove(odd); err == nil {
			t.Errorf("removing %#v did not fail", odd)
		}
	}
	broken := packed(testutil.Rollout("shop", "web", testutil.WithHTTPRoute("front"))).(*packedRollout)
	broken.spec = []byte(`{"replicas":"three"}`)
	r.index.set(broken)
	check("after the changes", []struct {
		what string
		got  []reconcile.Request
		want []string
	}{
		{"shop's route", byRoute(ctx, route("shop", "front")), nil},
		{"shop's other route", byRoute(ctx, route("shop", "back")), []string{"shop/api"}},
		{"shop/api's Service", byName(ctx, service("shop", "api-stable")), []string{"shop/api"}},
		{"a deleted Rollout's Service", byName(ctx, service("edge", "web-canary")), nil},
		{"the Deployment of a Rollout whose deletion was missed", r.rolloutsNaming(byWorkload)(ctx, deployment("shop", "legacy")), nil},
		{"the Service of a Rollout that cannot be read", byName(ctx, service("shop", "web-stable")), nil},
	})
	// A lookup of several keys (an object a provider knows by more than one) gives each Rollout
	// once.
	if got := r.index.lookup(byService, "shop/api-stable", "shop/api-canary", "shop/none"); len(got) != 1 || got[0].String() != "shop/api" {
		t.Errorf("shop/api's two Services together map to %v, want shop/api once", got)
	}
	// Only shop/api is left: its two Services and its route, nothing of the others.
	if len(r.index.keys) != 1 || len(r.index.rollouts) != 3 {
		t.Errorf("index left with Rollouts %v and keys %v, want shop/api under its two Services and its route", r.index.keys, r.index.rollouts)
	}
}

// BenchmarkRolloutIndex reports the heap an informer's store of a thousand packed Rollouts
// keeps with the index the watches read: controller-runtime's field indexes, as KULTA had them
// (the index functions taken from a real, unstarted controller-runtime cache), against the
// store alone plus rolloutIndex.
func BenchmarkRolloutIndex(b *testing.B) {
	const n = 1000
	raw, err := testutil.ReadUnstructured(b, "testdata/cached-rollout.yaml").MarshalJSON()
	if err != nil {
		b.Fatal(err)
	}
	rollouts := make([]client.Object, n)
	for i := range rollouts {
		var ro kultav1alpha1.Rollout
		if err := json.Unmarshal(raw, &ro); err != nil {
			b.Fatal(err)
		}
		ro.Namespace, ro.Name = fmt.Sprintf("bench-%03d", i%10), fmt.Sprintf("ro-%05d", i)
		ro.Spec.Strategy.Canary.StableService, ro.Spec.Strategy.Canary.CanaryService = ro.Name+"-stable", ro.Name+"-canary"
		ro.Spec.Strategy.Canary.TrafficRouting.GatewayAPI.HTTPRoute = ro.Name
		cached, err := packRollout(&ro)
		if err != nil {
			b.Fatal(err)
		}
		rollouts[i] = cached.(client.Object)
	}
	r := &Reconciler{Providers: []providers.Provider{gatewayapi.NewProvider(nil, gatewayapi.Capabilities{HTTPRoute: true})}}
	fieldIndexers := controllerRuntimeFieldIndexers(b, r)

	for _, c := range []struct {
		name string
		// index makes a store with its index, and gives the function that adds a Rollout.
		index func() (any, func(client.Object) error)
	}{
		{"field-indexes", func() (any, func(client.Object) error) {
			store := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, fieldIndexers)
			return store, func(obj client.Object) error { return store.Add(obj) }
		}},
		{"rollout-index", func() (any, func(client.Object) error) {
			store := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, toolscache.Indexers{})
			index := newRolloutIndex(r.indexKeysOf)
			return []any{store, index}, func(obj client.Object) error {
				index.set(obj)
				return store.Add(obj)
			}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			testutil.ReportRetainedBy(b, n, "B/rollout", func() (any, error) {
				held, add := c.index()
				for _, ro := range rollouts {
					if err := add(ro); err != nil {
						return nil, err
					}
				}
				return held, nil
			})
		})
	}
}

// controllerRuntimeFieldIndexers gives the index functions controller-runtime makes of the
// field indexes KULTA registered before rolloutIndex, from a cache that is never started.
func controllerRuntimeFieldIndexers(b *testing.B, r *Reconciler) toolscache.Indexers {
	b.Helper()
	mapper := meta.NewDefaultRESTMapper(nil)
	mapper.Add(kultav1alpha1.GroupVersion.WithKind("Rollout"), meta.RESTScopeNamespace)
	scheme, err := kultascheme.New()
	if err != nil {
		b.Fatal(err)
	}
	c, err := cache.New(&rest.Config{Host: "http://127.0.0.1:1"}, cache.Options{Scheme: scheme, Mapper: mapper})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for name, keys := range map[string]client.IndexerFunc{
		"kulta.io/services":      serviceNamesOf,
		"kulta.io/workload":      workloadNameOf,
		"kulta.io/provider-keys": r.providerKeysOf,
	} {
		if err := c.IndexField(ctx, &kultav1alpha1.Rollout{}, name, keys); err != nil {
			b.Fatal(err)
		}
	}
	inf, err := c.GetInformer(ctx, &kultav1alpha1.Rollout{}, cache.BlockUntilSynced(false))
	if err != nil {
		b.Fatal(err)
	}
	shared, ok := inf.(toolscache.SharedIndexInformer)
	if !ok {
		b.Fatalf("controller-runtime's informer is a %T", inf)
	}
	return shared.GetIndexer().GetIndexers()
}
