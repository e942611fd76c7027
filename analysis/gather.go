package analysis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// DefaultWindow is the query window of a MetricQuery that sets none.
const DefaultWindow = 5 * time.Minute

// Sentinel errors of gathering, found with errors.Is in Measurement.Err (ErrNoTraffic, declared
// in errors.go, marks a window without traffic).
var (
	// ErrNoData means a query returned no series: nothing is known about the target.
	ErrNoData = errors.New("no data")
	// ErrMultipleSeries means a query returned several series where one number was expected.
	ErrMultipleSeries = errors.New("multiple series")
	// ErrInvalidValue means a query returned NaN, an infinity, a negative count or a native
	// histogram where a number was expected.
	ErrInvalidValue = errors.New("invalid value")
	// ErrQuery means a query could not be run: the server was unreachable, timed out or refused
	// the query (a malformed query is reported by Prometheus as bad_data), or its template is
	// invalid.
	ErrQuery = errors.New("query failed")
	// ErrNotProportion means a measurement has no event and trial counts to compare.
	ErrNotProportion = errors.New("not a proportion")
)

// Outcome says whether a Measurement holds a value, and if not, why not.
type Outcome string

// Outcomes of Gather.
const (
	// OutcomeOK means Value holds the metric.
	OutcomeOK Outcome = "OK"
	// OutcomeNoData means a query returned no series.
	OutcomeNoData Outcome = "NoData"
	// OutcomeNoTraffic means the sample count in the window is zero.
	OutcomeNoTraffic Outcome = "NoTraffic"
	// OutcomeQueryError means a query could not be run; Err wraps the cause.
	OutcomeQueryError Outcome = "QueryError"
	// OutcomeMultipleSeries means a query returned several series where one was expected.
	OutcomeMultipleSeries Outcome = "MultipleSeries"
	// OutcomeInvalidValue means a query returned NaN, an infinity or a negative count.
	OutcomeInvalidValue Outcome = "InvalidValue"
	// OutcomeUnavailable means the metrics provider could not be reached or failed on its own
	// side (refused connection, timeout, 5xx answer); Err wraps the cause. It says nothing about
	// the revision under test, so it never counts as a query error.
	OutcomeUnavailable Outcome = "Unavailable"
)

// queryErrorOutcome tells a provider that is down or overloaded (OutcomeUnavailable) from a
// query that the provider rejected (OutcomeQueryError: bad syntax, an execution error, an
// answer that cannot be read).
func queryErrorOutcome(err error) Outcome {
	var apiErr *promv1.Error
	if errors.As(err, &apiErr) {
		switch apiErr.Type {
		case promv1.ErrServer, promv1.ErrTimeout:
			return OutcomeUnavailable
		default:
			return OutcomeQueryError
		}
	}
	var netErr net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) {
		return OutcomeUnavailable
	}
	return OutcomeQueryError
}

// MetricQuery says how to measure one metric. It is either a proportion (EventsQuery and
// SampleQuery set: Value = Scale * events / trials) or a value (Query set, SampleQuery
// optional: Value = Scale * result). All queries are templates (see RenderQuery) and are run at
// the same instant with the same window, so the counts belong together.
type MetricQuery struct {
	// Name identifies the metric in measurements and verdicts, such as error-rate.
	Name string
	// Query is the template of the metric's value, for a value metric.
	Query string
	// EventsQuery is the template counting events (such as 5xx responses) in the window, for a
	// proportion. A result without series counts as zero events: a service that never failed
	// may have no error series at all.
	EventsQuery string
	// SampleQuery is the template counting trials (requests) in the window. Required for a
	// proportion; optional for a value metric, which then has no sample count.
	SampleQuery string
	// ObservedQuery, optional beside a SampleQuery, is the template counting the trials the
	// window's samples show, without extrapolation. The sample and events queries of Prometheus
	// counters (increase()) estimate the whole window, which makes targets comparable but can
	// count up to twice the requests scraped; with ObservedQuery set, a measurement keeps their
	// proportion and histogram shape and takes the observed count, when smaller, as its number
	// of trials: the evidence a test may take.
	ObservedQuery string
	// Scale multiplies the value: 100 for a percentage, 1000 for seconds to milliseconds.
	// Zero means 1.
	Scale float64
	// Window is the range the queries look back over, filled in as {{.Window}}. Zero means
	// DefaultWindow; otherwise at least one second.
	Window time.Duration
	// HistogramQuery, optional, is the template of the metric's histogram over the window: one
	// series per bucket, labelled le, whose values are cumulative counts (sum by (le) of the
	// increase of the _bucket counters). It lets a value metric such as a latency quantile be
	// compared with another target's distribution (GatherHistogram).
	HistogramQuery string
}

// Validate reports, wrapping ErrInvalidInput or ErrInvalidTemplate, why m cannot be gathered.
func (m MetricQuery) Validate() error {
	if m.Name == "" {
		return fmt.Errorf("%w: the metric has no name", ErrInvalidInput)
	}
	if (m.Query == "") == (m.EventsQuery == "") {
		return fmt.Errorf("%w: metric %s needs exactly one of a value query and an events query", ErrInvalidInput, m.Name)
	}
	if m.EventsQuery != "" && m.SampleQuery == "" {
		return fmt.Errorf("%w: metric %s is a proportion and needs a sample query", ErrInvalidInput, m.Name)
	}
	if m.ObservedQuery != "" && m.SampleQuery == "" {
		return fmt.Errorf("%w: metric %s has an observed-count query but no sample query", ErrInvalidInput, m.Name)
	}
	if math.IsNaN(m.Scale) || math.IsInf(m.Scale, 0) {
		return fmt.Errorf("%w: metric %s has scale %v", ErrInvalidInput, m.Name, m.Scale)
	}
	if m.Window != 0 && m.Window < time.Second {
		return fmt.Errorf("%w: metric %s has window %s, shorter than 1s", ErrInvalidInput, m.Name, m.Window)
	}
	for _, text := range []string{m.Query, m.EventsQuery, m.SampleQuery, m.ObservedQuery, m.HistogramQuery} {
		if text == "" {
			continue
		}
		if err := ValidateQueryTemplate(text); err != nil {
			return fmt.Errorf("metric %s: %w", m.Name, err)
		}
	}
	return nil
}

// window is the effective query window.
func (m MetricQuery) window() time.Duration {
	if m.Window == 0 {
		return DefaultWindow
	}
	return m.Window
}

// scale is the effective value multiplier.
func (m MetricQuery) scale() float64 {
	if m.Scale == 0 {
		return 1
	}
	return m.Scale
}

// Measurement is what Gather found for one metric and one target in one window: the input of
// EvaluateThreshold and, for proportions, of TwoProportionZTest.
type Measurement struct {
	// Metric is the MetricQuery's name.
	Metric string
	// Outcome says whether Value is meaningful; anything but OutcomeOK means it is not.
	Outcome Outcome
	// Err explains an Outcome other than OutcomeOK, wrapping ErrQuery (and the cause),
	// ErrNoData, ErrNoTraffic, ErrMultipleSeries or ErrInvalidValue.
	Err error
	// Value is the metric in its unit (percent, milliseconds, or the user's).
	Value float64
	// Samples is the number of trials (requests) in the window: the observed count where the
	// MetricQuery has one and it is smaller, else the sample query's, rounded; meaningful when
	// HasSamples.
	Samples int64
	// Estimated is the sample query's count, rounded: for comparing targets over one window,
	// which extrapolated counts are made for (see MetricQuery.ObservedQuery).
	Estimated int64
	// HasSamples is true when a sample query ran and returned a count.
	HasSamples bool
	// Events is the number of events (such as 5xx responses) among Samples, for a proportion.
	Events int64
	// Proportion is true when Value = Scale * Events / Samples.
	Proportion bool
	// Scale is the factor between the metric's unit and the measured quantity (100 for a
	// percentage); 0 means 1.
	Scale float64
	// Window is the range the queries looked back over.
	Window time.Duration
	// At is the instant the queries were evaluated at, the end of the window.
	At time.Time
	// Query is the rendered value or events query.
	Query string
	// SampleQuery is the rendered sample query, if any.
	SampleQuery string
}

// fail records an outcome other than OK.
func (m Measurement) fail(outcome Outcome, err error) Measurement {
	m.Outcome = outcome
	m.Err = err
	return m
}

// Gather runs the queries of m for target at the instant now and returns what they say. It
// never panics and never returns a value without saying whether it is usable: problems are
// reported through Measurement.Outcome and Measurement.Err.
func Gather(ctx context.Context, q Querier, m MetricQuery, target Target, now time.Time) Measurement {
	meas := Measurement{Metric: m.Name, Window: m.window(), At: now, Proportion: m.EventsQuery != "", Scale: m.scale()}
	if err := m.Validate(); err != nil {
		return meas.fail(OutcomeQueryError, fmt.Errorf("%w: %w", ErrQuery, err))
	}
	if q == nil {
		return meas.fail(OutcomeQueryError, fmt.Errorf("%w: metric %s: no querier", ErrQuery, m.Name))
	}
	run := queryRun{ctx: ctx, q: q, target: target, window: meas.Window, at: now}
	if m.SampleQuery != "" {
		r := run.scalar("sample", m.SampleQuery)
		meas.SampleQuery = r.query
		if r.outcome != OutcomeOK {
			return meas.fail(r.outcome, r.err)
		}
		samples, err := toCount(r.value, "sample", r.query)
		if err != nil {
			return meas.fail(OutcomeInvalidValue, err)
		}
		meas.Samples, meas.Estimated, meas.HasSamples = samples, samples, true
		if samples == 0 {
			return meas.fail(OutcomeNoTraffic, fmt.Errorf("%w: sample query %q counted no requests in %s",
				ErrNoTraffic, r.query, meas.Window))
		}
		if m.ObservedQuery != "" {
			observed, outcome, err := run.observed(m)
			if outcome != OutcomeOK {
				// No number of requests to report: the estimate alone would overstate it.
				meas.Samples, meas.HasSamples = 0, outcome == OutcomeNoTraffic
				return meas.fail(outcome, err)
			}
			meas.Samples = min(observed, samples)
		}
	}
	if meas.Proportion {
		return gatherEvents(run, m, meas)
	}
	r := run.scalar("value", m.Query)
	meas.Query = r.query
	if r.outcome != OutcomeOK {
		return meas.fail(r.outcome, r.err)
	}
	meas.Value = m.scale() * r.value
	meas.Outcome = OutcomeOK
	return meas
}

// gatherEvents runs the events query of a proportion whose sample count is known and positive.
func gatherEvents(run queryRun, m MetricQuery, meas Measurement) Measurement {
	r := run.scalar("events", m.EventsQuery)
	meas.Query = r.query
	switch r.outcome {
	case OutcomeOK:
	case OutcomeNoData:
		// No error series with traffic is zero errors: data, not a gap.
		r.value = 0
	default:
		return meas.fail(r.outcome, r.err)
	}
	// The events keep the estimated proportion over the observed trials, rounded once.
	value := r.value
	if meas.Samples < meas.Estimated {
		value *= float64(meas.Samples) / float64(meas.Estimated)
	}
	events, err := toCount(value, "events", r.query)
	if err != nil {
		return meas.fail(OutcomeInvalidValue, err)
	}
	// Extrapolation can round the events a little above the trials; a proportion cannot.
	meas.Events = min(events, meas.Samples)
	meas.Value = m.scale() * float64(meas.Events) / float64(meas.Samples)
	meas.Outcome = OutcomeOK
	return meas
}

// toCount rounds a non-negative count to an integer.
func toCount(v float64, role, query string) (int64, error) {
	if v < 0 || v >= math.MaxInt64 {
		return 0, fmt.Errorf("%w: %s query %q returned %v, not a count", ErrInvalidValue, role, query, v)
	}
	return int64(math.Round(v)), nil
}

// queryRun holds what every query of one Gather shares.
type queryRun struct {
	ctx    context.Context
	q      Querier
	target Target
	window time.Duration
	at     time.Time
}

// scalarResult is one query's single number, or why there is none.
type scalarResult struct {
	query   string
	value   float64
	outcome Outcome
	err     error
}

// scalar renders and runs one template and expects a single finite number back.
func (r queryRun) scalar(role, text string) scalarResult {
	query, err := RenderQuery(text, r.target, r.window)
	if err != nil {
		return scalarResult{query: text, outcome: OutcomeQueryError, err: fmt.Errorf("%w: %s query: %w", ErrQuery, role, err)}
	}
	res := scalarResult{query: query, outcome: OutcomeOK}
	vector, err := r.q.Query(r.ctx, query, r.at)
	if err != nil {
		res.outcome, res.err = queryErrorOutcome(err), fmt.Errorf("%w: %s query %q: %w", ErrQuery, role, query, err)
		return res
	}
	res.value, res.outcome, res.err = singleValue(vector, role, query)
	return res
}

// observed runs m's ObservedQuery: the requests the window's samples show. Anything but a
// positive count is an outcome other than OK, a count of 0 OutcomeNoTraffic.
func (r queryRun) observed(m MetricQuery) (int64, Outcome, error) {
	res := r.scalar("observed", m.ObservedQuery)
	if res.outcome != OutcomeOK {
		return 0, res.outcome, res.err
	}
	n, err := toCount(res.value, "observed", res.query)
	switch {
	case err != nil:
		return 0, OutcomeInvalidValue, err
	case n == 0:
		return 0, OutcomeNoTraffic, fmt.Errorf("%w: the samples of %s in %s show no requests yet", ErrNoTraffic, m.Name, r.window)
	}
	return n, OutcomeOK, nil
}

// singleValue extracts the one finite float of a query result.
func singleValue(vector model.Vector, role, query string) (float64, Outcome, error) {
	switch {
	case len(vector) == 0:
		return 0, OutcomeNoData, fmt.Errorf("%w: %s query %q returned no series", ErrNoData, role, query)
	case len(vector) > 1:
		return 0, OutcomeMultipleSeries, fmt.Errorf("%w: %s query %q returned %d series (%s, %s, ...); aggregate it, for example with sum()",
			ErrMultipleSeries, role, query, len(vector), vector[0].Metric, vector[1].Metric)
	case vector[0].Histogram != nil:
		return 0, OutcomeInvalidValue, fmt.Errorf("%w: %s query %q returned a native histogram, not a number",
			ErrInvalidValue, role, query)
	}
	v := float64(vector[0].Value)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, OutcomeInvalidValue, fmt.Errorf("%w: %s query %q returned %v", ErrInvalidValue, role, query, v)
	}
	return v, OutcomeOK, nil
}

// Comparison holds one metric measured for two targets over the same window at the same
// instant: A is the control (stable, or variant A) and B the experiment (canary, or variant B),
// as in TwoProportionZTest.
type Comparison struct {
	// Metric is the MetricQuery's name.
	Metric string
	// A is the control's measurement.
	A Measurement
	// B is the experiment's measurement.
	B Measurement
}

// GatherComparison gathers m for the control a and the experiment b at the same instant now,
// so that both measurements cover the same window.
func GatherComparison(ctx context.Context, q Querier, m MetricQuery, a, b Target, now time.Time) Comparison {
	return Comparison{
		Metric: m.Name,
		A:      Gather(ctx, q, m, a, now),
		B:      Gather(ctx, q, m, b, now),
	}
}

// ZTest applies TwoProportionZTest to the event and trial counts of both measurements. It fails
// with the measurement's own error when either could not be gathered (a window without traffic
// is passed on, for TwoProportionZTest to report ErrNoTraffic or ErrEmptyArm), and with
// ErrNotProportion when the metric is not a proportion.
func (c Comparison) ZTest(alt Alternative) (ZTestResult, error) {
	for _, arm := range []struct {
		name string
		m    Measurement
	}{{"A", c.A}, {"B", c.B}} {
		if arm.m.Outcome != OutcomeOK && arm.m.Outcome != OutcomeNoTraffic {
			cause := arm.m.Err
			if cause == nil {
				cause = fmt.Errorf("%w: outcome %q", ErrNoData, arm.m.Outcome)
			}
			return ZTestResult{}, fmt.Errorf("metric %s, arm %s: %w", c.Metric, arm.name, cause)
		}
		if !arm.m.Proportion {
			return ZTestResult{}, fmt.Errorf("%w: metric %s, arm %s", ErrNotProportion, c.Metric, arm.name)
		}
	}
	return TwoProportionZTest(c.A.Events, c.A.Samples, c.B.Events, c.B.Samples, alt)
}
