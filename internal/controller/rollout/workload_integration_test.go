package rollout_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
)

// deployment is a Deployment of app=name Pods running image, as a user's manifest has it.
func deployment(ns, name, image string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}
}

// reportDeployment writes the status the Deployment controller would once available of the
// Deployment's Pods are available (envtest runs no Deployment controller).
func reportDeployment(g Gomega, d *appsv1.Deployment, available int32) {
	ctx := context.Background()
	g.Eventually(func(g Gomega) {
		got := &appsv1.Deployment{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(d), got)).To(Succeed())
		got.Status = appsv1.DeploymentStatus{
			ObservedGeneration: got.Generation,
			Replicas:           available, ReadyReplicas: available, AvailableReplicas: available, UpdatedReplicas: available,
		}
		g.Expect(env.Client.Status().Update(ctx, got)).To(Succeed())
	}).WithTimeout(timeout).Should(Succeed())
}

func getDeployment(g Gomega, d *appsv1.Deployment) *appsv1.Deployment {
	got := &appsv1.Deployment{}
	g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(d), got)).To(Succeed())
	return got
}

// TestWorkloadRefAdoptsADeployment adopts a Deployment serving 3 Pods through the Services and
// an HTTPRoute, on a real API server, along the paths a user meets:
//   - the Deployment is not there yet: Stalled, naming spec.workloadRef.name, nothing created;
//   - the first revision's Pods never turn ready: the Services keep selecting the
//     Deployment's Pods, which keep all their replicas;
//   - the Deployment is fixed: its new template is the revision, which takes over; only then
//     are the Services pinned to it and the Deployment scaled to 0, its count recorded;
//   - a change to the Deployment's template is a canary;
//   - deleting the Rollout mid-canary scales the Deployment back up, and hands the routes and
//     Services back only once its Pods are available.
func TestWorkloadRefAdoptsADeployment(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "adopt")
	g.Expect(e.Client.Create(ctx, service(ns, "shop-stable", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "shop-canary", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, rollouttest.Route(ns, "shop", "shop-stable", "shop-canary"))).To(Succeed())
	ro := testutil.Rollout(ns, "shop", testutil.WithReplicas(3), testutil.WithHTTPRoute("shop"),
		testutil.WithCanarySteps(testutil.Weight(50), testutil.PauseUntilPromoted(), testutil.Weight(100)),
		func(ro *kultav1alpha1.Rollout) {
			ro.Spec.Template = kultav1alpha1.PodTemplate{}
			ro.Spec.Selector = nil
			ro.Spec.WorkloadRef = &kultav1alpha1.WorkloadRef{Name: "shop", ScaleDown: kultav1alpha1.ScaleDownProgressively}
		})
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())

	g.Eventually(func(g Gomega) {
		stalled := meta(getRollout(g, ro), kultav1alpha1.ConditionStalled)
		g.Expect(stalled.Status).To(Equal(metav1.ConditionTrue))
		g.Expect(stalled.Reason).To(Equal("WorkloadNotFound"))
		g.Expect(stalled.Message).To(ContainSubstring(`Deployment "shop" (spec.workloadRef.name) not found`))
	}).WithTimeout(timeout).Should(Succeed())
	g.Expect(replicaSets(g, ns)).To(BeEmpty())

	d := deployment(ns, "shop", neverReadyImage, 3)
	g.Expect(e.Client.Create(ctx, d)).To(Succeed())
	reportDeployment(g, d, 3)
	g.Eventually(func(g Gomega) []appsv1.ReplicaSet { return replicaSets(g, ns) }).WithTimeout(timeout).Should(HaveLen(1))
	first := replicaSets(g, ns)[0]
	g.Expect(first.Spec.Template.Spec.Containers[0].Image).To(Equal(neverReadyImage), "the template is the Deployment's")
	g.Expect(first.Spec.Selector.MatchLabels).To(HaveKeyWithValue("app", "shop"), "the selector is the Deployment's")
	g.Consistently(func(g Gomega) {
		sel, _ := selectorOf(g, ns, "shop-stable")
		g.Expect(sel).To(Equal(map[string]string{"app": "shop"}), "the Services keep selecting the Deployment's Pods")
		g.Expect(getDeployment(g, d).Spec.Replicas).To(Equal(ptr.To[int32](3)))
	}).WithTimeout(2 * time.Second).Should(Succeed())

	// The fix: a Deployment template that runs.
	fixed := getDeployment(g, d)
	fixed.Spec.Template.Spec.Containers[0].Image = "nginx:1.27"
	g.Expect(e.Client.Update(ctx, fixed)).To(Succeed())
	reportDeployment(g, d, 3)
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	adopted := getRollout(g, ro)
	g.Expect(adopted.Status.Selector).To(Equal("app=shop"))
	g.Expect(adopted.Spec.Template.Spec.Containers).To(BeEmpty(), "the Deployment's template is never written into the Rollout")
	sel, _ := selectorOf(g, ns, "shop-stable")
	g.Expect(sel).To(HaveKeyWithValue(kultav1alpha1.PodTemplateHashLabel, adopted.Status.StablePodTemplateHash))
	g.Eventually(func(g Gomega) {
		got := getDeployment(g, d)
		g.Expect(got.Spec.Replicas).To(Equal(ptr.To[int32](0)))
		g.Expect(got.Annotations).To(HaveKeyWithValue(kultav1alpha1.AdoptedReplicasAnnotation, "3"))
	}).WithTimeout(timeout).Should(Succeed())
	reportDeployment(g, d, 0)

	// A change to the Deployment's template is a canary.
	update := getDeployment(g, d)
	update.Spec.Template.Spec.Containers[0].Image = "nginx:1.28"
	g.Expect(e.Client.Update(ctx, update)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](1))
	g.Eventually(routeWeights(ns, "shop")).WithTimeout(timeout).Should(Equal(providers.Weights{Stable: 50, Canary: 50}))
	g.Expect(imagesWithReplicas(g, ns)).To(Equal(map[string]int32{neverReadyImage: 0, "nginx:1.27": 3, "nginx:1.28": 2}))
	g.Expect(getDeployment(g, d).Spec.Replicas).To(Equal(ptr.To[int32](0)))

	// Deleted mid-canary: the Deployment comes back first.
	g.Expect(e.Client.Delete(ctx, ro)).To(Succeed())
	g.Eventually(func(g Gomega) {
		got := getDeployment(g, d)
		g.Expect(got.Spec.Replicas).To(Equal(ptr.To[int32](3)))
		g.Expect(got.Annotations).NotTo(HaveKey(kultav1alpha1.AdoptedReplicasAnnotation))
	}).WithTimeout(timeout).Should(Succeed())
	g.Consistently(func(g Gomega) {
		g.Expect(e.Client.Get(ctx, client.ObjectKeyFromObject(ro), &kultav1alpha1.Rollout{})).To(Succeed(), "held until the Deployment's Pods are available")
		g.Expect(routeWeights(ns, "shop")()).To(Equal(providers.Weights{Stable: 50, Canary: 50}))
		sel, _ := selectorOf(g, ns, "shop-stable")
		g.Expect(sel).To(HaveKey(kultav1alpha1.PodTemplateHashLabel))
	}).WithTimeout(2 * time.Second).Should(Succeed())
	reportDeployment(g, d, 3)
	g.Eventually(func() bool {
		return apierrors.IsNotFound(e.Client.Get(ctx, client.ObjectKeyFromObject(ro), &kultav1alpha1.Rollout{}))
	}).WithTimeout(timeout).Should(BeTrue(), "the finalizer must let the Rollout go")
	g.Expect(routeWeights(ns, "shop")()).To(Equal(providers.Weights{Stable: 100, Canary: 0}))
	for _, name := range []string{"shop-stable", "shop-canary"} {
		sel, record := selectorOf(g, ns, name)
		g.Expect(sel).To(Equal(map[string]string{"app": "shop"}), "Service %s selects the Deployment's Pods again", name)
		g.Expect(record).To(BeEmpty())
	}
	events := &corev1.EventList{}
	g.Expect(e.Client.List(ctx, events, client.InNamespace(ns))).To(Succeed())
	var reasons []string
	for _, ev := range events.Items {
		reasons = append(reasons, ev.Reason)
	}
	g.Expect(reasons).To(ContainElement("WorkloadScaled"))
}

// TestAdoptionExampleRuns applies examples/adopt-deployment.yaml unchanged: the Rollout adopts
// the Deployment (whose controller, absent from envtest, is stood in for by writing its
// status), completes, pins the Services and scales the Deployment to 0; the Deployment's next
// template is a canary that reaches its first step.
func TestAdoptionExampleRuns(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "adopt-example")
	objs, err := testutil.DecodeManifests(filepath.Join(e.RepoRoot, "examples", "adopt-deployment.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	for _, obj := range objs {
		obj.SetNamespace(ns)
		g.Expect(e.Client.Create(ctx, obj)).To(Succeed())
	}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nginx"}}
	reportDeployment(g, d, 3)
	ro := &kultav1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nginx"}}
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	g.Eventually(func(g Gomega) *int32 { return getDeployment(g, d).Spec.Replicas }).WithTimeout(timeout).Should(Equal(ptr.To[int32](0)))
	sel, _ := selectorOf(g, ns, "nginx-stable")
	g.Expect(sel).To(HaveKeyWithValue(kultav1alpha1.PodTemplateHashLabel, getRollout(g, ro).Status.StablePodTemplateHash))

	update := getDeployment(g, d)
	update.Spec.Template.Spec.Containers[0].Image = "nginx:1.28"
	g.Expect(e.Client.Update(ctx, update)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhasePaused, ptr.To[int32](1))
	g.Expect(imagesWithReplicas(g, ns)).To(Equal(map[string]int32{"nginx:1.27": 3, "nginx:1.28": 1}))
}

// TestDeletingWhenTheDeploymentNeverComesBack deletes an adopted Rollout whose Deployment never
// reports its Pods available again: the deletion waits no longer than progressDeadlineSeconds,
// then hands the traffic back anyway with a WorkloadNotAvailable Warning; the Deployment is
// back at its count.
func TestDeletingWhenTheDeploymentNeverComesBack(t *testing.T) {
	e := testenv.Require(t, env)
	t.Parallel()
	g := NewWithT(t)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "adopt-deadline")
	g.Expect(e.Client.Create(ctx, service(ns, "shop-stable", map[string]string{"app": "shop"}))).To(Succeed())
	g.Expect(e.Client.Create(ctx, service(ns, "shop-canary", map[string]string{"app": "shop"}))).To(Succeed())
	d := deployment(ns, "shop", "nginx:1.27", 2)
	g.Expect(e.Client.Create(ctx, d)).To(Succeed())
	reportDeployment(g, d, 2)
	ro := testutil.Rollout(ns, "shop", testutil.WithReplicas(2), func(ro *kultav1alpha1.Rollout) {
		ro.Spec.Template, ro.Spec.Selector = kultav1alpha1.PodTemplate{}, nil
		ro.Spec.WorkloadRef = &kultav1alpha1.WorkloadRef{Name: "shop", ScaleDown: kultav1alpha1.ScaleDownOnSuccess}
		ro.Spec.ProgressDeadlineSeconds = ptr.To[int32](3)
	})
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	waitPhase(t, ro, kultav1alpha1.PhaseCompleted, nil)
	g.Eventually(func(g Gomega) *int32 { return getDeployment(g, d).Spec.Replicas }).WithTimeout(timeout).Should(Equal(ptr.To[int32](0)))
	reportDeployment(g, d, 0)

	deleted := time.Now()
	g.Expect(e.Client.Delete(ctx, ro)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(e.Client.Get(ctx, client.ObjectKeyFromObject(ro), &kultav1alpha1.Rollout{}))
	}).WithTimeout(timeout).Should(BeTrue(), "the deletion goes on past the deadline")
	g.Expect(time.Since(deleted)).To(BeNumerically(">=", 2*time.Second), "held for about progressDeadlineSeconds first")
	g.Expect(getDeployment(g, d).Spec.Replicas).To(Equal(ptr.To[int32](2)))
	sel, _ := selectorOf(g, ns, "shop-stable")
	g.Expect(sel).To(Equal(map[string]string{"app": "shop"}))
	g.Eventually(func(g Gomega) []string {
		var list eventsv1.EventList
		g.Expect(e.Client.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		var reasons []string
		for _, ev := range list.Items {
			reasons = append(reasons, ev.Reason)
		}
		return reasons
	}).WithTimeout(timeout).Should(ContainElement("WorkloadNotAvailable"))
}
