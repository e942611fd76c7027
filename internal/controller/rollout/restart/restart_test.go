package restart_test

import (
	"context"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
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

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env))
}

func getRollout(g Gomega, key types.NamespacedName) *kultav1alpha1.Rollout {
	ro := &kultav1alpha1.Rollout{}
	g.Expect(env.Client.Get(context.Background(), key, ro)).To(Succeed())
	return ro
}

// TestRestartMidRolloutKeepsWeights stops the controller while a canary waits at 50 %, starts a
// new one, and checks that the new one neither resets nor regresses the route, then finishes.
func TestRestartMidRolloutKeepsWeights(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "restart")
	for _, name := range []string{"web-stable", "web-canary"} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}}
		g.Expect(e.Client.Create(ctx, svc)).To(Succeed())
	}
	g.Expect(e.Client.Create(ctx, rollouttest.Route(ns, "web", "web-stable", "web-canary"))).To(Succeed())
	weights := rollouttest.WatchWeights(t, e, ns, "web", "web-stable", "web-canary")
	ro := testutil.Rollout(ns, "web", testutil.WithReplicas(2), testutil.WithHTTPRoute("web"),
		testutil.WithCanarySteps(testutil.Weight(20), testutil.Weight(50), testutil.PauseUntilPromoted(), testutil.Weight(80)))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	key := client.ObjectKeyFromObject(ro)

	first, err := rollouttest.Start(ctx, e)
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) kultav1alpha1.Phase { return getRollout(g, key).Status.Phase }).WithTimeout(30 * time.Second).Should(Equal(kultav1alpha1.PhaseCompleted))
	patch := client.RawPatch(types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.28"}]`))
	g.Expect(e.Client.Patch(ctx, ro, patch)).To(Succeed())
	g.Eventually(func(g Gomega) *int32 { return getRollout(g, key).Status.CurrentStepIndex }).WithTimeout(30 * time.Second).Should(Equal(ptr.To[int32](2)))
	g.Expect(first.Stop()).To(Succeed())

	before := getRollout(g, key)
	version := routeVersion(g, ns)

	second, err := rollouttest.Start(ctx, e)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { g.Expect(second.Stop()).To(Succeed()) }()
	g.Consistently(func(g Gomega) {
		now := getRollout(g, key)
		g.Expect(now.Status.CurrentStepIndex).To(Equal(before.Status.CurrentStepIndex))
		g.Expect(now.Status.CurrentWeight).To(Equal(before.Status.CurrentWeight))
		g.Expect(now.Status.Phase).To(Equal(kultav1alpha1.PhasePaused))
		g.Expect(routeVersion(g, ns)).To(Equal(version), "the new controller rewrote the route")
	}).WithTimeout(3 * time.Second).Should(Succeed())

	annotate := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"kulta.io/promote":"true"}}}`))
	g.Expect(e.Client.Patch(ctx, ro, annotate)).To(Succeed())
	g.Eventually(func(g Gomega) {
		now := getRollout(g, key)
		g.Expect(now.Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted))
		g.Expect(now.Status.StablePodTemplateHash).To(Equal(now.Status.CurrentPodTemplateHash))
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Eventually(weights).WithTimeout(30*time.Second).Should(Equal([]providers.Weights{
		{Stable: 100}, {Stable: 80, Canary: 20}, {Stable: 50, Canary: 50}, {Stable: 20, Canary: 80}, {Stable: 100},
	}), "no weight was repeated, reset or skipped across the restart")
}
