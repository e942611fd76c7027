//go:build e2e

package scenarios

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/e2e/controllerproc"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
)

// downtime is how long the scenarios keep the controller or Prometheus down: longer than three
// analysis intervals of 5 s, the default limit of consecutive query errors.
const downtime = 16 * time.Second

// TestDisruptions runs two controller replicas with leader election and takes parts of the
// system away in the middle of rollouts, one disruption after another in one world:
//
//  1. both replicas SIGKILLed while a rollout of every strategy is under way, and restarted;
//  2. the leader SIGKILLed in the middle of a canary, the standby taking over;
//  3. Prometheus SIGKILLed in the middle of a canary's analysis, and restarted.
func TestDisruptions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	w := startWorld(ctx, t, worldOptions{replicas: 2})
	ns := w.newNamespace(ctx, t, "disruption")
	canary := canaryApp(w, ns, "web", "10s")
	if !t.Run("controller killed and restarted in every strategy", func(t *testing.T) {
		killedInEveryStrategy(ctx, t, w, canary)
	}) {
		return
	}
	if !t.Run("leader failover mid-rollout", func(t *testing.T) {
		leaderFailover(ctx, t, w, canary)
	}) {
		return
	}
	t.Run("Prometheus killed mid-analysis", func(t *testing.T) {
		prometheusKilled(ctx, t, w, canary)
	})
}

// inFlight is one rollout under way and what a restart must not undo.
type inFlight struct {
	a     *app
	old   string
	watch *weightWatch
	// midway says whether the rollout has got far enough that a restart would show a
	// regression or a repeated step.
	midway func(*kultav1alpha1.Rollout) bool
	// want are the Events and CDEvents of the undisturbed rollout.
	want transitions
}

// killedInEveryStrategy updates four applications, one per strategy, SIGKILLs both controller
// replicas once all four are midway, checks that nothing moves while no controller runs, starts
// them again and checks every rollout finishes from where it was: no weight goes back, no step
// or transition happens twice.
func killedInEveryStrategy(ctx context.Context, t *testing.T, w *world, canary *app) {
	// Every rollout must still be midway when the last one gets there, and a canary's first
	// step waits for its analysis to show the error rate under 5 % (about 320 requests at 20 %
	// of the route's traffic): the preview, the experiment and the warm-up last long enough.
	bg := blueGreenApp(w, canary.namespace, "checkout", 60)
	ab := abApp(w, canary.namespace, "search")
	ab.strategy.ABTesting.Analysis.MinDuration = ptr.To(kultav1alpha1.Duration("60s"))
	simple := simpleApp(w, canary.namespace, "api")
	simple.strategy.Simple.Analysis.WarmupDuration = ptr.To(kultav1alpha1.Duration("45s"))
	flights := []*inFlight{
		{a: canary, want: canaryUpdated, midway: func(ro *kultav1alpha1.Rollout) bool {
			return ro.Status.Phase == kultav1alpha1.PhasePaused && ptr.Deref(ro.Status.CurrentStepIndex, 0) >= 1
		}},
		{a: bg, want: blueGreenUpdated, midway: func(ro *kultav1alpha1.Rollout) bool { return ro.Status.Phase == kultav1alpha1.PhasePreview }},
		{a: ab, want: abUpdated, midway: func(ro *kultav1alpha1.Rollout) bool { return ro.Status.Phase == kultav1alpha1.PhaseExperimenting }},
		{a: simple, want: simpleUpdated, midway: func(ro *kultav1alpha1.Rollout) bool {
			return ro.Status.Phase == kultav1alpha1.PhaseProgressing && ro.Status.StablePodTemplateHash != ro.Status.CurrentPodTemplateHash
		}},
	}
	images := map[*app][2]string{canary: {goodImage, betterImage}, bg: {goodImage, betterImage}, ab: {variantA, variantB}, simple: {goodImage, betterImage}}
	var wg sync.WaitGroup
	for _, f := range flights {
		wg.Go(func() { f.old = f.a.deploy(ctx, t, images[f.a][0]) })
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, f := range flights {
		f.watch = f.a.watchWeights(ctx, t)
		f.a.setImage(ctx, t, images[f.a][1])
	}
	before := make(map[*app]*kultav1alpha1.Rollout, len(flights))
	for _, f := range flights {
		before[f.a] = f.a.waitRollout(ctx, t, time.Minute, func(ro *kultav1alpha1.Rollout) (bool, string) {
			if ro.Status.ObservedGeneration < ro.Generation || !f.midway(ro) {
				return false, "not midway"
			}
			return true, ""
		})
	}
	for _, c := range w.controllers {
		if err := c.Kill(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("both replicas killed; phases %s", phases(before))

	time.Sleep(downtime)
	for _, f := range flights {
		ro, err := f.a.get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ro.Status.Phase != before[f.a].Status.Phase || !slices.Equal(actions(ro), actions(before[f.a])) {
			t.Errorf("%s moved with no controller running: %s %v, was %s %v", f.a.name,
				ro.Status.Phase, actions(ro), before[f.a].Status.Phase, actions(before[f.a]))
		}
	}
	for _, c := range w.controllers {
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// The A/B experiment concludes on its own; its promotion is a person's decision.
	a := ab.waitRollout(ctx, t, 2*time.Minute, func(ro *kultav1alpha1.Rollout) (bool, string) {
		return ro.Status.Phase == kultav1alpha1.PhaseConcluded, "not Concluded"
	})
	if exp := a.Status.ABExperiment; exp == nil || exp.Winner != kultav1alpha1.VariantB {
		t.Errorf("experiment %+v, want B the winner", exp)
	}
	ab.promote(ctx, t)
	done := map[*app]*kultav1alpha1.Rollout{}
	for _, f := range flights {
		done[f.a] = f.a.waitCompleted(ctx, t, f.old, 2*time.Minute)
	}

	flights[0].a.expectRouteHistory(ctx, t, flights[0].watch, "100/0", "80/20", "50/50", "100/0")
	flights[1].a.expectRouteHistory(ctx, t, flights[1].watch, "100/0")
	flights[2].a.expectRouteHistory(ctx, t, flights[2].watch, "100/0", "100/0 +B", "100/0")
	if got, want := rollouttest.StepHistory(done[canary]), []string{"0->1", "1->2", "2->3", "3->4"}; !slices.Equal(got, want) {
		t.Errorf("canary steps %v, want %v", got, want)
	}
	for _, f := range flights {
		ro := done[f.a]
		if got := count(actions(ro), "Initialize/NewRevision"); got != 1 {
			t.Errorf("%s started its revision %d times: %v", f.a.name, got, actions(ro))
		}
		if got := count(actions(ro), "Pause/PreviewReady"); f.a == bg && got != 1 {
			t.Errorf("blue-green preview began %d times: %v", got, actions(ro))
		}
		if got := count(actions(ro), "Initialize/ExperimentStarted"); f.a == ab && got != 1 {
			t.Errorf("A/B experiment started %d times: %v", got, actions(ro))
		}
	}
	// A restart repeats no transition: the Events and CDEvents are those of an undisturbed
	// rollout, and every revision ends with all its Pods, the old one with none.
	for _, f := range flights {
		f.a.expectRevisions(ctx, t, time.Minute, done[f.a].Status.StablePodTemplateHash, 3, f.old)
		f.a.expectEvents(ctx, t, f.want.events...)
		f.a.expectCDEvents(ctx, t, f.want.cdevents...)
	}
}

// leaderFailover SIGKILLs the leading replica while a canary pauses at 20 %: the standby
// takes the Lease within its duration and finishes the rollout, with no step repeated or
// skipped and no weight going back.
func leaderFailover(ctx context.Context, t *testing.T, w *world, canary *app) {
	old := canary.waitCompleted(ctx, t, "", time.Minute).Status.StablePodTemplateHash
	watch := canary.watchWeights(ctx, t)
	canary.setImage(ctx, t, "nginx:1.29")
	canary.waitRollout(ctx, t, time.Minute, func(ro *kultav1alpha1.Rollout) (bool, string) {
		if ro.Status.ObservedGeneration < ro.Generation || ro.Status.Phase != kultav1alpha1.PhasePaused || ptr.Deref(ro.Status.CurrentStepIndex, 0) < 1 {
			return false, "not paused after the first step"
		}
		return true, ""
	})
	leader, standby := w.leader(ctx, t)
	if err := leader.Kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	waitFor(ctx, t, 30*time.Second, func() error {
		if !standby.Leading(ctx) {
			return fmt.Errorf("%s has not taken the Lease over from %s", standby.Name(), leader.Name())
		}
		return nil
	})
	t.Logf("%s killed; %s leads %s later", leader.Name(), standby.Name(), time.Since(killedAt).Round(time.Millisecond))
	ro := canary.waitCompleted(ctx, t, old, 2*time.Minute)
	if got, want := rollouttest.StepHistory(ro), []string{"0->1", "1->2", "2->3", "3->4"}; !slices.Equal(got, want) {
		t.Errorf("steps %v, want %v", got, want)
	}
	canary.expectRoute(ctx, t, "100/0")
	canary.expectRouteHistory(ctx, t, watch, "100/0", "80/20", "50/50", "100/0")
	if err := leader.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// prometheusDowntime is how long Prometheus stays down: six analysis intervals, twice the
// default limit of consecutive query errors.
const prometheusDowntime = 30 * time.Second

// prometheusKilled SIGKILLs Prometheus while a canary pauses after its first, analysed step:
// no later step can pass its analysis, so for as long as Prometheus is down the canary holds at
// no more than 50 %, neither promoted nor rolled back, with the analysis saying why; once
// Prometheus is back the rollout finishes.
func prometheusKilled(ctx context.Context, t *testing.T, w *world, canary *app) {
	old := canary.waitCompleted(ctx, t, "", time.Minute).Status.StablePodTemplateHash
	watch := canary.watchWeights(ctx, t)
	canary.setImage(ctx, t, "nginx:1.30")
	canary.waitRollout(ctx, t, time.Minute, func(ro *kultav1alpha1.Rollout) (bool, string) {
		if ro.Status.ObservedGeneration < ro.Generation || ro.Status.Phase != kultav1alpha1.PhasePaused || ptr.Deref(ro.Status.CurrentStepIndex, 0) != 1 {
			return false, "not paused after the first step"
		}
		return true, ""
	})
	if err := w.prometheus.Kill(); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	held := false
	for time.Since(killedAt) < prometheusDowntime {
		ro, err := canary.get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		step := ptr.Deref(ro.Status.CurrentStepIndex, -1)
		if step > 2 || ro.Status.Phase == kultav1alpha1.PhaseFailed || ro.Status.Phase == kultav1alpha1.PhaseCompleted {
			t.Fatalf("with Prometheus down the canary moved to step %d, phase %s: %s; decisions %v", step, ro.Status.Phase, ro.Status.Message, actions(ro))
		}
		if an := ro.Status.Analysis; an != nil && len(an.Metrics) > 0 && an.Metrics[0].Reason == "ProviderUnavailable" {
			held = true
		}
		time.Sleep(poll)
	}
	if !held {
		t.Errorf("the analysis never said that Prometheus was unavailable")
	}
	route, err := canary.route(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := canary.routeState(route); got != "80/20" && got != "50/50" {
		t.Errorf("route %s after %s without Prometheus, want it held at 80/20 or 50/50", got, prometheusDowntime)
	}
	if err := w.prometheus.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Prometheus back after %s", time.Since(killedAt).Round(time.Millisecond))
	ro := canary.waitCompleted(ctx, t, old, 2*time.Minute)
	if got, want := rollouttest.StepHistory(ro), []string{"0->1", "1->2", "2->3", "3->4"}; !slices.Equal(got, want) {
		t.Errorf("steps %v, want %v", got, want)
	}
	if d := lastDecision(ro, kultav1alpha1.ActionRollback); d != nil && d.Timestamp.After(killedAt) {
		t.Errorf("rolled back after Prometheus went down: %+v", d)
	}
	canary.expectRoute(ctx, t, "100/0")
	canary.expectRouteHistory(ctx, t, watch, "100/0", "80/20", "50/50", "100/0")
}

// leader waits until exactly one running replica leads, and returns it and a running standby.
func (w *world) leader(ctx context.Context, t *testing.T) (leader, standby *controllerproc.Process) {
	t.Helper()
	waitFor(ctx, t, 30*time.Second, func() error {
		leader, standby = nil, nil
		for _, c := range w.controllers {
			switch {
			case !c.Running():
			case c.Leading(ctx):
				if leader != nil {
					return fmt.Errorf("both %s and %s lead", leader.Name(), c.Name())
				}
				leader = c
			default:
				standby = c
			}
		}
		if leader == nil || standby == nil {
			return fmt.Errorf("no leader with a running standby yet")
		}
		return nil
	})
	return leader, standby
}

// phases lists the Rollouts' phases for a log line.
func phases(ros map[*app]*kultav1alpha1.Rollout) string {
	out := ""
	for a, ro := range ros {
		out += fmt.Sprintf("%s=%s ", a.name, ro.Status.Phase)
	}
	return out
}

// count is how many times s occurs in list.
func count(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}
