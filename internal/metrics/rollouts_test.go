package metrics

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	kultatestutil "github.com/false-systems/kulta/internal/testutil"
)

func rolloutIn(phase kultav1alpha1.Phase, step *int32, weight int32) *kultav1alpha1.Rollout {
	ro := &kultav1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"}}
	ro.Spec.Replicas = ptr.To[int32](4)
	ro.Status.Strategy = kultav1alpha1.StrategyCanary
	ro.Status.Phase = phase
	ro.Status.CurrentStepIndex = step
	ro.Status.CurrentWeight = ptr.To(weight)
	ro.Status.ReadyReplicas, ro.Status.UpdatedReplicas = 5, 1
	return ro
}

func TestRolloutCollectorPublishesStateAndTransitions(t *testing.T) {
	c := newRolloutCollector()
	c.observe(rolloutIn(kultav1alpha1.PhaseProgressing, ptr.To[int32](1), 20))
	c.transition("shop", "web", "step", "WeightReached")
	c.transition("shop", "web", "step", "WeightReached")
	c.transition("shop", "web", "pause", "PauseStarted")
	// A second reconcile changes the phase: the info series follows it, with no series left
	// behind for the old phase.
	c.observe(rolloutIn(kultav1alpha1.PhasePaused, ptr.To[int32](2), 50))

	want := `
# HELP kulta_rollout_canary_weight Percentage of traffic the Rollout's current revision receives.
# TYPE kulta_rollout_canary_weight gauge
kulta_rollout_canary_weight{namespace="shop",rollout="web"} 50
# HELP kulta_rollout_info One series per Rollout, 1, labelled with its strategy and current phase.
# TYPE kulta_rollout_info gauge
kulta_rollout_info{namespace="shop",phase="Paused",rollout="web",strategy="canary"} 1
# HELP kulta_rollout_replicas Replicas of the Rollout by kind: desired, ready or updated.
# TYPE kulta_rollout_replicas gauge
kulta_rollout_replicas{kind="desired",namespace="shop",rollout="web"} 4
kulta_rollout_replicas{kind="ready",namespace="shop",rollout="web"} 5
kulta_rollout_replicas{kind="updated",namespace="shop",rollout="web"} 1
# HELP kulta_rollout_routes Canary header and mirror routes (setHeaderRoute, setMirrorRoute) the Rollout has in place, by type.
# TYPE kulta_rollout_routes gauge
kulta_rollout_routes{namespace="shop",rollout="web",type="header"} 0
kulta_rollout_routes{namespace="shop",rollout="web",type="mirror"} 0
# HELP kulta_rollout_step Current canary step index of the Rollout (-1 when it has no steps).
# TYPE kulta_rollout_step gauge
kulta_rollout_step{namespace="shop",rollout="web"} 2
# HELP kulta_rollout_transitions_total Rollout transitions by kind (step, promotion, rollback, abort, pause) and reason.
# TYPE kulta_rollout_transitions_total counter
kulta_rollout_transitions_total{kind="pause",namespace="shop",reason="PauseStarted",rollout="web"} 1
kulta_rollout_transitions_total{kind="step",namespace="shop",reason="WeightReached",rollout="web"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestRolloutCollectorDefaults(t *testing.T) {
	c := newRolloutCollector()
	ro := rolloutIn(kultav1alpha1.PhaseCompleted, nil, 0)
	ro.Spec.Replicas = nil
	ro.Status.CurrentWeight = nil
	c.observe(ro)
	want := `
# HELP kulta_rollout_step Current canary step index of the Rollout (-1 when it has no steps).
# TYPE kulta_rollout_step gauge
kulta_rollout_step{namespace="shop",rollout="web"} -1
# HELP kulta_rollout_replicas Replicas of the Rollout by kind: desired, ready or updated.
# TYPE kulta_rollout_replicas gauge
kulta_rollout_replicas{kind="desired",namespace="shop",rollout="web"} 1
kulta_rollout_replicas{kind="ready",namespace="shop",rollout="web"} 5
kulta_rollout_replicas{kind="updated",namespace="shop",rollout="web"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "kulta_rollout_step", "kulta_rollout_replicas"); err != nil {
		t.Fatal(err)
	}
}

func TestRolloutCollectorForget(t *testing.T) {
	c := newRolloutCollector()
	c.observe(rolloutIn(kultav1alpha1.PhaseProgressing, ptr.To[int32](0), 20))
	other := rolloutIn(kultav1alpha1.PhaseProgressing, ptr.To[int32](0), 20)
	other.Name = "api"
	c.observe(other)
	c.transition("shop", "web", "start", "NewRevision")
	c.observeWorkload("shop", "web", &Workload{Name: "web", Replicas: 3, Available: 3})
	if n := testutil.CollectAndCount(c); n != 19 {
		t.Fatalf("two Rollouts, one adopting, and one transition: got %d series, want 19", n)
	}
	c.forget("shop", "web")
	if n := testutil.CollectAndCount(c); n != 8 {
		t.Fatalf("after forgetting web: got %d series, want the 8 of api", n)
	}
	if n := testutil.CollectAndCount(c, "kulta_rollout_transitions_total"); n != 0 {
		t.Fatalf("web's transition survived Forget: %d series", n)
	}
}

// The collector is registered with the controller's registry; a second registration of the
// same descriptors must fail, which shows Describe reports all of them.
func TestRolloutCollectorDescribesItsSeries(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(newRolloutCollector())
	if err := reg.Register(newRolloutCollector()); err == nil {
		t.Fatal("registering a second collector with the same series succeeded")
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

// The routes in place are counted by type, a name's type being its last step's; an adopted
// Deployment's counts are published while the Rollout adopts it, adopted only once KULTA
// scaled it, and go when it no longer does.
func TestRolloutCollectorRoutesAndWorkload(t *testing.T) {
	c := newRolloutCollector()
	ro := rolloutIn(kultav1alpha1.PhaseProgressing, ptr.To[int32](3), 0)
	ro.Spec.Strategy.Canary = &kultav1alpha1.CanaryStrategy{Steps: []kultav1alpha1.CanaryStep{
		{SetHeaderRoute: &kultav1alpha1.SetHeaderRoute{Name: "testers"}},
		{SetHeaderRoute: &kultav1alpha1.SetHeaderRoute{Name: "shadow"}},
		{SetMirrorRoute: &kultav1alpha1.SetMirrorRoute{Name: "shadow", Percentage: ptr.To[int32](10)}},
		{SetMirrorRoute: &kultav1alpha1.SetMirrorRoute{Name: "api", Percentage: ptr.To[int32](10)}},
	}}
	ro.Status.HeaderRoutes = []string{"api", "shadow", "testers"}
	c.observe(ro)
	c.observeWorkload("shop", "web", &Workload{Name: "web-deploy", Replicas: 2, Available: 2})
	want := `
# HELP kulta_rollout_routes Canary header and mirror routes (setHeaderRoute, setMirrorRoute) the Rollout has in place, by type.
# TYPE kulta_rollout_routes gauge
kulta_rollout_routes{namespace="shop",rollout="web",type="header"} 1
kulta_rollout_routes{namespace="shop",rollout="web",type="mirror"} 2
# HELP kulta_rollout_workload_replicas Replicas of the Deployment a Rollout adopts (spec.workloadRef) by kind: desired (its spec.replicas), available, and adopted (its count before KULTA scaled it).
# TYPE kulta_rollout_workload_replicas gauge
kulta_rollout_workload_replicas{kind="available",namespace="shop",rollout="web",workload="web-deploy"} 2
kulta_rollout_workload_replicas{kind="desired",namespace="shop",rollout="web",workload="web-deploy"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "kulta_rollout_routes", "kulta_rollout_workload_replicas"); err != nil {
		t.Fatal(err)
	}
	c.observeWorkload("shop", "web", &Workload{Name: "web-deploy", Replicas: 1, Available: 2, Adopted: ptr.To[int32](3)})
	want = `
# HELP kulta_rollout_workload_replicas Replicas of the Deployment a Rollout adopts (spec.workloadRef) by kind: desired (its spec.replicas), available, and adopted (its count before KULTA scaled it).
# TYPE kulta_rollout_workload_replicas gauge
kulta_rollout_workload_replicas{kind="adopted",namespace="shop",rollout="web",workload="web-deploy"} 3
kulta_rollout_workload_replicas{kind="available",namespace="shop",rollout="web",workload="web-deploy"} 2
kulta_rollout_workload_replicas{kind="desired",namespace="shop",rollout="web",workload="web-deploy"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "kulta_rollout_workload_replicas"); err != nil {
		t.Fatal(err)
	}
	c.observeWorkload("shop", "web", nil)
	if n := testutil.CollectAndCount(c, "kulta_rollout_workload_replicas"); n != 0 {
		t.Errorf("%d workload series after the Rollout stopped adopting, want 0", n)
	}
}

// A route's type is the kind of the last step that names it, even when that step removes the
// route (a setMirrorRoute with neither percentage nor match, a setHeaderRoute with no match):
// while the Rollout waits before that step, the route is counted as the kind that ends it.
func TestRouteTypeIsTheLastNamingStep(t *testing.T) {
	setHeader := kultatestutil.HeaderRouteStep("beta", kultatestutil.HeaderExact("X-Beta", "1"))
	removeHeader := kultatestutil.HeaderRouteStep("beta")
	setMirror := kultatestutil.MirrorRouteStep("beta", 5)
	removeMirror := kultatestutil.MirrorRouteStep("beta", 0)
	pause := kultatestutil.PauseUntilPromoted()
	for _, tc := range []struct {
		name   string
		steps  []kultav1alpha1.CanaryStep
		mirror bool
	}{
		{"header set, mirror removal last", []kultav1alpha1.CanaryStep{setHeader, pause, removeMirror}, true},
		{"mirror set, header removal last", []kultav1alpha1.CanaryStep{setMirror, pause, removeHeader}, false},
		{"mirror set and removed", []kultav1alpha1.CanaryStep{setMirror, pause, removeMirror}, true},
		{"no step names it", []kultav1alpha1.CanaryStep{pause}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ro := rolloutIn(kultav1alpha1.PhasePaused, ptr.To[int32](1), 0)
			ro.Spec.Strategy.Canary = &kultav1alpha1.CanaryStrategy{Steps: tc.steps}
			if got := mirrorRoute(ro, "beta"); got != tc.mirror {
				t.Errorf("mirrorRoute = %v, want %v", got, tc.mirror)
			}
		})
	}
}

// The label pairs of a Rollout's namespace and name, and those of bounded values, are made
// once: every series and every scrape carries the same pairs, which client_golang only reads.
// Values still come out right when the phase changes between scrapes.
func TestRolloutCollectorSharesLabelPairs(t *testing.T) {
	c := newRolloutCollector()
	c.observe(rolloutIn(kultav1alpha1.PhaseProgressing, ptr.To[int32](1), 20))
	c.transition("shop", "web", "step", "WeightReached")
	scrape := func() []*dto.Metric {
		ch := make(chan prometheus.Metric, 64)
		c.Collect(ch)
		close(ch)
		var out []*dto.Metric
		for m := range ch {
			var d dto.Metric
			if err := m.Write(&d); err != nil {
				t.Fatal(err)
			}
			out = append(out, &d)
		}
		return out
	}
	pairs := func(ms []*dto.Metric, name string) map[*dto.LabelPair]bool {
		seen := map[*dto.LabelPair]bool{}
		for _, m := range ms {
			for _, l := range m.GetLabel() {
				if l.GetName() == name {
					seen[l] = true
				}
			}
		}
		return seen
	}
	first := scrape()
	c.observe(rolloutIn(kultav1alpha1.PhasePaused, ptr.To[int32](2), 50))
	second := scrape()
	for _, name := range []string{"namespace", "rollout", "kind"} {
		all := pairs(append(slices.Clone(first), second...), name)
		want := 1
		if name == "kind" {
			want = 4 // desired, ready, updated, and the transition's "step"
		}
		if len(all) != want {
			t.Errorf("label %q: %d distinct pairs over %d series in two scrapes, want %d", name, len(all), len(first)+len(second), want)
		}
	}
	for _, m := range second {
		for _, l := range m.GetLabel() {
			if l.GetName() == "phase" && l.GetValue() != "Paused" {
				t.Errorf("second scrape: phase %q, want Paused", l.GetValue())
			}
		}
	}
}

// BenchmarkRolloutCollectorScrape gathers the per-Rollout series of 10,000 Rollouts, each with
// three transitions, through a registry, as /metrics does: its allocations are what a scrape
// adds to the controller's heap while it runs.
func BenchmarkRolloutCollectorScrape(b *testing.B) {
	c := newRolloutCollector()
	for i := range 10000 {
		ro := rolloutIn(kultav1alpha1.PhaseCompleted, ptr.To[int32](3), 100)
		ro.Namespace, ro.Name = fmt.Sprintf("ns-%03d", i/100), fmt.Sprintf("ro-%05d", i)
		c.observe(ro)
		for _, reason := range []string{"NewRevision", "WeightReached", "Completed"} {
			c.transition(ro.Namespace, ro.Name, "step", reason)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

// A Rollout that comes to adopt another Deployment publishes the new name: the workload's pair
// is kept only while the name stays the same.
func TestRolloutCollectorWorkloadRenamed(t *testing.T) {
	c := newRolloutCollector()
	c.observe(rolloutIn(kultav1alpha1.PhaseProgressing, ptr.To[int32](0), 0))
	c.observeWorkload("shop", "web", &Workload{Name: "old-deploy", Replicas: 2, Available: 2})
	c.observeWorkload("shop", "web", &Workload{Name: "new-deploy", Replicas: 3, Available: 1})
	want := `
# HELP kulta_rollout_workload_replicas Replicas of the Deployment a Rollout adopts (spec.workloadRef) by kind: desired (its spec.replicas), available, and adopted (its count before KULTA scaled it).
# TYPE kulta_rollout_workload_replicas gauge
kulta_rollout_workload_replicas{kind="available",namespace="shop",rollout="web",workload="new-deploy"} 1
kulta_rollout_workload_replicas{kind="desired",namespace="shop",rollout="web",workload="new-deploy"} 3
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "kulta_rollout_workload_replicas"); err != nil {
		t.Fatal(err)
	}
}
