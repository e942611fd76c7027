package harness

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/scheme"
	"github.com/false-systems/kulta/internal/testutil"
)

// benchRollout is a bench Rollout at generation gen running image, Completed at observed.
func benchRollout(name, image string, gen, observed int64, phase kultav1alpha1.Phase) *kultav1alpha1.Rollout {
	ro := testutil.Rollout("bench-000", name, testutil.WithImage(image))
	ro.Labels = map[string]string{RunLabel: "true"}
	ro.Generation = gen
	ro.Status.ObservedGeneration = observed
	ro.Status.Phase = phase
	return ro
}

// TestCompletionsCountFromTheCacheAndEvents: Expect counts the Rollouts already Completed with
// the image (and only those at their current generation, labelled as the bench's); events then
// count Rollouts in and out, and Wait returns once all expected were seen at once, not before.
func TestCompletionsCountFromTheCacheAndEvents(t *testing.T) {
	s, err := scheme.New()
	if err != nil {
		t.Fatal(err)
	}
	done := benchRollout("ro-00000", "img:2", 2, 2, kultav1alpha1.PhaseCompleted)
	behind := benchRollout("ro-00001", "img:2", 3, 2, kultav1alpha1.PhaseCompleted)
	oldImage := benchRollout("ro-00002", "img:1", 2, 2, kultav1alpha1.PhaseCompleted)
	notBench := benchRollout("other", "img:2", 1, 1, kultav1alpha1.PhaseCompleted)
	notBench.Labels = nil
	reader := fake.NewClientBuilder().WithScheme(s).WithObjects(done, behind, oldImage, notBench).Build()

	cs := NewCompletions()
	cs.observe(done) // before Expect: nothing is counted
	if got := cs.Count(); got != 0 {
		t.Fatalf("before Expect: %d counted, want 0", got)
	}
	ctx := context.Background()
	if err := cs.Expect(ctx, reader, "img:2", 3); err != nil {
		t.Fatal(err)
	}
	if got := cs.Count(); got != 1 {
		t.Fatalf("after Expect: %d counted, want 1 (only %s is Completed with img:2 at its generation)", got, done.Name)
	}

	waited := make(chan time.Time, 1)
	go func() {
		at, err := cs.Wait(ctx, nil)
		if err != nil {
			t.Error(err)
		}
		waited <- at
	}()

	// The one behind catches up; the old image's Rollout gets the new template, and is first
	// seen Progressing at it.
	caughtUp := behind.DeepCopy()
	caughtUp.Status.ObservedGeneration = 3
	cs.observe(caughtUp)
	progressing := benchRollout("ro-00002", "img:2", 3, 3, kultav1alpha1.PhaseProgressing)
	cs.observe(progressing)
	// The first one is changed again: it no longer counts.
	changed := benchRollout("ro-00000", "img:2", 3, 2, kultav1alpha1.PhaseCompleted)
	cs.observe(changed)
	if got := cs.Count(); got != 1 {
		t.Fatalf("%d counted, want 1 (only %s)", got, caughtUp.Name)
	}
	select {
	case <-waited:
		t.Fatal("Wait returned with 1 of 3 Completed")
	case <-time.After(50 * time.Millisecond):
	}

	cs.forget(toolscache.DeletedFinalStateUnknown{Key: "bench-000/ro-00001", Obj: caughtUp})
	if got := cs.Count(); got != 0 {
		t.Fatalf("after the delete: %d counted, want 0", got)
	}
	before := time.Now()
	cs.observe(benchRollout("ro-00000", "img:2", 3, 3, kultav1alpha1.PhaseCompleted))
	cs.observe(benchRollout("ro-00001", "img:2", 4, 4, kultav1alpha1.PhaseCompleted))
	cs.observe(benchRollout("ro-00002", "img:2", 3, 3, kultav1alpha1.PhaseCompleted))
	select {
	case at := <-waited:
		if at.Before(before) {
			t.Errorf("Wait reported %v, before the last Rollout completed (%v)", at, before)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return with 3 of 3 Completed")
	}

	// A new Expect starts over: the same Rollouts are not Completed with the next image.
	if err := cs.Expect(ctx, reader, "img:3", 3); err != nil {
		t.Fatal(err)
	}
	if got := cs.Count(); got != 0 {
		t.Fatalf("after Expect of img:3: %d counted, want 0", got)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := cs.Wait(cancelled, nil); err == nil {
		t.Error("Wait with a cancelled context returned no error")
	}
}

// TestCompletionsWaitBeforeExpect: waiting with nothing expected is an error, not a hang.
func TestCompletionsWaitBeforeExpect(t *testing.T) {
	if _, err := NewCompletions().Wait(context.Background(), nil); err == nil {
		t.Fatal("Wait before Expect returned no error")
	}
}

// TestRequestTableSplitsTheTail: with the requests made before all were Completed recorded, the
// table gives them beside each total; without them (older results), the table has no such
// column.
func TestRequestTableSplitsTheTail(t *testing.T) {
	status := RequestKey{Verb: "PATCH", Resource: "rollouts/status"}
	rs := RequestKey{Verb: "PATCH", Resource: "replicasets"}
	res := &Result{N: 1000, WaveResults: []WaveResult{{Wave: 3,
		Controller:     []RequestRow{{rs, 1000}, {status, 4000}},
		UntilCompleted: []RequestRow{{status, 3003}},
	}}}
	var b strings.Builder
	writeRequestTable(&b, res)
	for _, want := range []string{"| before all Completed |", "| rollouts/status | PATCH | 4000 | 4.00 | 3003 |", "| replicasets | PATCH | 1000 | 1.00 | 0 |"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table %q lacks %q", b.String(), want)
		}
	}
	res.WaveResults[0].UntilCompleted = nil
	b.Reset()
	writeRequestTable(&b, res)
	if strings.Contains(b.String(), "before all Completed") || !strings.Contains(b.String(), "| rollouts/status | PATCH | 4000 | 4.00 |\n") {
		t.Errorf("table without the split: %q", b.String())
	}
}

func TestRouteWatchReportsRoutesLeftUnaccepted(t *testing.T) {
	route := func(name string, generation, accepted int64) *gatewayv1.HTTPRoute {
		r := &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Generation: generation}}
		if accepted >= 0 {
			r.Status.Parents = []gatewayv1.RouteParentStatus{{Conditions: []metav1.Condition{{Type: "Accepted", Status: metav1.ConditionTrue, ObservedGeneration: accepted}}}}
		}
		return r
	}
	t0 := time.Date(2026, 12, 6, 18, 49, 5, 0, time.UTC)
	rw := NewRouteWatch()
	rw.observe(route("waits", 2, 1), t0)
	rw.observe(route("accepted", 2, 1), t0)
	rw.observe(route("accepted", 2, 2), t0.Add(time.Second))
	rw.observe(route("new", 3, 2), t0.Add(4*time.Minute))
	rw.observe(route("never", 1, -1), t0.Add(time.Minute))
	// A status update of the same generation keeps the time the generation was first seen.
	rw.observe(route("waits", 2, 1), t0.Add(2*time.Minute))

	stuck, total := rw.Stuck(t0.Add(5*time.Minute), 3*time.Minute, 1)
	if total != 2 || len(stuck) != 1 || stuck[0].Key.Name != "waits" || stuck[0].Generation != 2 || stuck[0].Accepted != 1 || stuck[0].For != 5*time.Minute {
		t.Fatalf("Stuck = %+v, %d; want the route waiting 5m (of 2 stuck) first", stuck, total)
	}
	stuck, total = rw.Stuck(t0.Add(5*time.Minute), 3*time.Minute, 5)
	if total != 2 || len(stuck) != 1 || stuck[0].Key.Name != "never" || stuck[0].Accepted != -1 {
		t.Fatalf("second Stuck = %+v, %d; want only the route not reported yet", stuck, total)
	}
	rw.observe(route("waits", 2, 2), t0.Add(6*time.Minute))
	if _, total := rw.Stuck(t0.Add(7*time.Minute+time.Second), 3*time.Minute, 5); total != 2 {
		t.Fatalf("after one was accepted: %d stuck, want 2 (never, and new past 3 minutes)", total)
	}
}

// A bench Rollout that fails never completes: Wait stops at once and names it, rather than
// waiting for the run's timeout. One that failed with an earlier image is not counted.
func TestCompletionsWaitStopsAtAFailedRollout(t *testing.T) {
	s, err := scheme.New()
	if err != nil {
		t.Fatal(err)
	}
	cs := NewCompletions()
	ctx := context.Background()
	if err := cs.Expect(ctx, fake.NewClientBuilder().WithScheme(s).Build(), "img:2", 2); err != nil {
		t.Fatal(err)
	}
	cs.observe(benchRollout("ro-00000", "img:2", 2, 2, kultav1alpha1.PhaseCompleted))
	oldFailure := benchRollout("ro-00002", "img:1", 1, 1, kultav1alpha1.PhaseFailed)
	cs.observe(oldFailure)
	failed := benchRollout("ro-00001", "img:2", 2, 2, kultav1alpha1.PhaseFailed)
	failed.Status.Message = "No progress for 10m0s"
	cs.observe(failed)
	waited := make(chan error, 1)
	go func() {
		_, err := cs.Wait(ctx, nil)
		waited <- err
	}()
	select {
	case err := <-waited:
		want := "1 Rollouts Failed with img:2 (1 Completed), the first bench-000/ro-00001: No progress for 10m0s"
		if err == nil || err.Error() != want {
			t.Errorf("Wait = %v; want %q", err, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return with a Rollout Failed")
	}
}
