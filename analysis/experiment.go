package analysis

import (
	"fmt"
	"math"
	"strings"
)

// Variant names an arm of an A/B experiment.
type Variant string

// Variants.
const (
	VariantA Variant = "A"
	VariantB Variant = "B"
)

// DefaultMixingVariance is tau² of the sequential test when a metric sets no minimum effect:
// it tunes the test for differences of about one percentage point.
const DefaultMixingVariance = 1e-4

// ExperimentMetric is one metric of an A/B experiment, measured in both arms over one window.
type ExperimentMetric struct {
	// Name is the metric's name.
	Name string
	// Direction says which way is better.
	Direction Direction
	// MinEffect is the smallest absolute difference of proportions that matters (0: any).
	MinEffect float64
	// A and B are the arms' measurements; they must be proportions (events of trials).
	A, B Measurement
	// PreviousP is the always-valid p-value of earlier looks (1 before the first).
	PreviousP float64
}

// MetricComparison is one metric's result.
type MetricComparison struct {
	Name string
	// ProportionA and ProportionB are the arms' event rates; SamplesA and SamplesB their trials.
	ProportionA, ProportionB float64
	SamplesA, SamplesB       int64
	// P is the always-valid (sequential) p-value, never larger than an earlier look's.
	P float64
	// AdjustedP is P after Holm's correction across the experiment's metrics.
	AdjustedP float64
	// Significant is true when AdjustedP is below alpha and the difference reaches MinEffect.
	Significant bool
	// Winner is the better arm when Significant.
	Winner Variant
	// Reason says why a metric is not significant (NoTraffic, BelowMinSample, NotProportion,
	// QueryError, BelowMinEffect, NotSignificant) or is (Significant).
	Reason Reason
	// Message explains the result, including how many more requests per arm would be needed.
	Message string
}

// ExperimentResult is the verdict of one look at an experiment.
type ExperimentResult struct {
	Metrics []MetricComparison
	// Winner is set when the experiment can conclude: B when every metric is significant in
	// B's favour, A as soon as any metric is significant in A's favour (B is harmful).
	Winner Variant
	// Reason is SignificanceReached when Winner is set.
	Reason string
	// Message summarises the metrics.
	Message string
}

// Reasons specific to experiments.
const (
	ReasonSignificant    Reason = "Significant"
	ReasonNotSignificant Reason = "NotSignificant"
	ReasonBelowMinEffect Reason = "BelowMinEffect"
	ReasonNotProportion  Reason = "NotProportion"
)

// EvaluateExperiment compares the arms of every metric with an always-valid sequential test
// (so that looking at every interval does not inflate false positives), corrects the p-values
// across metrics with Holm's method at alpha = 1 - confidence, and decides a winner.
func EvaluateExperiment(metrics []ExperimentMetric, confidence float64, minSamples int64) ExperimentResult {
	alpha := 1 - confidence
	results := make([]MetricComparison, len(metrics))
	testable := []int{}
	for i, m := range metrics {
		results[i] = compareMetric(m, minSamples, alpha)
		if results[i].Reason == "" {
			testable = append(testable, i)
		}
	}
	pvalues := make([]float64, len(testable))
	for j, i := range testable {
		pvalues[j] = results[i].P
	}
	adjusted := HolmAdjust(pvalues)
	for j, i := range testable {
		judge(&results[i], metrics[i], adjusted[j], alpha)
	}
	return decideExperiment(results)
}

// compareMetric computes one metric's proportions and always-valid p-value; Reason is set when
// the metric cannot be tested.
func compareMetric(m ExperimentMetric, minSamples int64, alpha float64) MetricComparison {
	c := MetricComparison{Name: m.Name, P: 1, AdjustedP: 1, SamplesA: m.A.Samples, SamplesB: m.B.Samples}
	for _, arm := range []Measurement{m.A, m.B} {
		switch {
		case arm.Outcome == OutcomeUnavailable:
			c.Reason, c.Message = ReasonProviderUnavailable, fmt.Sprintf("%s: metrics provider unavailable: %v", m.Name, arm.Err)
			return c
		case arm.Outcome == OutcomeQueryError || arm.Outcome == OutcomeMultipleSeries || arm.Outcome == OutcomeInvalidValue:
			c.Reason, c.Message = ReasonQueryError, fmt.Sprintf("%s: %v", m.Name, arm.Err)
			return c
		case arm.Outcome == OutcomeNoData || arm.Outcome == OutcomeNoTraffic || arm.Samples == 0:
			c.Reason, c.Message = ReasonNoTraffic, fmt.Sprintf("%s: an arm has no traffic", m.Name)
			return c
		case !arm.Proportion:
			c.Reason, c.Message = ReasonNotProportion, fmt.Sprintf("%s: not a proportion; A/B significance needs event and request counts", m.Name)
			return c
		}
	}
	c.ProportionA = float64(m.A.Events) / float64(m.A.Samples)
	c.ProportionB = float64(m.B.Events) / float64(m.B.Samples)
	if m.A.Samples < minSamples || m.B.Samples < minSamples {
		c.Reason = ReasonBelowMinSample
		c.Message = fmt.Sprintf("%s: %d and %d requests, below the minimum of %d per arm", m.Name, m.A.Samples, m.B.Samples, minSamples)
		return c
	}
	tau2 := DefaultMixingVariance
	if m.MinEffect > 0 {
		tau2 = m.MinEffect * m.MinEffect
	}
	p, err := AlwaysValidPValue(m.A.Events, m.A.Samples, m.B.Events, m.B.Samples, tau2)
	if err != nil {
		c.Reason, c.Message = ReasonQueryError, fmt.Sprintf("%s: %v", m.Name, err)
		return c
	}
	previous := m.PreviousP
	if previous <= 0 || previous > 1 || math.IsNaN(previous) {
		previous = 1
	}
	c.P = math.Min(p, previous)
	return c
}

// judge decides significance and the winner of a testable metric.
func judge(c *MetricComparison, m ExperimentMetric, adjustedP, alpha float64) {
	c.AdjustedP = adjustedP
	diff := c.ProportionB - c.ProportionA
	head := fmt.Sprintf("%s: A %.4g%% of %d, B %.4g%% of %d, p=%.3g (Holm-adjusted %.3g)",
		m.Name, 100*c.ProportionA, c.SamplesA, 100*c.ProportionB, c.SamplesB, c.P, adjustedP)
	if adjustedP >= alpha {
		c.Reason = ReasonNotSignificant
		c.Message = head + ": not significant" + neededMessage(c, m, alpha)
		return
	}
	if math.Abs(diff) < m.MinEffect {
		c.Reason = ReasonBelowMinEffect
		c.Message = fmt.Sprintf("%s: significant, but the difference %.4g is below minEffectSize %.4g", head, math.Abs(diff), m.MinEffect)
		return
	}
	c.Significant, c.Reason = true, ReasonSignificant
	bBetter := diff < 0
	if m.Direction == HigherIsBetter {
		bBetter = diff > 0
	}
	c.Winner = VariantA
	if bBetter {
		c.Winner = VariantB
	}
	c.Message = fmt.Sprintf("%s: %s is better", head, c.Winner)
}

// neededMessage estimates how many requests per arm would show the smallest effect that matters
// (MinEffect, or the observed difference) with 80 % power.
func neededMessage(c *MetricComparison, m ExperimentMetric, alpha float64) string {
	effect := m.MinEffect
	if effect <= 0 {
		effect = math.Abs(c.ProportionB - c.ProportionA)
	}
	if effect <= 0 {
		return ""
	}
	p2 := c.ProportionA + effect
	if p2 >= 1 {
		p2 = c.ProportionA - effect
	}
	n := TwoProportionSampleSize(c.ProportionA, p2, alpha, 0.8)
	if math.IsNaN(n) || math.IsInf(n, 0) {
		return ""
	}
	more := int64(math.Ceil(n)) - min(c.SamplesA, c.SamplesB)
	if more <= 0 {
		return ""
	}
	return fmt.Sprintf("; about %d more requests per arm needed to detect a difference of %.4g", more, effect)
}

// decideExperiment picks a winner: A as soon as B is significantly worse on any metric, B when
// B is significantly better on every metric.
func decideExperiment(results []MetricComparison) ExperimentResult {
	out := ExperimentResult{Metrics: results}
	parts := make([]string, 0, len(results))
	allB := len(results) > 0
	for _, r := range results {
		parts = append(parts, r.Message)
		if r.Significant && r.Winner == VariantA {
			out.Winner = VariantA
		}
		if !r.Significant || r.Winner != VariantB {
			allB = false
		}
	}
	if out.Winner == "" && allB {
		out.Winner = VariantB
	}
	if out.Winner != "" {
		out.Reason = "SignificanceReached"
	}
	out.Message = strings.Join(parts, "; ")
	return out
}
