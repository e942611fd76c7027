package rollout

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/false-systems/kulta/analysis"
	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// defaultAnalysisInterval is how often metrics are checked when no metric sets interval.
const defaultAnalysisInterval = time.Minute

// analysisSpec returns the threshold analysis that judges the Rollout now: a canary's analysis
// step while the canary is at it, else the strategy's analysis, if any.
func analysisSpec(ro *kultav1alpha1.Rollout) *kultav1alpha1.Analysis {
	var a *kultav1alpha1.Analysis
	switch s := ro.Spec.Strategy; {
	case s.Canary != nil:
		a = s.Canary.Analysis
		if step := analysisStep(s.Canary, ro.Status.CurrentStepIndex); step != nil {
			a = step
		}
	case s.BlueGreen != nil:
		a = s.BlueGreen.Analysis
	case s.Simple != nil:
		a = s.Simple.Analysis
	}
	if a == nil || len(a.Metrics) == 0 {
		if s := ro.Spec.Strategy; s.ABTesting == nil && len(WebhooksOf(ro, kultav1alpha1.WebhookRollout)) > 0 {
			// Rollout webhooks are an analysis of their own, checked at the default interval
			// unless the analysis sets metrics.
			if a == nil {
				a = &kultav1alpha1.Analysis{}
			}
			return a
		}
		return nil
	}
	return a
}

// analysisStep is the analysis of canary step index, nil when index is no analysis step.
func analysisStep(c *kultav1alpha1.CanaryStrategy, index *int32) *kultav1alpha1.Analysis {
	if index == nil || *index < 0 || int(*index) >= len(c.Steps) {
		return nil
	}
	return c.Steps[*index].Analysis
}

// AnalysisInterval is the shortest interval among the metrics of a and the rollout webhooks of
// ro's strategy.
func AnalysisInterval(ro *kultav1alpha1.Rollout, a *kultav1alpha1.Analysis) time.Duration {
	interval := time.Duration(0)
	shorter := func(v *kultav1alpha1.Duration) {
		if v == nil {
			return
		}
		if d, err := v.Parse(); err == nil && d > 0 && (interval == 0 || d < interval) {
			interval = d
		}
	}
	for _, m := range a.Metrics {
		shorter(m.Interval)
	}
	for _, w := range WebhooksOf(ro, kultav1alpha1.WebhookRollout) {
		shorter(w.Interval)
	}
	if interval == 0 {
		return defaultAnalysisInterval
	}
	return interval
}

// AnalysisStart is when the current step's analysis may begin: the step's start plus warm-up.
func AnalysisStart(ro *kultav1alpha1.Rollout, a *kultav1alpha1.Analysis) time.Time {
	var start time.Time
	if ro.Status.StepStartTime != nil {
		start = ro.Status.StepStartTime.Time
	}
	if a.WarmupDuration != nil {
		if d, err := a.WarmupDuration.Parse(); err == nil {
			start = start.Add(d)
		}
	}
	return start
}

// AnalysisDue reports whether the reconciler should measure now: the Rollout is moving to a
// new revision, warm-up is over, and the last check of this revision and step is older than
// the interval.
func AnalysisDue(ro *kultav1alpha1.Rollout, now time.Time) bool {
	a := analysisSpec(ro)
	st := ro.Status
	if a == nil || st.CurrentPodTemplateHash == "" || st.CurrentPodTemplateHash == st.StablePodTemplateHash ||
		st.Phase == kultav1alpha1.PhaseFailed || now.Before(AnalysisStart(ro, a)) {
		return false
	}
	last := currentAnalysis(ro)
	return last == nil || !now.Before(last.CheckedAt.Add(AnalysisInterval(ro, a)))
}

// ExperimentDue reports whether a running A/B experiment with analysis should be compared now:
// past minDuration and an interval after the last comparison.
func ExperimentDue(ro *kultav1alpha1.Rollout, now time.Time) bool {
	ab := ro.Spec.Strategy.ABTesting
	exp := ro.Status.ABExperiment
	if ab == nil || ab.Analysis == nil || len(ab.Analysis.Metrics) == 0 || exp == nil || exp.ConcludedAt != nil ||
		ro.Status.Phase == kultav1alpha1.PhaseFailed {
		return false
	}
	start := exp.StartedAt.Time
	if ab.Analysis.MinDuration != nil {
		if d, err := ab.Analysis.MinDuration.Parse(); err == nil {
			start = start.Add(d)
		}
	}
	if now.Before(start) {
		return false
	}
	return exp.CheckedAt == nil || !now.Before(exp.CheckedAt.Add(experimentInterval(ab.Analysis)))
}

func experimentInterval(a *kultav1alpha1.ABAnalysis) time.Duration {
	if a.Interval != nil {
		if d, err := a.Interval.Parse(); err == nil && d > 0 {
			return d
		}
	}
	return defaultAnalysisInterval
}

// currentAnalysis is the status's analysis when it measured the current revision and step
// after the step's warm-up; older results do not count.
func currentAnalysis(ro *kultav1alpha1.Rollout) *kultav1alpha1.AnalysisStatus {
	st := ro.Status
	a := analysisSpec(ro)
	if st.Analysis == nil || a == nil || st.Analysis.Revision != st.CurrentPodTemplateHash ||
		!ptr.Equal(st.Analysis.StepIndex, st.CurrentStepIndex) || st.Analysis.CheckedAt.Time.Before(AnalysisStart(ro, a)) {
		return nil
	}
	return st.Analysis
}

// analysisPassed gates a step, a blue-green promotion or the end of a rolling update on the
// latest verdict, and applies failurePolicy to a failing one. It reports whether the rollout
// may go on.
func (p *planner) analysisPassed() bool {
	st := &p.out.Status
	// The Rollout as this plan has it so far (its step, its analysis), read only.
	view := *p.ro
	view.Status = *st
	a := analysisSpec(&view)
	if a == nil {
		return true
	}
	if start := AnalysisStart(&view, a); p.obs.Now.Before(start) {
		p.setPhase(kultav1alpha1.PhaseProgressing, fmt.Sprintf("Analysis warming up until %s", start.UTC().Format(time.RFC3339)))
		p.requeue(start.Sub(p.obs.Now))
		return false
	}
	result := currentAnalysis(&view)
	interval := AnalysisInterval(&view, a)
	switch {
	case result == nil:
		return p.analysisUndecided(a, nil, "Waiting for the first analysis of this step", time.Second)
	case result.Verdict == kultav1alpha1.VerdictPass:
		p.evidence = result
		// A passing check is progress: a wait for a later decision counts from it.
		if st.ProgressStartedAt == nil || st.ProgressStartedAt.Before(&result.CheckedAt) {
			st.ProgressStartedAt = ptr.To(result.CheckedAt)
		}
		// The revision is checked again an interval later, also while nothing else would wake
		// the reconciler (a pause until promoted, a preview waiting for a person).
		p.requeue(max(time.Second, result.CheckedAt.Add(interval).Sub(p.obs.Now)))
		return true
	case result.Verdict == kultav1alpha1.VerdictInconclusive:
		return p.analysisUndecided(a, result, "Analysis inconclusive: "+result.Message, interval)
	}
	return p.analysisFailed(a, result)
}

// analysisUndecided waits for an analysis that has not decided, for at most
// progressDeadlineSeconds since the last progress (a step, a passing check). Past that, the wait
// ends as failurePolicy says: Rollback rolls back, Continue goes on, Pause (the default) holds
// for a person; a later passing check also ends the pause. It reports whether the rollout may
// go on.
func (p *planner) analysisUndecided(a *kultav1alpha1.Analysis, result *kultav1alpha1.AnalysisStatus, message string, recheck time.Duration) bool {
	elapsed, deadline := p.sinceProgress()
	if elapsed < deadline {
		p.setPhase(kultav1alpha1.PhaseProgressing, message)
		p.requeue(min(recheck, deadline-elapsed))
		return false
	}
	message = p.deadlineMessage(elapsed, message)
	p.evidence = result
	index := p.out.Status.CurrentStepIndex
	since := p.obs.Now.Add(deadline - elapsed) // when the deadline passed
	switch a.FailurePolicy {
	case kultav1alpha1.FailurePolicyRollback:
		p.fail(ReasonAnalysisUndecided, message)
		return false
	case kultav1alpha1.FailurePolicyContinue:
		if !p.decidedSince(ReasonAnalysisUndecided+"Continuing", since) {
			p.decide(kultav1alpha1.ActionResume, ReasonAnalysisUndecided+"Continuing", message+"; continuing as failurePolicy says", index, index)
			p.event(corev1.EventTypeWarning, ReasonAnalysisUndecided, message+"; continuing as failurePolicy says")
		}
		return true
	}
	if p.requested(kultav1alpha1.PromoteAnnotation) {
		p.consume(kultav1alpha1.PromoteAnnotation)
		p.progressed()
		p.decide(kultav1alpha1.ActionPromotion, "ManualOverride", "Promoted past an undecided analysis: "+message, index, index)
		return true
	}
	if !p.decidedSince(ReasonAnalysisUndecided, since) {
		p.decide(kultav1alpha1.ActionPause, ReasonAnalysisUndecided, message, index, index)
		p.event(corev1.EventTypeWarning, ReasonAnalysisUndecided, "Paused: "+message)
	}
	p.setPhase(kultav1alpha1.PhasePaused, "Analysis undecided; paused until it passes, kulta.io/promote or kulta.io/abort: "+message)
	p.paused(ReasonAnalysisUndecided, message)
	p.requeue(recheck)
	return false
}

// analysisFailed applies failurePolicy to a failing verdict.
func (p *planner) analysisFailed(a *kultav1alpha1.Analysis, result *kultav1alpha1.AnalysisStatus) bool {
	p.evidence = result
	switch a.FailurePolicy {
	case kultav1alpha1.FailurePolicyRollback:
		p.fail("AnalysisFailed", "Analysis failed: "+result.Message)
		return false
	case kultav1alpha1.FailurePolicyContinue:
		if !p.decidedSince("AnalysisFailedContinuing", result.CheckedAt.Time) {
			p.decide(kultav1alpha1.ActionResume, "AnalysisFailedContinuing", "Analysis failed, continuing as failurePolicy says: "+result.Message, p.out.Status.CurrentStepIndex, p.out.Status.CurrentStepIndex)
			p.event(corev1.EventTypeWarning, "AnalysisFailed", "Continuing as failurePolicy says: "+result.Message)
		}
		return true
	}
	// Pause (the default): hold until a person promotes or aborts.
	if p.requested(kultav1alpha1.PromoteAnnotation) {
		p.consume(kultav1alpha1.PromoteAnnotation)
		p.decide(kultav1alpha1.ActionPromotion, "ManualOverride", "Promoted past a failed analysis: "+result.Message, p.out.Status.CurrentStepIndex, p.out.Status.CurrentStepIndex)
		return true
	}
	if !p.decidedSince("AnalysisFailed", result.CheckedAt.Time) {
		p.decide(kultav1alpha1.ActionPause, "AnalysisFailed", "Analysis failed: "+result.Message, p.out.Status.CurrentStepIndex, p.out.Status.CurrentStepIndex)
		p.event(corev1.EventTypeWarning, "AnalysisFailed", "Paused: "+result.Message)
	}
	p.setPhase(kultav1alpha1.PhasePaused, "Analysis failed; paused until kulta.io/promote or kulta.io/abort: "+result.Message)
	p.paused("AnalysisFailed", result.Message)
	return false
}

// decidedSince reports whether a decision with reason was recorded at or after t.
func (p *planner) decidedSince(reason string, t time.Time) bool {
	for _, d := range p.out.Status.Decisions {
		if d.Reason == reason && !d.Timestamp.Time.Before(t.Truncate(time.Second)) {
			return true
		}
	}
	return false
}

// snapshots turns an analysis into the metric evidence a decision records.
func snapshots(a *kultav1alpha1.AnalysisStatus) map[string]kultav1alpha1.MetricSnapshot {
	if a == nil || len(a.Metrics) == 0 {
		return nil
	}
	out := make(map[string]kultav1alpha1.MetricSnapshot, len(a.Metrics))
	for _, m := range a.Metrics {
		snap := kultav1alpha1.MetricSnapshot{Threshold: m.Threshold, Passed: m.Verdict == kultav1alpha1.VerdictPass}
		if m.Value != nil {
			snap.Value = *m.Value
		}
		out[m.Name] = snap
	}
	return out
}

// CanarySplit is the split between stable and the canary that the canary's metrics should show:
// the routes' weights with traffic routing, the canary's share of ready Pods without. It is
// unknown for the other strategies, while the routes disagree, and while no Pod is ready.
func CanarySplit(obs Observation) analysis.Split {
	ro := obs.Rollout
	c := ro.Spec.Strategy.Canary
	if c == nil {
		return analysis.Split{}
	}
	if c.TrafficRouting != nil {
		if obs.Traffic == nil || obs.Traffic.Weights == nil {
			return analysis.Split{}
		}
		w := *obs.Traffic.Weights
		if w.Stable+w.Canary <= 0 {
			return analysis.Split{}
		}
		return analysis.Split{CanaryPercent: 100 * float64(w.Canary) / float64(w.Stable+w.Canary), Known: true}
	}
	st := ro.Status
	canary, stable := obs.Revisions[st.CurrentPodTemplateHash], obs.Revisions[st.StablePodTemplateHash]
	if canary == nil || stable == nil || st.CurrentPodTemplateHash == st.StablePodTemplateHash || canary.Ready+stable.Ready <= 0 {
		return analysis.Split{}
	}
	return analysis.Split{CanaryPercent: 100 * float64(canary.Ready) / float64(canary.Ready+stable.Ready), Known: true}
}
