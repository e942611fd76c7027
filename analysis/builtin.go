package analysis

import (
	"fmt"
	"regexp"
	"time"
)

// Built-in metric names, as written in a Rollout's analysis.metrics[].name.
const (
	// MetricErrorRate is the percentage of responses with a 5xx status code.
	MetricErrorRate = "error-rate"
	// MetricLatencyP95 is the 95th percentile of response latency in milliseconds.
	MetricLatencyP95 = "latency-p95"
	// MetricLatencyP99 is the 99th-percentile request latency in milliseconds, like latency-p95.
	MetricLatencyP99 = "latency-p99"
)

// Labels names the Prometheus labels the built-in metrics select on. An empty field takes its
// default from DefaultLabels.
type Labels struct {
	// Namespace is the label holding the Kubernetes namespace ("namespace").
	Namespace string
	// Service is the label holding the Kubernetes Service name ("service").
	Service string
	// Code is the label holding the HTTP status code, such as 503 ("code").
	Code string
}

// DefaultLabels returns the label names the built-in metrics expect by default.
func DefaultLabels() Labels {
	return Labels{Namespace: "namespace", Service: "service", Code: "code"}
}

// BuiltinOptions says which Prometheus metrics and labels the built-in metrics read. An empty
// field takes its default from DefaultBuiltinOptions. The application (or its mesh or ingress)
// must expose:
//
//	http_requests_total{namespace, service, code}                 counter of responses
//	http_request_duration_seconds_bucket{namespace, service, le}  histogram of latency, seconds
//	http_request_duration_seconds_count{namespace, service}       (part of the same histogram)
type BuiltinOptions struct {
	// Labels names the selected labels.
	Labels Labels
	// RequestsTotal is the counter of responses ("http_requests_total").
	RequestsTotal string
	// RequestDuration is the base name of the latency histogram in seconds
	// ("http_request_duration_seconds").
	RequestDuration string
	// Window is the query window; zero means DefaultWindow.
	Window time.Duration
}

// DefaultBuiltinOptions returns the conventional metric and label names.
func DefaultBuiltinOptions() BuiltinOptions {
	return BuiltinOptions{
		Labels:          DefaultLabels(),
		RequestsTotal:   "http_requests_total",
		RequestDuration: "http_request_duration_seconds",
	}
}

var (
	labelNamePattern  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	metricNamePattern = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
)

// withDefaults fills the empty fields and checks the names, which are written into query text.
func (o BuiltinOptions) withDefaults() (BuiltinOptions, error) {
	def := DefaultBuiltinOptions()
	fill := func(field *string, fallback string) {
		if *field == "" {
			*field = fallback
		}
	}
	fill(&o.Labels.Namespace, def.Labels.Namespace)
	fill(&o.Labels.Service, def.Labels.Service)
	fill(&o.Labels.Code, def.Labels.Code)
	fill(&o.RequestsTotal, def.RequestsTotal)
	fill(&o.RequestDuration, def.RequestDuration)
	for _, name := range []string{o.Labels.Namespace, o.Labels.Service, o.Labels.Code} {
		if !labelNamePattern.MatchString(name) {
			return o, fmt.Errorf("%w: %q is not a Prometheus label name", ErrInvalidInput, name)
		}
	}
	for _, name := range []string{o.RequestsTotal, o.RequestDuration} {
		if !metricNamePattern.MatchString(name) {
			return o, fmt.Errorf("%w: %q is not a Prometheus metric name", ErrInvalidInput, name)
		}
	}
	return o, nil
}

// IsBuiltinMetric reports whether name is error-rate or latency-p95.
func IsBuiltinMetric(name string) bool {
	return name == MetricErrorRate || name == MetricLatencyP95 || name == MetricLatencyP99
}

// BuiltinMetric returns the queries of a built-in metric:
//
//   - error-rate, a proportion in percent:
//     events    sum(increase(http_requests_total{namespace="NS",service="SVC",code=~"5.."}[W]))
//     trials    sum(increase(http_requests_total{namespace="NS",service="SVC"}[W]))
//     observed  sum(seen(http_requests_total{namespace="NS",service="SVC"}, W))
//   - latency-p95, in milliseconds (1000 times the quantile in seconds):
//     value     histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{namespace="NS",service="SVC"}[W])))
//     trials    sum(increase(http_request_duration_seconds_count{namespace="NS",service="SVC"}[W]))
//     observed  sum(seen(http_request_duration_seconds_count{namespace="NS",service="SVC"}, W))
//     buckets   sum by (le) (increase(http_request_duration_seconds_bucket{namespace="NS",service="SVC"}[W]))
//
// where seen(S, W) is the PromQL of seenQuery: the requests the series' samples in the window
// show, not extrapolated. All counts of a metric come from the same window W. Unknown names and
// invalid metric or label names are errors wrapping ErrInvalidInput.
func BuiltinMetric(name string, opts BuiltinOptions) (MetricQuery, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return MetricQuery{}, err
	}
	selector := fmt.Sprintf(`%s="{{.Namespace}}",%s="{{.Service}}"`, o.Labels.Namespace, o.Labels.Service)
	switch name {
	case MetricErrorRate:
		return MetricQuery{
			Name: name,
			EventsQuery: fmt.Sprintf(`sum(increase(%s{%s,%s=~"5.."}[{{.Window}}]))`,
				o.RequestsTotal, selector, o.Labels.Code),
			SampleQuery:   fmt.Sprintf(`sum(increase(%s{%s}[{{.Window}}]))`, o.RequestsTotal, selector),
			ObservedQuery: "sum(" + seenQuery(fmt.Sprintf(`%s{%s}`, o.RequestsTotal, selector)) + ")",
			Scale:         100,
			Window:        o.Window,
		}, nil
	case MetricLatencyP95, MetricLatencyP99:
		quantile := "0.95"
		if name == MetricLatencyP99 {
			quantile = "0.99"
		}
		return MetricQuery{
			Name: name,
			Query: fmt.Sprintf(`histogram_quantile(%s, sum by (le) (rate(%s_bucket{%s}[{{.Window}}])))`,
				quantile, o.RequestDuration, selector),
			SampleQuery:   fmt.Sprintf(`sum(increase(%s_count{%s}[{{.Window}}]))`, o.RequestDuration, selector),
			ObservedQuery: "sum(" + seenQuery(fmt.Sprintf(`%s_count{%s}`, o.RequestDuration, selector)) + ")",
			HistogramQuery: fmt.Sprintf(`sum by (le) (increase(%s_bucket{%s}[{{.Window}}]))`,
				o.RequestDuration, selector),
			Scale:  1000,
			Window: o.Window,
		}, nil
	default:
		return MetricQuery{}, fmt.Errorf("%w: %q is not a built-in metric (error-rate, latency-p95, latency-p99)", ErrInvalidInput, name)
	}
}

// seenQuery is the PromQL for the number of requests the samples of series in the query window
// show: the evidence a test may take from the window. increase() stretches a series' growth
// between its first and last sample in the range out to the range's edges, which makes the
// counts of different series and targets comparable (their rates, their proportions) but, with
// few samples in the range (a young revision; a scrape interval near the window), reports up to
// twice the requests scraped. For each series without a counter reset in the window this is its
// last value in the range less its first one there, or less nothing when the series had no
// sample at the window's start (born inside it, from 0: a new Pod's); a series whose counter
// reset in the window (a restarted container) is counted by increase(), which adds the counts up
// across the reset. Each series takes the smaller of that and its increase(), so that a series
// counted from 0 that was not new (a Pod first scraped inside the window, a scrape gap past the
// lookback) adds no more than increase() would, and a series with one sample, which increase()
// cannot count, adds nothing.
func seenQuery(series string) string {
	inRange := series + "[{{.Window}}]"
	return fmt.Sprintf("(((max_over_time(%[1]s) - (min_over_time(%[1]s) and %[2]s offset {{.Window}}))"+
		" or max_over_time(%[1]s)) and resets(%[1]s) == 0) < increase(%[1]s) or increase(%[1]s)", inRange, series)
}
