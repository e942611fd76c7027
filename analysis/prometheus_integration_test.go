package analysis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/false-systems/kulta/internal/testenv"
)

const (
	integrationNamespace = "shop"
	integrationWindow    = 10 * time.Second
	// oddService is a real label value that needs every escape: quote, brace, backslash.
	oddService = `odd"} {svc\`
)

// integrationEnv is a real Prometheus scraping the test application.
type integrationEnv struct {
	prom      *Prometheus
	errorRate MetricQuery
	latency   MetricQuery
}

func (e *integrationEnv) gather(t *testing.T, m MetricQuery, service string) Measurement {
	t.Helper()
	target := Target{Namespace: integrationNamespace, Rollout: "checkout", Service: service}
	return Gather(context.Background(), e.prom, m, target, time.Now())
}

// check gathers m for service and evaluates it once against spec.
func (e *integrationEnv) check(t *testing.T, spec ThresholdSpec, m MetricQuery, service string) (Verdict, Measurement) {
	t.Helper()
	meas := e.gather(t, m, service)
	v, _ := EvaluateThreshold(spec, meas, CheckState{})
	t.Logf("%s: %s/%s: %s", service, v.Result, v.Reason, v.Message)
	return v, meas
}

func TestPrometheusIntegration(t *testing.T) {
	start := time.Now()
	address := startIntegrationServer(t)
	t.Logf("Prometheus ready at %s after %s", address, time.Since(start).Round(time.Millisecond))

	env := &integrationEnv{}
	var err error
	if env.prom, err = NewPrometheus(address, WithTimeout(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	opts := BuiltinOptions{Window: integrationWindow}
	if env.errorRate, err = BuiltinMetric(MetricErrorRate, opts); err != nil {
		t.Fatal(err)
	}
	if env.latency, err = BuiltinMetric(MetricLatencyP95, opts); err != nil {
		t.Fatal(err)
	}
	env.waitForData(t)
	t.Logf("series queryable after %s", time.Since(start).Round(time.Millisecond))

	t.Run("healthy canary passes", env.testHealthyCanary)
	t.Run("failing canary fails", env.testFailingCanary)
	t.Run("zero errors with traffic pass", env.testCleanCanary)
	t.Run("no traffic is inconclusive", env.testNoTraffic)
	t.Run("canary compared with stable", env.testComparison)
	t.Run("label values are escaped", env.testEscaping)
	t.Run("user-defined queries", env.testUserQueries)
	t.Run("unreachable Prometheus never passes", testUnreachablePrometheus)
}

// waitForData waits until every trafficked service has a few seconds of scraped data. Most of
// the wait is Prometheus itself: target updates reach its scrape manager about five seconds
// after start.
func (e *integrationEnv) waitForData(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready := true
		for _, s := range integrationTraffic {
			if s.traffic.RPS == 0 {
				continue
			}
			// At least two seconds' worth of requests.
			m := e.gather(t, e.errorRate, s.service)
			if m.Outcome != OutcomeOK || float64(m.Samples) < 2*s.traffic.RPS {
				ready = false
			}
		}
		if ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no usable data within 30s; last stable measurement: %+v", e.gather(t, e.errorRate, "stable"))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (e *integrationEnv) testHealthyCanary(t *testing.T) {
	errorRate, m := e.check(t, ThresholdSpec{Metric: MetricErrorRate, Threshold: 5, MinSampleSize: 30}, e.errorRate, "canary-healthy")
	if errorRate.Result != ResultPass || m.Value > 2 || m.Samples < 400 {
		t.Errorf("error-rate: %s, measurement %+v", errorRate.Message, m)
	}
	latency, m := e.check(t, ThresholdSpec{Metric: MetricLatencyP95, Threshold: 500, MinSampleSize: 30}, e.latency, "canary-healthy")
	// Every request takes 20ms, in the (10ms, 25ms] bucket: the interpolated p95 is 24.25ms.
	if latency.Result != ResultPass || m.Value < 23 || m.Value > 25.5 {
		t.Errorf("latency-p95: %s, measurement %+v", latency.Message, m)
	}
	if all := Combine([]Verdict{errorRate, latency}); all.Result != ResultPass {
		t.Errorf("combined: %s", all.Message)
	}
}

func (e *integrationEnv) testFailingCanary(t *testing.T) {
	spec := ThresholdSpec{Metric: MetricErrorRate, Threshold: 5, FailureThreshold: 1}
	v, m := e.check(t, spec, e.errorRate, "canary-bad")
	if v.Result != ResultFail || v.Reason != ReasonThresholdExceeded {
		t.Fatalf("verdict %s/%s: %s", v.Result, v.Reason, v.Message)
	}
	if m.Value < 9 || m.Value > 11 || !m.Proportion || m.Events == 0 {
		t.Errorf("error rate %v (%d of %d), want about 10%%", m.Value, m.Events, m.Samples)
	}
	want := fmt.Sprintf("error-rate = %s (threshold at most 5, %d samples)", formatValue(m.Value), m.Samples)
	if !strings.Contains(v.Message, want) {
		t.Errorf("message %q does not contain %q", v.Message, want)
	}
	// 800ms responses land in the (0.5s, 1s] bucket: p95 = 975ms.
	latency, lm := e.check(t, ThresholdSpec{Metric: MetricLatencyP95, Threshold: 500}, e.latency, "canary-bad")
	if latency.Result != ResultFail || lm.Value < 950 || lm.Value > 1000 {
		t.Errorf("latency-p95: %s", latency.Message)
	}
	if all := Combine([]Verdict{v, latency}); all.Result != ResultFail {
		t.Errorf("combined: %s", all.Message)
	}
}

func (e *integrationEnv) testCleanCanary(t *testing.T) {
	// The clean canary never answered 5xx, so it has no error series at all.
	v, m := e.check(t, ThresholdSpec{Metric: MetricErrorRate, Threshold: 0}, e.errorRate, "canary-clean")
	if v.Result != ResultPass || m.Value != 0 || m.Events != 0 || m.Samples < 200 {
		t.Errorf("verdict %s: %s", v.Result, v.Message)
	}
}

func (e *integrationEnv) testNoTraffic(t *testing.T) {
	spec := ThresholdSpec{Metric: MetricErrorRate, Threshold: 5}
	tests := []struct {
		service string
		metric  MetricQuery
		want    Reason
	}{
		{"canary-idle", e.errorRate, ReasonNoTraffic},
		{"canary-idle", e.latency, ReasonNoTraffic},
		{"canary-none", e.errorRate, ReasonNoData},
		{"canary-none", e.latency, ReasonNoData},
	}
	for _, tt := range tests {
		v, _ := e.check(t, spec, tt.metric, tt.service)
		if v.Result != ResultInconclusive || v.Reason != tt.want {
			t.Errorf("%s %s: %s/%s, want Inconclusive/%s", tt.service, tt.metric.Name, v.Result, v.Reason, tt.want)
		}
	}
}

func (e *integrationEnv) testComparison(t *testing.T) {
	stable := Target{Namespace: integrationNamespace, Service: "stable"}
	for _, tt := range []struct {
		canary      string
		significant bool
	}{{"canary-bad", true}, {"canary-healthy", false}} {
		c := GatherComparison(context.Background(), e.prom, e.errorRate, stable,
			Target{Namespace: integrationNamespace, Service: tt.canary}, time.Now())
		z, err := c.ZTest(Greater)
		if err != nil {
			t.Fatalf("%s: %v", tt.canary, err)
		}
		t.Logf("stable %d/%d vs %s %d/%d: z = %.2f, p = %.3g", c.A.Events, c.A.Samples, tt.canary, c.B.Events, c.B.Samples, z.Z, z.PValue)
		if (z.PValue < 0.001) != tt.significant {
			t.Errorf("%s: p = %g, want significant = %v", tt.canary, z.PValue, tt.significant)
		}
	}
}

func (e *integrationEnv) testEscaping(t *testing.T) {
	// A label value with a quote, braces and a backslash selects exactly its own series.
	m := e.gather(t, e.errorRate, oddService)
	if m.Outcome != OutcomeOK || m.Value < 9 || m.Value > 11 {
		t.Errorf("odd service: %s %v (%v), query %s", m.Outcome, m.Value, m.Err, m.SampleQuery)
	}
	// Unescaped, this value would widen the selector to every service.
	for _, hostile := range []string{`x", service=~".+`, `stable"} or vector(1) #`, `canary-bad"}`} {
		m := e.gather(t, e.errorRate, hostile)
		if m.Outcome != OutcomeNoData {
			t.Errorf("service %q: %s %v (%v), want NoData; query %s", hostile, m.Outcome, m.Value, m.Err, m.SampleQuery)
		}
	}
}

func (e *integrationEnv) testUserQueries(t *testing.T) {
	spec := ThresholdSpec{Metric: "custom", Threshold: 5}
	successRate := MetricQuery{
		Name: "success-rate",
		Query: `100 * sum(increase(http_requests_total{namespace="{{.Namespace}}",service="{{.Service}}",code!~"5.."}[{{.Window}}]))` +
			` / sum(increase(http_requests_total{namespace="{{.Namespace}}",service="{{.Service}}"}[{{.Window}}]))`,
		SampleQuery: e.errorRate.SampleQuery,
		Window:      integrationWindow,
	}
	higher := ThresholdSpec{Metric: "success-rate", Threshold: 99, Direction: HigherIsBetter, MinSampleSize: 100}
	if v, _ := e.check(t, higher, successRate, "canary-healthy"); v.Result != ResultPass {
		t.Errorf("success rate of the healthy canary: %s", v.Message)
	}
	if v, _ := e.check(t, higher, successRate, "canary-bad"); v.Result != ResultFail {
		t.Errorf("success rate of the bad canary: %s", v.Message)
	}

	malformed, m := e.check(t, spec, MetricQuery{Name: "custom", Query: "sum(rate("}, "canary-healthy")
	var apiErr *promv1.Error
	if m.Outcome != OutcomeQueryError || !errors.As(m.Err, &apiErr) || apiErr.Type != promv1.ErrBadData ||
		!strings.Contains(malformed.Message, "bad_data") || !strings.Contains(malformed.Message, "parse error") {
		t.Errorf("malformed query: %s %v", m.Outcome, m.Err)
	}
	if malformed.Result != ResultInconclusive || malformed.Reason != ReasonQueryError {
		t.Errorf("malformed query verdict: %s/%s", malformed.Result, malformed.Reason)
	}

	perService := MetricQuery{Name: "custom", Window: integrationWindow,
		Query: `sum by (service) (increase(http_requests_total{namespace="{{.Namespace}}"}[{{.Window}}]))`}
	if v, m := e.check(t, spec, perService, "stable"); m.Outcome != OutcomeMultipleSeries || v.Reason != ReasonMultipleSeries {
		t.Errorf("several series: %s, %s", m.Outcome, v.Message)
	}

	for _, query := range []string{"0/0", "1/0", "-1/0"} {
		v, m := e.check(t, spec, MetricQuery{Name: "custom", Query: query}, "stable")
		if m.Outcome != OutcomeInvalidValue || v.Result != ResultInconclusive || v.Reason != ReasonInvalidValue {
			t.Errorf("%s: %s, %s/%s", query, m.Outcome, v.Result, v.Reason)
		}
	}
}

func testUnreachablePrometheus(t *testing.T) {
	prom, err := NewPrometheus(fmt.Sprintf("http://127.0.0.1:%d", testenv.FreePort(t)), WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m, err := BuiltinMetric(MetricErrorRate, BuiltinOptions{Window: integrationWindow})
	if err != nil {
		t.Fatal(err)
	}
	// A monitoring outage holds the check: never a pass, and, however long it lasts, never the
	// failure that would roll back a revision nothing is known about. The counters of earlier
	// checks survive it.
	spec := ThresholdSpec{Metric: MetricErrorRate, Threshold: 5, FailureThreshold: 2}
	state := CheckState{Failures: 1, Errors: 1}
	for check := 1; check <= 2*DefaultErrorLimit; check++ {
		meas := Gather(context.Background(), prom, m, Target{Namespace: integrationNamespace, Service: "stable"}, time.Now())
		if meas.Outcome != OutcomeUnavailable || !errors.Is(meas.Err, ErrQuery) {
			t.Fatalf("check %d: outcome %s (%v), want Unavailable", check, meas.Outcome, meas.Err)
		}
		var v Verdict
		v, state = EvaluateThreshold(spec, meas, state)
		if v.Result != ResultInconclusive || v.Reason != ReasonProviderUnavailable || !strings.Contains(v.Message, "connection refused") {
			t.Fatalf("check %d: %s/%s (%s), want Inconclusive/%s naming the cause", check, v.Result, v.Reason, v.Message, ReasonProviderUnavailable)
		}
		if state.Failures != 1 || state.Errors != 1 {
			t.Fatalf("check %d: counters %+v, want failures 1 and errors 1 kept", check, state)
		}
	}
}
