package withevents_test

import (
	"context"
	"os"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
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
	defer func() { g.Expect(mgr.Stop()).To(Succeed()) }()

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
