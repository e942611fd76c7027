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

// Analyze measures the current revision of ro. Query problems are verdicts (QueryError,
// NoData ...), not errors; an error means the analysis could not be set up at all.
func (c *Checker) Analyze(ctx context.Context, ro *kultav1alpha1.Rollout, spec *kultav1alpha1.Analysis, now time.Time) (*kultav1alpha1.AnalysisStatus, error) {
	st := &kultav1alpha1.AnalysisStatus{
		Revision:  ro.Status.CurrentPodTemplateHash,
		StepIndex: ro.Status.CurrentStepIndex,
		CheckedAt: metav1.NewTime(now),
	}
	previous := map[string]kultav1alpha1.MetricStatus{}
	if prev := ro.Status.Analysis; prev != nil && prev.Revision == st.Revision && ptr.Equal(prev.StepIndex, st.StepIndex) {
		for _, m := range prev.Metrics {
			previous[m.Name] = m
		}
	}
	q, setupErr := c.querierFor(spec.Prometheus)
	target := stableAwareTarget{
		Target:        Target{Namespace: ro.Namespace, Rollout: ro.Name, Service: serviceUnderTest(ro), Revision: st.Revision},
		StableService: stableService(ro),
		StableHash:    ro.Status.StablePodTemplateHash,
		CanaryWeight:  ptr.Deref(ro.Status.CurrentWeight, 0),
	}
	since := revisionStart(ro)
	verdicts := make([]Verdict, 0, len(spec.Metrics))
	for _, m := range spec.Metrics {
		v, ms := c.check(ctx, q, setupErr, m, target, previous[m.Name], since, now)
		verdicts = append(verdicts, v)
		st.Metrics = append(st.Metrics, ms)
	}
	combined := Combine(verdicts)
	st.Verdict = kultav1alpha1.Verdict(combined.Result)
	st.Reason = string(combined.Reason)
	st.Message = truncate(combined.Message, 4000)
	return st, nil
}

// check gathers and evaluates one metric over a window that does not reach back before since.
func (c *Checker) check(ctx context.Context, q Querier, setupErr error, m kultav1alpha1.Metric, target stableAwareTarget,
	prev kultav1alpha1.MetricStatus, since, now time.Time,
) (Verdict, kultav1alpha1.MetricStatus) {
	spec, query, err := c.translate(m)
	state := CheckState{Failures: prev.ConsecutiveFailures, Errors: prev.ConsecutiveErrors}
	window, filled := BoundWindow(query.Window, since, now)
	if err == nil && setupErr == nil && !filled {
		v := WindowVerdict(m.Name, query.Window, since, now)
		return v, kultav1alpha1.MetricStatus{
			Name: m.Name, Verdict: kultav1alpha1.Verdict(v.Result), Reason: string(v.Reason), Threshold: ptr.To(m.Threshold),
			ConsecutiveFailures: state.Failures, ConsecutiveErrors: state.Errors,
		}
	}
	query.Window = window
	var measurement Measurement
	switch {
	case err != nil:
		measurement = Measurement{Metric: m.Name, Outcome: OutcomeQueryError, Err: err, At: now}
	case setupErr != nil:
		measurement = Measurement{Metric: m.Name, Outcome: OutcomeQueryError, Err: setupErr, At: now}
	default:
		measurement = Gather(ctx, q, query, target.Target, now)
	}
	v, next := EvaluateThreshold(spec, measurement, state)
	if m.CompareToStable && err == nil && setupErr == nil && v.Result != ResultFail && target.StableService != "" {
		v, next = c.againstStable(ctx, q, query, target, measurement, spec, state, v, next, now)
	}
	ms := kultav1alpha1.MetricStatus{
		Name:                m.Name,
		Verdict:             kultav1alpha1.Verdict(v.Result),
		Reason:              string(v.Reason),
		Threshold:           ptr.To(m.Threshold),
		ConsecutiveFailures: next.Failures,
		ConsecutiveErrors:   next.Errors,
	}
	if measurement.Outcome == OutcomeOK && !math.IsNaN(measurement.Value) && !math.IsInf(measurement.Value, 0) {
		ms.Value = ptr.To(kultav1alpha1.NewDecimal(roundTo(measurement.Value, 6)))
	}
	if measurement.HasSamples {
		ms.SampleSize = ptr.To(measurement.Samples)
	}
	return v, ms
}

// translate turns an API metric into a threshold and a query.
func (c *Checker) translate(m kultav1alpha1.Metric) (ThresholdSpec, MetricQuery, error) {
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

// Compare looks at a running A/B experiment: it measures every metric for both variants over
// the same window, evaluates them with EvaluateExperiment, and returns the experiment status
// with the results and, when the evidence is there, the winner.
func (c *Checker) Compare(ctx context.Context, ro *kultav1alpha1.Rollout, spec *kultav1alpha1.ABAnalysis, now time.Time) (*kultav1alpha1.ABExperimentStatus, error) {
	ab := ro.Spec.Strategy.ABTesting
	if ab == nil || ro.Status.ABExperiment == nil {
		return nil, fmt.Errorf("%w: Rollout %s/%s has no running A/B experiment", ErrInvalidInput, ro.Namespace, ro.Name)
	}
	exp := ro.Status.ABExperiment.DeepCopy()
	q, setupErr := c.querierFor(spec.Prometheus)
	previous := map[string]float64{}
	for _, r := range exp.Results {
		if conf, err := r.Confidence.Float64(); err == nil {
			previous[r.Name] = 1 - conf
		}
	}
	window := DefaultWindow
	if spec.Interval != nil {
		if d, err := spec.Interval.Parse(); err == nil && d >= time.Second {
			window = d
		}
	}
	// Variant B's Service may have carried another revision before the experiment started.
	if bounded, ok := BoundWindow(window, exp.StartedAt.Time, now); ok {
		window = bounded
	} else {
		exp.CheckedAt = ptr.To(metav1.NewTime(now))
		exp.Message = WindowVerdict("experiment", window, exp.StartedAt.Time, now).Message
		return exp, nil
	}
	a := Target{Namespace: ro.Namespace, Rollout: ro.Name, Service: ab.VariantAService, Revision: ro.Status.StablePodTemplateHash}
	b := Target{Namespace: ro.Namespace, Rollout: ro.Name, Service: ab.VariantBService, Revision: ro.Status.CurrentPodTemplateHash}
	metrics := make([]ExperimentMetric, 0, len(spec.Metrics))
	for _, m := range spec.Metrics {
		metrics = append(metrics, c.measureVariants(ctx, q, setupErr, m, a, b, window, previous[m.Name], now))
	}
	result := EvaluateExperiment(metrics, confidenceOf(spec), int64(ptr.Deref(spec.MinSampleSize, 30)))
	exp.CheckedAt = ptr.To(metav1.NewTime(now))
	exp.Message = truncate(result.Message, 4000)
	exp.Results = exp.Results[:0]
	for i, r := range result.Metrics {
		exp.Results = append(exp.Results, kultav1alpha1.ABMetricResult{
			Name:          r.Name,
			ValueA:        kultav1alpha1.NewDecimal(roundTo(100*r.ProportionA, 6)),
			ValueB:        kultav1alpha1.NewDecimal(roundTo(100*r.ProportionB, 6)),
			Confidence:    kultav1alpha1.NewDecimal(roundTo(1-r.P, 9)),
			IsSignificant: r.Significant,
			Winner:        kultav1alpha1.ABVariant(r.Winner),
			Reason:        string(r.Reason),
		})
		if i == 0 {
			exp.SampleSizeA, exp.SampleSizeB = ptr.To(r.SamplesA), ptr.To(r.SamplesB)
		}
	}
	exp.Winner = kultav1alpha1.ABVariant(result.Winner)
	return exp, nil
}

// measureVariants gathers one A/B metric for both variants over the same window.
func (c *Checker) measureVariants(ctx context.Context, q Querier, setupErr error, m kultav1alpha1.ABMetric, a, b Target,
	window time.Duration, previousP float64, now time.Time,
) ExperimentMetric {
	em := ExperimentMetric{Name: m.Name, Direction: Direction(m.Direction), PreviousP: previousP}
	if m.MinEffectSize != nil {
		if f, err := m.MinEffectSize.Float64(); err == nil {
			em.MinEffect = f
		}
	}
	builtin := c.Builtin
	builtin.Window = window
	query, err := BuiltinMetric(m.Name, builtin)
	if setupErr != nil {
		err = setupErr
	}
	if err != nil {
		em.A = Measurement{Metric: m.Name, Outcome: OutcomeQueryError, Err: err}
		em.B = em.A
		return em
	}
	cmp := GatherComparison(ctx, q, query, a, b, now)
	em.A, em.B = cmp.A, cmp.B
	return em
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

func confidenceOf(spec *kultav1alpha1.ABAnalysis) float64 {
	if spec.ConfidenceLevel != nil {
		if f, err := spec.ConfidenceLevel.Float64(); err == nil && f > 0 && f < 1 {
			return f
		}
	}
	return 0.95
}

// stableAwareTarget is the revision under test plus what the canary is compared with.
type stableAwareTarget struct {
	Target
	StableService, StableHash string
	CanaryWeight              int32
}

// ReasonWorseThanStable marks a canary significantly worse than the stable revision.
const ReasonWorseThanStable Reason = "WorseThanStable"

// ReasonSampleRatioMismatch marks a comparison whose traffic split does not match the weights,
// so its numbers cannot be trusted.
const ReasonSampleRatioMismatch Reason = "SampleRatioMismatch"

// harmAlpha is the false-positive rate of the canary-versus-stable harm test.
const harmAlpha = 0.05

// againstStable runs the canary-versus-stable comparison on top of a threshold verdict that did
// not fail: a sample-ratio-mismatch check first, then a sequential test for harm.
func (c *Checker) againstStable(ctx context.Context, q Querier, query MetricQuery, target stableAwareTarget, canary Measurement,
	spec ThresholdSpec, prev CheckState, v Verdict, next CheckState, now time.Time,
) (Verdict, CheckState) {
	stable := Gather(ctx, q, query, Target{Namespace: target.Namespace, Rollout: target.Rollout, Service: target.StableService, Revision: target.StableHash}, now)
	if !canary.Proportion || !stable.Proportion || canary.Samples == 0 || stable.Samples == 0 {
		return v, next
	}
	if target.CanaryWeight > 0 && target.CanaryWeight < 100 {
		srm, err := SampleRatioMismatch([]int64{stable.Samples, canary.Samples}, []float64{float64(100 - target.CanaryWeight), float64(target.CanaryWeight)}, 0.001)
		if err == nil && srm.Mismatch {
			v.Result, v.Reason = ResultInconclusive, ReasonSampleRatioMismatch
			v.Message = fmt.Sprintf("%s: traffic split %d/%d does not match the weights %d/%d (chi2 %.1f, p %.2g)",
				spec.Metric, stable.Samples, canary.Samples, 100-target.CanaryWeight, target.CanaryWeight, srm.ChiSquare, srm.PValue)
			return v, next
		}
	}
	p, err := AlwaysValidPValue(stable.Events, stable.Samples, canary.Events, canary.Samples, DefaultMixingVariance)
	pStable := float64(stable.Events) / float64(stable.Samples)
	pCanary := float64(canary.Events) / float64(canary.Samples)
	worse := pCanary > pStable
	if spec.Direction == HigherIsBetter {
		worse = pCanary < pStable
	}
	if err != nil || !worse || p >= harmAlpha {
		return v, next
	}
	next.Failures = prev.Failures + 1
	v.Reason = ReasonWorseThanStable
	v.Message = fmt.Sprintf("%s: canary %.4g%% of %d against stable %.4g%% of %d, significantly worse (p=%.3g)",
		spec.Metric, 100*pCanary, canary.Samples, 100*pStable, stable.Samples, p)
	v.Result = ResultInconclusive
	if next.Failures >= max(spec.FailureThreshold, 1) {
		v.Result = ResultFail
	}
	return v, next
}

func stableService(ro *kultav1alpha1.Rollout) string {
	if c := ro.Spec.Strategy.Canary; c != nil {
		return c.StableService
	}
	return ""
}
