package kubeevents_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/false-systems/kulta/internal/events/kubeevents"
	"github.com/false-systems/kulta/internal/testenv"
	kultatestutil "github.com/false-systems/kulta/internal/testutil"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

// TestEventsAreWrittenInOrder records Events about a Rollout and checks the API server holds
// them, in the order recorded, with what client-go's recorder would have written, and a note
// over the API server's limit shortened rather than rejected.
func TestEventsAreWrittenInOrder(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := e.CreateNamespace(t, "events")
	ro := kultatestutil.Rollout(ns, "web")
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())

	r := kubeevents.New(kubeevents.Options{Client: e.Client, Scheme: e.Scheme, Controller: "kulta-controller", Logger: logr.Discard()})
	done := make(chan error, 1)
	go func() { done <- r.Start(ctx) }()
	r.Eventf(ro, nil, corev1.EventTypeNormal, "StepAdvanced", "Reconcile", "Step %d done", 0)
	r.Eventf(ro, nil, corev1.EventTypeNormal, "StepAdvanced", "Reconcile", "Step %d done", 1)
	r.Eventf(ro, nil, corev1.EventTypeWarning, "AnalysisFailed", "Reconcile", "%s", strings.Repeat("x", 2000))

	var list eventsv1.EventList
	g.Eventually(func() ([]eventsv1.Event, error) {
		err := e.Client.List(ctx, &list, client.InNamespace(ns))
		return list.Items, err
	}).WithTimeout(10 * time.Second).Should(HaveLen(3))
	byTime := list.Items
	for i := 1; i < len(byTime); i++ {
		for j := i; j > 0 && byTime[j].EventTime.Before(&byTime[j-1].EventTime); j-- {
			byTime[j], byTime[j-1] = byTime[j-1], byTime[j]
		}
	}
	g.Expect(byTime[0].Note).To(Equal("Step 0 done"))
	g.Expect(byTime[1].Note).To(Equal("Step 1 done"))
	for _, ev := range byTime {
		g.Expect(ev.Regarding.Kind).To(Equal("Rollout"))
		g.Expect(ev.Regarding.Name).To(Equal("web"))
		g.Expect(ev.ReportingController).To(Equal("kulta-controller"))
		g.Expect(ev.Action).To(Equal("Reconcile"))
	}
	g.Expect(byTime[2].Type).To(Equal(corev1.EventTypeWarning))
	g.Expect(byTime[2].Note).To(HaveLen(1024))
	g.Expect(byTime[2].Note).To(HaveSuffix("..."))

	cancel()
	g.Eventually(done).Should(Receive(BeNil()))
}

// TestQueuedEventsAreWrittenOnShutdown checks that Events still queued when the manager stops
// are written, not lost.
func TestQueuedEventsAreWrittenOnShutdown(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ns := e.CreateNamespace(t, "drain")
	ro := kultatestutil.Rollout(ns, "web")
	g.Expect(e.Client.Create(context.Background(), ro)).To(Succeed())

	r := kubeevents.New(kubeevents.Options{Client: e.Client, Scheme: e.Scheme, Controller: "kulta-controller", Logger: logr.Discard()})
	for i := range 5 {
		r.Eventf(ro, nil, corev1.EventTypeNormal, "StepAdvanced", "Reconcile", "Step %d done", i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	g.Expect(r.Start(ctx)).To(Succeed())
	var list eventsv1.EventList
	g.Expect(e.Client.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	g.Expect(list.Items).To(HaveLen(5))
}

// TestFullQueueDropsAndCounts checks that recording never blocks: past the queue's size,
// Events are dropped and counted.
func TestFullQueueDropsAndCounts(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ro := kultatestutil.Rollout("default", "web")
	full := func() float64 { return droppedCount(t, "queue_full") }
	before := full()
	r := kubeevents.New(kubeevents.Options{Client: e.Client, Scheme: e.Scheme, Controller: "kulta-controller", QueueSize: 2, Logger: logr.Discard()})
	for i := range 5 {
		r.Eventf(ro, nil, corev1.EventTypeNormal, "StepAdvanced", "Reconcile", "Step %d done", i)
	}
	g.Expect(full() - before).To(Equal(3.0))
}

// droppedCount reads kulta_kubernetes_events_dropped_total{cause} from the metrics registry.
func droppedCount(t *testing.T, cause string) float64 {
	t.Helper()
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "kulta_kubernetes_events_dropped_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "cause" && l.GetValue() == cause {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
