package withnginx_test

import (
	"context"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers/nginx"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env, func(ctx context.Context, e *testenv.Env) error {
		m, err := rollouttest.Start(ctx, e, rollouttest.WithNGINX())
		if err != nil {
			return err
		}
		e.BeforeStop(m.Stop)
		return nil
	}))
}

const timeout = 30 * time.Second

func service(ns, name string, selector map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Selector: selector, Ports: []corev1.ServicePort{{Port: 80}}},
	}
}

func getRollout(g Gomega, ro *kultav1alpha1.Rollout) *kultav1alpha1.Rollout {
	out := &kultav1alpha1.Rollout{}
	g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(ro), out)).To(Succeed())
	return out
}

// patch applies a merge patch to ro.
func patch(t *testing.T, ro *kultav1alpha1.Rollout, body string) {
	t.Helper()
	if err := env.Client.Patch(context.Background(), ro.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(body))); err != nil {
		t.Fatalf("patching Rollout %s with %s: %v", ro.Name, body, err)
	}
}

// canaryWeight reads the weight of the canary Ingress KULTA keeps for Rollout ro's stable
// Ingress: "" when there is none.
func canaryWeight(ns, ro, ingress string) func() string {
	return func() string {
		ing := &networkingv1.Ingress{}
		if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: nginx.CanaryIngressName(ro, ingress)}, ing); err != nil {
			if apierrors.IsNotFound(err) {
				return ""
			}
			return "unreadable: " + err.Error()
		}
		return ing.Annotations["nginx.ingress.kubernetes.io/canary-weight"]
	}
}

// TestNGINXNeighboursInOneNamespace runs two NGINX-routed canaries side by side in one namespace,
// through the controller's cache and the provider's index of canary Ingresses: both reach their
// first step with a canary Ingress each; one moved to another stable Ingress mid-canary loses
// the canary Ingress of the one it left (found through the index) and gets a new one at its
// step; aborting it takes that away too; a fix pushed after the abort gets a canary Ingress of
// its own, and deleting the Rollout mid-canary takes it away; the neighbour's stays as it was
// throughout, then completes, and no canary Ingress is left.
func TestNGINXNeighboursInOneNamespace(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "nginxneighbours")
	var ros []*kultav1alpha1.Rollout
	for _, name := range []string{"shop", "cart"} {
		g.Expect(e.Client.Create(ctx, service(ns, name+"-stable", map[string]string{"app": name}))).To(Succeed())
		g.Expect(e.Client.Create(ctx, service(ns, name+"-canary", map[string]string{"app": name}))).To(Succeed())
		g.Expect(e.Client.Create(ctx, rollouttest.StableIngress(ns, name, name+".example.com", name+"-stable"))).To(Succeed())
		ro := testutil.Rollout(ns, name, testutil.WithReplicas(2),
			testutil.WithCanarySteps(testutil.Weight(40), testutil.PauseUntilPromoted(), testutil.Weight(100)), testutil.WithNGINX(name))
		g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
		ros = append(ros, ro)
	}
	shop, cart := ros[0], ros[1]
	for _, ro := range ros {
		rollouttest.WaitPhase(t, env.Client, ro, kultav1alpha1.PhaseCompleted, nil, timeout)
		g.Expect(canaryWeight(ns, ro.Name, ro.Name)()).To(BeEmpty(), "no canary Ingress at rest")
		rollouttest.SetImage(t, env.Client, ro, "nginx:1.28")
	}
	for _, ro := range ros {
		rollouttest.WaitPhase(t, env.Client, ro, kultav1alpha1.PhasePaused, ptr.To[int32](1), timeout)
		g.Expect(canaryWeight(ns, ro.Name, ro.Name)()).To(Equal("40"), "Rollout %s's canary Ingress carries its step", ro.Name)
	}

	// shop moves to another stable Ingress mid-canary: the canary Ingress of the one it left is
	// found through the index as no longer needed and deleted, and the new one carries the step.
	g.Expect(e.Client.Create(ctx, rollouttest.StableIngress(ns, "shop-next", "next.shop.example.com", "shop-stable"))).To(Succeed())
	patch(t, shop, `{"spec":{"strategy":{"canary":{"trafficRouting":{"nginx":{"stableIngress":"shop-next"}}}}}}`)
	g.Eventually(canaryWeight(ns, "shop", "shop-next")).WithTimeout(timeout).Should(Equal("40"), "the new stable Ingress gets a canary Ingress at the step")
	g.Eventually(canaryWeight(ns, "shop", "shop")).WithTimeout(timeout).Should(BeEmpty(), "the canary Ingress of the stable Ingress shop left goes")
	g.Expect(canaryWeight(ns, "cart", "cart")()).To(Equal("40"), "the neighbour's canary Ingress stays")

	patch(t, shop, `{"metadata":{"annotations":{"`+kultav1alpha1.AbortAnnotation+`":"true"}}}`)
	rollouttest.WaitPhase(t, env.Client, shop, kultav1alpha1.PhaseFailed, nil, timeout)
	g.Eventually(canaryWeight(ns, "shop", "shop-next")).WithTimeout(timeout).Should(BeEmpty(), "the aborted canary's Ingress goes")
	g.Consistently(canaryWeight(ns, "cart", "cart")).WithTimeout(2*time.Second).Should(Equal("40"), "the neighbour's canary Ingress stays")
	g.Expect(getRollout(g, cart).Status.Phase).To(Equal(kultav1alpha1.PhasePaused))

	// A fix pushed after the abort runs a new canary, which is deleted mid-canary: the Rollout's
	// clean-up takes its canary Ingress away, and only its own.
	rollouttest.SetImage(t, env.Client, shop, "nginx:1.29")
	g.Eventually(canaryWeight(ns, "shop", "shop-next")).WithTimeout(timeout).Should(Equal("40"), "the fix's canary Ingress carries its first step")
	g.Expect(e.Client.Delete(ctx, shop)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(e.Client.Get(ctx, client.ObjectKeyFromObject(shop), &kultav1alpha1.Rollout{}))
	}).WithTimeout(timeout).Should(BeTrue(), "the Rollout's finalizer is done")
	g.Expect(canaryWeight(ns, "shop", "shop-next")()).To(BeEmpty(), "the deleted canary's Ingress goes")
	g.Expect(canaryWeight(ns, "cart", "cart")()).To(Equal("40"), "the neighbour's canary Ingress stays")

	patch(t, cart, `{"metadata":{"annotations":{"`+kultav1alpha1.PromoteAnnotation+`":"true"}}}`)
	g.Eventually(func(g Gomega) {
		got := getRollout(g, cart)
		g.Expect(got.Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted))
		g.Expect(got.Status.StablePodTemplateHash).To(Equal(got.Status.CurrentPodTemplateHash))
	}).WithTimeout(timeout).Should(Succeed())
	g.Eventually(canaryWeight(ns, "cart", "cart")).WithTimeout(timeout).Should(BeEmpty(), "the completed canary's Ingress goes")
	for _, name := range []string{"shop", "shop-next", "cart"} {
		ing := &networkingv1.Ingress{}
		g.Expect(e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, ing)).To(Succeed())
		g.Expect(ing.Annotations).To(BeEmpty(), "the stable Ingress %s is never written", name)
	}
}
