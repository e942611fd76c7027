package rollout

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	kultascheme "github.com/false-systems/kulta/internal/scheme"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
)

// TestTransientAfterOwnWrite checks which status writes the reconciler leaves to the next
// reconcile: only the one that says the weights KULTA just wrote are on their way.
func TestTransientAfterOwnWrite(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// stored is a canary at step 1 (weight 50) whose routes carry 80/20, the previous step.
	stored := testutil.Rollout("default", "web", testutil.WithHTTPRoute("web"),
		testutil.WithCanarySteps(testutil.Weight(20), testutil.Weight(50)))
	stored.Generation = 2
	stored.Status = kultav1alpha1.RolloutStatus{
		ObservedGeneration: 2, Phase: kultav1alpha1.PhaseProgressing, Message: "Step 1: waiting for 2 of 2 canary Pods",
		CurrentStepIndex: ptr.To[int32](1), CurrentWeight: ptr.To[int32](50), StablePodTemplateHash: "a", CurrentPodTemplateHash: "b",
		Replicas: 5, ReadyReplicas: 4,
	}
	meta.SetStatusCondition(&stored.Status.Conditions, metav1.Condition{Type: kultav1alpha1.ConditionTrafficRouted,
		Status: metav1.ConditionTrue, Reason: "RoutesAccepted", ObservedGeneration: 2, LastTransitionTime: metav1.NewTime(now)})
	obs := Observation{Rollout: stored, Now: now, Traffic: &providers.Verification{Weights: &providers.Weights{Stable: 80, Canary: 20}, Accepted: true}}

	// writing is the reconcile that writes 50/50 now that the Pods are ready.
	writing := func() (*kultav1alpha1.Rollout, Plan) {
		ro := stored.DeepCopy()
		ro.Status.Message = "Step 1: setting route weights 50/50"
		ro.Status.ReadyReplicas = 5
		meta.SetStatusCondition(&ro.Status.Conditions, metav1.Condition{Type: kultav1alpha1.ConditionTrafficRouted,
			Status: metav1.ConditionFalse, Reason: ReasonWeightsNotApplied, ObservedGeneration: 2, LastTransitionTime: metav1.NewTime(now)})
		return ro, Plan{Status: ro.Status, Weights: &providers.Weights{Stable: 50, Canary: 50}}
	}
	ro, plan := writing()
	if !shifted(obs, plan) || !transientAfterOwnWrite(stored, ro, plan) {
		t.Fatal("the write of a step's weights, with only the message, conditions and Pod counts changed, must be folded")
	}

	cases := map[string]func(ro *kultav1alpha1.Rollout, plan *Plan, obs *Observation){
		"an event is due": func(_ *kultav1alpha1.Rollout, plan *Plan, _ *Observation) {
			plan.Events = []Event{{Type: "Normal", Reason: "StepAdvanced"}}
		},
		"the step moved": func(ro *kultav1alpha1.Rollout, _ *Plan, _ *Observation) {
			ro.Status.CurrentStepIndex = ptr.To[int32](2)
		},
		"a new generation": func(ro *kultav1alpha1.Rollout, _ *Plan, _ *Observation) { ro.Status.ObservedGeneration = 3 },
		"a decision": func(ro *kultav1alpha1.Rollout, _ *Plan, _ *Observation) {
			ro.Status.Decisions = append(ro.Status.Decisions, kultav1alpha1.Decision{Action: kultav1alpha1.ActionRollback})
		},
		"no route write": func(_ *kultav1alpha1.Rollout, plan *Plan, _ *Observation) {
			plan.Weights = &providers.Weights{Stable: 80, Canary: 20}
		},
		"a drift correction": func(_ *kultav1alpha1.Rollout, _ *Plan, obs *Observation) {
			obs.Traffic = &providers.Verification{Weights: &providers.Weights{Stable: 10, Canary: 90}, Accepted: true}
		},
		"routes refused, not in flight": func(ro *kultav1alpha1.Rollout, _ *Plan, _ *Observation) {
			meta.SetStatusCondition(&ro.Status.Conditions, metav1.Condition{Type: kultav1alpha1.ConditionTrafficRouted,
				Status: metav1.ConditionFalse, Reason: "RouteNotAccepted", ObservedGeneration: 2})
		},
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			ro, plan := writing()
			o := obs
			change(ro, &plan, &o)
			if shifted(o, plan) && transientAfterOwnWrite(stored, ro, plan) {
				t.Errorf("%s: the status write was folded; it must be written", name)
			}
		})
	}
}

// TestFoldStatusWhileLanding follows a step's weights from their write to their acceptance
// through the reconciler's fold: the reconciles in between, which only find the weights not
// yet accepted, leave their status write to the acceptance's, until FoldedStatusBound has
// passed since the write; a parent that refuses them, a changed plan or a restart (nothing
// noted) gets the write at once.
func TestFoldStatusWhileLanding(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	key := types.NamespacedName{Namespace: "default", Name: "web"}
	fifty := providers.Weights{Stable: 50, Canary: 50}
	// stored is the status the step's own reconcile wrote: step 1, routes waiting for 50/50.
	stored := testutil.Rollout("default", "web", testutil.WithHTTPRoute("web"),
		testutil.WithCanarySteps(testutil.Weight(20), testutil.Weight(50), testutil.Weight(100)))
	stored.Generation = 2
	stored.Status = kultav1alpha1.RolloutStatus{ObservedGeneration: 2, Phase: kultav1alpha1.PhaseProgressing,
		Message: "Step 1: setting route weights 50/50", CurrentStepIndex: ptr.To[int32](1), CurrentWeight: ptr.To[int32](50)}
	meta.SetStatusCondition(&stored.Status.Conditions, metav1.Condition{Type: kultav1alpha1.ConditionTrafficRouted,
		Status: metav1.ConditionFalse, Reason: ReasonWeightsNotApplied, ObservedGeneration: 2})
	// waiting is what a reconcile computes while the routes carry 50/50, not accepted yet.
	waiting := func() *kultav1alpha1.Rollout {
		ro := stored.DeepCopy()
		ro.Status.Message = "Step 1: HTTPRoute default/web generation 3 is not yet accepted by parent Gateway default/public"
		meta.SetStatusCondition(&ro.Status.Conditions, metav1.Condition{Type: kultav1alpha1.ConditionTrafficRouted,
			Status: metav1.ConditionFalse, Reason: ReasonRouteNotAccepted, ObservedGeneration: 2})
		return ro
	}
	landing := func(at time.Time, v providers.Verification) (Observation, Plan) {
		v.Weights = &fifty
		return Observation{Rollout: stored, Now: at, Traffic: &v}, Plan{Status: waiting().Status, Weights: &fifty}
	}
	// The step's write: the routes carried 80/20 before it.
	write := func(r *Reconciler) {
		obs := Observation{Rollout: stored, Now: now, Traffic: &providers.Verification{Weights: &providers.Weights{Stable: 80, Canary: 20}, Accepted: true}}
		ro := stored.DeepCopy()
		plan := Plan{Status: ro.Status, Weights: &fifty, Events: []Event{{Type: "Normal", Reason: "StepAdvanced"}}}
		if _, folded := r.foldStatus(key, stored, ro, obs, plan, shifted(obs, plan)); folded {
			t.Fatal("the step's own write carries an Event: it must be written")
		}
	}

	r := &Reconciler{FoldedStatusBound: 30 * time.Second}
	write(r)
	obs, plan := landing(now.Add(100*time.Millisecond), providers.Verification{Pending: true, Message: "not yet accepted"})
	wait, folded := r.foldStatus(key, stored, waiting(), obs, plan, shifted(obs, plan))
	if !folded || wait != 30*time.Second-100*time.Millisecond {
		t.Fatalf("the own write's watch event, weights not yet accepted: folded %v, wait %s; want folded, the rest of the bound", folded, wait)
	}
	obs, plan = landing(now.Add(20*time.Second), providers.Verification{Pending: true})
	if _, folded := r.foldStatus(key, stored, waiting(), obs, plan, shifted(obs, plan)); !folded {
		t.Fatal("still waiting within the bound: the write must be left out")
	}
	obs, plan = landing(now.Add(30*time.Second), providers.Verification{Pending: true})
	if _, folded := r.foldStatus(key, stored, waiting(), obs, plan, shifted(obs, plan)); folded {
		t.Fatal("the bound has passed: the status must say the routes are not accepted")
	}

	cases := map[string]func(ro *kultav1alpha1.Rollout, plan *Plan, obs *Observation){
		"a parent refused the weights": func(_ *kultav1alpha1.Rollout, _ *Plan, obs *Observation) { obs.Traffic.Pending = false },
		"the plan wants other weights": func(_ *kultav1alpha1.Rollout, plan *Plan, _ *Observation) {
			plan.Weights = &providers.Weights{Stable: 100}
		},
		"the routes carry other weights": func(_ *kultav1alpha1.Rollout, _ *Plan, obs *Observation) {
			obs.Traffic.Weights = &providers.Weights{Stable: 80, Canary: 20}
		},
		"an event is due": func(_ *kultav1alpha1.Rollout, plan *Plan, _ *Observation) {
			plan.Events = []Event{{Type: "Warning", Reason: "AnalysisFailed"}}
		},
		"the step moved": func(ro *kultav1alpha1.Rollout, _ *Plan, _ *Observation) {
			ro.Status.CurrentStepIndex = ptr.To[int32](2)
		},
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			r := &Reconciler{FoldedStatusBound: 30 * time.Second}
			write(r)
			ro := waiting()
			obs, plan := landing(now.Add(time.Second), providers.Verification{Pending: true})
			change(ro, &plan, &obs)
			if _, folded := r.foldStatus(key, stored, ro, obs, plan, shifted(obs, plan)); folded {
				t.Errorf("%s: the status write was folded; it must be written", name)
			}
		})
	}
	t.Run("nothing noted (a restart)", func(t *testing.T) {
		obs, plan := landing(now.Add(time.Second), providers.Verification{Pending: true})
		if _, folded := (&Reconciler{}).foldStatus(key, stored, waiting(), obs, plan, shifted(obs, plan)); folded {
			t.Error("a reconciler that wrote no weights folded the status write")
		}
	})
}

// TestCountsLater checks that status writes that would only tell Pods turning ready wait for
// one another, up to CountsInterval after the first, and that any other change is written at
// once with the counts.
func TestCountsLater(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	key := types.NamespacedName{Namespace: "default", Name: "web"}
	stored := testutil.Rollout("default", "web", testutil.WithReplicas(4))
	stored.Status = kultav1alpha1.RolloutStatus{Phase: kultav1alpha1.PhaseProgressing, Message: "Step 0: waiting for 4 of 4 canary Pods",
		CurrentStepIndex: ptr.To[int32](0), Replicas: 4, ReadyReplicas: 4, AvailableReplicas: 4}
	meta.SetStatusCondition(&stored.Status.Conditions, metav1.Condition{Type: kultav1alpha1.ConditionProgressing,
		Status: metav1.ConditionTrue, Reason: ReasonProgressing, Message: stored.Status.Message})
	ready := func(n int32) *kultav1alpha1.Rollout {
		ro := stored.DeepCopy()
		ro.Status.Replicas, ro.Status.UpdatedReplicas, ro.Status.ReadyReplicas = 8, 4, 4+n
		ro.Status.Message = fmt.Sprintf("Step 0: waiting for %d of 4 canary Pods", 4-n)
		ro.Status.Conditions[0].Message = ro.Status.Message
		return ro
	}
	r := &Reconciler{CountsInterval: 5 * time.Second}
	if wait, later := r.countsLater(key, stored, ready(1), now); !later || wait != 5*time.Second {
		t.Fatalf("the first Pod ready: later %v, wait %s; want a wait of the whole interval", later, wait)
	}
	if wait, later := r.countsLater(key, stored, ready(2), now.Add(2*time.Second)); !later || wait != 3*time.Second {
		t.Fatalf("the second Pod 2 s later: later %v, wait %s; want the rest of the interval", later, wait)
	}
	if _, later := r.countsLater(key, stored, ready(3), now.Add(5*time.Second)); later {
		t.Fatal("the interval has passed since the first count waited: the counts must be written")
	}
	if _, later := r.countsLater(key, stored, ready(3), now.Add(6*time.Second)); !later {
		t.Fatal("after a write a new wait starts")
	}

	cases := map[string]func(ro *kultav1alpha1.Rollout){
		"nothing changed":  func(ro *kultav1alpha1.Rollout) { ro.Status = *stored.Status.DeepCopy() },
		"the step moved":   func(ro *kultav1alpha1.Rollout) { ro.Status.CurrentStepIndex = ptr.To[int32](1) },
		"the phase moved":  func(ro *kultav1alpha1.Rollout) { ro.Status.Phase = kultav1alpha1.PhasePaused },
		"a reason changed": func(ro *kultav1alpha1.Rollout) { ro.Status.Conditions[0].Reason = "Other" },
		"a condition came": func(ro *kultav1alpha1.Rollout) {
			ro.Status.Conditions = append(ro.Status.Conditions, metav1.Condition{Type: kultav1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: "X"})
		},
		"a scale-down mark came": func(ro *kultav1alpha1.Rollout) {
			ro.Status.ScaleDowns = []kultav1alpha1.ScaleDown{{PodTemplateHash: "old", At: metav1.NewTime(now.Add(30 * time.Second))}}
		},
		"the generation was observed": func(ro *kultav1alpha1.Rollout) { ro.Status.ObservedGeneration = 3 },
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			r := &Reconciler{}
			ro := ready(1)
			change(ro)
			if _, later := r.countsLater(key, stored, ro, now); later {
				t.Errorf("%s: the write waited; it must be made at once", name)
			}
		})
	}
}

// TestCountsWaitForRoom checks that a write of Pod counts alone, once its interval is over,
// waits while the client's writes to Rollouts queue, retrying after as long again as it has
// waited, and is made when the client has room or the bound has passed; a write that drops
// the scale-down mark of a revision whose Pods are gone is such a write.
func TestCountsWaitForRoom(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	key := types.NamespacedName{Namespace: "default", Name: "web"}
	stored := testutil.Rollout("default", "web", testutil.WithReplicas(4))
	stored.Status = kultav1alpha1.RolloutStatus{Phase: kultav1alpha1.PhaseCompleted, Replicas: 8, ReadyReplicas: 8, AvailableReplicas: 8, UpdatedReplicas: 4,
		ScaleDowns: []kultav1alpha1.ScaleDown{{PodTemplateHash: "old", At: metav1.NewTime(now.Add(-time.Second))}}}
	// The old revision's Pods are gone: the counts fall and its mark is dropped.
	gone := stored.DeepCopy()
	gone.Status.Replicas, gone.Status.ReadyReplicas, gone.Status.AvailableReplicas = 4, 4, 4
	gone.Status.ScaleDowns = nil

	// A client of 1 write/s that just made 100 writes: a queue of 99 s.
	busy := &Reconciler{CountsInterval: 5 * time.Second, CountsBound: time.Minute, ClientQPS: 1, ClientBurst: 1}
	for range 100 {
		busy.rolloutWrites().spend(now)
	}
	want := []struct {
		at   time.Duration
		wait time.Duration
	}{{0, 5 * time.Second}, {5 * time.Second, 5 * time.Second}, {10 * time.Second, 10 * time.Second},
		{20 * time.Second, 20 * time.Second}, {40 * time.Second, 20 * time.Second}}
	for _, w := range want {
		wait, later := busy.countsLater(key, stored, gone, now.Add(w.at))
		if !later || wait != w.wait {
			t.Fatalf("queued client, %s after the first wait: later %v, wait %s; want a wait of %s", w.at, later, wait, w.wait)
		}
	}
	if _, later := busy.countsLater(key, stored, gone, now.Add(time.Minute)); later {
		t.Fatal("the bound has passed: the counts must be written though the client is still queued")
	}

	idle := &Reconciler{CountsInterval: 5 * time.Second, CountsBound: time.Minute, ClientQPS: 1, ClientBurst: 1}
	if wait, later := idle.countsLater(key, stored, gone, now); !later || wait != 5*time.Second {
		t.Fatalf("first wait: later %v, wait %s; want the interval", later, wait)
	}
	if _, later := idle.countsLater(key, stored, gone, now.Add(5*time.Second)); later {
		t.Fatal("the interval is over and the client has room: the counts must be written")
	}

	unlimited := &Reconciler{CountsInterval: 5 * time.Second}
	unlimited.rolloutWrites().spend(now)
	unlimited.countsLater(key, stored, gone, now)
	if _, later := unlimited.countsLater(key, stored, gone, now.Add(5*time.Second)); later {
		t.Fatal("a client without a limit never queues: the counts must be written after the interval")
	}
}

// TestWriteBudget checks the mirror of the client's bucket: a burst goes out at once, then
// writes queue until the bucket refills at the client's rate.
func TestWriteBudget(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newWriteBudget(2, 2)
	if !b.spare(now) {
		t.Fatal("a full bucket has room")
	}
	b.spend(now)
	b.spend(now)
	if b.spare(now) {
		t.Fatal("the burst is spent: the next write waits")
	}
	if !b.spare(now.Add(500 * time.Millisecond)) {
		t.Fatal("at 2 writes/s a token is back after 0.5 s")
	}
	for range 4 {
		b.spend(now)
	}
	if b.spare(now.Add(2 * time.Second)) {
		t.Fatal("four writes beyond the burst queue for 2 s: no room until a token is back after that")
	}
	if !b.spare(now.Add(2500 * time.Millisecond)) {
		t.Fatal("2.5 s later the queue has gone and a token is back")
	}
	var none *writeBudget
	none.spend(now)
	if !none.spare(now) || newWriteBudget(0, 10) != nil || newWriteBudget(-1, 10) != nil {
		t.Fatal("without a limit the client always has room")
	}
}

// TestDeletedRolloutForgetsItsNotes checks that the reconcile of a Rollout that is gone drops
// what the reconciler kept in memory for it: a landing route write, a waiting count write and
// its shard mark, so that deleting Rollouts mid-way leaves nothing behind.
func TestDeletedRolloutForgetsItsNotes(t *testing.T) {
	scheme, err := kultascheme.New()
	if err != nil {
		t.Fatal(err)
	}
	key := types.NamespacedName{Namespace: "shop", Name: "gone"}
	r := &Reconciler{Client: fake.NewClientBuilder().WithScheme(scheme).Build(), Clock: clocktesting.NewFakePassiveClock(time.Now())}
	r.landing.Store(key, landingWrite{weights: providers.Weights{Stable: 50, Canary: 50}, at: time.Now()})
	r.counting.Store(key, time.Now())
	r.inShard.Store(key, types.UID("uid"))
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: key}); err != nil {
		t.Fatalf("reconciling a deleted Rollout: %v", err)
	}
	for name, notes := range map[string]*sync.Map{"landing": &r.landing, "counting": &r.counting, "inShard": &r.inShard} {
		if _, kept := notes.Load(key); kept {
			t.Errorf("the %s note of the deleted Rollout was kept", name)
		}
	}
}

// TestBudgetedClientCountsRolloutWrites checks that the reconciler's client spends from the
// mirror of the client's bucket for each write to a Rollout, object or status, and for no
// write to another kind.
func TestBudgetedClientCountsRolloutWrites(t *testing.T) {
	scheme, err := kultascheme.New()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ro := testutil.Rollout("shop", "web")
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-stable"}}
	spent := 0
	c := budgetedClient{
		Client: fake.NewClientBuilder().WithScheme(scheme).WithObjects(ro, svc).WithStatusSubresource(ro).Build(),
		spend:  func() { spent++ },
	}
	writes := []struct {
		name  string
		write func() error
		want  int
	}{
		{"patch a Rollout", func() error {
			return c.Patch(ctx, ro, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"a":"b"}}}`)))
		}, 1},
		{"patch a Rollout's status", func() error {
			return c.Status().Patch(ctx, ro, client.RawPatch(types.MergePatchType, []byte(`{"status":{"message":"m"}}`)))
		}, 2},
		{"update a Rollout's status", func() error { return c.Status().Update(ctx, ro) }, 3},
		{"update a Rollout", func() error { return c.Update(ctx, ro) }, 4},
		{"patch a Service", func() error {
			return c.Patch(ctx, svc, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"a":"b"}}}`)))
		}, 4},
		{"create a Service", func() error {
			return c.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-canary"}})
		}, 4},
		{"delete a Rollout", func() error { return c.Delete(ctx, ro) }, 5},
		{"create a Rollout", func() error { return c.Create(ctx, testutil.Rollout("shop", "api")) }, 6},
	}
	for _, w := range writes {
		if err := w.write(); err != nil {
			t.Fatalf("%s: %v", w.name, err)
		}
		if spent != w.want {
			t.Fatalf("after %s the budget has %d writes spent, want %d", w.name, spent, w.want)
		}
	}
}
