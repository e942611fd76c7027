package analysis

import (
	"errors"
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

// ExperimentMetric is one metric of an A/B experiment, measured in both arms over all requests
// since the experiment started.
type ExperimentMetric struct {
	// Name is the metric's name.
	Name string
	// Direction says which way is better.
	Direction Direction
	// MinEffect is the smallest absolute difference that matters (0: any): of proportions for a
	// proportion, in seconds for a latency.
	MinEffect float64
	// A and B are the arms' measurements of a proportion (events of trials).
	A, B Measurement
	// Latency is true when the metric compares latency distributions: HistA and HistB hold the
	// arms' histograms (in seconds) and Look the look number, from 1.
	Latency      bool
	HistA, HistB HistogramMeasurement
	Look         int
}

// MetricComparison is one metric's result.
type MetricComparison struct {
	Name string
	// ProportionA and ProportionB are the arms' event rates (proportions only); SamplesA and
	// SamplesB their trials.
	ProportionA, ProportionB float64
	SamplesA, SamplesB       int64
	// ValueA and ValueB are the arms' values in the metric's unit: percent for a proportion,
	// milliseconds (the 95th or 99th percentile) for a latency.
	ValueA, ValueB float64
	// Difference is B minus A: of proportions, or the Hodges-Lehmann latency shift in seconds
	// (left at 0 for a latency whose P is 1, which cannot be significant).
	Difference float64
	// Z is the Mann-Whitney z of a latency, positive when B tends to be slower; it says which
	// arm is faster when the shift, measured in whole buckets, is 0.
	Z float64
	// P is the anytime-valid p-value of this look: the always-valid p-value of the
	// two-proportion test, or for a latency the two-sided Mann-Whitney p-value times
	// Look*(Look+1) (the alpha spent by look Look), capped at 1.
	P float64
	// RawP is the p-value of this look before any sequential correction (equal to P for a
	// proportion).
	RawP float64
	// Look is the look number of a latency comparison.
	Look int
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

// EvaluateExperiment compares the arms of every metric with an anytime-valid test on all
// requests since the experiment started (so that looking at every interval does not inflate
// false positives): the always-valid two-proportion test for proportions, Mann-Whitney U with
// alpha spent look by look for latencies. It corrects the p-values across metrics with Holm's
// method at alpha = 1 - confidence and decides a winner.
//
// Errors: ErrInvalidInput unless confidence lies strictly between 0 and 1 and minSamples is not
// negative.
func EvaluateExperiment(metrics []ExperimentMetric, confidence float64, minSamples int64) (ExperimentResult, error) {
	if err := checkOpenUnit("confidence", confidence); err != nil {
		return ExperimentResult{}, err
	}
	if minSamples < 0 {
		return ExperimentResult{}, fmt.Errorf("%w: minimum sample size %d is negative", ErrInvalidInput, minSamples)
	}
	alpha := 1 - confidence
	results := make([]MetricComparison, len(metrics))
	testable := []int{}
	for i, m := range metrics {
		if m.Latency {
			results[i] = compareLatencyMetric(m, minSamples)
		} else {
			results[i] = compareMetric(m, minSamples)
		}
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
	return decideExperiment(results), nil
}

// unusableArm is the reason and message of an arm measured without a usable value, or "".
func unusableArm(name string, outcome Outcome, err error, samples int64) (Reason, string) {
	switch {
	case outcome == OutcomeUnavailable:
		return ReasonProviderUnavailable, fmt.Sprintf("%s: metrics provider unavailable: %v", name, err)
	case outcome == OutcomeQueryError || outcome == OutcomeMultipleSeries || outcome == OutcomeInvalidValue:
		return ReasonQueryError, fmt.Sprintf("%s: %v", name, err)
	case outcome == OutcomeNoData || outcome == OutcomeNoTraffic || samples == 0:
		return ReasonNoTraffic, fmt.Sprintf("%s: an arm has no traffic", name)
	}
	return "", ""
}

// compareMetric computes one proportion's rates and always-valid p-value; Reason is set when
// the metric cannot be tested.
func compareMetric(m ExperimentMetric, minSamples int64) MetricComparison {
	c := MetricComparison{Name: m.Name, P: 1, RawP: 1, AdjustedP: 1, SamplesA: m.A.Samples, SamplesB: m.B.Samples}
	for _, arm := range []Measurement{m.A, m.B} {
		if reason, msg := unusableArm(m.Name, arm.Outcome, arm.Err, arm.Samples); reason != "" {
			c.Reason, c.Message = reason, msg
			return c
		}
		if !arm.Proportion {
			c.Reason, c.Message = ReasonNotProportion, fmt.Sprintf("%s: not a proportion; A/B significance needs event and request counts", m.Name)
			return c
		}
	}
	c.ProportionA = float64(m.A.Events) / float64(m.A.Samples)
	c.ProportionB = float64(m.B.Events) / float64(m.B.Samples)
	c.ValueA, c.ValueB = 100*c.ProportionA, 100*c.ProportionB
	c.Difference = c.ProportionB - c.ProportionA
	if m.A.Samples < minSamples || m.B.Samples < minSamples {
		c.Reason = ReasonBelowMinSample
		c.Message = fmt.Sprintf("%s: %d and %d requests, below the minimum of %d per arm", m.Name, m.A.Samples, m.B.Samples, minSamples)
		return c
	}
	p, err := AlwaysValidPValue(m.A.Events, m.A.Samples, m.B.Events, m.B.Samples, experimentMixingVariance(m))
	if err != nil {
		c.Reason, c.Message = ReasonQueryError, fmt.Sprintf("%s: %v", m.Name, err)
		return c
	}
	c.P, c.RawP = p, p
	return c
}

// experimentMixingVariance is tau2 of a proportion's test: the square of minEffectSize, or
// DefaultMixingVariance.
func experimentMixingVariance(m ExperimentMetric) float64 {
	if m.MinEffect > 0 {
		return m.MinEffect * m.MinEffect
	}
	return DefaultMixingVariance
}

// compareLatencyMetric compares the arms' latency distributions at look m.Look: two-sided
// Mann-Whitney U on the buckets, with the p-value made anytime-valid by multiplying it by
// Look*(Look+1), and the Hodges-Lehmann shift of B against A.
func compareLatencyMetric(m ExperimentMetric, minSamples int64) MetricComparison {
	c := MetricComparison{Name: m.Name, P: 1, RawP: 1, AdjustedP: 1, Look: m.Look}
	c.SamplesA, c.SamplesB = m.HistA.Histogram.Total(), m.HistB.Histogram.Total()
	for _, arm := range []HistogramMeasurement{m.HistA, m.HistB} {
		if reason, msg := unusableArm(m.Name, arm.Outcome, arm.Err, arm.Histogram.Total()); reason != "" {
			c.Reason, c.Message = reason, msg
			return c
		}
	}
	if c.SamplesA < max(minSamples, minComparisonSamples) || c.SamplesB < max(minSamples, minComparisonSamples) {
		c.Reason = ReasonBelowMinSample
		c.Message = fmt.Sprintf("%s: %d and %d requests, below the minimum of %d per arm", m.Name, c.SamplesA, c.SamplesB, max(minSamples, minComparisonSamples))
		return c
	}
	q := 0.95
	if m.Name == MetricLatencyP99 {
		q = 0.99
	}
	qa, errA := m.HistA.Histogram.Quantile(q)
	qb, errB := m.HistB.Histogram.Quantile(q)
	mw, errMW := BucketedMannWhitney(m.HistA.Histogram, m.HistB.Histogram)
	if err := errors.Join(errA, errB, errMW); err != nil || m.Look < 1 {
		c.Reason, c.Message = ReasonQueryError, fmt.Sprintf("%s: look %d: %v", m.Name, m.Look, err)
		return c
	}
	c.ValueA, c.ValueB = 1000*qa, 1000*qb
	c.Z = mw.Z
	c.RawP = mw.PTwoSided
	c.P = LookP(mw.PTwoSided, m.Look)
	if c.P < 1 {
		// The shift matters only to a metric that may be significant, where it is compared
		// with minEffectSize; computing it costs more than the test.
		shift, _, _, err := BucketedHodgesLehmann(m.HistA.Histogram, m.HistB.Histogram, DefaultConfidence)
		if err != nil {
			c.Reason, c.Message = ReasonQueryError, fmt.Sprintf("%s: look %d: %v", m.Name, m.Look, err)
			return c
		}
		c.Difference = shift
	}
	return c
}

// judge decides significance and the winner of a testable metric.
func judge(c *MetricComparison, m ExperimentMetric, adjustedP, alpha float64) {
	c.AdjustedP = adjustedP
	diff := c.Difference
	head := fmt.Sprintf("%s: A %.4g%s of %d, B %.4g%s of %d, p=%.3g (Holm-adjusted %.3g)",
		m.Name, c.ValueA, unitOf(m), c.SamplesA, c.ValueB, unitOf(m), c.SamplesB, c.P, adjustedP)
	if !(adjustedP < alpha) { // a NaN p-value is never significant
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
	bHigher := diff > 0
	if m.Latency {
		bHigher = c.Z > 0
	}
	bBetter := !bHigher
	if m.Direction == HigherIsBetter {
		bBetter = bHigher
	}
	c.Winner = VariantA
	if bBetter {
		c.Winner = VariantB
	}
	c.Message = fmt.Sprintf("%s: %s is better", head, c.Winner)
}

// unitOf is the unit of a metric's values in messages.
func unitOf(m ExperimentMetric) string {
	if m.Latency {
		return "ms"
	}
	return "%"
}

// neededMessage estimates how many more requests per arm the sequential test would need to
// decide a proportion if both rates held (with B moved to minEffectSize from A when the observed
// difference is smaller than that).
func neededMessage(c *MetricComparison, m ExperimentMetric, alpha float64) string {
	if m.Latency {
		return ""
	}
	pB := c.ProportionB
	if m.MinEffect > 0 && math.Abs(c.Difference) < m.MinEffect {
		pB = c.ProportionA + m.MinEffect
		if pB > 1 {
			pB = c.ProportionA - m.MinEffect
		}
	}
	if pB < 0 || pB == c.ProportionA {
		return ""
	}
	more, err := TwoProportionTrialsNeeded(c.ProportionA, pB, float64(min(c.SamplesA, c.SamplesB)), alpha, experimentMixingVariance(m))
	if err != nil || more <= 0 {
		return ""
	}
	return fmt.Sprintf("; about %d more requests per arm would decide a difference of %.4g", more, math.Abs(pB-c.ProportionA))
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
