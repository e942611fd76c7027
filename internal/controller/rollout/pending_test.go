package rollout

import (
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
)

func request(name string) reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "default", Name: name}}
}

// TestMarkingQueueNotesEventsNotRequeues checks that the queue notes when a watch event adds a
// Rollout, keeps the last such time, and ignores the controller's own delayed and rate-limited
// requeues; and that what it noted is taken once.
func TestMarkingQueueNotesEventsNotRequeues(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := clocktesting.NewFakePassiveClock(start)
	told := newToldTimes(clock)
	q := newMarkingQueue(told, logr.Discard())("test", workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	pq := q.(priorityqueue.PriorityQueue[reconcile.Request])

	web, api, db := request("web"), request("api"), request("db")
	q.Add(web)
	clock.SetTime(start.Add(time.Second))
	pq.AddWithOpts(priorityqueue.AddOpts{Priority: new(1)}, web, api)
	clock.SetTime(start.Add(2 * time.Second))
	pq.AddWithOpts(priorityqueue.AddOpts{After: time.Minute}, db)
	pq.AddWithOpts(priorityqueue.AddOpts{RateLimited: true}, db)
	q.AddAfter(db, time.Minute)
	q.AddRateLimited(db)

	if at, ok := told.take(web); !ok || !at.Equal(start.Add(time.Second)) {
		t.Errorf("web: noted %v (%v), want the last event at %v", at, ok, start.Add(time.Second))
	}
	if _, ok := told.take(web); ok {
		t.Error("web: a noted time was taken twice")
	}
	if at, ok := told.take(api); !ok || !at.Equal(start.Add(time.Second)) {
		t.Errorf("api: noted %v (%v), want %v", at, ok, start.Add(time.Second))
	}
	if at, ok := told.take(db); ok {
		t.Errorf("db was only requeued by the controller, yet a change was noted at %v", at)
	}
	if left := len(told.at); left != 0 {
		t.Errorf("%d entries left after every Rollout was taken, want 0", left)
	}
	if got := q.Len(); got != 2 {
		t.Errorf("queue holds %d ready Rollouts, want 2 (web and api; db is delayed)", got)
	}
}

// TestToldTimeRestoredAfterAFailedReconcile checks that a failed reconcile gives its noted
// time back, unless a newer change arrived meanwhile.
func TestToldTimeRestoredAfterAFailedReconcile(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := clocktesting.NewFakePassiveClock(start)
	told := newToldTimes(clock)
	web := request("web")

	told.mark(web)
	at, _ := told.take(web)
	told.restore(web, at)
	if got, ok := told.take(web); !ok || !got.Equal(start) {
		t.Errorf("restored %v (%v), want %v", got, ok, start)
	}

	told.mark(web)
	at, _ = told.take(web)
	clock.SetTime(start.Add(time.Second))
	told.mark(web)
	told.restore(web, at)
	if got, _ := told.take(web); !got.Equal(start.Add(time.Second)) {
		t.Errorf("after a newer change, restore left %v, want the newer %v", got, start.Add(time.Second))
	}
}

// TestShiftedCountsPlannedWeightChangesOnly checks which route writes the step latency metric
// observes: a change the plan chose, not a no-op and not the correction of someone else's edit.
func TestShiftedCountsPlannedWeightChangesOnly(t *testing.T) {
	w := func(stable, canary int32) *providers.Weights {
		return &providers.Weights{Stable: stable, Canary: canary}
	}
	step := func(i int32) *int32 { return &i }
	ro := &kultav1alpha1.Rollout{Status: kultav1alpha1.RolloutStatus{CurrentPodTemplateHash: "b", StablePodTemplateHash: "a", CurrentStepIndex: step(1), CurrentWeight: step(20)}}
	cases := []struct {
		name  string
		obs   *providers.Verification
		plan  Plan
		shift bool
	}{
		{"next step", &providers.Verification{Weights: w(80, 20)}, Plan{Weights: w(50, 50), Status: kultav1alpha1.RolloutStatus{CurrentPodTemplateHash: "b", StablePodTemplateHash: "a", CurrentStepIndex: step(2), CurrentWeight: step(50)}}, true},
		{"route unknown", &providers.Verification{}, Plan{Weights: w(80, 20), Status: ro.Status}, true},
		{"already there", &providers.Verification{Weights: w(80, 20)}, Plan{Weights: w(80, 20), Status: ro.Status}, false},
		{"drift put back", &providers.Verification{Weights: w(0, 100)}, Plan{Weights: w(80, 20), Status: ro.Status}, false},
		{"no routing", nil, Plan{Weights: w(80, 20), Status: ro.Status}, false},
		{"routes left alone", &providers.Verification{Weights: w(80, 20)}, Plan{Status: ro.Status}, false},
	}
	for _, c := range cases {
		if got := shifted(Observation{Rollout: ro, Traffic: c.obs}, c.plan); got != c.shift {
			t.Errorf("%s: shifted = %v, want %v", c.name, got, c.shift)
		}
	}

	// A canary at step 2 (weight 50) whose Pods were starting: the routes held step 0's 20.
	canary := testutil.Rollout("default", "web", testutil.WithHTTPRoute("web"),
		testutil.WithCanarySteps(testutil.Weight(20), testutil.PauseFor("30s"), testutil.Weight(50)))
	canary.Status = kultav1alpha1.RolloutStatus{CurrentPodTemplateHash: "b", StablePodTemplateHash: "a", CurrentStepIndex: step(2), CurrentWeight: step(50)}
	ready := Plan{Weights: w(50, 50), Status: canary.Status}
	for _, c := range []struct {
		name           string
		route          *providers.Weights
		drift, shifted bool
	}{
		{"held weight released", w(80, 20), false, true},
		{"someone else's weight", w(0, 100), true, false},
	} {
		obs := Observation{Rollout: canary, Traffic: &providers.Verification{Weights: c.route}}
		if got := drifted(obs, ready); got != c.drift {
			t.Errorf("%s: drifted = %v, want %v", c.name, got, c.drift)
		}
		if got := shifted(obs, ready); got != c.shifted {
			t.Errorf("%s: shifted = %v, want %v", c.name, got, c.shifted)
		}
	}
}

func TestLatestPicksTheLastSetTime(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if got := latest(base); !got.Equal(base) {
		t.Errorf("no times: %v, want the fallback %v", got, base)
	}
	if got := latest(base, time.Time{}, base.Add(-time.Second), base.Add(-3*time.Second)); !got.Equal(base.Add(-time.Second)) {
		t.Errorf("got %v, want the latest set time %v", got, base.Add(-time.Second))
	}
}

func TestRouteFirstWhenTrafficLeavesTheCanary(t *testing.T) {
	at := func(canary int32) *providers.Weights { return &providers.Weights{Stable: 100 - canary, Canary: canary} }
	ro := &kultav1alpha1.Rollout{Spec: kultav1alpha1.RolloutSpec{Strategy: kultav1alpha1.RolloutStrategy{
		Canary: &kultav1alpha1.CanaryStrategy{CanaryService: "web-canary", StableService: "web-stable"},
	}}}
	apart := map[string]string{"web-stable": "rev1", "web-canary": "rev2"}
	promoted := map[string]string{"web-stable": "rev2", "web-canary": "rev2"}
	cases := map[string]struct {
		observed, planned *providers.Weights
		services          map[string]string
		removeHeader      string
		want              bool
	}{
		"a step up pins first":           {observed: at(20), planned: at(50), services: apart, want: false},
		"a rollback moves traffic first": {observed: at(50), planned: at(0), services: apart, want: true},
		"a new revision mid-canary":      {observed: at(20), planned: at(0), services: map[string]string{"web-stable": "rev1", "web-canary": "rev3"}, want: true},
		"unchanged weights":              {observed: at(20), planned: at(20), services: apart, want: false},
		"the variant B rule goes first":  {observed: at(0), planned: at(0), services: apart, removeHeader: "kulta-web-variant-b", want: true},
		"routes not read yet":            {planned: at(0), services: apart, want: false},
		"no weights planned":             {observed: at(20), services: apart, want: false},
		// The stable Service is repinned to the promoted revision before the routes go back to
		// 100/0: moving the routes first would send every user to the old Pods for a moment.
		"a promotion pins first":            {observed: at(100), planned: at(0), services: promoted, want: false},
		"a promotion removing its header":   {observed: at(0), planned: at(0), services: promoted, removeHeader: "kulta-web-variant-b", want: false},
		"only one role Service in the plan": {observed: at(100), planned: at(0), services: map[string]string{"web-stable": "rev2"}, want: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			obs := Observation{}
			if tc.observed != nil {
				obs.Traffic = &providers.Verification{Weights: tc.observed}
			}
			plan := Plan{Weights: tc.planned, Services: tc.services}
			if tc.removeHeader != "" {
				plan.RemoveHeaderRoutes = []string{tc.removeHeader}
			}
			if got := routeFirst(ro, obs, plan); got != tc.want {
				t.Errorf("routeFirst = %v, want %v", got, tc.want)
			}
		})
	}
}
