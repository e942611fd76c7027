package analysis

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

var testTarget = Target{Namespace: "shop", Rollout: "checkout", Service: "checkout-canary", Revision: "7d9f8c6b5"}

func TestEscapePromQLString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain-name", "plain-name"},
		{`a"b`, `a\"b`},
		{`a\b`, `a\\b`},
		{"a\nb\rc\td", `a\nb\rc\td`},
		{"bell\x07del\x7f", `bell\x07del\x7f`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"ünïcode ✓", "ünïcode ✓"},
		{`x"} or vector(1) #`, `x\"} or vector(1) #`},
		{`\"`, `\\\"`},
	}
	for _, tt := range tests {
		got := EscapePromQLString(tt.in)
		if got != tt.want {
			t.Errorf("EscapePromQLString(%q) = %q, want %q", tt.in, got, tt.want)
		}
		// PromQL double-quoted strings follow Go's escaping rules: the literal must read back
		// as the original value.
		back, err := strconv.Unquote(`"` + got + `"`)
		if err != nil || back != tt.in {
			t.Errorf("literal %q reads back as %q (%v), want %q", got, back, err, tt.in)
		}
	}
}

func TestRenderQuery(t *testing.T) {
	text := `sum(rate(http_requests_total{namespace="{{.Namespace}}",service="{{ .Service }}",rollout="{{.Rollout}}",hash="{{.Revision}}"}[{{.Window}}]))`
	got, err := RenderQuery(text, testTarget, 90*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := `sum(rate(http_requests_total{namespace="shop",service="checkout-canary",rollout="checkout",hash="7d9f8c6b5"}[1m30s]))`
	if got != want {
		t.Fatalf("rendered\n%s\nwant\n%s", got, want)
	}
}

// literalValues returns the decoded double-quoted string literals of a PromQL query and the
// query text outside them, following the same quoting rules as the template checker.
func literalValues(t *testing.T, query string) (values []string, outside string) {
	t.Helper()
	var out, lit strings.Builder
	in, escaped := false, false
	for _, r := range query {
		switch {
		case !in && r == '"':
			in = true
			lit.Reset()
		case !in:
			out.WriteRune(r)
		case escaped:
			escaped = false
			lit.WriteRune(r)
		case r == '\\':
			escaped = true
			lit.WriteRune(r)
		case r == '"':
			in = false
			v, err := strconv.Unquote(`"` + lit.String() + `"`)
			if err != nil {
				t.Fatalf("literal %q in %q: %v", lit.String(), query, err)
			}
			values = append(values, v)
		default:
			lit.WriteRune(r)
		}
	}
	if in {
		t.Fatalf("unterminated string literal in %q", query)
	}
	return values, out.String()
}

func TestRenderQueryCannotBeInjected(t *testing.T) {
	hostile := []string{
		`x"} or vector(1) #`,
		`x"}[5m])) or vector(1) or sum(rate(y{a="`,
		`{`, `}`, `"}`, `{{.Namespace}}`, "a\nb", `\`, `\"`, `x\"} or vector(1)`, "\x00", `'`, "`",
	}
	text, err := BuiltinMetric(MetricErrorRate, DefaultBuiltinOptions())
	if err != nil {
		t.Fatal(err)
	}
	// Each query names its selector once per use (the observed count's in the range, the
	// offset and the fallback), each time with the namespace, the service and any code pattern.
	for _, q := range []struct {
		name, text string
		tuple      []string // the literals of one selector; "" stands for the hostile value
	}{
		{"events", text.EventsQuery, []string{"", "", "5.."}},
		{"observed", text.ObservedQuery, []string{"", ""}},
	} {
		plain, wantOutside := literalValues(t, mustRender(t, q.text, testTarget))
		if len(plain) == 0 || len(plain)%len(q.tuple) != 0 {
			t.Fatalf("the %s query holds literals %q, not whole selectors", q.name, plain)
		}
		for _, value := range hostile {
			target := Target{Namespace: value, Rollout: value, Service: value, Revision: value}
			values, outside := literalValues(t, mustRender(t, q.text, target))
			if outside != wantOutside {
				t.Errorf("%s query: value %q changed the query structure:\n%s\nwant the text outside strings to be\n%s", q.name, value, outside, wantOutside)
			}
			if len(values) != len(plain) {
				t.Errorf("%s query: value %q: literals %q, want %d", q.name, value, values, len(plain))
				continue
			}
			for i, got := range values {
				want := q.tuple[i%len(q.tuple)]
				if want == "" {
					want = value
				}
				if got != want {
					t.Errorf("%s query: value %q: literal %d is %q, want %q (all: %q)", q.name, value, i, got, want, values)
					break
				}
			}
		}
	}
}

func mustRender(t *testing.T, text string, target Target) string {
	t.Helper()
	query, err := RenderQuery(text, target, 5*time.Minute)
	if err != nil {
		t.Fatalf("RenderQuery(%q): %v", text, err)
	}
	return query
}

func TestQueryTemplateRejectsUnsafePlacement(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"empty", "  ", "empty"},
		{"parse error", `sum(x{a="{{.Service}"})`, "bad character"},
		{"bare value", `x{service={{.Service}}}`, "double-quoted"},
		{"single quotes", `x{service='{{.Service}}'}`, "double-quoted"},
		{"backticks", "x{service=`{{.Service}}`}", "double-quoted"},
		{"comment", "x # {{.Service}}\n", "double-quoted"},
		{"after a closed string", `x{a="b",service=""{{.Service}}}`, "double-quoted"},
		{"after a backslash", `x{service="\{{.Service}}"}`, "backslash"},
		{"unknown variable", `x{a="{{.Pod}}"}`, "not a template variable"},
		{"function", `x{a="{{printf "%s" .Service}}"}`, "not a template variable"},
		{"pipeline", `x{a="{{.Service | html}}"}`, "not a template variable"},
		{"constant", `x{a="{{"\""}}"}`, "not a template variable"},
		{"variable", `{{$s := .Service}}x`, "not a template variable"},
		{"control structure", `{{if .Service}}x{{end}}`, "not supported"},
		{"nested field", `x{a="{{.Service.Name}}"}`, "not a template variable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateQueryTemplate(tt.text)
			if !errors.Is(err, ErrInvalidTemplate) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ValidateQueryTemplate(%q) = %v, want ErrInvalidTemplate mentioning %q", tt.text, err, tt.want)
			}
		})
	}
	allowed := []string{
		`sum(x{a="{{.Service}}-{{.Revision}}", b='single', c=` + "`raw`" + `}[{{.Window}}])`,
		"x{a=\"it's {{.Service}}\"} # a comment with a \" quote\n/ y{b=\"{{.Namespace}}\"}",
		`x{a="esc\"aped {{.Service}}"}`,
		`vector({{.Window}})`,
		`1`,
	}
	for _, text := range allowed {
		if err := ValidateQueryTemplate(text); err != nil {
			t.Errorf("ValidateQueryTemplate(%q) = %v, want nil", text, err)
		}
	}
	if _, err := RenderQuery(`x[{{.Window}}]`, testTarget, 500*time.Millisecond); !errors.Is(err, ErrInvalidTemplate) {
		t.Errorf("window below 1s: err = %v, want ErrInvalidTemplate", err)
	}
}

func TestBuiltinMetric(t *testing.T) {
	errorRate, err := BuiltinMetric(MetricErrorRate, DefaultBuiltinOptions())
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "error-rate events", mustRender(t, errorRate.EventsQuery, testTarget),
		`sum(increase(http_requests_total{namespace="shop",service="checkout-canary",code=~"5.."}[5m]))`)
	assertEqual(t, "error-rate trials", mustRender(t, errorRate.SampleQuery, testTarget),
		`sum(increase(http_requests_total{namespace="shop",service="checkout-canary"}[5m]))`)
	assertEqual(t, "error-rate observed", mustRender(t, errorRate.ObservedQuery, testTarget),
		`sum((((max_over_time(http_requests_total{namespace="shop",service="checkout-canary"}[5m]) - (min_over_time(http_requests_total{namespace="shop",service="checkout-canary"}[5m]) and http_requests_total{namespace="shop",service="checkout-canary"} offset 5m)) or max_over_time(http_requests_total{namespace="shop",service="checkout-canary"}[5m])) and resets(http_requests_total{namespace="shop",service="checkout-canary"}[5m]) == 0) < increase(http_requests_total{namespace="shop",service="checkout-canary"}[5m]) or increase(http_requests_total{namespace="shop",service="checkout-canary"}[5m]))`)
	if errorRate.Scale != 100 || errorRate.Query != "" {
		t.Errorf("error-rate = %+v, want a proportion scaled by 100", errorRate)
	}

	opts := BuiltinOptions{
		Labels:          Labels{Namespace: "kubernetes_namespace", Service: "destination_service"},
		RequestDuration: "istio_request_duration_seconds",
		Window:          time.Minute,
	}
	latency, err := BuiltinMetric(MetricLatencyP95, opts)
	if err != nil {
		t.Fatal(err)
	}
	assertEqual(t, "latency-p95 value", mustRenderWindow(t, latency.Query, testTarget, latency.Window),
		`histogram_quantile(0.95, sum by (le) (rate(istio_request_duration_seconds_bucket{kubernetes_namespace="shop",destination_service="checkout-canary"}[1m])))`)
	assertEqual(t, "latency-p95 samples", mustRenderWindow(t, latency.SampleQuery, testTarget, latency.Window),
		`sum(increase(istio_request_duration_seconds_count{kubernetes_namespace="shop",destination_service="checkout-canary"}[1m]))`)
	assertEqual(t, "latency-p95 observed", mustRenderWindow(t, latency.ObservedQuery, testTarget, latency.Window),
		`sum((((max_over_time(istio_request_duration_seconds_count{kubernetes_namespace="shop",destination_service="checkout-canary"}[1m]) - (min_over_time(istio_request_duration_seconds_count{kubernetes_namespace="shop",destination_service="checkout-canary"}[1m]) and istio_request_duration_seconds_count{kubernetes_namespace="shop",destination_service="checkout-canary"} offset 1m)) or max_over_time(istio_request_duration_seconds_count{kubernetes_namespace="shop",destination_service="checkout-canary"}[1m])) and resets(istio_request_duration_seconds_count{kubernetes_namespace="shop",destination_service="checkout-canary"}[1m]) == 0) < increase(istio_request_duration_seconds_count{kubernetes_namespace="shop",destination_service="checkout-canary"}[1m]) or increase(istio_request_duration_seconds_count{kubernetes_namespace="shop",destination_service="checkout-canary"}[1m]))`)
	assertEqual(t, "latency-p95 buckets", mustRenderWindow(t, latency.HistogramQuery, testTarget, latency.Window),
		`sum by (le) (increase(istio_request_duration_seconds_bucket{kubernetes_namespace="shop",destination_service="checkout-canary"}[1m]))`)
	if latency.Scale != 1000 || latency.Window != time.Minute {
		t.Errorf("latency-p95 = %+v, want scale 1000 and window 1m", latency)
	}

	bad := []BuiltinOptions{
		{Labels: Labels{Service: `service"}`}},
		{Labels: Labels{Code: "{{.Service}}"}},
		{RequestsTotal: "http-requests"},
	}
	for _, o := range bad {
		if _, err := BuiltinMetric(MetricErrorRate, o); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("BuiltinMetric with %+v: err = %v, want ErrInvalidInput", o, err)
		}
	}
	if _, err := BuiltinMetric("throughput", DefaultBuiltinOptions()); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("unknown metric: err = %v, want ErrInvalidInput", err)
	}
	if !IsBuiltinMetric(MetricErrorRate) || !IsBuiltinMetric(MetricLatencyP95) || IsBuiltinMetric("custom") {
		t.Error("IsBuiltinMetric is wrong")
	}
}

func assertEqual(t *testing.T, name, got, want string) {
	t.Helper()
	if got != want {
		t.Errorf("%s =\n%s\nwant\n%s", name, got, want)
	}
}

func TestMetricQueryValidate(t *testing.T) {
	tests := []struct {
		name string
		m    MetricQuery
	}{
		{"no name", MetricQuery{Query: "1"}},
		{"no query", MetricQuery{Name: "x"}},
		{"both queries", MetricQuery{Name: "x", Query: "1", EventsQuery: "1", SampleQuery: "1"}},
		{"proportion without samples", MetricQuery{Name: "x", EventsQuery: "1"}},
		{"NaN scale", MetricQuery{Name: "x", Query: "1", Scale: math.NaN()}},
		{"short window", MetricQuery{Name: "x", Query: "1", Window: time.Millisecond}},
		{"bad template", MetricQuery{Name: "x", Query: "x{a={{.Service}}}"}},
		{"bad sample template", MetricQuery{Name: "x", Query: "1", SampleQuery: "{{.Nope}}"}},
	}
	for _, tt := range tests {
		if err := tt.m.Validate(); err == nil {
			t.Errorf("%s: Validate = nil, want an error", tt.name)
		}
	}
	if err := (MetricQuery{Name: "x", Query: "1"}).Validate(); err != nil {
		t.Errorf("minimal value metric: %v", err)
	}
}

// fakeQuerier answers queries from a table; queries not in it return no series.
type fakeQuerier struct {
	results map[string]model.Vector
	errs    map[string]error
	asked   []string
}

func (f *fakeQuerier) Query(_ context.Context, query string, _ time.Time) (model.Vector, error) {
	f.asked = append(f.asked, query)
	if err, ok := f.errs[query]; ok {
		return nil, err
	}
	return f.results[query], nil
}

// one is a vector of a single unlabelled sample.
func one(v float64) model.Vector {
	return model.Vector{&model.Sample{Metric: model.Metric{}, Value: model.SampleValue(v)}}
}
