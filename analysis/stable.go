package analysis

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// Reasons of comparisons with stable.
const (
	// ReasonWorseThanStable marks a revision whose error rate is shown higher than stable's.
	ReasonWorseThanStable Reason = "WorseThanStable"
	// ReasonSlowerThanStable marks a revision whose latency is shown higher than stable's by
	// more than the tolerance.
	ReasonSlowerThanStable Reason = "SlowerThanStable"
	// ReasonNoStableData marks a comparison that could not be made because the stable revision
	// had no data (no traffic, no series) or no Service to measure.
	ReasonNoStableData Reason = "NoStableData"
	// ReasonSampleRatioMismatch marks a comparison whose traffic split does not match the one
	// KULTA set, so its numbers cannot be trusted.
	ReasonSampleRatioMismatch Reason = "SampleRatioMismatch"
)

// srmAlpha is the level of the sample-ratio-mismatch check: a mismatch is a defect of the
// measurement, so only a clear one counts.
const srmAlpha = 0.001

// minComparisonSamples is the fewest requests per side for a latency comparison: the normal
// approximation of Mann-Whitney U is poor below it.
const minComparisonSamples = 30

// DefaultLatencyTolerance is the tolerance of a latency comparison that sets none: 10 % of
// stable's median latency.
const DefaultLatencyTolerance = "10%"

// stableAwareTarget is the revision under test plus what it is compared with.
type stableAwareTarget struct {
	Target
	StableService, StableHash string
}

// stableService is the Service of the revision the one under test is compared with: the
// canary's stable Service, or a blue-green rollout's active Service. Empty for the others.
func stableService(ro *kultav1alpha1.Rollout) string {
	switch s := ro.Spec.Strategy; {
	case s.Canary != nil:
		return s.Canary.StableService
	case s.BlueGreen != nil:
		return s.BlueGreen.ActiveService
	}
	return ""
}

// stableComparison is one metric's comparison with stable: what the threshold check measured
// and where the result goes.
type stableComparison struct {
	run          checkRun
	metric       kultav1alpha1.Metric
	interval     time.Duration // the metric's window, which bounds the shortest range counted
	query        MetricQuery
	spec         ThresholdSpec
	canary       Measurement
	prev         CheckState
	revisionPrev kultav1alpha1.MetricStatus
	status       *kultav1alpha1.MetricStatus
}

// stableTarget is the Target of the stable side.
func (s stableComparison) stableTarget() Target {
	t := s.run.target
	return Target{Namespace: t.Namespace, Rollout: t.Rollout, Service: t.StableService, Revision: t.StableHash}
}

// againstStable runs the comparison with stable on top of a threshold verdict that did not fail.
// It never turns a verdict into a Pass: without a comparison (no stable Service or data) a
// passing threshold becomes Inconclusive (NoStableData).
func (c *Checker) againstStable(ctx context.Context, s stableComparison, v Verdict, next CheckState) (Verdict, CheckState) {
	if s.run.target.StableService == "" {
		return withoutStable(v, s.spec.Metric, "no stable Service to compare with"), next
	}
	if s.query.HistogramQuery != "" {
		return c.latencyAgainstStable(ctx, s, v, next)
	}
	if !s.canary.Proportion {
		return withoutStable(v, s.spec.Metric, "the metric is not a proportion and has no histogram"), next
	}
	if s.canary.Outcome != OutcomeOK {
		return v, next
	}
	stable := Gather(ctx, s.run.q, s.query, s.stableTarget(), s.run.now)
	if stable.Outcome != OutcomeOK {
		return withoutStable(v, s.spec.Metric, "stable: "+explain(stable)), next
	}
	s.status.StableValue = ptr.To(kultav1alpha1.NewDecimal(roundTo(stable.Value, 6)))
	if mismatch, ok := c.sampleRatio(ctx, s); ok {
		next.Errors = s.prev.Errors + 1
		v.Result, v.Reason, v.Message = ResultInconclusive, ReasonSampleRatioMismatch, mismatch
		if next.Errors >= DefaultErrorLimit {
			v.Result = ResultFail
			v.Message = fmt.Sprintf("%s, in %d checks in a row", mismatch, next.Errors)
		}
		return v, next
	}
	return harm(s, stable, v, next)
}

// withoutStable is v with the note that stable could not be compared; a Pass becomes
// Inconclusive, since a comparison that was not made shows nothing.
func withoutStable(v Verdict, metric, why string) Verdict {
	if v.Result == ResultPass {
		v.Result, v.Reason = ResultInconclusive, ReasonNoStableData
		v.Message = fmt.Sprintf("%s: %s; cannot compare with stable (%s)", metric, v.Message, why)
		return v
	}
	v.Message = fmt.Sprintf("%s; cannot compare with stable (%s)", v.Message, why)
	return v
}

// harm runs the sequential two-proportion test of the revision against stable on the requests
// both served since the revision started. The always-valid p-value of the latest look is judged
// by itself: by Ville's inequality it falls below alpha at any look with probability at most
// alpha when the two rates are equal, however many looks are taken.
func harm(s stableComparison, stable Measurement, v Verdict, next CheckState) (Verdict, CheckState) {
	canary := s.canary
	pStable := float64(stable.Events) / float64(stable.Samples)
	pCanary := float64(canary.Events) / float64(canary.Samples)
	p, err := AlwaysValidPValue(stable.Events, stable.Samples, canary.Events, canary.Samples, ThresholdMixingVariance(pStable))
	if err != nil {
		return withoutStable(v, s.spec.Metric, err.Error()), next
	}
	s.status.PValue = ptr.To(kultav1alpha1.NewDecimal(p))
	s.status.Looks = s.revisionPrev.Looks + 1
	worse := pCanary > pStable
	if s.spec.Direction == HigherIsBetter {
		worse = pCanary < pStable
	}
	alpha := 1 - s.run.confidence
	if !worse || p >= alpha {
		return v, next
	}
	next.Failures = s.prev.Failures + 1
	v.Reason = ReasonWorseThanStable
	v.Message = fmt.Sprintf("%s: revision %.4g%% of %d against stable %.4g%% of %d, shown worse (always-valid p=%.3g < %.3g)",
		s.spec.Metric, 100*pCanary, canary.Samples, 100*pStable, stable.Samples, p, alpha)
	v.Result = ResultInconclusive
	if next.Failures >= max(s.spec.FailureThreshold, 1) {
		v.Result = ResultFail
	}
	return v, next
}

// sampleRatio compares the split of requests between stable and the canary since the split
// KULTA set last changed with that split. It returns a message and true on a mismatch; false
// when the split matches or cannot be checked (no known split, all traffic on one side, less
// than MinWindow since it changed, or no requests).
func (c *Checker) sampleRatio(ctx context.Context, s stableComparison) (string, bool) {
	split := s.run.split
	if !split.Known || split.CanaryPercent <= 0 || split.CanaryPercent >= 100 {
		return "", false
	}
	window, ok := CumulativeWindow(s.run.splitSince, s.run.now, s.interval)
	if !ok {
		return "", false
	}
	query := s.query
	query.Window = window
	stable := Gather(ctx, s.run.q, query, s.stableTarget(), s.run.now)
	canary := Gather(ctx, s.run.q, query, s.run.target.Target, s.run.now)
	if !stable.HasSamples || !canary.HasSamples || stable.Samples+canary.Samples == 0 {
		return "", false
	}
	counts := splitCounts(stable, canary)
	srm, err := SampleRatioMismatch(counts, []float64{100 - split.CanaryPercent, split.CanaryPercent}, srmAlpha)
	if err != nil || !srm.Mismatch {
		return "", false
	}
	return fmt.Sprintf("%s: over the last %s the %d requests seen fell %d on stable and %d on the canary, which does not match the split %.4g/%.4g KULTA set (chi2 %.1f, p %.2g)",
		s.spec.Metric, window, counts[0]+counts[1], counts[0], counts[1], 100-split.CanaryPercent, split.CanaryPercent, srm.ChiSquare, srm.PValue), true
}

// splitCounts is how a split's requests fell between stable and the canary, as the chi-square
// test takes them: in the proportion of the two targets' estimated counts, which cover the same
// window (a canary's counters, born after the split, and stable's older ones are scraped at
// different instants), over the requests the samples show in all (Measurement.Samples).
func splitCounts(stable, canary Measurement) []int64 {
	observed, estimated := stable.Samples+canary.Samples, stable.Estimated+canary.Estimated
	if estimated <= observed || estimated == 0 {
		return []int64{stable.Estimated, canary.Estimated}
	}
	stableShare := float64(stable.Estimated) / float64(estimated)
	onStable := int64(math.Round(stableShare * float64(observed)))
	return []int64{onStable, observed - onStable}
}

// latencyAgainstStable compares the revision's latency distribution with stable's over every
// request since the revision started, from the histogram buckets: Mann-Whitney U for whether the
// revision is slower, and the Hodges-Lehmann shift with its confidence interval for by how much.
// Look k spends alpha/(k(k+1)) of alpha (LookAlpha), so all looks together stay within alpha;
// the check fails when the revision is slower at that level and the lower end of the shift's
// interval exceeds the tolerance.
func (c *Checker) latencyAgainstStable(ctx context.Context, s stableComparison, v Verdict, next CheckState) (Verdict, CheckState) {
	metric := s.spec.Metric
	window, ok := CumulativeWindow(s.run.since, s.run.now, s.interval)
	if !ok {
		return withoutStable(v, metric, "the revision has not had traffic for "+min(s.interval, MinWindow).String()), next
	}
	canary := GatherHistogram(ctx, s.run.q, s.query, s.run.target.Target, window, s.run.now)
	if canary.Outcome != OutcomeOK {
		return withoutStable(v, metric, "revision: "+canary.Err.Error()), next
	}
	stable := GatherHistogram(ctx, s.run.q, s.query, s.stableTarget(), window, s.run.now)
	if stable.Outcome != OutcomeOK {
		return withoutStable(v, metric, "stable: "+stable.Err.Error()), next
	}
	c1, c2 := canary.Histogram.Total(), stable.Histogram.Total()
	if c1 < minComparisonSamples || c2 < minComparisonSamples {
		return withoutStable(v, metric, fmt.Sprintf("%d and %d requests, below the %d per side a comparison needs", c1, c2, minComparisonSamples)), next
	}
	alpha := 1 - s.run.confidence
	lat, err := CompareLatency(stable.Histogram, canary.Histogram, alpha, int(s.revisionPrev.Looks)+1, s.metric.Tolerance)
	if err != nil {
		return withoutStable(v, metric, err.Error()), next
	}
	s.status.Looks = int32(lat.Look)
	s.status.PValue = ptr.To(kultav1alpha1.NewDecimal(lat.P))
	s.status.StableValue = ptr.To(kultav1alpha1.NewDecimal(roundTo(1000*lat.StableMedian, 6)))
	if !lat.Slower {
		return v, next
	}
	next.Failures = s.prev.Failures + 1
	v.Reason = ReasonSlowerThanStable
	v.Message = fmt.Sprintf("%s: %s", metric, lat.Message)
	v.Result = ResultInconclusive
	if next.Failures >= max(s.spec.FailureThreshold, 1) {
		v.Result = ResultFail
	}
	return v, next
}

// LatencyComparison is one look of a sequential latency comparison of an experiment (the
// revision under test) against a control (stable), both histograms in seconds.
type LatencyComparison struct {
	// Look is the look number, from 1.
	Look int
	// LookAlpha is the share of alpha this look may spend.
	LookAlpha float64
	// P is the one-sided Mann-Whitney p-value of the experiment being slower.
	P float64
	// SequentialP is min(1, P*Look*(Look+1)): at most alpha exactly when P is at most LookAlpha,
	// and an anytime-valid p-value over the looks.
	SequentialP float64
	// Shift, Low and High are the Hodges-Lehmann shift (experiment minus control) and its
	// interval at confidence 1 - 2*LookAlpha, in seconds; computed only when P is below
	// LookAlpha (0 otherwise), since the check cannot fail without it.
	Shift, Low, High float64
	// Tolerance is the shift allowed, in seconds.
	Tolerance float64
	// StableMedian is the control's median, in seconds.
	StableMedian float64
	// Slower is true when the experiment is shown slower by more than Tolerance.
	Slower bool
	// Message explains the look.
	Message string
}

// CompareLatency takes look number look of the sequential latency comparison at level alpha.
// tolerance is "" (DefaultLatencyTolerance), milliseconds ("20ms") or a percentage of the
// control's median ("10%").
//
// Errors: those of BucketedMannWhitney, BucketedHodgesLehmann and LookAlpha, and
// ErrInvalidInput for a malformed tolerance.
func CompareLatency(control, experiment Histogram, alpha float64, look int, tolerance string) (LatencyComparison, error) {
	out := LatencyComparison{Look: look}
	var err error
	if out.LookAlpha, err = LookAlpha(alpha, look); err != nil {
		return out, err
	}
	mw, err := BucketedMannWhitney(control, experiment)
	if err != nil {
		return out, err
	}
	out.P = mw.PGreater
	out.SequentialP = LookP(out.P, look)
	if out.StableMedian, err = control.Quantile(0.5); err != nil {
		return out, err
	}
	if out.Tolerance, err = ParseTolerance(tolerance, out.StableMedian); err != nil {
		return out, err
	}
	head := fmt.Sprintf("over %d and %d requests, Mann-Whitney p=%.3g at look %d (level %.3g)",
		experiment.Total(), control.Total(), out.P, look, out.LookAlpha)
	if out.P >= out.LookAlpha {
		// Not slower at this look's level, whatever the shift: its interval is not needed.
		out.Message = fmt.Sprintf("%s against stable (median %.4gms, tolerance %.4gms): not shown slower", head, 1000*out.StableMedian, 1000*out.Tolerance)
		return out, nil
	}
	if out.Shift, out.Low, out.High, err = BucketedHodgesLehmann(control, experiment, 1-2*out.LookAlpha); err != nil {
		return out, err
	}
	out.Slower = out.Low > out.Tolerance
	verdict := "slower, but not shown slower than the tolerance"
	if out.Slower {
		verdict = "shown slower than the tolerance"
	}
	out.Message = fmt.Sprintf("shift %+.4gms [%+.4g, %+.4g] against stable (median %.4gms, tolerance %.4gms) %s: %s",
		1000*out.Shift, 1000*out.Low, 1000*out.High, 1000*out.StableMedian, 1000*out.Tolerance, head, verdict)
	return out, nil
}

// ParseTolerance turns a latency tolerance into seconds: "20ms" is 0.02, "10%" is a tenth of
// median (in seconds), and "" is DefaultLatencyTolerance.
func ParseTolerance(tolerance string, median float64) (float64, error) {
	if tolerance == "" {
		tolerance = DefaultLatencyTolerance
	}
	var number string
	var scale float64
	switch {
	case strings.HasSuffix(tolerance, "ms"):
		number, scale = strings.TrimSuffix(tolerance, "ms"), 1e-3
	case strings.HasSuffix(tolerance, "%"):
		number, scale = strings.TrimSuffix(tolerance, "%"), median/100
	default:
		return 0, fmt.Errorf("%w: tolerance %q must be milliseconds (20ms) or a percentage (10%%)", ErrInvalidInput, tolerance)
	}
	f, err := strconv.ParseFloat(number, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, fmt.Errorf("%w: tolerance %q is not a non-negative number", ErrInvalidInput, tolerance)
	}
	return f * scale, nil
}
