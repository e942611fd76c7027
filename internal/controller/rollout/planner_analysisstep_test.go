package rollout

import (
	"testing"
	"time"

	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testutil"
)

// TestAnalysisStepSequences walks canaries with an analysis step (run the metrics at that point,
// hold until they decide), unhappy paths first. The world's analysis reports w.verdict for
// whatever spec is due, as the reconciler's check would for the step's metrics.
func TestAnalysisStepSequences(t *testing.T) {
	errorRate := kultav1alpha1.Metric{Name: "error-rate", Threshold: "5"}
	steps := testutil.WithCanarySteps(testutil.Weight(20), testutil.AnalyzeStep(errorRate), testutil.Weight(50), testutil.PauseFor("30s"), testutil.Weight(100))
	cases := map[string]struct {
		ro     *kultav1alpha1.Rollout
		script func(w *world)
	}{
		// A failing verdict at the step rolls back (the step's failurePolicy, Rollback).
		"canary-analysis-step-fails": {canaryRollout(steps), func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("route at 20%", time.Second)
			w.verdict = kultav1alpha1.VerdictFail
			w.tick("analysis step due", time.Second)
			w.tick("analysis fails", time.Second)
			w.tick("rolled back", 31*time.Second)
			w.tick("scaled down", time.Second)
		}},
		// An analysis that never decides (no traffic, say) holds the step, then ends at the
		// progress deadline as its failurePolicy says: here, a rollback.
		"canary-analysis-step-never-decides": {canaryRollout(steps), func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("route at 20%", time.Second)
			w.verdict = kultav1alpha1.VerdictInconclusive
			w.tick("analysis step due", time.Second)
			w.tick("inconclusive", 5*time.Minute)
			w.tick("still inconclusive", 5*time.Minute)
			w.tick("deadline passed", time.Second)
		}},
		// Aborted while the step analyses, then a fixed image: the new revision starts from step
		// 0 and is analysed afresh; no verdict of the aborted revision counts for it.
		"canary-analysis-step-abort-then-fix": {canaryRollout(steps), func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("route at 20%", time.Second)
			w.verdict = kultav1alpha1.VerdictInconclusive
			w.tick("analysis step due", time.Second)
			w.tick("inconclusive", time.Second)
			w.annotate(kultav1alpha1.AbortAnnotation)
			w.tick("abort", time.Second)
			w.verdict = kultav1alpha1.VerdictPass
			w.setImage("nginx:1.29")
			w.tick("fixed image", time.Second)
			w.tick("route at 20%", time.Second)
			w.tick("analysis step due", time.Second)
			w.tick("analysis passes", time.Second)
			w.tick("route at 50%", time.Second)
		}},
		// With a failurePolicy of Pause, a failing step waits for a person: kulta.io/promote
		// goes on past it, recorded as an override.
		"canary-analysis-step-fails-then-promoted": {canaryRollout(testutil.WithCanarySteps(testutil.Weight(20), pausingAnalysisStep(errorRate), testutil.Weight(100))), func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("route at 20%", time.Second)
			w.verdict = kultav1alpha1.VerdictFail
			w.tick("analysis step due", time.Second)
			w.tick("analysis fails", time.Minute)
			w.tick("still paused", time.Second)
			w.annotate(kultav1alpha1.PromoteAnnotation)
			w.tick("promoted past it", time.Second)
			w.tick("route at 100%", time.Second)
			w.tick("promoted", time.Second)
		}},
		"canary-analysis-step-passes": {canaryRollout(steps), func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("route at 20%", time.Second)
			w.verdict = kultav1alpha1.VerdictPass
			w.tick("analysis step due", time.Second)
			w.tick("analysis passes", time.Second)
			w.tick("route at 50%", time.Second)
			w.tick("paused", 30*time.Second)
			w.tick("pause over", time.Second)
			w.tick("route at 100%", time.Second)
			w.tick("promoted", time.Second)
		}},
	}
	// The decision that ends the analysis step says how it ended.
	ended := map[string]string{
		"canary-analysis-step-passes":              "AnalysisPassed",
		"canary-analysis-step-abort-then-fix":      "AnalysisPassed",
		"canary-analysis-step-fails-then-promoted": "AnalysisOverridden",
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, c.ro)
			c.script(w)
			w.golden(name)
			var got string
			for _, d := range w.ro.Status.Decisions {
				if d.Action == kultav1alpha1.ActionStepAdvance && ptr.Deref(d.FromStep, -1) == 1 {
					got = d.Reason
				}
			}
			if got != ended[name] {
				t.Errorf("the analysis step ended with decision reason %q, want %q", got, ended[name])
			}
		})
	}
}

// pausingAnalysisStep is an analysis step that pauses on a failing verdict.
func pausingAnalysisStep(metrics ...kultav1alpha1.Metric) kultav1alpha1.CanaryStep {
	step := testutil.AnalyzeStep(metrics...)
	step.Analysis.FailurePolicy = kultav1alpha1.FailurePolicyPause
	return step
}

// TestAnalysisStepJudgesItsOwnMetrics: at an analysis step the step's metrics are the ones
// due and judged, not the strategy's; before and after it, the strategy's.
func TestAnalysisStepJudgesItsOwnMetrics(t *testing.T) {
	step := testutil.AnalyzeStep(kultav1alpha1.Metric{Name: "latency-p99", Threshold: "300"})
	ro := canaryRollout(testutil.WithCanarySteps(testutil.Weight(20), step, testutil.Weight(100)), withAnalysis(kultav1alpha1.FailurePolicyPause))
	for index, want := range map[int32]string{0: "error-rate", 1: "latency-p99", 2: "error-rate"} {
		ro.Status.CurrentStepIndex = ptr.To(index)
		a := analysisSpec(ro)
		if a == nil || len(a.Metrics) != 1 || a.Metrics[0].Name != want {
			t.Errorf("at step %d the analysis judged is %+v, want the one metric %s", index, a, want)
		}
	}
}
