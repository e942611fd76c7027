package analysis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// errorRateQueries renders the built-in error-rate queries for testTarget.
func errorRateQueries(t *testing.T) (m MetricQuery, events, trials, observed string) {
	t.Helper()
	m, err := BuiltinMetric(MetricErrorRate, BuiltinOptions{Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	render := func(text string) string {
		query, err := RenderQuery(text, testTarget, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return query
	}
	return m, render(m.EventsQuery), render(m.SampleQuery), render(m.ObservedQuery)
}

func TestGatherProportion(t *testing.T) {
	m, events, trials, observed := errorRateQueries(t)
	twoSeries := model.Vector{
		&model.Sample{Metric: model.Metric{"code": "500"}, Value: 1},
		&model.Sample{Metric: model.Metric{"code": "503"}, Value: 2},
	}
	tests := []struct {
		name        string
		results     map[string]model.Vector
		errs        map[string]error
		wantOutcome Outcome
		wantErr     error
		wantValue   float64
		wantSamples int64
		wantEvents  int64
	}{
		{"errors and traffic", map[string]model.Vector{events: one(20.2), trials: one(199.6)},
			nil, OutcomeOK, nil, 10, 200, 20},
		{"no error series with traffic is zero errors", map[string]model.Vector{trials: one(150)},
			nil, OutcomeOK, nil, 0, 150, 0},
		{"zero errors with traffic", map[string]model.Vector{events: one(0), trials: one(150)},
			nil, OutcomeOK, nil, 0, 150, 0},
		{"events rounded above trials are clamped", map[string]model.Vector{events: one(10.6), trials: one(10.4)},
			nil, OutcomeOK, nil, 100, 10, 10},
		{"no series", nil, nil, OutcomeNoData, ErrNoData, 0, 0, 0},
		{"zero traffic", map[string]model.Vector{events: one(0), trials: one(0)},
			nil, OutcomeNoTraffic, ErrNoTraffic, 0, 0, 0},
		{"traffic rounding to zero", map[string]model.Vector{trials: one(0.3)},
			nil, OutcomeNoTraffic, ErrNoTraffic, 0, 0, 0},
		{"trials query fails", nil, map[string]error{trials: errors.New("connection refused")},
			OutcomeQueryError, ErrQuery, 0, 0, 0},
		{"events query fails", map[string]model.Vector{trials: one(100)}, map[string]error{events: errors.New("timeout")},
			OutcomeQueryError, ErrQuery, 0, 100, 0},
		{"several trial series", map[string]model.Vector{trials: twoSeries},
			nil, OutcomeMultipleSeries, ErrMultipleSeries, 0, 0, 0},
		{"several event series", map[string]model.Vector{events: twoSeries, trials: one(100)},
			nil, OutcomeMultipleSeries, ErrMultipleSeries, 0, 100, 0},
		{"NaN trials", map[string]model.Vector{trials: one(math.NaN())},
			nil, OutcomeInvalidValue, ErrInvalidValue, 0, 0, 0},
		{"negative trials", map[string]model.Vector{trials: one(-1)},
			nil, OutcomeInvalidValue, ErrInvalidValue, 0, 0, 0},
		{"infinite events", map[string]model.Vector{events: one(math.Inf(1)), trials: one(100)},
			nil, OutcomeInvalidValue, ErrInvalidValue, 0, 100, 0},
		{"native histogram", map[string]model.Vector{trials: {&model.Sample{Histogram: &model.SampleHistogram{}}}},
			nil, OutcomeInvalidValue, ErrInvalidValue, 0, 0, 0},
		// The observed count (the cases above observe what the sample query estimates).
		{"fewer requests observed than estimated: the proportion over those", map[string]model.Vector{events: one(20.2), trials: one(199.6), observed: one(100)},
			nil, OutcomeOK, nil, 10, 100, 10},
		{"more observed than estimated keeps the estimate", map[string]model.Vector{events: one(15), trials: one(150), observed: one(160)},
			nil, OutcomeOK, nil, 10, 150, 15},
		{"nothing observed yet", map[string]model.Vector{events: one(3), trials: one(40), observed: one(0)},
			nil, OutcomeNoTraffic, ErrNoTraffic, 0, 0, 0},
		{"observed count fails: no number of requests", map[string]model.Vector{trials: one(40)}, map[string]error{observed: errors.New("timeout")},
			OutcomeQueryError, ErrQuery, 0, 0, 0},
		{"observed count without series: no number of requests", map[string]model.Vector{trials: one(40), observed: {}},
			nil, OutcomeNoData, ErrNoData, 0, 0, 0},
		{"events scaled from the unrounded estimate, rounded once", map[string]model.Vector{events: one(10.6), trials: one(200), observed: one(100)},
			nil, OutcomeOK, nil, 5, 100, 5},
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			results := map[string]model.Vector{}
			for query, v := range tt.results {
				results[query] = v
			}
			if _, ok := results[observed]; !ok && results[trials] != nil && tt.errs[observed] == nil {
				results[observed] = results[trials]
			}
			q := &fakeQuerier{results: results, errs: tt.errs}
			got := Gather(context.Background(), q, m, testTarget, now)
			if got.Outcome != tt.wantOutcome || !errors.Is(got.Err, tt.wantErr) {
				t.Fatalf("outcome %s (%v), want %s (%v)", got.Outcome, got.Err, tt.wantOutcome, tt.wantErr)
			}
			if got.Value != tt.wantValue || got.Samples != tt.wantSamples || got.Events != tt.wantEvents {
				t.Errorf("value %v samples %d events %d, want %v %d %d",
					got.Value, got.Samples, got.Events, tt.wantValue, tt.wantSamples, tt.wantEvents)
			}
			if !got.Proportion || got.Window != time.Minute || !got.At.Equal(now) || got.Metric != MetricErrorRate {
				t.Errorf("measurement %+v lacks its metadata", got)
			}
			if got.SampleQuery != trials {
				t.Errorf("sample query %q, want %q", got.SampleQuery, trials)
			}
		})
	}
}

func TestGatherValue(t *testing.T) {
	custom := MetricQuery{Name: "queue-depth", Query: `max(queue_depth{service="{{.Service}}"})`, Window: time.Minute}
	query := `max(queue_depth{service="checkout-canary"})`
	withSamples := custom
	withSamples.SampleQuery = `sum(increase(jobs_total{service="{{.Service}}"}[{{.Window}}]))`
	withSamples.Scale = 1000
	samples := `sum(increase(jobs_total{service="checkout-canary"}[1m]))`
	tests := []struct {
		name        string
		m           MetricQuery
		results     map[string]model.Vector
		wantOutcome Outcome
		wantValue   float64
		wantSamples bool
	}{
		{"value without samples", custom, map[string]model.Vector{query: one(42)}, OutcomeOK, 42, false},
		{"negative values are fine", custom, map[string]model.Vector{query: one(-3)}, OutcomeOK, -3, false},
		{"scaled value with samples", withSamples, map[string]model.Vector{query: one(0.25), samples: one(80)}, OutcomeOK, 250, true},
		{"no traffic wins over NaN", withSamples, map[string]model.Vector{query: one(math.NaN()), samples: one(0)}, OutcomeNoTraffic, 0, true},
		{"NaN value", custom, map[string]model.Vector{query: one(math.NaN())}, OutcomeInvalidValue, 0, false},
		{"no series", custom, nil, OutcomeNoData, 0, false},
		{"no sample series", withSamples, map[string]model.Vector{query: one(1)}, OutcomeNoData, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Gather(context.Background(), &fakeQuerier{results: tt.results}, tt.m, testTarget, time.Time{})
			if got.Outcome != tt.wantOutcome || got.Value != tt.wantValue || got.HasSamples != tt.wantSamples {
				t.Fatalf("got %s value %v samples %v (%v), want %s %v %v",
					got.Outcome, got.Value, got.HasSamples, got.Err, tt.wantOutcome, tt.wantValue, tt.wantSamples)
			}
			if got.Proportion {
				t.Error("a value metric is not a proportion")
			}
		})
	}
}

func TestGatherRejectsBadInput(t *testing.T) {
	q := &fakeQuerier{}
	got := Gather(context.Background(), q, MetricQuery{Name: "x", Query: `x{a={{.Service}}}`}, testTarget, time.Time{})
	if got.Outcome != OutcomeQueryError || !errors.Is(got.Err, ErrQuery) || !errors.Is(got.Err, ErrInvalidTemplate) {
		t.Fatalf("bad template: %s %v", got.Outcome, got.Err)
	}
	if len(q.asked) != 0 {
		t.Fatalf("a bad template reached the querier: %q", q.asked)
	}
	got = Gather(context.Background(), nil, MetricQuery{Name: "x", Query: "1"}, testTarget, time.Time{})
	if got.Outcome != OutcomeQueryError || !strings.Contains(got.Err.Error(), "no querier") {
		t.Fatalf("nil querier: %s %v", got.Outcome, got.Err)
	}
}

func TestGatherComparison(t *testing.T) {
	m, err := BuiltinMetric(MetricErrorRate, BuiltinOptions{Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	stable := Target{Namespace: "shop", Service: "stable"}
	canary := Target{Namespace: "shop", Service: "canary"}
	render := func(text string, target Target) string { return mustRenderWindow(t, text, target, time.Minute) }
	q := &fakeQuerier{results: map[string]model.Vector{
		render(m.EventsQuery, stable): one(12), render(m.SampleQuery, stable): one(99), render(m.ObservedQuery, stable): one(99),
		render(m.EventsQuery, canary): one(5), render(m.SampleQuery, canary): one(83), render(m.ObservedQuery, canary): one(83),
	}}
	c := GatherComparison(context.Background(), q, m, stable, canary, time.Time{})
	if c.Metric != MetricErrorRate || c.A.Events != 12 || c.A.Samples != 99 || c.B.Events != 5 || c.B.Samples != 83 {
		t.Fatalf("comparison = %+v", c)
	}
	z, err := c.ZTest(TwoSided)
	if err != nil {
		t.Fatal(err)
	}
	// Vector 1 of analysis-vectors.md with the arms in this package's order.
	assertClose(t, "z", z.Z, -1.40783, 1e-5)
	assertClose(t, "p", z.PValue, 0.159181, 1e-5)

	delete(q.results, render(m.SampleQuery, canary))
	c = GatherComparison(context.Background(), q, m, stable, canary, time.Time{})
	if _, err := c.ZTest(TwoSided); !errors.Is(err, ErrNoData) {
		t.Errorf("canary without data: err = %v, want ErrNoData", err)
	}
	q.results[render(m.SampleQuery, canary)] = one(0)
	c = GatherComparison(context.Background(), q, m, stable, canary, time.Time{})
	if _, err := c.ZTest(TwoSided); !errors.Is(err, ErrEmptyArm) {
		t.Errorf("canary without traffic: err = %v, want ErrEmptyArm", err)
	}
	value := Comparison{Metric: "x", A: Measurement{Outcome: OutcomeOK}, B: Measurement{Outcome: OutcomeOK}}
	if _, err := value.ZTest(TwoSided); !errors.Is(err, ErrNotProportion) {
		t.Errorf("value metric: err = %v, want ErrNotProportion", err)
	}
	if _, err := (Comparison{Metric: "x"}).ZTest(TwoSided); !errors.Is(err, ErrNoData) {
		t.Errorf("nothing gathered: err = %v, want ErrNoData", err)
	}
}

func mustRenderWindow(t *testing.T, text string, target Target, window time.Duration) string {
	t.Helper()
	query, err := RenderQuery(text, target, window)
	if err != nil {
		t.Fatal(err)
	}
	return query
}

func TestQueryErrorOutcome(t *testing.T) {
	refused := &url.Error{Op: "Post", URL: "http://127.0.0.1:1/api/v1/query", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	for _, tc := range []struct {
		name string
		err  error
		want Outcome
	}{
		{"connection refused", fmt.Errorf("prometheus x: %w", refused), OutcomeUnavailable},
		{"client-side timeout", fmt.Errorf("prometheus x: %w", context.DeadlineExceeded), OutcomeUnavailable},
		{"5xx answer", &promv1.Error{Type: promv1.ErrServer, Msg: "server error: 503"}, OutcomeUnavailable},
		{"query timed out on the server", &promv1.Error{Type: promv1.ErrTimeout, Msg: "query timed out"}, OutcomeUnavailable},
		{"bad query", fmt.Errorf("prometheus x: %w", &promv1.Error{Type: promv1.ErrBadData, Msg: "parse error"}), OutcomeQueryError},
		{"execution error", &promv1.Error{Type: promv1.ErrExec, Msg: "many-to-many matching"}, OutcomeQueryError},
		{"unreadable answer", &promv1.Error{Type: promv1.ErrBadResponse, Msg: "invalid character"}, OutcomeQueryError},
		{"4xx answer", &promv1.Error{Type: promv1.ErrClient, Msg: "client error: 404"}, OutcomeQueryError},
		{"anything else", errors.New("query returned a matrix"), OutcomeQueryError},
	} {
		if got := queryErrorOutcome(tc.err); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// A histogram keeps its shape over the requests its samples show, when increase() estimated
// more; an observed count of 0 is no traffic yet.
func TestGatherHistogramTakesTheObservedCount(t *testing.T) {
	m, err := BuiltinMetric(MetricLatencyP95, BuiltinOptions{Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	render := func(text string) string { return mustRenderWindow(t, text, testTarget, time.Minute) }
	buckets := model.Vector{
		&model.Sample{Metric: model.Metric{model.BucketLabel: "0.1"}, Value: 40},
		&model.Sample{Metric: model.Metric{model.BucketLabel: "0.25"}, Value: 80},
		&model.Sample{Metric: model.Metric{model.BucketLabel: "+Inf"}, Value: 100},
	}
	for _, tt := range []struct {
		name        string
		observed    float64
		wantOutcome Outcome
		want        []float64
	}{
		{"half observed", 50, OutcomeOK, []float64{20, 40, 50}},
		{"all observed", 100, OutcomeOK, []float64{40, 80, 100}},
		{"more observed than estimated", 120, OutcomeOK, []float64{40, 80, 100}},
		{"nothing observed yet", 0, OutcomeNoTraffic, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			q := &fakeQuerier{results: map[string]model.Vector{render(m.HistogramQuery): buckets, render(m.ObservedQuery): one(tt.observed)}}
			got := GatherHistogram(context.Background(), q, m, testTarget, time.Minute, time.Time{})
			if got.Outcome != tt.wantOutcome {
				t.Fatalf("outcome %s (%v), want %s", got.Outcome, got.Err, tt.wantOutcome)
			}
			if tt.want != nil && fmt.Sprint(got.Histogram.Cumulative) != fmt.Sprint(tt.want) {
				t.Errorf("cumulative %v, want %v", got.Histogram.Cumulative, tt.want)
			}
		})
	}
}

// The split check compares targets over one window: a canary whose counters were born after the
// split counts every request from 0, while stable's older counters count from their first sample
// in the window, up to a scrape later. Their estimated counts cover the same window; the
// observed ones give the evidence.
func TestSplitCountsCompareOneWindow(t *testing.T) {
	stable := Measurement{Samples: 600, Estimated: 800, HasSamples: true}
	canary := Measurement{Samples: 200, Estimated: 200, HasSamples: true}
	counts := splitCounts(stable, canary)
	if fmt.Sprint(counts) != "[640 160]" {
		t.Fatalf("split counts %v, want [640 160]: the estimated 80/20 over the 800 requests observed", counts)
	}
	weights := []float64{80, 20}
	r, err := SampleRatioMismatch(counts, weights, srmAlpha)
	if err != nil || r.Mismatch {
		t.Errorf("an 80/20 split over one window: %+v, %v; want no mismatch", r, err)
	}
	// The observed counts alone, over windows a scrape apart, would read as a mismatch.
	r, err = SampleRatioMismatch([]int64{stable.Samples, canary.Samples}, weights, srmAlpha)
	if err != nil || !r.Mismatch {
		t.Errorf("observed counts %d/%d against 80/20: %+v, %v; the test no longer shows what splitCounts avoids", stable.Samples, canary.Samples, r, err)
	}
	// Without an observed count below the estimate the counts are the estimates.
	if got := splitCounts(Measurement{Samples: 90, Estimated: 90}, Measurement{Samples: 10, Estimated: 10}); fmt.Sprint(got) != "[90 10]" {
		t.Errorf("split counts %v, want [90 10]", got)
	}
}
