package rollout_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apinetworkingv1 "istio.io/api/networking/v1"
	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
)

// vsWeights reads the weights the VirtualService's route "primary" gives shop-stable and
// shop-canary.
func vsWeights(ns string) func() providers.Weights {
	return func() providers.Weights {
		vs := &istionetworkingv1.VirtualService{}
		if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "shop"}, vs); err != nil {
			return providers.Weights{Stable: -1, Canary: -1}
		}
		var w providers.Weights
		for _, route := range vs.Spec.Http {
			if route.Name != "primary" {
				continue
			}
			for _, d := range route.Route {
				switch d.Destination.Host {
				case "shop-stable":
					w.Stable = d.Weight
				case "shop-canary":
					w.Canary = d.Weight
				}
			}
		}
		return w
	}
}

// TestGatewayAndIstioTogether runs one canary over an HTTPRoute (north-south) and a
// VirtualService (the mesh) at once: each step reaches both before it counts, and both end on
// stable.
func TestGatewayAndIstioTogether(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "twoproviders")
	g.Expect(e.Client.Create(ctx, service(ns, "shop-stable", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "shop-canary", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, rollouttest.Route(ns, "shop", "shop-stable", "shop-canary"))).To(Succeed())
	vs := &istionetworkingv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"},
		Spec: apinetworkingv1.VirtualService{Hosts: []string{"shop"}, Http: []*apinetworkingv1.HTTPRoute{{
			Name:    "primary",
			Retries: &apinetworkingv1.HTTPRetry{Attempts: 3},
			Route: []*apinetworkingv1.HTTPRouteDestination{
				{Destination: &apinetworkingv1.Destination{Host: "shop-stable"}, Weight: 100},
				{Destination: &apinetworkingv1.Destination{Host: "shop-canary"}, Weight: 0},
			},
		}}},
	}
	g.Expect(e.Client.Create(ctx, vs)).To(Succeed())
	ro := testutil.Rollout(ns, "shop", testutil.WithReplicas(2), testutil.WithHTTPRoute("shop"),
		testutil.WithCanarySteps(testutil.Weight(40), testutil.PauseUntilPromoted(), testutil.Weight(100)))
	ro.Spec.Strategy.Canary.TrafficRouting.Istio = &kultav1alpha1.IstioRouting{
		VirtualService: &kultav1alpha1.IstioVirtualService{Name: "shop", Routes: []string{"primary"}},
	}
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)

	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](1))
	at40 := providers.Weights{Stable: 60, Canary: 40}
	g.Expect(routeWeights(ns, "shop")()).To(Equal(at40), "the HTTPRoute carries the step")
	g.Expect(vsWeights(ns)()).To(Equal(at40), "the VirtualService carries the step")
	got := &istionetworkingv1.VirtualService{}
	g.Expect(e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shop"}, got)).To(Succeed())
	g.Expect(got.Spec.Http[0].Retries.GetAttempts()).To(Equal(int32(3)), "the route's other settings stay")

	annotate(t, ro, kultav1alpha1.PromoteAnnotation)
	g.Eventually(func(g Gomega) {
		got := getRollout(g, ro)
		g.Expect(got.Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted))
		g.Expect(got.Status.StablePodTemplateHash).To(Equal(got.Status.CurrentPodTemplateHash))
	}).WithTimeout(timeout).Should(Succeed())
	g.Eventually(routeWeights(ns, "shop")).WithTimeout(timeout).Should(Equal(providers.Weights{Stable: 100}))
	g.Eventually(vsWeights(ns)).WithTimeout(timeout).Should(Equal(providers.Weights{Stable: 100}))
	g.Eventually(func(g Gomega) metav1.ConditionStatus {
		return meta(getRollout(g, ro), kultav1alpha1.ConditionTrafficRouted).Status
	}).WithTimeout(timeout).Should(Equal(metav1.ConditionTrue))
}

// TestAbortReachesEveryProviderWhenOneFails aborts a canary routed by Gateway API and Istio
// while the API server refuses every change to the HTTPRoute: the Rollout is Stalled naming
// the route, and the VirtualService, which the abort can still reach, goes back to all-stable
// at once instead of waiting for the route; once the route may change it follows.
func TestAbortReachesEveryProviderWhenOneFails(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "abortonebroken")
	g.Expect(e.Client.Create(ctx, service(ns, "shop-stable", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "shop-canary", map[string]string{"app": "shop"}))).To(Succeed())
	route := rollouttest.Route(ns, "shop", "shop-stable", "shop-canary")
	g.Expect(e.Client.Create(ctx, route)).To(Succeed())
	g.Expect(e.Client.Create(ctx, &istionetworkingv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"},
		Spec: apinetworkingv1.VirtualService{Hosts: []string{"shop"}, Http: []*apinetworkingv1.HTTPRoute{{
			Name: "primary",
			Route: []*apinetworkingv1.HTTPRouteDestination{
				{Destination: &apinetworkingv1.Destination{Host: "shop-stable"}, Weight: 100},
				{Destination: &apinetworkingv1.Destination{Host: "shop-canary"}, Weight: 0},
			},
		}}},
	})).To(Succeed())
	ro := testutil.Rollout(ns, "shop", testutil.WithReplicas(2), testutil.WithHTTPRoute("shop"),
		testutil.WithCanarySteps(testutil.Weight(40), testutil.PauseUntilPromoted()))
	ro.Spec.Strategy.Canary.TrafficRouting.Istio = &kultav1alpha1.IstioRouting{
		VirtualService: &kultav1alpha1.IstioVirtualService{Name: "shop", Routes: []string{"primary"}},
	}
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](1))
	at40 := providers.Weights{Stable: 60, Canary: 40}
	g.Expect(vsWeights(ns)()).To(Equal(at40))

	denyUpdates(t, g, ns, "gateway.networking.k8s.io", "httproutes", "object.spec == oldObject.spec", "the routes are frozen")
	// In force once a change of the route is refused.
	g.Eventually(func() bool {
		patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"hostnames":["probe.example"]}}`))
		return apierrors.IsInvalid(e.Client.Patch(ctx, route.DeepCopy(), patch, client.DryRunAll))
	}).WithTimeout(timeout).Should(BeTrue())

	annotate(t, ro, kultav1alpha1.AbortAnnotation)
	g.Eventually(vsWeights(ns)).WithTimeout(timeout).Should(Equal(providers.Weights{Stable: 100}), "the VirtualService goes back to stable")
	g.Eventually(func(g Gomega) {
		stalled := meta(getRollout(g, ro), kultav1alpha1.ConditionStalled)
		g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(stalled.Reason).To(Equal("WriteRejected"))
		g.Expect(stalled.Message).To(ContainSubstring("HTTPRoute " + ns + "/shop"))
	}).WithTimeout(timeout).Should(Succeed())
	g.Expect(routeWeights(ns, "shop")()).To(Equal(at40), "the frozen route kept its weights")

	allowUpdates(t, g, ns)
	g.Eventually(routeWeights(ns, "shop")).WithTimeout(timeout).Should(Equal(providers.Weights{Stable: 100}))
}

// TestRouteKultaCannotWriteStalls: a canary's header route on a VirtualService whose managed
// route already matches that header with another value cannot be written (Istio would need two
// conditions on one header). The Rollout is Stalled with the router's reason, naming the
// header, and no weight moves; once the user drops the route's own condition, the canary goes
// on.
func TestRouteKultaCannotWriteStalls(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "unwritable")
	g.Expect(e.Client.Create(ctx, service(ns, "shop-stable", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "shop-canary", map[string]string{"app": "shop"}))).To(Succeed())
	vs := &istionetworkingv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"},
		Spec: apinetworkingv1.VirtualService{Hosts: []string{"shop"}, Http: []*apinetworkingv1.HTTPRoute{{
			Name: "primary",
			Match: []*apinetworkingv1.HTTPMatchRequest{{Headers: map[string]*apinetworkingv1.StringMatch{
				"x-canary": {MatchType: &apinetworkingv1.StringMatch_Exact{Exact: "internal"}},
			}}},
			Route: []*apinetworkingv1.HTTPRouteDestination{
				{Destination: &apinetworkingv1.Destination{Host: "shop-stable"}, Weight: 100},
				{Destination: &apinetworkingv1.Destination{Host: "shop-canary"}, Weight: 0},
			},
		}}},
	}
	g.Expect(e.Client.Create(ctx, vs)).To(Succeed())
	ro := testutil.Rollout(ns, "shop", testutil.WithReplicas(2), testutil.WithCanarySteps(
		testutil.HeaderRouteStep("testers", testutil.HeaderExact("X-Canary", "yes")), testutil.Weight(50), testutil.PauseUntilPromoted()),
		testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) {
			c.TrafficRouting = &kultav1alpha1.TrafficRouting{Istio: &kultav1alpha1.IstioRouting{
				VirtualService: &kultav1alpha1.IstioVirtualService{Name: "shop", Routes: []string{"primary"}},
			}}
		}))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	setImage(t, ro, "nginx:1.28")
	g.Eventually(func(g Gomega) {
		stalled := meta(getRollout(g, ro), kultav1alpha1.ConditionStalled)
		g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(stalled.Reason).To(Equal(providers.ReasonUnsupportedMatch))
		g.Expect(stalled.Message).To(ContainSubstring(`already matches header "x-canary"`))
	}).WithTimeout(timeout).Should(Succeed())
	g.Consistently(vsWeights(ns)).WithTimeout(2*time.Second).Should(Equal(providers.Weights{Stable: 100}), "no weight moves")

	g.Expect(e.Client.Get(ctx, client.ObjectKeyFromObject(vs), vs)).To(Succeed())
	vs.Spec.Http[0].Match = nil
	g.Expect(e.Client.Update(ctx, vs)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](2))
	g.Expect(vsWeights(ns)()).To(Equal(providers.Weights{Stable: 50, Canary: 50}))
	g.Expect(meta(getRollout(g, ro), kultav1alpha1.ConditionStalled).Status).To(Equal(metav1.ConditionFalse))
}
