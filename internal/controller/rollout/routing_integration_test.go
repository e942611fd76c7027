package rollout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/internal/metrics"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
)

// richRoute is a user's route with a rule KULTA manages (with matches, a filter and a timeout)
// and rules it must never touch.
func richRoute(ns string) *gatewayv1.HTTPRoute {
	route := rollouttest.Route(ns, "shop", "shop-stable", "shop-canary")
	main := &route.Spec.Rules[0]
	main.Name = ptr.To[gatewayv1.SectionName]("main")
	main.Matches = []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To("/")}}}
	main.Filters = []gatewayv1.HTTPRouteFilter{{
		Type:                  gatewayv1.HTTPRouteFilterRequestHeaderModifier,
		RequestHeaderModifier: &gatewayv1.HTTPHeaderFilter{Add: []gatewayv1.HTTPHeader{{Name: "X-Shop", Value: "1"}}},
	}}
	main.Timeouts = &gatewayv1.HTTPRouteTimeouts{Request: ptr.To[gatewayv1.Duration]("10s")}
	route.Spec.Rules = append(route.Spec.Rules, gatewayv1.HTTPRouteRule{
		Name:    ptr.To[gatewayv1.SectionName]("static"),
		Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To("/static")}}},
		BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
			BackendObjectReference: gatewayv1.BackendObjectReference{Name: "cdn", Port: ptr.To[gatewayv1.PortNumber](80)},
		}}},
	})
	route.Annotations = map[string]string{"owner": "team-shop"}
	return route
}

// withoutWeights is the route spec with the managed weights blanked, to compare what KULTA
// must leave alone.
func withoutWeights(route *gatewayv1.HTTPRoute) string {
	spec := route.Spec.DeepCopy()
	for i := range spec.Rules {
		for j := range spec.Rules[i].BackendRefs {
			if name := spec.Rules[i].BackendRefs[j].Name; name == "shop-stable" || name == "shop-canary" {
				spec.Rules[i].BackendRefs[j].Weight = nil
			}
		}
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%s %v", data, route.Annotations)
}

// TestCanaryWalksUsersRoute drives a canary over the user's HTTPRoute and checks, at every
// version of the route a watch sees, that only the managed weights changed.
func TestCanaryWalksUsersRoute(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "walk")
	g.Expect(e.Client.Create(ctx, service(ns, "shop-stable", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "shop-canary", map[string]string{"app": "shop"}))).To(Succeed())
	route := richRoute(ns)
	g.Expect(e.Client.Create(ctx, route)).To(Succeed())
	g.Expect(e.Client.Get(ctx, client.ObjectKeyFromObject(route), route)).To(Succeed())
	untouched := withoutWeights(route)

	var mu sync.Mutex
	var violations []string
	// The resource version of the write that takes the routes back to 100/0 after the
	// promotion: the stable Service must select the promoted revision before it.
	var toCanary bool
	var resetVersion string
	stopWatch := watchRoute(t, ns, "shop", func(r *gatewayv1.HTTPRoute) {
		mu.Lock()
		defer mu.Unlock()
		if got := withoutWeights(r); got != untouched {
			violations = append(violations, got)
		}
		w, ok := rollouttest.RouteWeights(r, "shop-stable", "shop-canary")
		switch {
		case !ok:
		case w.Canary > 0:
			toCanary = true
		case toCanary && resetVersion == "" && w == providers.Weights{Stable: 100}:
			resetVersion = r.ResourceVersion
		}
	})
	defer stopWatch()
	weights := rollouttest.WatchWeights(t, env, ns, "shop", "shop-stable", "shop-canary")

	ro := testutil.Rollout(ns, "shop", testutil.WithReplicas(2), testutil.WithHTTPRoute("shop"),
		testutil.WithCanarySteps(testutil.Weight(20), testutil.PauseFor("1s"), testutil.Weight(50), testutil.PauseFor("1s"), testutil.Weight(100)))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	first := getRollout(g, ro).Status.StablePodTemplateHash
	setImage(t, ro, "nginx:1.28")
	waitNewStable(g, ro, first)
	g.Eventually(weights).WithTimeout(timeout).Should(Equal([]providers.Weights{
		// The last step, 100, is the promotion itself: the stable Service is pointed at the
		// canary's Pods, then the routes go back to 100/0, without a 0/100 between.
		{Stable: 100}, {Stable: 80, Canary: 20}, {Stable: 50, Canary: 50}, {Stable: 100},
	}))
	g.Eventually(func(g Gomega) metav1.ConditionStatus {
		return meta(getRollout(g, ro), kultav1alpha1.ConditionTrafficRouted).Status
	}).WithTimeout(timeout).Should(Equal(metav1.ConditionTrue))

	// Promotion pins the stable Service to the new revision before the routes go back to
	// 100/0; the other order would send every user to the old Pods for a moment. Resource
	// versions here are etcd's revisions, which order the writes of every kind.
	promoted := getRollout(g, ro).Status.StablePodTemplateHash
	stable := &corev1.Service{}
	g.Expect(e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shop-stable"}, stable)).To(Succeed())
	g.Expect(stable.Spec.Selector).To(HaveKeyWithValue(kultav1alpha1.PodTemplateHashLabel, promoted))
	mu.Lock()
	defer mu.Unlock()
	g.Expect(violations).To(BeEmpty(), "only the managed weights may change")
	g.Expect(resetVersion).NotTo(BeEmpty(), "the watch saw the routes go from 50/50 to 100/0")
	pinnedAt, err := strconv.ParseInt(stable.ResourceVersion, 10, 64)
	g.Expect(err).NotTo(HaveOccurred())
	resetAt, err := strconv.ParseInt(resetVersion, 10, 64)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(pinnedAt).To(BeNumerically("<", resetAt), "the stable Service is repinned before the routes are reset")
}

// watchRoute calls fn for every version of one HTTPRoute; the returned function stops it.
func watchRoute(t *testing.T, ns, name string, fn func(*gatewayv1.HTTPRoute)) func() {
	t.Helper()
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(context.Background(), &gatewayv1.HTTPRouteList{}, client.InNamespace(ns), client.MatchingFields{"metadata.name": name})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if r, ok := ev.Object.(*gatewayv1.HTTPRoute); ok && (ev.Type == watch.Added || ev.Type == watch.Modified) {
				fn(r)
			}
		}
	}()
	return func() { w.Stop(); <-done }
}

func TestRouteProblemsStallWithoutWriting(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	ctx := context.Background()
	cases := map[string]struct {
		route  func(ns string) (client.Object, string)
		ref    func(ns string) kultav1alpha1.RouteReference
		reason string
		fix    func(t *testing.T, ns, routeNS string)
	}{
		"route without the Services": {
			route: func(ns string) (client.Object, string) {
				return rollouttest.Route(ns, "shop", "other-stable", "other-canary"), ns
			},
			ref:    func(ns string) kultav1alpha1.RouteReference { return kultav1alpha1.RouteReference{Name: "shop"} },
			reason: "RouteDoesNotReferenceServices",
		},
		"route in a namespace without a grant": {
			route: func(ns string) (client.Object, string) {
				routeNS := e.CreateNamespace(t, "routes")
				r := rollouttest.Route(routeNS, "shop", "shop-stable", "shop-canary")
				for i := range r.Spec.Rules[0].BackendRefs {
					r.Spec.Rules[0].BackendRefs[i].Namespace = ptr.To(gatewayv1.Namespace(ns))
				}
				return r, routeNS
			},
			ref:    func(ns string) kultav1alpha1.RouteReference { return kultav1alpha1.RouteReference{Name: "shop"} },
			reason: "RouteNotPermitted",
			fix: func(t *testing.T, ns, routeNS string) {
				grant := &gatewayv1beta1.ReferenceGrant{
					ObjectMeta: metav1.ObjectMeta{Namespace: routeNS, Name: "kulta"},
					Spec: gatewayv1beta1.ReferenceGrantSpec{
						From: []gatewayv1beta1.ReferenceGrantFrom{{Group: "kulta.io", Kind: "Rollout", Namespace: gatewayv1beta1.Namespace(ns)}},
						To:   []gatewayv1beta1.ReferenceGrantTo{{Group: "gateway.networking.k8s.io", Kind: "HTTPRoute"}},
					},
				}
				if err := e.Client.Create(ctx, grant); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			ns := e.CreateNamespace(t, "badroute")
			g.Expect(e.Client.Create(ctx, service(ns, "shop-stable", map[string]string{"app": "shop"}))).To(Succeed())
			g.Expect(e.Client.Create(ctx, service(ns, "shop-canary", map[string]string{"app": "shop"}))).To(Succeed())
			route, routeNS := tc.route(ns)
			g.Expect(e.Client.Create(ctx, route)).To(Succeed())
			ref := tc.ref(ns)
			ref.Namespace = routeNS
			ro := testutil.Rollout(ns, "shop", testutil.WithCanarySteps(testutil.Weight(50)), func(ro *kultav1alpha1.Rollout) {
				ro.Spec.Strategy.Canary.TrafficRouting = &kultav1alpha1.TrafficRouting{GatewayAPI: &kultav1alpha1.GatewayAPIRouting{Routes: []kultav1alpha1.RouteReference{ref}}}
			})
			g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
			g.Eventually(func(g Gomega) {
				stalled := meta(getRollout(g, ro), kultav1alpha1.ConditionStalled)
				g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
				g.Expect(stalled.Reason).To(Equal(tc.reason))
				g.Expect(stalled.Message).To(ContainSubstring(routeNS + "/shop"))
			}).WithTimeout(timeout).Should(Succeed())
			current := &gatewayv1.HTTPRoute{}
			g.Expect(e.Client.Get(ctx, types.NamespacedName{Namespace: routeNS, Name: "shop"}, current)).To(Succeed())
			g.Expect(current.Spec.Rules).To(Equal(route.(*gatewayv1.HTTPRoute).Spec.Rules), "no write to a route KULTA may not use")
			g.Expect(replicaSets(g, ns)).To(BeEmpty())
			if tc.fix != nil {
				tc.fix(t, ns, routeNS)
				waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
			}
		})
	}
}

// TestRouteNotAcceptedHoldsTheStep holds a canary step on a route its Gateway does not accept:
// one the Gateway refuses (Accepted=False), and one whose Gateway controller never answers. The
// second also covers the status write left out after KULTA's own route write, which the routes'
// acceptance normally brings at once: with no acceptance coming, the status must still say so
// within the bound the test manager sets (FoldedStatusBound, 2 s), long before the progress
// deadline. In both the step does not count until the route is accepted.
func TestRouteNotAcceptedHoldsTheStep(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	for name, label := range map[string]string{"refused": rejectLabel, "never answered": rollouttest.IgnoreLabel} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			ctx := context.Background()
			ns := e.CreateNamespace(t, "not-accepted")
			route, ro := pausedCanaryOnRoute(t, g, ns, "shop")

			patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"`+label+`":"true"}}}`))
			g.Expect(e.Client.Patch(ctx, route, patch)).To(Succeed())
			setImage(t, ro, "nginx:1.28")
			g.Eventually(func(g Gomega) {
				got := getRollout(g, ro)
				g.Expect(got.Status.Phase).To(Equal(kultav1alpha1.PhaseProgressing))
				routed := meta(got, kultav1alpha1.ConditionTrafficRouted)
				g.Expect(routed.Status).To(Equal(metav1.ConditionFalse))
				g.Expect(routed.Reason).To(Equal("RouteNotAccepted"))
				g.Expect(routed.Message).To(ContainSubstring("HTTPRoute " + ns + "/shop"))
			}).WithTimeout(10 * time.Second).WithPolling(100 * time.Millisecond).Should(Succeed())
			// A refused route says so before the step's weights are written (they wait for the
			// canary's Pods); they are written all the same.
			g.Eventually(func(g Gomega) {
				stored := &gatewayv1.HTTPRoute{}
				g.Expect(e.Client.Get(ctx, client.ObjectKeyFromObject(route), stored)).To(Succeed())
				weights, found := rollouttest.RouteWeights(stored, "shop-stable", "shop-canary")
				g.Expect(found).To(BeTrue(), "the managed rule")
				g.Expect(weights).To(Equal(providers.Weights{Stable: 70, Canary: 30}), "KULTA wrote the step's weights")
			}).WithTimeout(timeout).Should(Succeed())
			g.Consistently(func(g Gomega) *int32 { return getRollout(g, ro).Status.CurrentStepIndex }).
				WithTimeout(timeoutShort).Should(Equal(ptr.To[int32](0)), "a step is not done until the route is accepted")

			patch = client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"`+label+`":null}}}`))
			g.Expect(e.Client.Patch(ctx, route, patch)).To(Succeed())
			waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](1))
		})
	}
}

// pausedCanaryOnRoute creates app's stable and canary Services, an HTTPRoute named app that
// splits between them, and a Rollout of app on that route with a canary of weight 30 then a
// pause until promoted (opts change it before it is created), and waits for its first revision
// to complete.
func pausedCanaryOnRoute(t *testing.T, g Gomega, ns, app string, opts ...testutil.RolloutOption) (*gatewayv1.HTTPRoute, *kultav1alpha1.Rollout) {
	t.Helper()
	ctx := context.Background()
	g.Expect(env.Client.Create(ctx, service(ns, app+"-stable", map[string]string{"app": app}))).To(Succeed())
	g.Expect(env.Client.Create(ctx, service(ns, app+"-canary", map[string]string{"app": app}))).To(Succeed())
	route := rollouttest.Route(ns, app, app+"-stable", app+"-canary")
	g.Expect(env.Client.Create(ctx, route)).To(Succeed())
	opts = append([]testutil.RolloutOption{testutil.WithHTTPRoute(app), testutil.WithCanarySteps(testutil.Weight(30), testutil.PauseUntilPromoted())}, opts...)
	ro := testutil.Rollout(ns, app, opts...)
	g.Expect(env.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	return route, ro
}

// TestRouteNeverAcceptedRollsBackAtTheDeadline: a Gateway that never accepts the step's route
// generation (as the bench's stand-in, fallen behind four shards at N=10,000, did for ten
// minutes) holds the step until progressDeadlineSeconds, then the Rollout fails and rolls back:
// the route is written back to the stable revision, the stable revision stays, and once the
// Gateway answers again the reset is routed while the Rollout stays Failed.
func TestRouteNeverAcceptedRollsBackAtTheDeadline(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "never-accepted")
	route, ro := pausedCanaryOnRoute(t, g, ns, "pay", func(ro *kultav1alpha1.Rollout) { ro.Spec.ProgressDeadlineSeconds = ptr.To[int32](3) })
	stable := getRollout(g, ro).Status.StablePodTemplateHash

	weights := rollouttest.WatchWeights(t, env, ns, "pay", "pay-stable", "pay-canary")
	ignore := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"`+rollouttest.IgnoreLabel+`":"true"}}}`))
	g.Expect(e.Client.Patch(ctx, route, ignore)).To(Succeed())
	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhaseFailed, nil)
	failed := getRollout(g, ro)
	g.Expect(meta(failed, kultav1alpha1.ConditionProgressing).Reason).To(Equal("ProgressDeadlineExceeded"))
	g.Expect(failed.Status.Message).To(And(ContainSubstring("progressDeadlineSeconds 3"), ContainSubstring("HTTPRoute "+ns+"/pay"), ContainSubstring("not yet accepted")))
	g.Expect(failed.Status.StablePodTemplateHash).To(Equal(stable), "the stable revision stays")
	g.Eventually(weights).WithTimeout(timeout).Should(Equal([]providers.Weights{{Stable: 100}, {Stable: 70, Canary: 30}, {Stable: 100}}),
		"the step's weights were written, then the rollback wrote the route back to the stable revision")

	answer := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"`+rollouttest.IgnoreLabel+`":null}}}`))
	g.Expect(e.Client.Patch(ctx, route, answer)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getRollout(g, ro)
		g.Expect(meta(got, kultav1alpha1.ConditionTrafficRouted).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(got.Status.Phase).To(Equal(kultav1alpha1.PhaseFailed))
		g.Expect(got.Status.StablePodTemplateHash).To(Equal(stable))
	}).WithTimeout(timeout).Should(Succeed())
}

// TestLateAcceptanceWritesNoWaitingStatus runs a canary whose Gateway takes a moment to
// accept each route generation (testenv.LateAcceptance), as real ones do. The watch event of
// KULTA's own route write reconciles the Rollout before that acceptance; the status it would
// write then only says the route is not accepted yet, and is left to the acceptance's
// reconcile (within FoldedStatusBound). So no version of the Rollout says RouteNotAccepted, and
// the wave takes no more status writes than with a Gateway that accepts at once. That a Gateway
// which never accepts still shows is TestRouteNotAcceptedHoldsTheStep.
func TestLateAcceptanceWritesNoWaitingStatus(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "late-accept")
	g.Expect(e.Client.Create(ctx, service(ns, "shop-stable", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "shop-canary", map[string]string{"app": "shop"}))).To(Succeed())
	route := rollouttest.Route(ns, "shop", "shop-stable", "shop-canary")
	route.Labels = map[string]string{rollouttest.LateLabel: "true"}
	g.Expect(e.Client.Create(ctx, route)).To(Succeed())
	ro := testutil.Rollout(ns, "shop", testutil.WithHTTPRoute("shop"), testutil.WithCanarySteps(testutil.Weight(30), testutil.Weight(60), testutil.Weight(100)))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	g.Eventually(func(g Gomega) string { return meta(getRollout(g, ro), kultav1alpha1.ConditionTrafficRouted).Reason }).
		WithTimeout(timeout).Should(Equal("RoutesAccepted"))
	first := getRollout(g, ro).Status.StablePodTemplateHash
	weights := rollouttest.WatchWeights(t, e, ns, "shop", "shop-stable", "shop-canary")
	versions := rollouttest.WatchRollout(t, e, ns, "shop")

	setImage(t, ro, "nginx:1.28")
	waitNewStable(g, ro, first)
	g.Eventually(weights).WithTimeout(timeout).Should(Equal([]providers.Weights{{Stable: 100}, {Stable: 70, Canary: 30}, {Stable: 40, Canary: 60}, {Stable: 100}}))
	// The watch may deliver the last versions after the reads above saw them.
	var waits []string
	g.Eventually(func(g Gomega) {
		var steps []string
		waits = nil
		for _, v := range versions() {
			if v.Status.CurrentPodTemplateHash == first {
				continue // before the wave
			}
			if routed := meta(v, kultav1alpha1.ConditionTrafficRouted); routed.Reason == "RouteNotAccepted" {
				waits = append(waits, v.ResourceVersion+": "+routed.Message)
			}
			if i := v.Status.CurrentStepIndex; i != nil && (len(steps) == 0 || steps[len(steps)-1] != fmt.Sprint(*i)) {
				steps = append(steps, fmt.Sprint(*i))
			}
		}
		g.Expect(steps).To(Equal([]string{"0", "1", "3"}), "each step recorded once, the last one (100) being the promotion")
	}).WithTimeout(timeout).Should(Succeed())
	// Without the fold each of the three route writes, the promotion's among them, is followed
	// by such a write.
	g.Expect(waits).To(BeEmpty(), "versions that wrote the wait for the acceptance")
}

// TestPromotionWaitsForAcceptanceUnwritten promotes a canary while its Gateway leaves the routes'
// reset to 100/0 unanswered: the promotion's status (Completed, TrafficRouted True, since every
// request already reaches the new revision) stands while KULTA waits FoldedStatusBound (2 s in
// rollouttest) for the acceptance, as after a step's weights, and only then says the routes
// are not accepted. A promotion judged as a drift of the routes wrote that at once.
func TestPromotionWaitsForAcceptanceUnwritten(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "promote-pending")
	g.Expect(e.Client.Create(ctx, service(ns, "shop-stable", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "shop-canary", map[string]string{"app": "shop"}))).To(Succeed())
	route := rollouttest.Route(ns, "shop", "shop-stable", "shop-canary")
	g.Expect(e.Client.Create(ctx, route)).To(Succeed())
	ro := testutil.Rollout(ns, "shop", testutil.WithHTTPRoute("shop"),
		testutil.WithCanarySteps(testutil.Weight(30), testutil.PauseUntilPromoted(), testutil.Weight(100)))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	first := getRollout(g, ro).Status.StablePodTemplateHash
	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](1))

	label := func(value string) {
		patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"`+rollouttest.IgnoreLabel+`":`+value+`}}}`))
		g.Expect(e.Client.Patch(ctx, route, patch)).To(Succeed())
	}
	label(`"true"`)
	annotate(t, ro, kultav1alpha1.PromoteAnnotation)
	waitNewStable(g, ro, first)
	// Half a second of the 2 s bound, which began before waitNewStable saw the promotion.
	g.Consistently(func(g Gomega) string { return meta(getRollout(g, ro), kultav1alpha1.ConditionTrafficRouted).Reason }).
		WithTimeout(500*time.Millisecond).Should(Equal("RoutesAccepted"), "the reset's pending acceptance was written before the bound")
	g.Eventually(func(g Gomega) string { return meta(getRollout(g, ro), kultav1alpha1.ConditionTrafficRouted).Reason }).
		WithTimeout(timeout).Should(Equal("RouteNotAccepted"), "after the bound an unanswered reset shows")
	label("null")
	g.Eventually(func(g Gomega) string { return meta(getRollout(g, ro), kultav1alpha1.ConditionTrafficRouted).Reason }).
		WithTimeout(timeout).Should(Equal("RoutesAccepted"))
}

func TestDriftIsCorrected(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "drift")
	g.Expect(e.Client.Create(ctx, service(ns, "shop-stable", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "shop-canary", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, rollouttest.Route(ns, "shop", "shop-stable", "shop-canary"))).To(Succeed())
	ro := testutil.Rollout(ns, "shop", testutil.WithHTTPRoute("shop"), testutil.WithCanarySteps(testutil.Weight(40), testutil.PauseUntilPromoted()))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](1))

	// A GitOps sync applies the manifest's 100/0 again.
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		route := &gatewayv1.HTTPRoute{}
		if err := e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shop"}, route); err != nil {
			return err
		}
		route.Spec.Rules[0].BackendRefs[0].Weight = ptr.To[int32](100)
		route.Spec.Rules[0].BackendRefs[1].Weight = ptr.To[int32](0)
		return e.Client.Update(ctx, route)
	})).To(Succeed())

	g.Eventually(func(g Gomega) providers.Weights {
		r := &gatewayv1.HTTPRoute{}
		g.Expect(e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shop"}, r)).To(Succeed())
		w, _ := rollouttest.RouteWeights(r, "shop-stable", "shop-canary")
		return w
	}).WithTimeout(timeout).Should(Equal(providers.Weights{Stable: 60, Canary: 40}))
	g.Eventually(func(g Gomega) []string {
		var list eventsv1.EventList
		g.Expect(e.Client.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		var reasons []string
		for _, ev := range list.Items {
			reasons = append(reasons, ev.Reason)
		}
		return reasons
	}).WithTimeout(timeout).Should(ContainElement("TrafficDriftCorrected"))
	g.Expect(driftCount(g, ns, "shop")).To(BeNumerically(">=", 1))
	g.Expect(getRollout(g, ro).Status.CurrentStepIndex).To(Equal(ptr.To[int32](1)), "drift neither resets nor advances the rollout")
}

// timeoutShort bounds Consistently checks.
const timeoutShort = 2 * time.Second

func driftCount(g Gomega, ns, name string) float64 {
	return promtestutil.ToFloat64(metrics.TrafficDriftCorrections.WithLabelValues(ns, name))
}

// TestSeveralRoutesMoveTogether gives one canary an HTTPRoute and a GRPCRoute: both carry each
// step's weights, and a step waits for both.
func TestSeveralRoutesMoveTogether(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "tworoutes")
	g.Expect(e.Client.Create(ctx, service(ns, "api-stable", map[string]string{"app": "api"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "api-canary", map[string]string{"app": "api"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, rollouttest.Route(ns, "api-http", "api-stable", "api-canary"))).To(Succeed())
	g.Expect(e.Client.Create(ctx, rollouttest.GRPCRoute(ns, "api-grpc", "api-stable", "api-canary"))).To(Succeed())
	ro := testutil.Rollout(ns, "api", testutil.WithCanarySteps(testutil.Weight(30), testutil.PauseUntilPromoted()), func(ro *kultav1alpha1.Rollout) {
		ro.Spec.Strategy.Canary.TrafficRouting = &kultav1alpha1.TrafficRouting{GatewayAPI: &kultav1alpha1.GatewayAPIRouting{HTTPRoute: "api-http", GRPCRoute: "api-grpc"}}
	})
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](1))

	http := &gatewayv1.HTTPRoute{}
	g.Expect(e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "api-http"}, http)).To(Succeed())
	w, _ := rollouttest.RouteWeights(http, "api-stable", "api-canary")
	g.Expect(w).To(Equal(providers.Weights{Stable: 70, Canary: 30}))
	grpc := &gatewayv1.GRPCRoute{}
	g.Expect(e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "api-grpc"}, grpc)).To(Succeed())
	refs := grpc.Spec.Rules[0].BackendRefs
	g.Expect([]int32{ptr.Deref(refs[0].Weight, 1), ptr.Deref(refs[1].Weight, 1)}).To(Equal([]int32{70, 30}))
}

// TestABTestingHeaderRule runs an A/B experiment over an HTTPRoute: the variant B rule exists
// while the experiment runs and is gone once B is promoted.
func TestABTestingHeaderRule(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "abtest")
	g.Expect(e.Client.Create(ctx, service(ns, "land-a", map[string]string{"app": "land"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "land-b", map[string]string{"app": "land"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, rollouttest.Route(ns, "land", "land-a", "land-b"))).To(Succeed())
	ro := testutil.Rollout(ns, "land", testutil.WithABTesting(func(ab *kultav1alpha1.ABTestingStrategy) {
		ab.VariantBMatch.Cookie = &kultav1alpha1.CookieMatch{Name: "ab", Value: "B"}
	}), testutil.WithHTTPRoute("land"))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhaseExperimenting, nil)

	ruleNames := func(g Gomega) []string {
		route := &gatewayv1.HTTPRoute{}
		g.Expect(e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "land"}, route)).To(Succeed())
		var names []string
		for _, r := range route.Spec.Rules {
			names = append(names, string(ptr.Deref(r.Name, "")))
		}
		return names
	}
	g.Eventually(ruleNames).WithTimeout(timeout).Should(Equal([]string{"kulta-land-variant-b-0", ""}))
	route := &gatewayv1.HTTPRoute{}
	g.Expect(e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "land"}, route)).To(Succeed())
	matches := route.Spec.Rules[0].Matches
	g.Expect(matches).To(HaveLen(2), "one match for the header, one for the cookie")
	g.Expect(matches[0].Headers[0].Name).To(Equal(gatewayv1.HTTPHeaderName("X-Variant")))
	g.Expect(matches[1].Headers[0].Name).To(Equal(gatewayv1.HTTPHeaderName("Cookie")))
	g.Expect(route.Spec.Rules[0].BackendRefs).To(HaveLen(1))
	g.Expect(string(route.Spec.Rules[0].BackendRefs[0].Name)).To(Equal("land-b"))

	annotate(t, ro, kultav1alpha1.ConcludeExperimentAnnotation)
	waitPhase(t, ro, kultav1alpha1.PhaseConcluded, nil)
	g.Expect(getRollout(g, ro).Status.ABExperiment.ConclusionReason).To(Equal("ManualConclusion"))
	annotate(t, ro, kultav1alpha1.PromoteAnnotation)
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	g.Eventually(ruleNames).WithTimeout(timeout).Should(Equal([]string{""}), "the variant B rule is removed after promotion")
}

// TestCanaryScaleApartFromWeight runs setCanaryScale steps on a real API server: the canary
// gets Pods before it gets traffic, keeps one Pod under a quarter of the traffic, and the
// route only ever carries the weights of the setWeight steps.
func TestCanaryScaleApartFromWeight(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "scale")
	g.Expect(e.Client.Create(ctx, service(ns, "shop-stable", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "shop-canary", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, rollouttest.Route(ns, "shop", "shop-stable", "shop-canary"))).To(Succeed())
	weights := rollouttest.WatchWeights(t, env, ns, "shop", "shop-stable", "shop-canary")
	ro := testutil.Rollout(ns, "shop", testutil.WithReplicas(4), testutil.WithHTTPRoute("shop"),
		testutil.WithCanarySteps(testutil.ScaleCanaryTo(2), testutil.PauseUntilPromoted(),
			testutil.Weight(25), testutil.ScaleCanaryTo(1), testutil.PauseUntilPromoted(),
			testutil.ScaleCanaryWithWeight(), testutil.Weight(100)),
		testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) { c.ScaleDownDelaySeconds = ptr.To[int32](1) }))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)

	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](1))
	g.Eventually(func(g Gomega) map[string]int32 { return imagesWithReplicas(g, ns) }).WithTimeout(timeout).
		Should(Equal(map[string]int32{"nginx:1.27": 4, "nginx:1.28": 2}), "two canary Pods before any traffic")
	g.Expect(weights()).To(Equal([]providers.Weights{{Stable: 100}}))

	annotate(t, ro, kultav1alpha1.PromoteAnnotation)
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](4))
	g.Eventually(func(g Gomega) map[string]int32 { return imagesWithReplicas(g, ns) }).WithTimeout(timeout).
		Should(Equal(map[string]int32{"nginx:1.27": 4, "nginx:1.28": 1}), "one canary Pod under a quarter of the traffic")
	g.Eventually(weights).WithTimeout(timeout).Should(Equal([]providers.Weights{{Stable: 100}, {Stable: 75, Canary: 25}}))
	var reasons []string
	for _, d := range getRollout(g, ro).Status.Decisions {
		reasons = append(reasons, d.Reason)
	}
	g.Expect(reasons).To(ContainElement("CanaryScaled"))

	annotate(t, ro, kultav1alpha1.PromoteAnnotation)
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	g.Eventually(weights).WithTimeout(timeout).Should(Equal([]providers.Weights{
		{Stable: 100}, {Stable: 75, Canary: 25}, {Stable: 100}, // the last step, 100, is the promotion
	}))
	g.Eventually(func(g Gomega) map[string]int32 { return imagesWithReplicas(g, ns) }).WithTimeout(timeout).
		Should(Equal(map[string]int32{"nginx:1.27": 0, "nginx:1.28": 4}))
}

// TestCanaryHeaderRoutesOnHTTPRoute runs setHeaderRoute steps on a real API server: each named
// route becomes a rule of the HTTPRoute, before the managed one, with every condition in one
// match (a prefix as a regular expression, a cookie as one on the Cookie header) and the canary
// alone as its backend, accepted by the CRD's own validation; a route removed by a later step
// goes, and the rest go at the promotion.
func TestCanaryHeaderRoutesOnHTTPRoute(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "headerroute")
	g.Expect(e.Client.Create(ctx, service(ns, "shop-stable", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "shop-canary", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, rollouttest.Route(ns, "shop", "shop-stable", "shop-canary"))).To(Succeed())
	mozilla := kultav1alpha1.HeaderRouteMatch{HeaderName: "User-Agent", HeaderValue: &kultav1alpha1.StringMatch{Prefix: ptr.To("Mozilla/5.0 (X11")}}
	beta := kultav1alpha1.HeaderRouteMatch{Cookie: &kultav1alpha1.CookieMatch{Name: "beta", Value: "1"}}
	ro := testutil.Rollout(ns, "shop", testutil.WithReplicas(2), testutil.WithHTTPRoute("shop"), testutil.WithCanarySteps(
		testutil.HeaderRouteStep("testers", testutil.HeaderExact("X-Canary", "yes"), mozilla),
		testutil.Weight(20), testutil.HeaderRouteStep("beta", beta), testutil.PauseUntilPromoted(),
		testutil.HeaderRouteStep("testers"), testutil.PauseUntilPromoted(), testutil.Weight(100)))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](3))

	route := func(g Gomega) *gatewayv1.HTTPRoute {
		r := &gatewayv1.HTTPRoute{}
		g.Expect(e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shop"}, r)).To(Succeed())
		return r
	}
	ruleNames := func(g Gomega) []string {
		var names []string
		for _, r := range route(g).Spec.Rules {
			names = append(names, string(ptr.Deref(r.Name, "")))
		}
		return names
	}
	g.Eventually(ruleNames).WithTimeout(timeout).Should(Equal([]string{"kulta-shop.testers-0", "kulta-shop.beta-0", ""}))
	g.Expect(getRollout(g, ro).Status.HeaderRoutes).To(Equal([]string{"beta", "testers"}))
	rules := route(g).Spec.Rules
	exact, regex := gatewayv1.HeaderMatchExact, gatewayv1.HeaderMatchRegularExpression
	g.Expect(rules[0].Matches).To(Equal([]gatewayv1.HTTPRouteMatch{{
		Path: &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To("/")},
		Headers: []gatewayv1.HTTPHeaderMatch{
			{Type: &exact, Name: "X-Canary", Value: "yes"},
			{Type: &regex, Name: "User-Agent", Value: `Mozilla/5\.0 \(X11.*`},
		},
	}}), "both conditions in one match: a request must meet them all")
	g.Expect(rules[1].Matches[0].Headers).To(Equal([]gatewayv1.HTTPHeaderMatch{{Type: &regex, Name: "Cookie", Value: providers.CookieRegex("beta", "1")}}))
	for _, r := range rules[:2] {
		g.Expect(r.BackendRefs).To(HaveLen(1))
		g.Expect(string(r.BackendRefs[0].Name)).To(Equal("shop-canary"))
	}
	// Two header routes in place: reconciles (the Gateway stand-in's status writes wake them)
	// write the route no more, whichever was set first.
	generation := route(g).Generation
	annotate(t, ro, "test.kulta.io/poke")
	g.Consistently(func(g Gomega) int64 { return route(g).Generation }).WithTimeout(2 * time.Second).Should(Equal(generation))

	annotate(t, ro, kultav1alpha1.PromoteAnnotation)
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](5))
	g.Eventually(ruleNames).WithTimeout(timeout).Should(Equal([]string{"kulta-shop.beta-0", ""}), "the testers' route is removed by its step")
	annotate(t, ro, kultav1alpha1.PromoteAnnotation)
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	g.Eventually(ruleNames).WithTimeout(timeout).Should(Equal([]string{""}), "every header route goes at the promotion")
	g.Expect(getRollout(g, ro).Status.HeaderRoutes).To(BeEmpty())
}

// TestDeletingRemovesHeaderRoutes deletes a canary mid-way with a header route in place: the
// finalizer removes the route's rule with the weights, even though a spec edit beforehand
// renamed the step (status.headerRoutes still names the one on the route).
func TestDeletingRemovesHeaderRoutes(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "headerdelete")
	g.Expect(e.Client.Create(ctx, service(ns, "shop-stable", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "shop-canary", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, rollouttest.Route(ns, "shop", "shop-stable", "shop-canary"))).To(Succeed())
	ro := testutil.Rollout(ns, "shop", testutil.WithReplicas(2), testutil.WithHTTPRoute("shop"), testutil.WithCanarySteps(
		testutil.HeaderRouteStep("testers", testutil.HeaderExact("X-Canary", "yes")), testutil.Weight(20), testutil.PauseUntilPromoted(), testutil.Weight(100)))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](2))
	ruleCount := func(g Gomega) int {
		r := &gatewayv1.HTTPRoute{}
		g.Expect(e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shop"}, r)).To(Succeed())
		return len(r.Spec.Rules)
	}
	g.Eventually(ruleCount).WithTimeout(timeout).Should(Equal(2))

	// The step renamed while its route is on the HTTPRoute, then the Rollout deleted at once.
	patch := client.RawPatch(types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/strategy/canary/steps/0/setHeaderRoute/name","value":"qa"}]`))
	g.Expect(e.Client.Patch(ctx, getRollout(g, ro), patch)).To(Succeed())
	g.Expect(e.Client.Delete(ctx, ro)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(e.Client.Get(ctx, client.ObjectKeyFromObject(ro), &kultav1alpha1.Rollout{}))
	}).WithTimeout(timeout).Should(BeTrue())
	g.Expect(ruleCount(g)).To(Equal(1), "the header route's rule is gone")
	g.Expect(routeWeights(ns, "shop")()).To(Equal(providers.Weights{Stable: 100}))
}

// TestCanaryMirrorRoutesOnHTTPRoute runs a canary whose steps mirror a quarter of every request
// and every request with a header to the canary, then sets a weight, on a real API server with
// the Gateway API CRDs (their validation accepts the RequestMirror filters as KULTA writes
// them): the mirror rules carry the managed rule's weights as they move, one step's removal
// takes its rule away, and deleting the Rollout mid-way leaves the route as created.
func TestCanaryMirrorRoutesOnHTTPRoute(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "mirrorroute")
	g.Expect(e.Client.Create(ctx, service(ns, "shop-stable", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "shop-canary", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, rollouttest.Route(ns, "shop", "shop-stable", "shop-canary"))).To(Succeed())
	route := func(g Gomega) *gatewayv1.HTTPRoute {
		r := &gatewayv1.HTTPRoute{}
		g.Expect(e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "shop"}, r)).To(Succeed())
		return r
	}
	ro := testutil.Rollout(ns, "shop", testutil.WithReplicas(2), testutil.WithHTTPRoute("shop"), testutil.WithCanarySteps(
		testutil.MirrorRouteStep("shadow", 25),
		testutil.MirrorRouteStep("api", 0, testutil.HeaderExact("X-Api", "v2")),
		testutil.PauseUntilPromoted(),
		testutil.Weight(20), testutil.MirrorRouteStep("shadow", 0), testutil.PauseUntilPromoted(), testutil.Weight(100)))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	created := route(g).Spec.Rules
	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](2))

	type ruleView struct {
		Name, Backends, Mirror string
		Headers                int
	}
	view := func(g Gomega) []ruleView {
		var out []ruleView
		for _, r := range route(g).Spec.Rules {
			v := ruleView{Name: string(ptr.Deref(r.Name, ""))}
			for _, b := range r.BackendRefs {
				v.Backends += fmt.Sprintf("%s=%d ", b.Name, ptr.Deref(b.Weight, 1))
			}
			for _, f := range r.Filters {
				if m := f.RequestMirror; m != nil {
					v.Mirror = fmt.Sprintf("%s:%d %d%%", m.BackendRef.Name, ptr.Deref(m.BackendRef.Port, 0), ptr.Deref(m.Percent, 100))
				}
			}
			for _, m := range r.Matches {
				v.Headers += len(m.Headers)
			}
			out = append(out, v)
		}
		return out
	}
	g.Eventually(view).WithTimeout(timeout).Should(Equal([]ruleView{
		{Name: "kulta-shop.api-0", Backends: "shop-stable=100 shop-canary=0 ", Mirror: "shop-canary:80 100%", Headers: 1},
		{Name: "kulta-shop.shadow-0", Backends: "shop-stable=100 shop-canary=0 ", Mirror: "shop-canary:80 25%"},
		{Backends: "shop-stable=100 shop-canary=0 "},
	}), "each mirror rule before the managed rule, with its weights")
	g.Expect(getRollout(g, ro).Status.HeaderRoutes).To(Equal([]string{"api", "shadow"}))
	// With the mirror routes in place, reconciles write the route no more.
	generation := route(g).Generation
	annotate(t, ro, "test.kulta.io/poke")
	g.Consistently(func(g Gomega) int64 { return route(g).Generation }).WithTimeout(2 * time.Second).Should(Equal(generation))

	annotate(t, ro, kultav1alpha1.PromoteAnnotation)
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](5))
	g.Eventually(view).WithTimeout(timeout).Should(Equal([]ruleView{
		{Name: "kulta-shop.api-0", Backends: "shop-stable=80 shop-canary=20 ", Mirror: "shop-canary:80 100%", Headers: 1},
		{Backends: "shop-stable=80 shop-canary=20 "},
	}), "the weights move the mirror rule's split too; the shadow step's removal takes its rule")

	g.Expect(e.Client.Delete(ctx, getRollout(g, ro))).To(Succeed())
	g.Eventually(func(g Gomega) bool {
		err := e.Client.Get(ctx, client.ObjectKeyFromObject(ro), &kultav1alpha1.Rollout{})
		return apierrors.IsNotFound(err)
	}).WithTimeout(timeout).Should(BeTrue())
	g.Expect(route(g).Spec.Rules).To(Equal(created), "deleting the Rollout mid-way leaves the route as created")
}

// waitNewStable waits until ro has completed a revision other than first and made it stable.
func waitNewStable(g Gomega, ro *kultav1alpha1.Rollout, first string) {
	g.Eventually(func(g Gomega) {
		got := getRollout(g, ro)
		g.Expect(got.Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted))
		g.Expect(got.Status.StablePodTemplateHash).NotTo(Equal(first))
		g.Expect(got.Status.StablePodTemplateHash).To(Equal(got.Status.CurrentPodTemplateHash))
	}).WithTimeout(timeout).Should(Succeed())
}
