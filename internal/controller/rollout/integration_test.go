package rollout_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
)

const timeout = 30 * time.Second

func service(ns, name string, selector map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Selector: selector,
			Ports:    []corev1.ServicePort{{Port: 80}},
		},
	}
}

func getRollout(g Gomega, ro *kultav1alpha1.Rollout) *kultav1alpha1.Rollout {
	out := &kultav1alpha1.Rollout{}
	g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(ro), out)).To(Succeed())
	return out
}

func replicaSets(g Gomega, ns string) []appsv1.ReplicaSet {
	var list appsv1.ReplicaSetList
	g.Expect(env.Client.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	return list.Items
}

func waitPhase(t *testing.T, ro *kultav1alpha1.Rollout, phase kultav1alpha1.Phase, step *int32) {
	t.Helper()
	rollouttest.WaitPhase(t, env.Client, ro, phase, step, timeout)
}

func annotate(t *testing.T, ro *kultav1alpha1.Rollout, key string) {
	t.Helper()
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+key+`":"true"}}}`))
	if err := env.Client.Patch(context.Background(), ro.DeepCopy(), patch); err != nil {
		t.Fatalf("annotating %s: %v", key, err)
	}
}

func setImage(t *testing.T, ro *kultav1alpha1.Rollout, image string) {
	t.Helper()
	rollouttest.SetImage(t, env.Client, ro, image)
}

// imagesWithReplicas maps each ReplicaSet's image to its spec.replicas.
func imagesWithReplicas(g Gomega, ns string) map[string]int32 {
	out := map[string]int32{}
	for _, rs := range replicaSets(g, ns) {
		out[rs.Spec.Template.Spec.Containers[0].Image] += ptr.Deref(rs.Spec.Replicas, 0)
	}
	return out
}

func TestCanaryManualPauseAdvancesOnlyOnPromote(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "manual")
	g.Expect(e.Client.Create(ctx, service(ns, "web-stable", map[string]string{"app": "web", kultav1alpha1.RolloutTypeLabel: "stable"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "web-canary", map[string]string{"app": "web", kultav1alpha1.RolloutTypeLabel: "canary"}))).To(Succeed())
	ro := testutil.Rollout(ns, "web", testutil.WithReplicas(4),
		testutil.WithCanarySteps(testutil.Weight(25), testutil.PauseUntilPromoted(), testutil.Weight(50), testutil.PauseUntilPromoted()))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	first := getRollout(g, ro).Status.StablePodTemplateHash

	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](1))
	g.Consistently(func(g Gomega) {
		got := getRollout(g, ro)
		g.Expect(got.Status.CurrentStepIndex).To(Equal(ptr.To[int32](1)))
		g.Expect(imagesWithReplicas(g, ns)).To(Equal(map[string]int32{"nginx:1.27": 3, "nginx:1.28": 1}), "without routes the stable revision gives up a Pod for each canary Pod")
	}).WithTimeout(2 * time.Second).Should(Succeed())
	paused := getRollout(g, ro)
	g.Expect(paused.Status.StablePodTemplateHash).To(Equal(first))
	g.Expect(meta(paused, kultav1alpha1.ConditionPaused).Reason).To(Equal("WaitingForPromotion"))

	annotate(t, ro, kultav1alpha1.PromoteAnnotation)
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](3))
	g.Expect(getRollout(g, ro).Annotations).NotTo(HaveKey(kultav1alpha1.PromoteAnnotation), "the annotation is consumed once acted on")
	g.Eventually(func(g Gomega) map[string]int32 { return imagesWithReplicas(g, ns) }).WithTimeout(timeout).
		Should(Equal(map[string]int32{"nginx:1.27": 2, "nginx:1.28": 2}))

	annotate(t, ro, kultav1alpha1.PromoteAnnotation)
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	done := getRollout(g, ro)
	g.Expect(done.Status.StablePodTemplateHash).NotTo(Equal(first))
	g.Expect(done.Status.StablePodTemplateHash).To(Equal(done.Status.CurrentPodTemplateHash))
	g.Expect(meta(done, kultav1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
	g.Expect(done.Status.ObservedGeneration).To(Equal(done.Generation))
	g.Eventually(func(g Gomega) map[string]int32 { return imagesWithReplicas(g, ns) }).WithTimeout(timeout).
		Should(Equal(map[string]int32{"nginx:1.27": 0, "nginx:1.28": 4}), "after completion exactly one ReplicaSet has replicas")

	// Both Services now select the promoted revision's Pods by hash, not by the type label.
	for _, name := range []string{"web-stable", "web-canary"} {
		svc := &corev1.Service{}
		g.Expect(e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, svc)).To(Succeed())
		g.Expect(svc.Spec.Selector).To(Equal(map[string]string{"app": "web", kultav1alpha1.PodTemplateHashLabel: done.Status.StablePodTemplateHash}))
	}
	var decisions []string
	for _, d := range done.Status.Decisions {
		decisions = append(decisions, string(d.Action)+"/"+d.Reason)
	}
	g.Expect(decisions).To(ContainElements("StepAdvance/ManualPromotion", "Complete/AllStepsCompleted"))
}

func TestCanaryStableKeepsOldImageThroughout(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "stableimage")
	g.Expect(e.Client.Create(ctx, service(ns, "api-stable", map[string]string{"app": "api"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "api-canary", map[string]string{"app": "api"}))).To(Succeed())
	ro := testutil.Rollout(ns, "api", testutil.WithReplicas(2),
		testutil.WithCanarySteps(testutil.Weight(50), testutil.PauseFor("2s")))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	stableHash := getRollout(g, ro).Status.StablePodTemplateHash

	setImage(t, ro, "nginx:1.28")
	// The timed pause ends by itself; the stable ReplicaSet keeps nginx:1.27 all along.
	deadline := time.Now().Add(timeout)
	for {
		got := getRollout(g, ro)
		for _, rs := range replicaSets(g, ns) {
			if rs.Labels[kultav1alpha1.PodTemplateHashLabel] == stableHash {
				g.Expect(rs.Spec.Template.Spec.Containers[0].Image).To(Equal("nginx:1.27"))
			}
		}
		if got.Status.Phase == kultav1alpha1.PhaseCompleted && got.Status.StablePodTemplateHash != stableHash {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed pause did not complete: %s %s", got.Status.Phase, got.Status.Message)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestBlueGreenPromotionFlipsActiveService(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "bluegreen")
	g.Expect(e.Client.Create(ctx, service(ns, "shop-active", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "shop-preview", map[string]string{"app": "shop"}))).To(Succeed())
	ro := testutil.Rollout(ns, "shop", testutil.WithReplicas(2), testutil.WithBlueGreen(func(bg *kultav1alpha1.BlueGreenStrategy) {
		bg.ScaleDownDelaySeconds = ptr.To[int32](1)
	}))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	blue := getRollout(g, ro).Status.StablePodTemplateHash

	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhasePreview, nil)
	green := getRollout(g, ro).Status.CurrentPodTemplateHash
	selectorOf := func(g Gomega, name string) string {
		svc := &corev1.Service{}
		g.Expect(e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, svc)).To(Succeed())
		return svc.Spec.Selector[kultav1alpha1.PodTemplateHashLabel]
	}
	g.Expect(selectorOf(g, "shop-active")).To(Equal(blue))
	g.Expect(selectorOf(g, "shop-preview")).To(Equal(green))

	annotate(t, ro, kultav1alpha1.PromoteAnnotation)
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	g.Expect(selectorOf(g, "shop-active")).To(Equal(green))
	g.Eventually(func(g Gomega) map[string]int32 { return imagesWithReplicas(g, ns) }).WithTimeout(timeout).
		Should(Equal(map[string]int32{"nginx:1.27": 0, "nginx:1.28": 2}), "the old revision scales down after scaleDownDelaySeconds")
}

func TestMissingServiceStallsAndRecovers(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "stalled")
	g.Expect(e.Client.Create(ctx, service(ns, "pay-stable", map[string]string{"app": "pay"}))).To(Succeed())
	ro := testutil.Rollout(ns, "pay", testutil.WithCanarySteps(testutil.Weight(50)))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())

	g.Eventually(func(g Gomega) {
		got := getRollout(g, ro)
		stalled := meta(got, kultav1alpha1.ConditionStalled)
		g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(stalled.Reason).To(Equal("ServiceNotFound"))
		g.Expect(stalled.Message).To(ContainSubstring(`Service "pay-canary"`))
	}).WithTimeout(timeout).Should(Succeed())
	g.Expect(replicaSets(g, ns)).To(BeEmpty(), "a stalled Rollout changes nothing")

	g.Expect(e.Client.Create(ctx, service(ns, "pay-canary", map[string]string{"app": "pay"}))).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	g.Expect(meta(getRollout(g, ro), kultav1alpha1.ConditionStalled).Status).To(Equal(metav1.ConditionFalse))
}

// TestRouteDeletedMidCanaryStallsAndRecovers deletes the route under a canary paused for
// promotion: only the route's delete event (the cache holds routes packed) can wake the
// Rollout, which then stalls without promoting or rolling back; the route put back as the
// user's manifest has it (all to stable) gets the step's weight again, and the canary goes on.
func TestRouteDeletedMidCanaryStallsAndRecovers(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "routegone")
	g.Expect(e.Client.Create(ctx, service(ns, "till-stable", map[string]string{"app": "till"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "till-canary", map[string]string{"app": "till"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, rollouttest.Route(ns, "till-route", "till-stable", "till-canary"))).To(Succeed())
	ro := testutil.Rollout(ns, "till", testutil.WithCanarySteps(testutil.Weight(50), testutil.PauseUntilPromoted()),
		testutil.WithHTTPRoute("till-route"))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	first := getRollout(g, ro).Status.StablePodTemplateHash
	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](1))
	routeWeights := func(g Gomega) providers.Weights {
		route := &gatewayv1.HTTPRoute{}
		g.Expect(e.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "till-route"}, route)).To(Succeed())
		w, ok := rollouttest.RouteWeights(route, "till-stable", "till-canary")
		g.Expect(ok).To(BeTrue(), "the route sends to both Services")
		return w
	}
	g.Eventually(routeWeights).WithTimeout(timeout).Should(Equal(providers.Weights{Stable: 50, Canary: 50}))

	g.Expect(e.Client.Delete(ctx, rollouttest.Route(ns, "till-route", "till-stable", "till-canary"))).To(Succeed())
	g.Eventually(func(g Gomega) {
		stalled := meta(getRollout(g, ro), kultav1alpha1.ConditionStalled)
		g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(stalled.Reason).To(Equal("HTTPRouteNotFound"))
	}).WithTimeout(timeout).Should(Succeed())
	stalled := getRollout(g, ro)
	g.Expect(stalled.Status.StablePodTemplateHash).To(Equal(first), "a missing route neither promotes nor rolls back")
	g.Expect(stalled.Status.CurrentStepIndex).To(Equal(ptr.To[int32](1)))

	g.Expect(e.Client.Create(ctx, rollouttest.Route(ns, "till-route", "till-stable", "till-canary"))).To(Succeed())
	g.Eventually(routeWeights).WithTimeout(timeout).Should(Equal(providers.Weights{Stable: 50, Canary: 50}),
		"the route put back gets the paused step's weight")
	g.Eventually(func(g Gomega) {
		g.Expect(meta(getRollout(g, ro), kultav1alpha1.ConditionStalled).Status).To(Equal(metav1.ConditionFalse))
	}).WithTimeout(timeout).Should(Succeed())

	annotate(t, ro, kultav1alpha1.PromoteAnnotation)
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	g.Expect(getRollout(g, ro).Status.StablePodTemplateHash).NotTo(Equal(first))
	g.Eventually(routeWeights).WithTimeout(timeout).Should(Equal(providers.Weights{Stable: 100}))
}

func TestMissingHTTPRouteStallsWithoutTrafficAndRecovers(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "noroute")
	g.Expect(e.Client.Create(ctx, service(ns, "cart-stable", map[string]string{"app": "cart"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "cart-canary", map[string]string{"app": "cart"}))).To(Succeed())
	ro := testutil.Rollout(ns, "cart", testutil.WithCanarySteps(testutil.Weight(50)), testutil.WithHTTPRoute("cart-route"))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())

	g.Eventually(func(g Gomega) {
		stalled := meta(getRollout(g, ro), kultav1alpha1.ConditionStalled)
		g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(stalled.Reason).To(Equal("HTTPRouteNotFound"))
		g.Expect(stalled.Message).To(ContainSubstring(`HTTPRoute "cart-route" not found`))
	}).WithTimeout(timeout).Should(Succeed())
	g.Expect(replicaSets(g, ns)).To(BeEmpty(), "a stalled Rollout changes nothing")

	weights := rollouttest.WatchWeights(t, env, ns, "cart-route", "cart-stable", "cart-canary")
	g.Expect(e.Client.Create(ctx, rollouttest.Route(ns, "cart-route", "cart-stable", "cart-canary"))).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)

	first := getRollout(g, ro).Status.StablePodTemplateHash
	setImage(t, ro, "nginx:1.28")
	g.Eventually(func(g Gomega) {
		got := getRollout(g, ro)
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		g.Expect(got.Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted))
		g.Expect(got.Status.StablePodTemplateHash).To(Equal(got.Status.CurrentPodTemplateHash))
		g.Expect(got.Status.StablePodTemplateHash).NotTo(Equal(first))
	}).WithTimeout(timeout).Should(Succeed())
	g.Eventually(weights).WithTimeout(timeout).Should(Equal([]providers.Weights{{Stable: 100}, {Stable: 50, Canary: 50}, {Stable: 100}}))
}

func TestProgressDeadlineFailsAndRollsBack(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "deadline")
	g.Expect(e.Client.Create(ctx, service(ns, "db-stable", map[string]string{"app": "db"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "db-canary", map[string]string{"app": "db"}))).To(Succeed())
	ro := testutil.Rollout(ns, "db", testutil.WithCanarySteps(testutil.Weight(50)))
	ro.Spec.ProgressDeadlineSeconds = ptr.To[int32](2)
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)

	setImage(t, ro, neverReadyImage)
	waitPhase(t, ro, kultav1alpha1.PhaseFailed, nil)
	failed := getRollout(g, ro)
	g.Expect(meta(failed, kultav1alpha1.ConditionProgressing).Reason).To(Equal("ProgressDeadlineExceeded"))
	g.Expect(failed.Status.Message).To(ContainSubstring("progressDeadlineSeconds 2"))
	g.Expect(failed.Status.StablePodTemplateHash).NotTo(Equal(failed.Status.CurrentPodTemplateHash))
	g.Eventually(func(g Gomega) map[string]int32 { return imagesWithReplicas(g, ns) }).WithTimeout(45*time.Second).
		Should(Equal(map[string]int32{"nginx:1.27": 1, neverReadyImage: 0}), "the failed revision is scaled down after the rollback delay")
}

// TestKultaExamplesRunToCompletion applies KULTA's canary examples unchanged and drives each
// through a new image to Completed.
func TestKultaExamplesRunToCompletion(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	steps := []providers.Weights{{Stable: 100}, {Stable: 80, Canary: 20}, {Stable: 50, Canary: 50}, {Stable: 20, Canary: 80}, {Stable: 100}}
	for _, tc := range []struct {
		file    string
		manual  bool
		weights []providers.Weights
	}{
		{"canary-manual.yaml", true, steps},
		{"canary-timed.yaml", false, steps},
		{"canary-scale.yaml", true, []providers.Weights{{Stable: 100}, {Stable: 80, Canary: 20}, {Stable: 50, Canary: 50}, {Stable: 100}}},
		{"canary-header-route.yaml", true, []providers.Weights{{Stable: 100}, {Stable: 80, Canary: 20}, {Stable: 100}}},
		{"canary-mirror-route.yaml", true, []providers.Weights{{Stable: 100}, {Stable: 80, Canary: 20}, {Stable: 100}}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			g := NewWithT(t)
			ctx := context.Background()
			ns := e.CreateNamespace(t, "examples")
			objs, err := testutil.DecodeManifests(filepath.Join(e.RepoRoot, "examples", tc.file))
			g.Expect(err).NotTo(HaveOccurred())
			for _, obj := range objs {
				obj.SetNamespace(ns)
				g.Expect(e.Client.Create(ctx, obj)).To(Succeed())
			}
			ro := &kultav1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nginx"}}
			waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
			weights := rollouttest.WatchWeights(t, env, ns, "nginx-route", "nginx-stable", "nginx-canary")
			first := getRollout(g, ro).Status.StablePodTemplateHash
			setImage(t, ro, "nginx:1.28")
			deadline := time.Now().Add(90 * time.Second)
			for {
				got := getRollout(g, ro)
				if got.Status.Phase == kultav1alpha1.PhaseCompleted && got.Status.StablePodTemplateHash == got.Status.CurrentPodTemplateHash && got.Status.CurrentPodTemplateHash != first && got.Generation == got.Status.ObservedGeneration {
					break
				}
				if got.Status.Phase == kultav1alpha1.PhasePaused && tc.manual && got.Annotations[kultav1alpha1.PromoteAnnotation] == "" {
					annotate(t, ro, kultav1alpha1.PromoteAnnotation)
				}
				if time.Now().After(deadline) {
					t.Fatalf("example did not complete: %s %s", got.Status.Phase, got.Status.Message)
				}
				time.Sleep(200 * time.Millisecond)
			}
			g.Eventually(func(g Gomega) map[string]int32 { return imagesWithReplicas(g, ns) }).WithTimeout(timeout).
				Should(Equal(map[string]int32{"nginx:1.27": 0, "nginx:1.28": 3}))
			g.Eventually(weights).WithTimeout(timeout).Should(Equal(tc.weights))
		})
	}
}

func meta(ro *kultav1alpha1.Rollout, condType string) metav1.Condition {
	for _, c := range ro.Status.Conditions {
		if c.Type == condType {
			return c
		}
	}
	return metav1.Condition{}
}
