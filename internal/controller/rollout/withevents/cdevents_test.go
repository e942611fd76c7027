package withevents_test

import (
	"context"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/internal/events"
	"github.com/false-systems/kulta/internal/events/cdevents"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env))
}

// TestCDEventsFollowTheRollout drives one canary to completion and another to a rollback with
// the reconciler sending CDEvents to a real HTTP receiver, and checks the ordered event types.
func TestCDEventsFollowTheRollout(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx, rec, sender := startWithCDEvents(t, e)

	ns := e.CreateNamespace(t, "cdevents")
	for _, name := range []string{"done", "back"} {
		for _, svc := range []string{name + "-stable", name + "-canary"} {
			g.Expect(e.Client.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc},
				Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{Port: 80}}}})).To(Succeed())
		}
		ro := testutil.Rollout(ns, name, testutil.WithCanarySteps(testutil.Weight(50), testutil.PauseUntilPromoted()))
		g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	}
	rollouttest.DriveToCompletionAndRollback(g, e.Client, ns, "done", "back", 30*time.Second)

	g.Eventually(func() []string { return rec.Types(events.RolloutURI(ns, "done")) }).WithTimeout(30 * time.Second).Should(Equal([]string{
		"service.deployed", "service.published", // the first revision
		"service.deployed", "service.upgraded", "service.upgraded", "service.published",
	}))
	g.Eventually(func() []string { return rec.Types(events.RolloutURI(ns, "back")) }).WithTimeout(30 * time.Second).Should(Equal([]string{
		"service.deployed", "service.published",
		"service.deployed", "service.upgraded", "service.rolledback",
	}))
	g.Expect(sender.Stats().Dropped).To(BeZero())
	g.Expect(rec.Rejected()).To(BeZero(), "requests that were not binary-mode CloudEvents")
}

// TestCDEventsNameTheAdoptedDeploymentsImage: a Rollout that adopts a Deployment has no
// template of its own; its CDEvents name the image of the Deployment's template.
func TestCDEventsNameTheAdoptedDeploymentsImage(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx, rec, _ := startWithCDEvents(t, e)

	ns := e.CreateNamespace(t, "cdevents-adopt")
	for _, svc := range []string{"shop-stable", "shop-canary"} {
		g.Expect(e.Client.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "shop"}, Ports: []corev1.ServicePort{{Port: 80}}}})).To(Succeed())
	}
	labels := map[string]string{"app": "shop"}
	g.Expect(e.Client.Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/shop:2.4.1"}}}},
		},
	})).To(Succeed())
	ro := testutil.Rollout(ns, "shop", func(ro *kultav1alpha1.Rollout) {
		ro.Spec.Template, ro.Spec.Selector = kultav1alpha1.PodTemplate{}, nil
		ro.Spec.WorkloadRef = &kultav1alpha1.WorkloadRef{Name: "shop"}
	})
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	g.Eventually(func() []string { return rec.Artifacts(events.RolloutURI(ns, "shop")) }).WithTimeout(30 * time.Second).Should(And(
		Not(BeEmpty()), HaveEach(ContainSubstring("shop@2.4.1"))))
}

// startWithCDEvents starts a CDEvents receiver, a sender to it and a manager whose reconciler
// sends every transition; all stop when t ends, the manager first.
func startWithCDEvents(t *testing.T, e *testenv.Env) (context.Context, *testenv.CDEventsReceiver, *cdevents.Sink) {
	t.Helper()
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	rec := testenv.StartCDEventsReceiver(t)
	sender, err := cdevents.New(cdevents.Options{URL: rec.URL()})
	g.Expect(err).NotTo(HaveOccurred())
	go func() {
		if err := sender.Start(ctx); err != nil {
			t.Errorf("CDEvents sender: %v", err)
		}
	}()
	mgr, err := rollouttest.Start(ctx, e, rollouttest.WithEvents(sender))
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { g.Expect(mgr.Stop()).To(Succeed()) })
	return ctx, rec, sender
}
