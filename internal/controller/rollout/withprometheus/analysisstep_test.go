package withprometheus_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/utils/ptr"

	"github.com/false-systems/kulta/analysis"
	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
)

// TestAnalysisStepWithPrometheus runs canaries whose only analysis is a step (50 %, then
// `analysis` on the error rate, then 100 %), against the error rates real Prometheus computes:
// the step holds until its metric decides, lets a healthy canary through with its evidence
// recorded, and rolls an erroring one back at that step.
func TestAnalysisStepWithPrometheus(t *testing.T) {
	s := startSuite(t)
	step := testutil.AnalyzeStep(kultav1alpha1.Metric{
		Name: "error-rate", Threshold: "5",
		Interval: ptr.To[kultav1alpha1.Duration]("5s"), MinSampleSize: ptr.To[int32](minSampleSize),
	})
	steps := testutil.WithCanarySteps(testutil.Weight(50), step, testutil.Weight(100))
	atStep := func(ro *kultav1alpha1.Rollout, action kultav1alpha1.DecisionAction, from int32) *kultav1alpha1.Decision {
		return decision(ro, func(d kultav1alpha1.Decision) bool { return d.Action == action && ptr.Equal(d.FromStep, ptr.To(from)) })
	}
	t.Run("a healthy canary passes the step", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		ns := s.env.CreateNamespace(t, "step-pass")
		ro, first := s.startCanary(t, ns, nil, steps)
		s.app.Set(ns, canaryService, testenv.Traffic{RPS: 100, ErrorRatio: 0.005, Latency: 20 * time.Millisecond})
		s.waitForRequests(t, ns, canaryService, 5*minSampleSize)
		setImage(t, s.env, ro, newImage)
		var done *kultav1alpha1.Rollout
		g.Eventually(func(g Gomega) {
			done = s.get(g, ro)
			g.Expect(done.Status.Phase).To(Equal(kultav1alpha1.PhaseCompleted), "message: %s", done.Status.Message)
			g.Expect(done.Status.StablePodTemplateHash).NotTo(Equal(first))
		}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
		passed := atStep(done, kultav1alpha1.ActionStepAdvance, 1)
		g.Expect(passed).NotTo(BeNil(), "decisions: %+v", done.Status.Decisions)
		g.Expect(passed.Reason).To(Equal("AnalysisPassed"))
		snap, ok := passed.Metrics["error-rate"]
		g.Expect(ok).To(BeTrue(), "the step's decision records its evidence: %+v", passed)
		g.Expect(snap.Passed).To(BeTrue())
		g.Expect(decimal(g, snap.Value)).To(BeNumerically("<", 5))
		// Step 0 has no analysis of its own and the strategy none: it was not held for one.
		g.Expect(atStep(done, kultav1alpha1.ActionStepAdvance, 0).Metrics).To(BeEmpty())
	})
	t.Run("an erroring canary is rolled back at the step", func(t *testing.T) {
		t.Parallel()
		g := NewWithT(t)
		ns := s.env.CreateNamespace(t, "step-fail")
		ro, first := s.startCanary(t, ns, nil, steps)
		s.app.Set(ns, canaryService, testenv.Traffic{RPS: 100, ErrorRatio: 0.1, Latency: 20 * time.Millisecond})
		s.waitForRequests(t, ns, canaryService, 10*minSampleSize)
		setImage(t, s.env, ro, newImage)
		var failed *kultav1alpha1.Rollout
		g.Eventually(func(g Gomega) {
			failed = s.get(g, ro)
			g.Expect(failed.Status.Phase).To(Equal(kultav1alpha1.PhaseFailed), "message: %s", failed.Status.Message)
		}).WithTimeout(timeout).WithPolling(poll).Should(Succeed())
		g.Expect(failed.Status.StablePodTemplateHash).To(Equal(first))
		rollback := atStep(failed, kultav1alpha1.ActionRollback, 1)
		g.Expect(rollback).NotTo(BeNil(), "rolled back at the analysis step; decisions: %+v", failed.Status.Decisions)
		g.Expect(rollback.Reason).To(Equal("AnalysisFailed"))
		g.Expect(decimal(g, rollback.Metrics["error-rate"].Value)).To(BeNumerically("~", 10, 2))
		g.Expect(failed.Status.Analysis.Reason).To(Equal(string(analysis.ReasonThresholdExceeded)))
		g.Expect(failed.Status.Analysis.StepIndex).To(Equal(ptr.To[int32](1)))
	})
}
