package analysis

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// Checker runs a Rollout's threshold analysis against Prometheus: it gathers every metric of
// the strategy's analysis for the revision under test and evaluates it, carrying the
// consecutive-failure and consecutive-error counters from one check to the next. It is the
// controller's Analyzer.
type Checker struct {
	// DefaultAddress is the Prometheus used when a Rollout names none.
	DefaultAddress string
	// Options apply to every Prometheus client (timeout, authentication, TLS).
	Options []Option
	// Builtin configures the built-in metrics' metric and label names.
	Builtin BuiltinOptions
	// NewQuerier, when set, replaces NewPrometheus.
	NewQuerier func(address string) (Querier, error)

	clients sync.Map // address -> Querier
}

// Split is the traffic split between stable and the canary that KULTA had set when it asked for
// a check: the routes' canary weight with traffic routing, the canary's share of ready Pods
// without. The sample-ratio-mismatch check compares the split the metrics saw with it.
type Split struct {
	// CanaryPercent is the share of requests the canary should receive, in percent.
	CanaryPercent float64
	// Known is false when there is no split to compare with (not a canary, or no ready Pods).
	Known bool
}

// Analyze measures the current revision of ro. Query problems are verdicts (QueryError,
// NoData ...), not errors; an error means the analysis could not be set up at all.
//
// Error-rate checks, and every comparison with stable, count all requests since the revision
// started (status.analysis.countingSince), so that a check taken at every interval is one
// sequential test of the revision rather than a new test each time; other metrics (quantiles,
// queries of the user's) look back over their interval, never past that start.
func (c *Checker) Analyze(ctx context.Context, ro *kultav1alpha1.Rollout, spec *kultav1alpha1.Analysis, split Split, now time.Time) (*kultav1alpha1.AnalysisStatus, error) {
	st := &kultav1alpha1.AnalysisStatus{
		Revision:  ro.Status.CurrentPodTemplateHash,
		StepIndex: ro.Status.CurrentStepIndex,
		CheckedAt: metav1.NewTime(now),
	}
	prev := ro.Status.Analysis
	if prev != nil && prev.Revision != st.Revision {
		prev = nil
	}
	stepPrevious, revisionPrevious := map[string]kultav1alpha1.MetricStatus{}, map[string]kultav1alpha1.MetricStatus{}
	if prev != nil {
		for _, m := range prev.Metrics {
			revisionPrevious[m.Name] = m
			if ptr.Equal(prev.StepIndex, st.StepIndex) {
				stepPrevious[m.Name] = m
			}
		}
	}
	st.CountingSince = ptr.To(metav1.NewTime(countingSince(ro, prev, now)))
	run := checkRun{
		target: stableAwareTarget{
			Target:        Target{Namespace: ro.Namespace, Rollout: ro.Name, Service: serviceUnderTest(ro), Revision: st.Revision},
			StableService: stableService(ro),
			StableHash:    ro.Status.StablePodTemplateHash,
		},
		since:      st.CountingSince.Time,
		now:        now,
		confidence: analysisConfidence(spec),
	}
	run.q, run.setupErr = c.querierFor(spec.Prometheus)
	if split.Known && ro.Spec.Strategy.Canary != nil {
		run.split = split
		st.ExpectedCanaryPercent = ptr.To(kultav1alpha1.NewDecimal(roundTo(split.CanaryPercent, 2)))
		st.SplitSince = ptr.To(metav1.NewTime(now))
		if prev != nil && prev.SplitSince != nil && ptr.Equal(prev.ExpectedCanaryPercent, st.ExpectedCanaryPercent) {
			st.SplitSince = prev.SplitSince
		}
		run.splitSince = st.SplitSince.Time
	}
	verdicts := make([]Verdict, 0, len(spec.Metrics))
	for _, m := range spec.Metrics {
		v, ms := c.check(ctx, run, m, stepPrevious[m.Name], revisionPrevious[m.Name])
		verdicts = append(verdicts, v)
		st.Metrics = append(st.Metrics, ms)
	}
	combined := Combine(verdicts)
	st.Verdict = kultav1alpha1.Verdict(combined.Result)
	st.Reason = string(combined.Reason)
	st.Message = truncate(combined.Message, 4000)
	return st, nil
}

// checkRun is what every metric of one Analyze shares.
type checkRun struct {
	q          Querier
	setupErr   error
	target     stableAwareTarget
	since      time.Time
	split      Split
	splitSince time.Time
	now        time.Time
	confidence float64
}

// countingSince is the start of the range the sequential checks count over: when the revision
// began to receive traffic (its latest new-revision or retry decision), or the start a previous
// check of the same revision recorded when the decision history no longer holds it. A retry
// restarts it. Without either, counting starts now.
func countingSince(ro *kultav1alpha1.Rollout, prev *kultav1alpha1.AnalysisStatus, now time.Time) time.Time {
	since := revisionStart(ro)
	if prev != nil && prev.CountingSince != nil && prev.CountingSince.After(since) {
		since = prev.CountingSince.Time
	}
	if since.IsZero() {
		return now
	}
	return since
}

// analysisConfidence is the analysis's confidenceLevel, 0.95 when unset or unusable.
func analysisConfidence(spec *kultav1alpha1.Analysis) float64 {
	if spec.ConfidenceLevel != nil {
		if f, err := spec.ConfidenceLevel.Float64(); err == nil && f > 0 && f < 1 {
			return f
		}
	}
	return DefaultConfidence
}

// CumulativeWindow is the range from since to now, in whole seconds, over which a sequential
// check counts. It reports false while that is shorter than the smaller of interval (the
// metric's window) and MinWindow, as BoundWindow does.
func CumulativeWindow(since, now time.Time, interval time.Duration) (time.Duration, bool) {
	age := now.Sub(since).Truncate(time.Second)
	if age < max(min(interval, MinWindow), time.Second) {
		return 0, false
	}
	return age, true
}

// check gathers and evaluates one metric: proportions over every request since the revision
// started, other metrics over their interval. stepPrev is the metric's status from the same
// step (its consecutive counters), revisionPrev from the same revision (its looks).
func (c *Checker) check(ctx context.Context, run checkRun, m kultav1alpha1.Metric, stepPrev, revisionPrev kultav1alpha1.MetricStatus) (Verdict, kultav1alpha1.MetricStatus) {
	spec, query, err := c.translate(m, run.confidence)
	state := CheckState{Failures: stepPrev.ConsecutiveFailures, Errors: stepPrev.ConsecutiveErrors}
	interval := query.Window
	window, filled := BoundWindow(interval, run.since, run.now)
	if query.EventsQuery != "" {
		window, filled = CumulativeWindow(run.since, run.now, interval)
	}
	if err == nil && run.setupErr == nil && !filled {
		v := WindowVerdict(m.Name, interval, run.since, run.now)
		return v, kultav1alpha1.MetricStatus{
			Name: m.Name, Verdict: kultav1alpha1.Verdict(v.Result), Reason: string(v.Reason), Threshold: ptr.To(m.Threshold),
			ConsecutiveFailures: state.Failures, ConsecutiveErrors: state.Errors, Looks: revisionPrev.Looks,
		}
	}
	query.Window = window
	var measurement Measurement
	switch {
	case err != nil:
		measurement = Measurement{Metric: m.Name, Outcome: OutcomeQueryError, Err: err, At: run.now}
	case run.setupErr != nil:
		measurement = Measurement{Metric: m.Name, Outcome: OutcomeQueryError, Err: run.setupErr, At: run.now}
	default:
		measurement = Gather(ctx, run.q, query, run.target.Target, run.now)
	}
	v, next := EvaluateThreshold(spec, measurement, state)
	ms := kultav1alpha1.MetricStatus{Name: m.Name, Threshold: ptr.To(m.Threshold), Looks: revisionPrev.Looks}
	if m.CompareToStable && err == nil && run.setupErr == nil && v.Result != ResultFail {
		cmp := stableComparison{run: run, metric: m, interval: interval, query: query, spec: spec, canary: measurement, prev: state, revisionPrev: revisionPrev, status: &ms}
		v, next = c.againstStable(ctx, cmp, v, next)
	}
	ms.Verdict, ms.Reason = kultav1alpha1.Verdict(v.Result), string(v.Reason)
	ms.ConsecutiveFailures, ms.ConsecutiveErrors = next.Failures, next.Errors
	if measurement.Outcome == OutcomeOK && !math.IsNaN(measurement.Value) && !math.IsInf(measurement.Value, 0) {
		ms.Value = ptr.To(kultav1alpha1.NewDecimal(roundTo(measurement.Value, 6)))
	}
	if v.Low != 0 || v.High != 0 {
		ms.LowerBound = ptr.To(kultav1alpha1.NewDecimal(roundTo(v.Low, 6)))
		ms.UpperBound = ptr.To(kultav1alpha1.NewDecimal(roundTo(v.High, 6)))
	}
	if measurement.HasSamples {
		ms.SampleSize = ptr.To(measurement.Samples)
	}
	return v, ms
}

// translate turns an API metric into a threshold and a query. Proportions are judged
// sequentially at confidence.
func (c *Checker) translate(m kultav1alpha1.Metric, confidence float64) (ThresholdSpec, MetricQuery, error) {
	threshold, err := m.Threshold.Float64()
	if err != nil {
		return ThresholdSpec{Metric: m.Name}, MetricQuery{}, fmt.Errorf("%w: metrics[%s].threshold: %w", ErrInvalidInput, m.Name, err)
	}
	spec := ThresholdSpec{
		Metric:           m.Name,
		Threshold:        threshold,
		Direction:        Direction(m.Direction),
		FailureThreshold: ptr.Deref(m.FailureThreshold, 1),
		MinSampleSize:    int64(ptr.Deref(m.MinSampleSize, 0)),
		Confidence:       confidence,
	}
	if spec.Direction == "" {
		spec.Direction = LowerIsBetter
	}
	window := DefaultWindow
	if m.Interval != nil {
		if d, err := m.Interval.Parse(); err == nil && d >= time.Second {
			window = d
		}
	}
	if m.Query == "" {
		builtin := c.Builtin
		builtin.Window = window
		query, err := BuiltinMetric(m.Name, builtin)
		return spec, query, err
	}
	query := MetricQuery{Name: m.Name, Query: m.Query, SampleQuery: m.SampleQuery, Window: window}
	if err := query.Validate(); err != nil {
		return spec, query, fmt.Errorf("metrics[%s].query: %w", m.Name, err)
	}
	return spec, query, nil
}

func (c *Checker) querier(address string) (Querier, error) {
	if q, ok := c.clients.Load(address); ok {
		return q.(Querier), nil
	}
	var q Querier
	var err error
	if c.NewQuerier != nil {
		q, err = c.NewQuerier(address)
	} else {
		q, err = NewPrometheus(address, c.Options...)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: Prometheus at %s: %w", ErrQuery, address, err)
	}
	c.clients.Store(address, q)
	return q, nil
}

// MinWindow is the shortest query window of a check while the revision under test is younger
// than its metric's window.
const MinWindow = 30 * time.Second

// BoundWindow shortens window so that it does not reach back before since, when the revision
// under test began to receive traffic: the series of a canary, preview or variant Service also
// hold the requests of whatever revision it selected before, and those say nothing about this
// one. Whole seconds are kept. It reports false while even the shortest window allowed, the
// smaller of window and MinWindow, would reach back before since. A zero since bounds nothing.
func BoundWindow(window time.Duration, since, now time.Time) (time.Duration, bool) {
	if since.IsZero() {
		return window, true
	}
	age := now.Sub(since).Truncate(time.Second)
	switch {
	case age >= window:
		return window, true
	case age < min(window, MinWindow):
		return 0, false
	default:
		return age, true
	}
}

// WindowVerdict is the Inconclusive verdict of a metric not measured because the revision has
// not yet had traffic for the shortest window BoundWindow allows.
func WindowVerdict(metric string, window time.Duration, since, now time.Time) Verdict {
	need := min(window, MinWindow)
	v := Verdict{Metric: metric, Result: ResultInconclusive, Reason: ReasonWindowNotFilled}
	v.Message = fmt.Sprintf("%s: waiting for %s of this revision's traffic, %s so far", metric, need, max(now.Sub(since), 0).Truncate(time.Second))
	return v
}

// revisionStart is when the current revision began to receive traffic: its latest new-revision,
// experiment-start or retry decision. Zero when none is recorded (the decision history is
// bounded).
func revisionStart(ro *kultav1alpha1.Rollout) time.Time {
	for i := len(ro.Status.Decisions) - 1; i >= 0; i-- {
		d := ro.Status.Decisions[i]
		switch {
		case d.Action == kultav1alpha1.ActionInitialize && d.Reason != "Initialization",
			d.Action == kultav1alpha1.ActionResume && d.Reason == "Retry":
			return d.Timestamp.Time
		}
	}
	return time.Time{}
}

// serviceUnderTest is the Service whose traffic measures the new revision: the canary, preview
// or variant B Service. The simple strategy has no Services of its own; its metrics are
// selected by a service label equal to the Rollout's name.
func serviceUnderTest(ro *kultav1alpha1.Rollout) string {
	switch s := ro.Spec.Strategy; {
	case s.Canary != nil:
		return s.Canary.CanaryService
	case s.BlueGreen != nil:
		return s.BlueGreen.PreviewService
	case s.ABTesting != nil:
		return s.ABTesting.VariantBService
	}
	return ro.Name
}

func roundTo(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// querierFor is the client of the Prometheus a Rollout names, or of the controller's default.
func (c *Checker) querierFor(prom *kultav1alpha1.PrometheusConfig) (Querier, error) {
	address := c.DefaultAddress
	if prom != nil && prom.Address != "" {
		address = prom.Address
	}
	if address == "" {
		return nil, fmt.Errorf("%w: no Prometheus address: set analysis.prometheus.address or the controller's --prometheus-address", ErrQuery)
	}
	return c.querier(address)
}
