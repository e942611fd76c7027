package restart_test

import (
	"context"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/internal/revision"
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

// createWeb creates in ns the Services web-stable and web-canary, the HTTPRoute web that sends
// traffic to them, and the Rollout web of 2 replicas that routes it, with opts.
func createWeb(g Gomega, ns string, opts ...testutil.RolloutOption) *kultav1alpha1.Rollout {
	ctx := context.Background()
	for _, name := range []string{"web-stable", "web-canary"} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}}
		g.Expect(env.Client.Create(ctx, svc)).To(Succeed())
	}
	g.Expect(env.Client.Create(ctx, rollouttest.Route(ns, "web", "web-stable", "web-canary"))).To(Succeed())
	ro := testutil.Rollout(ns, "web", append([]testutil.RolloutOption{testutil.WithReplicas(2), testutil.WithHTTPRoute("web")}, opts...)...)
	g.Expect(env.Client.Create(ctx, ro)).To(Succeed())
	return ro
}

// newImageOnceCompleted waits until ro has completed its rollout, then sets a new image on it,
// and returns the revision that was stable until then.
func newImageOnceCompleted(g Gomega, ro *kultav1alpha1.Rollout) string {
	key := client.ObjectKeyFromObject(ro)
	g.Eventually(func(g Gomega) kultav1alpha1.Phase { return getRollout(g, key).Status.Phase }).WithTimeout(30 * time.Second).Should(Equal(kultav1alpha1.PhaseCompleted))
	old := getRollout(g, key).Status.StablePodTemplateHash
	patch := client.RawPatch(types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.28"}]`))
	g.Expect(env.Client.Patch(context.Background(), ro, patch)).To(Succeed())
	return old
}

// TestRestartMidRolloutKeepsWeights stops the controller while a canary waits at 50 %, starts a
// new one, and checks that the new one neither resets nor regresses the route, then finishes.
func TestRestartMidRolloutKeepsWeights(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "restart")
	ro := createWeb(g, ns, testutil.WithCanarySteps(testutil.Weight(20), testutil.Weight(50), testutil.PauseUntilPromoted(), testutil.Weight(80)))
	weights := rollouttest.WatchWeights(t, e, ns, "web", "web-stable", "web-canary")
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

// promoteThenStop creates the Rollout web in ns with steps of 50 and 100 % and a scale-down
// delay of delay seconds, runs a controller until it has rolled a new image out and marked
// the old revision for scale-down in status.scaleDowns, and stops it. It returns the Rollout's
// key, the old revision and its mark.
func promoteThenStop(g Gomega, e *testenv.Env, ns string, delay int32) (types.NamespacedName, string, kultav1alpha1.ScaleDown) {
	ro := createWeb(g, ns, testutil.WithCanarySteps(testutil.Weight(50), testutil.Weight(100)),
		testutil.WithCanary(func(c *kultav1alpha1.CanaryStrategy) { c.ScaleDownDelaySeconds = ptr.To(delay) }))
	key := client.ObjectKeyFromObject(ro)
	first, err := rollouttest.Start(context.Background(), e)
	g.Expect(err).NotTo(HaveOccurred())
	old := newImageOnceCompleted(g, ro)
	var mark kultav1alpha1.ScaleDown
	g.Eventually(func(g Gomega) {
		now := getRollout(g, key)
		g.Expect(now.Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted))
		g.Expect(now.Status.StablePodTemplateHash).NotTo(Equal(old))
		g.Expect(now.Status.ScaleDowns).To(HaveLen(1))
		mark = now.Status.ScaleDowns[0]
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(first.Stop()).To(Succeed())
	g.Expect(mark.PodTemplateHash).To(Equal(old))
	return key, old, mark
}

// replicaSetOf is the one ReplicaSet of revision hash in ns.
func replicaSetOf(g Gomega, ns, hash string) *appsv1.ReplicaSet {
	list := &appsv1.ReplicaSetList{}
	g.Expect(env.Client.List(context.Background(), list, client.InNamespace(ns), client.MatchingLabels{kultav1alpha1.PodTemplateHashLabel: hash})).To(Succeed())
	g.Expect(list.Items).To(HaveLen(1))
	return &list.Items[0]
}

// TestRestartKeepsScaleDownDelay stops the controller during the scale-down delay that follows a
// promotion and starts a new one: the old revision keeps its Pods until the time the first
// controller recorded in status.scaleDowns, not a delay started afresh nor none at all, and its
// ReplicaSet is never written to for the mark. Once its Pods are gone the mark goes.
func TestRestartKeepsScaleDownDelay(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "restart-delay")
	const delay = 8
	key, old, mark := promoteThenStop(g, e, ns, delay)
	g.Expect(time.Until(mark.At.Time)).To(BeNumerically(">", 2*time.Second), "the delay should still be running after the stop")

	second, err := rollouttest.Start(ctx, e)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { g.Expect(second.Stop()).To(Succeed()) }()
	oldRS := func(g Gomega) *appsv1.ReplicaSet { return replicaSetOf(g, ns, old) }
	g.Consistently(func(g Gomega) int32 { return ptr.Deref(oldRS(g).Spec.Replicas, 0) }).
		WithTimeout(time.Until(mark.At.Time)-time.Second).Should(Equal(int32(2)), "the new controller scaled the old revision down before its recorded time")
	g.Eventually(func(g Gomega) int32 { return ptr.Deref(oldRS(g).Spec.Replicas, 0) }).WithTimeout(15 * time.Second).Should(BeZero())
	g.Expect(time.Now()).To(BeTemporally(">=", mark.At.Time))
	g.Expect(oldRS(g).Annotations).NotTo(HaveKey(revision.ScaleDownAtAnnotation), "the mark is kept in the Rollout's status, not on the ReplicaSet")
	g.Eventually(func(g Gomega) []kultav1alpha1.ScaleDown { return getRollout(g, key).Status.ScaleDowns }).WithTimeout(15*time.Second).
		Should(BeEmpty(), "the mark goes with the old revision's Pods")
}

// TestUpgradeKeepsAnEarlierVersionsScaleDownMark: an earlier version of KULTA kept a revision's
// scale-down time on its ReplicaSet (rollouts.kulta.io/scale-down-at), not in
// status.scaleDowns. A controller started on what it left keeps the revision's Pods until
// that time, later than the delay it would start afresh, and then scales the revision down.
func TestUpgradeKeepsAnEarlierVersionsScaleDownMark(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "upgrade-mark")
	const delay = 4
	key, old, _ := promoteThenStop(g, e, ns, delay)

	// What the earlier version left: the time on the ReplicaSet, none in the status. It is
	// further off than the delay a controller would start afresh.
	oldRS := func(g Gomega) *appsv1.ReplicaSet { return replicaSetOf(g, ns, old) }
	at := time.Now().Add(5 * delay * time.Second).UTC().Truncate(time.Second)
	mark := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+revision.ScaleDownAtAnnotation+`":"`+at.Format(time.RFC3339)+`"}}}`))
	g.Expect(env.Client.Patch(ctx, oldRS(g), mark)).To(Succeed())
	noMarks := client.RawPatch(types.MergePatchType, []byte(`{"status":{"scaleDowns":null}}`))
	g.Expect(env.Client.Status().Patch(ctx, getRollout(g, key), noMarks)).To(Succeed())
	g.Expect(getRollout(g, key).Status.ScaleDowns).To(BeEmpty())
	g.Expect(ptr.Deref(oldRS(g).Spec.Replicas, 0)).To(Equal(int32(2)))

	second, err := rollouttest.Start(ctx, e)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { g.Expect(second.Stop()).To(Succeed()) }()
	// Long enough for a delay started afresh to have run out before the mark's time.
	g.Expect(time.Until(at)).To(BeNumerically(">", (delay+2)*time.Second), "the controller took too long to start for the check to tell the two apart")
	g.Consistently(func(g Gomega) int32 { return ptr.Deref(oldRS(g).Spec.Replicas, 0) }).
		WithTimeout(time.Until(at)-time.Second).Should(Equal(int32(2)), "the old revision was scaled down before the time the earlier version marked")
	g.Eventually(func(g Gomega) int32 { return ptr.Deref(oldRS(g).Spec.Replicas, 0) }).WithTimeout(15 * time.Second).Should(BeZero())
	g.Expect(time.Now()).To(BeTemporally(">=", at))
}

// TestRestartMidLandingWritesTheWait stops the controller while a step's weights are on the
// route but the Gateway has not accepted them, and the first controller, as it does for
// FoldedStatusBound (30 s here), leaves the status saying nothing of the wait. The new
// controller has no note of when the weights were written: it says at once that the routes
// are not accepted, rewrites nothing, and takes the step once the Gateway answers.
func TestRestartMidLandingWritesTheWait(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "restart-landing")
	ro := createWeb(g, ns, testutil.WithCanarySteps(testutil.Weight(50), testutil.PauseUntilPromoted()))
	key := client.ObjectKeyFromObject(ro)
	weights := rollouttest.WatchWeights(t, e, ns, "web", "web-stable", "web-canary")
	bound := func(r *rollout.Reconciler) { r.FoldedStatusBound = 30 * time.Second }
	label := func(value string) {
		patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"`+rollouttest.IgnoreLabel+`":`+value+`}}}`))
		g.Expect(env.Client.Patch(ctx, &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"}}, patch)).To(Succeed())
	}
	notAccepted := func(ro *kultav1alpha1.Rollout) bool {
		c := apimeta.FindStatusCondition(ro.Status.Conditions, kultav1alpha1.ConditionTrafficRouted)
		return c != nil && c.Reason == rollout.ReasonRouteNotAccepted
	}

	first, err := rollouttest.Start(ctx, e, bound)
	g.Expect(err).NotTo(HaveOccurred())
	g.Eventually(func(g Gomega) {
		now := getRollout(g, key)
		g.Expect(now.Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted))
		g.Expect(apimeta.IsStatusConditionTrue(now.Status.Conditions, kultav1alpha1.ConditionTrafficRouted)).To(BeTrue())
	}).WithTimeout(30*time.Second).Should(Succeed(), "the first revision is stable and its route accepted")
	label(`"true"`)
	newImageOnceCompleted(g, ro)
	g.Eventually(weights).WithTimeout(30 * time.Second).Should(Equal([]providers.Weights{{Stable: 100}, {Stable: 50, Canary: 50}}))
	g.Consistently(func(g Gomega) {
		g.Expect(notAccepted(getRollout(g, key))).To(BeFalse(), "the first controller wrote the wait within its bound")
	}).WithTimeout(time.Second).Should(Succeed())
	g.Expect(first.Stop()).To(Succeed())
	version := routeVersion(g, ns)

	second, err := rollouttest.Start(ctx, e, bound)
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { g.Expect(second.Stop()).To(Succeed()) }()
	g.Eventually(func(g Gomega) {
		now := getRollout(g, key)
		g.Expect(notAccepted(now)).To(BeTrue(), "TrafficRouted says the routes are not accepted")
		g.Expect(now.Status.CurrentStepIndex).To(Equal(ptr.To[int32](0)))
	}).WithTimeout(10*time.Second).Should(Succeed(), "well within the 30 s bound the first controller would have waited")
	g.Expect(routeVersion(g, ns)).To(Equal(version), "the new controller rewrote the route")

	label("null")
	g.Eventually(func(g Gomega) {
		now := getRollout(g, key)
		g.Expect(now.Status.Phase).To(Equal(kultav1alpha1.PhasePaused))
		g.Expect(now.Status.CurrentStepIndex).To(Equal(ptr.To[int32](1)))
		g.Expect(notAccepted(now)).To(BeFalse())
	}).WithTimeout(30 * time.Second).Should(Succeed())
	g.Expect(weights()).To(Equal([]providers.Weights{{Stable: 100}, {Stable: 50, Canary: 50}}), "no weight was written twice")
}
