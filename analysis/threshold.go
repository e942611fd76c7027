package analysis

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Result is the outcome of a check: only Pass lets a rollout advance.
type Result string

// Results of a check.
const (
	// ResultPass means the metric is within its threshold on enough data.
	ResultPass Result = "Pass"
	// ResultFail means the metric failed often enough for the failure policy to apply.
	ResultFail Result = "Fail"
	// ResultInconclusive means there is no verdict yet: no data, too little data, a transient
	// error, a warm-up, or a failure not yet repeated failureThreshold times.
	ResultInconclusive Result = "Inconclusive"
)

// Reason says why a Verdict is what it is. The values are CamelCase, fit for condition reasons
// and events.
type Reason string

// Reasons of a verdict.
const (
	// ReasonNoTraffic means the window had no requests.
	ReasonNoTraffic Reason = "NoTraffic"
	// ReasonNoData means a query returned no series.
	ReasonNoData Reason = "NoData"
	// ReasonQueryError means a query failed, fewer times in a row than the error limit.
	ReasonQueryError Reason = "QueryError"
	// ReasonBelowMinSample means fewer requests than minSampleSize were seen, or none counted.
	ReasonBelowMinSample Reason = "BelowMinSample"
	// ReasonThresholdExceeded means the value is on the wrong side of the threshold.
	ReasonThresholdExceeded Reason = "ThresholdExceeded"
	// ReasonWithinThreshold means the value is on the right side of the threshold.
	ReasonWithinThreshold Reason = "WithinThreshold"
	// ReasonWarmingUp means the step started less than warmupDuration ago.
	ReasonWarmingUp Reason = "WarmingUp"
	// ReasonInvalidValue means a query returned NaN, an infinity or a negative count.
	ReasonInvalidValue Reason = "InvalidValue"
	// ReasonMultipleSeries means a query returned several series where one was expected.
	ReasonMultipleSeries Reason = "MultipleSeries"
	// ReasonConsecutiveErrors means queries failed as many times in a row as the error limit.
	ReasonConsecutiveErrors Reason = "ConsecutiveErrors"
	// ReasonInvalidSpec means the ThresholdSpec itself is unusable.
	ReasonInvalidSpec Reason = "InvalidSpec"
	// ReasonWindowNotFilled means the revision under test has not had traffic for long enough
	// to fill the shortest query window allowed; see BoundWindow.
	ReasonWindowNotFilled Reason = "WindowNotFilled"
	// ReasonProviderUnavailable means the metrics provider could not be reached or failed on
	// its own side; the check holds until it answers.
	ReasonProviderUnavailable Reason = "ProviderUnavailable"
	// ReasonInsufficientEvidence means a sequential check has data, but not yet enough to show
	// on which side of its threshold (or of stable) the revision is.
	ReasonInsufficientEvidence Reason = "InsufficientEvidence"
)

// Verdict is the judgement of one metric at one check, or of all metrics (Combine).
type Verdict struct {
	// Metric is the metric's name; empty for a combined verdict.
	Metric string
	// Result is Pass, Fail or Inconclusive.
	Result Result
	// Reason says why.
	Reason Reason
	// Message names the metric, its value, the threshold and the sample count.
	Message string
	// Value is the measured value; meaningful only when the measurement had one.
	Value float64
	// Threshold is the spec's threshold.
	Threshold float64
	// Samples is the number of requests the value is based on (0 when unknown).
	Samples int64
	// Low and High bound the confidence sequence of a sequential check, in the metric's unit;
	// both 0 for other checks.
	Low, High float64
}

// Direction says which side of the threshold is good.
type Direction string

// Directions; the values match the API's metric directions.
const (
	// LowerIsBetter makes the threshold a maximum (errors, latency). It is the default.
	LowerIsBetter Direction = "lower"
	// HigherIsBetter makes the threshold a minimum (success rate, conversions).
	HigherIsBetter Direction = "higher"
)

// DefaultErrorLimit is how many consecutive query errors make a failing verdict when a
// ThresholdSpec sets no ErrorLimit.
const DefaultErrorLimit = 3

// ThresholdSpec is one metric's threshold check.
type ThresholdSpec struct {
	// Metric is the metric's name.
	Metric string
	// Threshold is the largest (LowerIsBetter) or smallest (HigherIsBetter) acceptable value;
	// a value equal to it passes.
	Threshold float64
	// Direction is LowerIsBetter (the default when empty) or HigherIsBetter.
	Direction Direction
	// FailureThreshold is how many consecutive failing checks make a Fail; 0 means 1.
	FailureThreshold int32
	// MinSampleSize is the fewest requests for a check to count; 0 means no minimum.
	MinSampleSize int64
	// ErrorLimit is how many consecutive query errors make a Fail; 0 means DefaultErrorLimit.
	ErrorLimit int32
	// Confidence, when set (strictly between 0 and 1), makes the check of a proportion
	// sequential: it fails only when the anytime-valid confidence sequence of the rate lies
	// wholly on the wrong side of the threshold, passes only when it lies wholly on the right
	// side, and is Inconclusive (InsufficientEvidence) in between. Zero keeps the plain
	// comparison of the value with the threshold, which is also what non-proportions get.
	Confidence float64
}

// Validate reports, wrapping ErrInvalidInput, why the spec cannot be evaluated.
func (s ThresholdSpec) Validate() error {
	switch {
	case math.IsNaN(s.Threshold) || math.IsInf(s.Threshold, 0):
		return fmt.Errorf("%w: threshold is %v", ErrInvalidInput, s.Threshold)
	case s.Direction != "" && s.Direction != LowerIsBetter && s.Direction != HigherIsBetter:
		return fmt.Errorf("%w: direction %q is neither lower nor higher", ErrInvalidInput, s.Direction)
	case s.FailureThreshold < 0 || s.MinSampleSize < 0 || s.ErrorLimit < 0:
		return fmt.Errorf("%w: failureThreshold %d, minSampleSize %d and error limit %d must not be negative",
			ErrInvalidInput, s.FailureThreshold, s.MinSampleSize, s.ErrorLimit)
	case s.Confidence != 0 && (math.IsNaN(s.Confidence) || s.Confidence <= 0 || s.Confidence >= 1):
		return fmt.Errorf("%w: confidence must be strictly between 0 and 1, got %v", ErrInvalidInput, s.Confidence)
	}
	return nil
}

// CheckState is what one metric's checks remember between reconciles; the controller keeps it
// in the Rollout's status.
type CheckState struct {
	// Failures counts consecutive checks whose value was on the wrong side of the threshold.
	Failures int32 `json:"failures,omitempty"`
	// Errors counts consecutive checks whose query failed.
	Errors int32 `json:"errors,omitempty"`
	// LastChecked is when the last check's queries were evaluated.
	LastChecked time.Time `json:"lastChecked,omitzero"`
}

// Due reports whether the next check is due at now, interval after the last one.
func (s CheckState) Due(now time.Time, interval time.Duration) bool {
	return s.LastChecked.IsZero() || !now.Before(s.LastChecked.Add(interval))
}

// EvaluateThreshold judges one measurement against spec, given the state left by the previous
// check, and returns the verdict and the state to keep. It is pure.
//
// No data never passes: a window without traffic or series, a value below minSampleSize (or
// without a sample count when a minimum is set), and an invalid value are Inconclusive. Zero
// errors with traffic is a value of 0 and passes a threshold of 0 or more. A failing value is
// Inconclusive until failureThreshold consecutive failing checks, then Fail; a passing check
// resets that count, while checks without a value neither reset nor extend it. Query errors
// (including several series where one was expected) are Inconclusive until ErrorLimit of them
// in a row, then Fail with ReasonConsecutiveErrors. A provider that is down or overloaded
// (OutcomeUnavailable) is Inconclusive for as long as it lasts and leaves both counters as they
// were: an outage of the monitoring holds the rollout, it neither fails nor passes it.
func EvaluateThreshold(spec ThresholdSpec, m Measurement, prev CheckState) (Verdict, CheckState) {
	next := prev
	next.LastChecked = m.At
	v := Verdict{Metric: spec.Metric, Threshold: spec.Threshold, Value: m.Value, Samples: m.Samples}
	if v.Metric == "" {
		v.Metric = m.Metric
	}
	if err := spec.Validate(); err != nil {
		return v.with(ResultInconclusive, ReasonInvalidSpec, "%s: %v", v.Metric, err), next
	}
	if m.Outcome == OutcomeUnavailable {
		return v.with(ResultInconclusive, ReasonProviderUnavailable, "%s: metrics provider unavailable, holding until it answers (threshold %s): %v",
			v.Metric, bound(spec), explain(m)), next
	}
	if m.Outcome == OutcomeQueryError || m.Outcome == OutcomeMultipleSeries {
		return evaluateQueryError(spec, m, v, next)
	}
	next.Errors = 0
	if m.Outcome != OutcomeOK {
		return v.with(ResultInconclusive, noValueReason(m.Outcome), "%s: no value (threshold %s, %s): %v",
			v.Metric, bound(spec), sampleText(m), explain(m)), next
	}
	if spec.MinSampleSize > 0 && (!m.HasSamples || m.Samples < spec.MinSampleSize) {
		return v.with(ResultInconclusive, ReasonBelowMinSample, "%s = %s (threshold %s, %s): below the minimum sample size %d",
			v.Metric, formatValue(m.Value), bound(spec), sampleText(m), spec.MinSampleSize), next
	}
	if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
		return v.with(ResultInconclusive, ReasonInvalidValue, "%s = %v (threshold %s, %s): not a number that can be judged",
			v.Metric, m.Value, bound(spec), sampleText(m)), next
	}
	if spec.Confidence != 0 && m.Proportion {
		return evaluateSequential(spec, m, v, prev, next)
	}
	return evaluatePlain(spec, m, v, prev, next)
}

// evaluateSequential judges a proportion with the one-proportion sequential test (see
// TestProportionThreshold): the threshold, in the metric's unit, is turned into a rate with the
// measurement's scale. A rate shown on the wrong side counts as a failing check
// (failureThreshold of them in a row make a Fail), a rate shown on the right side passes and
// resets that count, and anything in between is Inconclusive with the number of requests that
// would decide it if the rate held.
func evaluateSequential(spec ThresholdSpec, m Measurement, v Verdict, prev, next CheckState) (Verdict, CheckState) {
	scale := m.Scale
	if scale == 0 {
		scale = 1
	}
	p0 := spec.Threshold / scale
	if p0 < 0 || p0 > 1 {
		// A threshold no rate can cross: below 0 every rate exceeds it, above 100 % none does.
		return evaluatePlain(spec, m, v, prev, next)
	}
	alpha := 1 - spec.Confidence
	e, err := TestProportionThreshold(m.Events, m.Samples, p0, alpha, ThresholdMixingVariance(p0))
	if err != nil {
		return v.with(ResultInconclusive, ReasonInvalidValue, "%s: %v", v.Metric, err), next
	}
	v.Low, v.High = scale*e.Low, scale*e.High
	head := fmt.Sprintf("%s = %s of %d requests, %g%% confidence sequence [%s, %s] (threshold %s)",
		v.Metric, formatValue(m.Value), m.Samples, 100*spec.Confidence, formatValue(v.Low), formatValue(v.High), bound(spec))
	worse := e.Above
	if spec.Direction == HigherIsBetter {
		worse = !e.Above && e.Rate != p0
	}
	switch {
	case e.Decided && !worse:
		next.Failures = 0
		return v.with(ResultPass, ReasonWithinThreshold, "%s: shown within the threshold", head), next
	case e.Decided:
		next.Failures = prev.Failures + 1
		limit := max(spec.FailureThreshold, 1)
		if next.Failures >= limit {
			return v.with(ResultFail, ReasonThresholdExceeded, "%s: shown past the threshold in %d consecutive check(s)", head, next.Failures), next
		}
		return v.with(ResultInconclusive, ReasonThresholdExceeded, "%s: shown past the threshold, %d of %d consecutive failing checks",
			head, next.Failures, limit), next
	case e.MoreTrials < 0:
		return v.with(ResultInconclusive, ReasonInsufficientEvidence, "%s: the rate is at the threshold; no number of requests would decide it", head), next
	default:
		return v.with(ResultInconclusive, ReasonInsufficientEvidence, "%s: not yet decided; about %d more requests would decide it if the rate held",
			head, e.MoreTrials), next
	}
}

// evaluatePlain compares the value with the threshold once.
func evaluatePlain(spec ThresholdSpec, m Measurement, v Verdict, prev, next CheckState) (Verdict, CheckState) {
	head := fmt.Sprintf("%s = %s (threshold %s, %s)", v.Metric, formatValue(m.Value), bound(spec), sampleText(m))
	if !exceeds(spec, m.Value) {
		next.Failures = 0
		return v.with(ResultPass, ReasonWithinThreshold, "%s: within threshold", head), next
	}
	next.Failures = prev.Failures + 1
	limit := max(spec.FailureThreshold, 1)
	if next.Failures >= limit {
		return v.with(ResultFail, ReasonThresholdExceeded, "%s: threshold exceeded in %d consecutive check(s)",
			head, next.Failures), next
	}
	return v.with(ResultInconclusive, ReasonThresholdExceeded, "%s: threshold exceeded, %d of %d consecutive failing checks",
		head, next.Failures, limit), next
}

// evaluateQueryError counts a failed query against the error limit.
func evaluateQueryError(spec ThresholdSpec, m Measurement, v Verdict, next CheckState) (Verdict, CheckState) {
	next.Errors++
	limit := spec.ErrorLimit
	if limit == 0 {
		limit = DefaultErrorLimit
	}
	if next.Errors >= limit {
		return v.with(ResultFail, ReasonConsecutiveErrors, "%s: %d consecutive query errors (limit %d, threshold %s): %v",
			v.Metric, next.Errors, limit, bound(spec), explain(m)), next
	}
	reason := ReasonQueryError
	if m.Outcome == OutcomeMultipleSeries {
		reason = ReasonMultipleSeries
	}
	return v.with(ResultInconclusive, reason, "%s: query error %d of %d allowed in a row (threshold %s): %v",
		v.Metric, next.Errors, limit, bound(spec), explain(m)), next
}

// noValueReason maps an outcome without a value to its reason.
func noValueReason(o Outcome) Reason {
	switch o {
	case OutcomeNoTraffic:
		return ReasonNoTraffic
	case OutcomeInvalidValue:
		return ReasonInvalidValue
	default:
		return ReasonNoData
	}
}

// explain is the measurement's error, or a note on its outcome when it carries none.
func explain(m Measurement) string {
	if m.Err != nil {
		return m.Err.Error()
	}
	if m.Outcome == "" {
		return "the metric was not gathered"
	}
	return fmt.Sprintf("outcome %s", m.Outcome)
}

// with fills in the result, reason and message.
func (v Verdict) with(result Result, reason Reason, format string, args ...any) Verdict {
	v.Result, v.Reason, v.Message = result, reason, fmt.Sprintf(format, args...)
	return v
}

// exceeds reports whether value is on the wrong side of the threshold.
func exceeds(spec ThresholdSpec, value float64) bool {
	if spec.Direction == HigherIsBetter {
		return value < spec.Threshold
	}
	return value > spec.Threshold
}

// bound describes the threshold, such as "at most 5".
func bound(spec ThresholdSpec) string {
	threshold := strconv.FormatFloat(spec.Threshold, 'g', -1, 64)
	if spec.Direction == HigherIsBetter {
		return "at least " + threshold
	}
	return "at most " + threshold
}

// sampleText describes the sample count.
func sampleText(m Measurement) string {
	if !m.HasSamples {
		return "sample count unknown"
	}
	return fmt.Sprintf("%d samples", m.Samples)
}

// formatValue prints a value with four significant digits, without an exponent for ordinary
// magnitudes.
func formatValue(v float64) string {
	if math.Abs(v) >= 1e4 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// InWarmup reports whether now is less than warmup after stepStart. A zero stepStart (the step's
// start not recorded yet) counts as warming up; a warmup of zero or less never does.
func InWarmup(stepStart, now time.Time, warmup time.Duration) bool {
	if warmup <= 0 {
		return false
	}
	if stepStart.IsZero() {
		return true
	}
	return now.Sub(stepStart) < warmup
}

// WarmupVerdict is the Inconclusive verdict of a metric that is not judged because the step is
// still warming up (see InWarmup).
func WarmupVerdict(metric string, stepStart, now time.Time, warmup time.Duration) Verdict {
	left := warmup
	if !stepStart.IsZero() {
		left = max(warmup-now.Sub(stepStart), 0)
	}
	return Verdict{
		Metric:  metric,
		Result:  ResultInconclusive,
		Reason:  ReasonWarmingUp,
		Message: fmt.Sprintf("%s: warming up, %s of %s left", metric, left.Round(time.Second), warmup),
	}
}

// Combine judges one check of several metrics: any Fail makes a Fail, otherwise any
// Inconclusive an Inconclusive, otherwise Pass. The reason is that of the first verdict with the
// combined result; the message lists every verdict. No verdicts at all is Inconclusive (NoData):
// nothing checked is not a pass.
func Combine(verdicts []Verdict) Verdict {
	if len(verdicts) == 0 {
		return Verdict{Result: ResultInconclusive, Reason: ReasonNoData, Message: "no metrics were checked"}
	}
	combined := Verdict{Result: ResultPass, Reason: ReasonWithinThreshold}
	rank := map[Result]int{ResultPass: 0, ResultInconclusive: 1, ResultFail: 2}
	parts := make([]string, 0, len(verdicts))
	for _, v := range verdicts {
		result := v.Result
		if _, known := rank[result]; !known {
			result = ResultInconclusive
		}
		if rank[result] > rank[combined.Result] {
			combined.Result, combined.Reason = result, v.Reason
		}
		parts = append(parts, fmt.Sprintf("[%s] %s", v.Result, v.Message))
	}
	combined.Message = strings.Join(parts, "; ")
	return combined
}
