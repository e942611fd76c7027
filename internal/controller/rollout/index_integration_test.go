package rollout_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers/gatewayapi"
)

// TestRolloutIndexOnEachKindOfCache feeds the index from a real API server through both kinds
// of cache kulta-controller makes: the cluster-wide one, and the multi-namespace one of
// --namespaces (whose informer is a wrapper of one informer per namespace). Each maps a
// Service to the Rollouts naming it in the namespaces it watches, follows a Rollout's change
// of route, and drops a Rollout once it is deleted.
func TestRolloutIndexOnEachKindOfCache(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	nsA, nsB, nsOther := e.CreateNamespace(t, "index-a"), e.CreateNamespace(t, "index-b"), e.CreateNamespace(t, "index-other")

	gw := gatewayapi.NewProvider(nil, gatewayapi.Capabilities{HTTPRoute: true})
	indexes := map[string]*rollout.Index{}
	for name, namespaces := range map[string][]string{"cluster-wide": nil, "multi-namespace": {nsA, nsB}} {
		opts, err := rollout.CacheOptions(gw)
		g.Expect(err).NotTo(HaveOccurred())
		opts.Scheme = e.Scheme
		if namespaces != nil {
			opts.DefaultNamespaces = map[string]cache.Config{}
			for _, ns := range namespaces {
				opts.DefaultNamespaces[ns] = cache.Config{}
			}
		}
		c, err := cache.New(e.Config, opts)
		g.Expect(err).NotTo(HaveOccurred())
		r, err := rollout.WatchIndex(ctx, c, gw)
		g.Expect(err).NotTo(HaveOccurred(), name)
		go func() {
			if err := c.Start(ctx); err != nil {
				t.Errorf("%s cache: %v", name, err)
			}
		}()
		g.Expect(c.WaitForCacheSync(ctx)).To(BeTrue(), name)
		indexes[name] = r
	}

	for _, ns := range []string{nsA, nsB, nsOther} {
		g.Expect(e.Client.Create(ctx, testutil.Rollout(ns, "web", testutil.WithHTTPRoute("front")))).To(Succeed())
	}
	byService := func(r *rollout.Index, ns string) []string {
		return r.ByService(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-stable"}})
	}
	byRoute := func(r *rollout.Index, ns, name string) []string {
		route := gatewayapi.RouteObject("HTTPRoute")
		route.SetNamespace(ns)
		route.SetName(name)
		return r.ByWatched(ctx, gw.Watches[0], route)
	}
	for name, r := range indexes {
		g.Eventually(func() []string { return byService(r, nsA) }).WithTimeout(timeout).Should(Equal([]string{nsA + "/web"}), name)
		g.Eventually(func() []string { return byRoute(r, nsB, "front") }).WithTimeout(timeout).Should(Equal([]string{nsB + "/web"}), name)
	}
	g.Eventually(func() []string { return byService(indexes["cluster-wide"], nsOther) }).WithTimeout(timeout).
		Should(Equal([]string{nsOther + "/web"}), "the cluster-wide cache sees every namespace")
	g.Expect(byService(indexes["multi-namespace"], nsOther)).To(BeEmpty(), "the multi-namespace cache sees only its namespaces")

	// nsB's Rollout moves to another route; nsA's is deleted (KULTA's finalizer runs first).
	moved := &kultav1alpha1.Rollout{}
	g.Expect(e.Client.Get(ctx, client.ObjectKey{Namespace: nsB, Name: "web"}, moved)).To(Succeed())
	g.Expect(e.Client.Patch(ctx, moved, client.RawPatch(types.MergePatchType,
		[]byte(`{"spec":{"strategy":{"canary":{"trafficRouting":{"gatewayAPI":{"httpRoute":"back"}}}}}}`)))).To(Succeed())
	g.Expect(e.Client.Delete(ctx, &kultav1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: nsA, Name: "web"}})).To(Succeed())
	for name, r := range indexes {
		g.Eventually(func() []string { return byRoute(r, nsB, "back") }).WithTimeout(timeout).Should(Equal([]string{nsB + "/web"}), name)
		g.Expect(byRoute(r, nsB, "front")).To(BeEmpty(), name+": the route the Rollout left")
		g.Eventually(func() []string { return byService(r, nsA) }).WithTimeout(timeout).Should(BeEmpty(), name+": a deleted Rollout")
	}
}
