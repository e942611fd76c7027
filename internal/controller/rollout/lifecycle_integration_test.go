package rollout_test

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
)

// kstatusOf is what the kstatus library (Flux's health checks, kubectl-wait style tools) makes
// of the Rollout as the API server has it.
func kstatusOf(g Gomega, ro *kultav1alpha1.Rollout) kstatus.Status {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(kultav1alpha1.GroupVersion.WithKind("Rollout"))
	g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(ro), u)).To(Succeed())
	res, err := kstatus.Compute(u)
	g.Expect(err).NotTo(HaveOccurred())
	return res.Status
}

func TestKstatusFollowsTheRollout(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "kstatus")
	g.Expect(e.Client.Create(ctx, service(ns, "shop-stable", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "shop-canary", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, rollouttest.Route(ns, "shop", "shop-stable", "shop-canary"))).To(Succeed())
	ro := testutil.Rollout(ns, "shop", testutil.WithReplicas(2), testutil.WithHTTPRoute("shop"),
		testutil.WithCanarySteps(testutil.Weight(50), testutil.PauseUntilPromoted(), testutil.Weight(100)))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	g.Eventually(func(g Gomega) kstatus.Status { return kstatusOf(g, ro) }).WithTimeout(timeout).Should(Equal(kstatus.CurrentStatus))

	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](1))
	g.Expect(kstatusOf(g, ro)).To(Equal(kstatus.InProgressStatus), "a canary waiting at a step is not done")

	annotate(t, ro, kultav1alpha1.AbortAnnotation)
	waitPhase(t, ro, kultav1alpha1.PhaseFailed, nil)
	g.Eventually(func(g Gomega) kstatus.Status { return kstatusOf(g, ro) }).WithTimeout(timeout).Should(Equal(kstatus.FailedStatus))
	got := getRollout(g, ro)
	g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
	g.Expect(meta(got, kultav1alpha1.ConditionStalled).Reason).To(Equal("Aborted"))

	// A spec problem is Failed too, for the generation that has it.
	g.Expect(e.Client.Delete(ctx, service(ns, "shop-canary", nil))).To(Succeed())
	setImage(t, ro, "nginx:1.29")
	g.Eventually(func(g Gomega) {
		got := getRollout(g, ro)
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		g.Expect(meta(got, kultav1alpha1.ConditionStalled).Reason).To(Equal("ServiceNotFound"))
		g.Expect(kstatusOf(g, ro)).To(Equal(kstatus.FailedStatus))
	}).WithTimeout(timeout).Should(Succeed())
}

// selectorOf reads a Service's selector and KULTA's record of the original.
func selectorOf(g Gomega, ns, name string) (map[string]string, string) {
	svc := &corev1.Service{}
	g.Expect(env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, svc)).To(Succeed())
	return svc.Spec.Selector, svc.Annotations[kultav1alpha1.OriginalSelectorAnnotation]
}

func TestDeletingMidCanaryHandsTrafficBack(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "delete")
	stableSelector := map[string]string{"app": "shop", kultav1alpha1.RolloutTypeLabel: "stable"}
	g.Expect(e.Client.Create(ctx, service(ns, "shop-stable", stableSelector))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "shop-canary", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, rollouttest.Route(ns, "shop", "shop-stable", "shop-canary"))).To(Succeed())
	ro := testutil.Rollout(ns, "shop", testutil.WithReplicas(2), testutil.WithHTTPRoute("shop"),
		testutil.WithCanarySteps(testutil.Weight(50), testutil.PauseUntilPromoted(), testutil.Weight(100)))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	g.Expect(getRollout(g, ro).Finalizers).To(ContainElement(kultav1alpha1.CleanupFinalizer))
	pinned, recorded := selectorOf(g, ns, "shop-stable")
	g.Expect(pinned).To(HaveKey(kultav1alpha1.PodTemplateHashLabel))
	g.Expect(recorded).To(MatchJSON(`{"app":"shop","rollouts.kulta.io/type":"stable"}`))

	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](1))
	g.Eventually(routeWeights(ns, "shop")).WithTimeout(timeout).Should(Equal(providers.Weights{Stable: 50, Canary: 50}))

	g.Expect(e.Client.Delete(ctx, ro)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(e.Client.Get(ctx, client.ObjectKeyFromObject(ro), &kultav1alpha1.Rollout{}))
	}).WithTimeout(timeout).Should(BeTrue(), "the finalizer must let the Rollout go")
	g.Expect(routeWeights(ns, "shop")()).To(Equal(providers.Weights{Stable: 100, Canary: 0}))
	for name, want := range map[string]map[string]string{"shop-stable": stableSelector, "shop-canary": {"app": "shop"}} {
		sel, record := selectorOf(g, ns, name)
		g.Expect(sel).To(Equal(want), "Service %s gets the selector the user wrote", name)
		g.Expect(record).To(BeEmpty())
	}
}

// routeWeights reads the weights an HTTPRoute carries for shop-stable and shop-canary.
func routeWeights(ns, name string) func() providers.Weights {
	return func() providers.Weights {
		route := &gatewayv1.HTTPRoute{}
		if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, route); err != nil {
			return providers.Weights{Stable: -1, Canary: -1}
		}
		w, _ := rollouttest.RouteWeights(route, name+"-stable", name+"-canary")
		return w
	}
}

func TestDeletingAnExperimentRemovesItsRuleOnly(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "delete-ab")
	for _, name := range []string{"shop-a", "shop-b"} {
		g.Expect(e.Client.Create(ctx, service(ns, name, map[string]string{"app": "shop"}))).To(Succeed())
	}
	route := rollouttest.Route(ns, "shop", "shop-a", "shop-b")
	// A rule of someone else's whose name starts like KULTA's does not belong to this Rollout.
	route.Spec.Rules = append(route.Spec.Rules, gatewayv1.HTTPRouteRule{
		Name:    ptr.To[gatewayv1.SectionName]("kulta-shop-legacy"),
		Matches: []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To("/legacy")}}},
		BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
			BackendObjectReference: gatewayv1.BackendObjectReference{Name: "legacy", Port: ptr.To[gatewayv1.PortNumber](80)},
		}}},
	})
	g.Expect(e.Client.Create(ctx, route)).To(Succeed())
	ro := testutil.Rollout(ns, "shop", testutil.WithReplicas(1), testutil.WithABTesting(), testutil.WithHTTPRoute("shop"))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	setImage(t, ro, "nginx:1.28")
	waitPhase(t, ro, kultav1alpha1.PhaseExperimenting, nil)
	ruleNames := func(g Gomega) []string {
		got := &gatewayv1.HTTPRoute{}
		g.Expect(e.Client.Get(ctx, client.ObjectKeyFromObject(route), got)).To(Succeed())
		var names []string
		for _, r := range got.Spec.Rules {
			names = append(names, string(ptr.Deref(r.Name, "")))
		}
		return names
	}
	g.Eventually(ruleNames).WithTimeout(timeout).Should(ContainElement(HavePrefix("kulta-shop-variant-b")))

	g.Expect(e.Client.Delete(ctx, ro)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(e.Client.Get(ctx, client.ObjectKeyFromObject(ro), &kultav1alpha1.Rollout{}))
	}).WithTimeout(timeout).Should(BeTrue())
	g.Expect(ruleNames(g)).To(Equal([]string{"", "kulta-shop-legacy"}), "KULTA's rule is gone; the user's rules stay")
}

func TestDeletingWhenTheRouteIsGone(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "delete-noroute")
	g.Expect(e.Client.Create(ctx, service(ns, "shop-stable", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "shop-canary", map[string]string{"app": "shop"}))).To(Succeed())
	route := rollouttest.Route(ns, "shop", "shop-stable", "shop-canary")
	g.Expect(e.Client.Create(ctx, route)).To(Succeed())
	ro := testutil.Rollout(ns, "shop", testutil.WithHTTPRoute("shop"))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	g.Expect(e.Client.Delete(ctx, route)).To(Succeed())
	g.Expect(e.Client.Delete(ctx, ro)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(e.Client.Get(ctx, client.ObjectKeyFromObject(ro), &kultav1alpha1.Rollout{}))
	}).WithTimeout(timeout).Should(BeTrue(), "a Rollout whose route is gone is still deleted")
	sel, _ := selectorOf(g, ns, "shop-stable")
	g.Expect(sel).To(Equal(map[string]string{"app": "shop"}))
}

// TestRejectedWriteIsStalled has the API server refuse KULTA's Service pins (an admission
// policy, as a platform team might write one): the Rollout says so in its conditions, and goes
// on once the policy is gone.
func TestRejectedWriteIsStalled(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "rejectwrite")
	denyUpdates(t, g, ns, "", "services",
		"!has(object.spec.selector) || !('"+kultav1alpha1.PodTemplateHashLabel+"' in object.spec.selector)",
		"Services may not select a pod-template-hash here")
	probe := service(ns, "probe", map[string]string{"app": "probe"})
	g.Expect(e.Client.Create(ctx, probe)).To(Succeed())
	// Wait until the policy is in force: a pin of the probe Service is refused.
	g.Eventually(func() bool {
		patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"selector":{"`+kultav1alpha1.PodTemplateHashLabel+`":"x"}}}`))
		return apierrors.IsInvalid(e.Client.Patch(ctx, probe.DeepCopy(), patch, client.DryRunAll))
	}).WithTimeout(timeout).Should(BeTrue())

	g.Expect(e.Client.Create(ctx, service(ns, "shop-stable", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "shop-canary", map[string]string{"app": "shop"}))).To(Succeed())
	ro := testutil.Rollout(ns, "shop")
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getRollout(g, ro)
		stalled := meta(got, kultav1alpha1.ConditionStalled)
		g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(stalled.Reason).To(Equal("WriteRejected"))
		g.Expect(stalled.Message).To(ContainSubstring("Service " + ns + "/shop-"))
		g.Expect(stalled.Message).To(ContainSubstring("may not select a pod-template-hash"))
		g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		g.Expect(kstatusOf(g, ro)).To(Equal(kstatus.FailedStatus))
	}).WithTimeout(timeout).Should(Succeed())

	allowUpdates(t, g, ns)
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	g.Eventually(func(g Gomega) kstatus.Status { return kstatusOf(g, ro) }).WithTimeout(timeout).Should(Equal(kstatus.CurrentStatus))
}

// denyUpdates makes the API server refuse, in namespace ns, updates of resource (in group) that
// fail the CEL expression, with message, until allowUpdates or the end of t. It returns once
// the policy exists; callers wait until it is in force.
func denyUpdates(t *testing.T, g Gomega, ns, group, resource, expression, message string) {
	t.Helper()
	ctx := context.Background()
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "deny-" + ns},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Update},
					Rule:       admissionv1.Rule{APIGroups: []string{group}, APIVersions: []string{"*"}, Resources: []string{resource}},
				},
			}}},
			Validations: []admissionv1.Validation{{Expression: expression, Message: message}},
		},
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "deny-" + ns},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy.Name,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns},
			}},
		},
	}
	g.Expect(env.Client.Create(ctx, policy)).To(Succeed())
	g.Expect(env.Client.Create(ctx, binding)).To(Succeed())
	t.Cleanup(func() {
		_ = client.IgnoreNotFound(env.Client.Delete(context.Background(), binding))
		_ = client.IgnoreNotFound(env.Client.Delete(context.Background(), policy))
	})
}

// allowUpdates lifts denyUpdates in namespace ns.
func allowUpdates(t *testing.T, g Gomega, ns string) {
	t.Helper()
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: "deny-" + ns}}
	g.Expect(env.Client.Delete(context.Background(), binding)).To(Succeed())
}

func TestMinReadySecondsReachesTheReplicaSets(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "minready")
	g.Expect(e.Client.Create(ctx, service(ns, "shop-stable", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "shop-canary", map[string]string{"app": "shop"}))).To(Succeed())
	ro := testutil.Rollout(ns, "shop", func(ro *kultav1alpha1.Rollout) { ro.Spec.MinReadySeconds = 5 })
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	minReady := func(g Gomega) []int32 {
		var out []int32
		for _, rs := range replicaSets(g, ns) {
			out = append(out, rs.Spec.MinReadySeconds)
		}
		return out
	}
	g.Eventually(minReady).WithTimeout(timeout).Should(Equal([]int32{5}))
	patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"minReadySeconds":9}}`))
	g.Expect(e.Client.Patch(ctx, ro.DeepCopy(), patch)).To(Succeed())
	g.Eventually(minReady).WithTimeout(timeout).Should(Equal([]int32{9}), "existing ReplicaSets follow the Rollout")
	var rs appsv1.ReplicaSetList
	g.Expect(e.Client.List(ctx, &rs, client.InNamespace(ns))).To(Succeed())
	g.Expect(rs.Items).To(HaveLen(1), "minReadySeconds is not a new revision")
}

func TestProviderNotRunningStalls(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "noprovider")
	g.Expect(e.Client.Create(ctx, service(ns, "shop-stable", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "shop-canary", map[string]string{"app": "shop"}))).To(Succeed())
	ro := testutil.Rollout(ns, "shop", testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) {
		c.TrafficRouting = &kultav1alpha1.TrafficRouting{NGINX: &kultav1alpha1.NGINXRouting{StableIngress: "shop"}}
	}))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	g.Eventually(func(g Gomega) {
		stalled := meta(getRollout(g, ro), kultav1alpha1.ConditionStalled)
		g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(stalled.Reason).To(Equal(providers.ReasonProviderNotEnabled))
		g.Expect(stalled.Message).To(ContainSubstring("trafficRouting.nginx"))
	}).WithTimeout(timeout).Should(Succeed())
	g.Expect(replicaSets(g, ns)).To(BeEmpty(), "nothing moves while a provider is missing")
}
