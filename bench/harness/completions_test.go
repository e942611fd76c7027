package harness

import (
	"context"
	"strings"
	"testing"
	"time"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

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
