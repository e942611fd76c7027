package testenv

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// TrafficTick is how often a TrafficApp records the requests of the time that passed.
const TrafficTick = 100 * time.Millisecond

// Traffic is the synthetic load of one service.
type Traffic struct {
	// RPS is the number of requests per second. Zero keeps the service's series without adding
	// to them: a service that receives no traffic.
	RPS float64
	// ErrorRatio is the share of requests answered with a 5xx status (500 and 503 in turn),
	// from 0 to 1. The errors are spread evenly: with 0.1 every tenth request fails.
	ErrorRatio float64
	// Latency is how long every request takes, or with LatencySpread the middle of the range
	// the latencies are spread over.
	Latency time.Duration
	// LatencySpread, when above zero, spreads the latencies evenly over [Latency-LatencySpread,
	// Latency+LatencySpread] instead of giving every request Latency: the requests of a service
	// take, in turn, latencySteps+1 evenly spaced values from the lowest to the highest and then
	// start again, so that Latency is both their mean and their median and any stretch of
	// traffic longer than a few cycles has the same distribution. At most Latency.
	LatencySpread time.Duration
}

// latencySteps is how many equal steps LatencySpread divides its range into; the latencies of a
// service repeat every latencySteps+1 requests.
const latencySteps = 100

// latency is how long the request with index sent (from 0) of this traffic takes.
func (t Traffic) latency(sent int64) time.Duration {
	if t.LatencySpread <= 0 {
		return t.Latency
	}
	step := sent % (latencySteps + 1)
	return t.Latency - t.LatencySpread + time.Duration(step)*2*t.LatencySpread/latencySteps
}

// TrafficApp is an HTTP server on 127.0.0.1 exposing, on /metrics, the request metrics of
// synthetic services the way an instrumented application does: the counter
// http_requests_total{namespace,service,code} and the histogram
// http_request_duration_seconds{namespace,service} with the default buckets. These are the
// series KULTA's built-in error-rate and latency metrics query. It records each service's
// requests every TrafficTick, following what Set last said, until the test ends.
type TrafficApp struct {
	t         testing.TB
	requests  *prometheus.CounterVec
	durations *prometheus.HistogramVec
	server    *httptest.Server

	mu       sync.Mutex
	services map[serviceKey]*serviceLoad
}

// serviceKey names a service.
type serviceKey struct{ namespace, service string }

// serviceLoad is a service's traffic and how much of it has been recorded since it was set.
type serviceLoad struct {
	traffic Traffic
	ticks   int64 // ticks since the traffic was set
	sent    int64 // requests recorded since the traffic was set
	failed  int64 // of them answered with 5xx
}

// StartTrafficApp starts the metrics endpoint and the request generator; both stop when the
// test ends. No service has traffic until Set gives it some.
func StartTrafficApp(t testing.TB) *TrafficApp {
	t.Helper()
	registry := prometheus.NewRegistry()
	app := &TrafficApp{
		t: t,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", Help: "Requests served, by namespace, service and status code.",
		}, []string{"namespace", "service", "code"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds", Help: "Request latency, by namespace and service.", Buckets: prometheus.DefBuckets,
		}, []string{"namespace", "service"}),
		services: map[serviceKey]*serviceLoad{},
	}
	registry.MustRegister(app.requests, app.durations)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	app.server = httptest.NewServer(mux)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go app.generate(ctx, done)
	t.Cleanup(func() {
		cancel()
		<-done
		app.server.Close()
	})
	return app
}

// Set replaces the traffic of one service, from now on. The service's series appear at once
// with the value 0 (the 5xx ones only when ErrorRatio is above zero), so that Prometheus
// counts every request from the first scrape on. On a negative RPS, an ErrorRatio outside
// [0, 1] or a LatencySpread that is negative or larger than Latency, which are mistakes in the
// test, it fails the test. Call it from the test's goroutine.
func (a *TrafficApp) Set(namespace, service string, traffic Traffic) {
	a.t.Helper()
	if traffic.RPS < 0 || math.IsNaN(traffic.RPS) || math.IsInf(traffic.RPS, 0) {
		a.t.Fatalf("testenv: traffic of %s/%s: RPS %v is not a finite number of at least 0", namespace, service, traffic.RPS)
	}
	if !(traffic.ErrorRatio >= 0 && traffic.ErrorRatio <= 1) {
		a.t.Fatalf("testenv: traffic of %s/%s: ErrorRatio %v is not between 0 and 1", namespace, service, traffic.ErrorRatio)
	}
	if traffic.LatencySpread < 0 || traffic.LatencySpread > traffic.Latency {
		a.t.Fatalf("testenv: traffic of %s/%s: LatencySpread %s is not between 0 and Latency %s", namespace, service, traffic.LatencySpread, traffic.Latency)
	}
	a.requests.WithLabelValues(namespace, service, "200")
	if traffic.ErrorRatio > 0 {
		a.requests.WithLabelValues(namespace, service, "500")
		a.requests.WithLabelValues(namespace, service, "503")
	}
	a.durations.WithLabelValues(namespace, service)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.services[serviceKey{namespace, service}] = &serviceLoad{traffic: traffic}
}

// Target is the app's host:port, for a Prometheus scrape configuration.
func (a *TrafficApp) Target() string {
	return strings.TrimPrefix(a.server.URL, "http://")
}

// URL is the app's base URL; the metrics are at URL()+"/metrics".
func (a *TrafficApp) URL() string { return a.server.URL }

// generate records each TrafficTick's requests until ctx ends.
func (a *TrafficApp) generate(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	ticker := time.NewTicker(TrafficTick)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			a.tick()
		}
	}
}

// tick records the requests every service is due. The counts are kept exact over time: after
// n ticks a service has sent floor(n * RPS * tick) requests, of which floor(sent * ErrorRatio)
// failed, and request i took Traffic.latency(i).
func (a *TrafficApp) tick() {
	a.mu.Lock()
	defer a.mu.Unlock()
	perTick := TrafficTick.Seconds()
	for key, s := range a.services {
		s.ticks++
		due := int64(math.Floor(float64(s.ticks)*s.traffic.RPS*perTick + 1e-9))
		for ; s.sent < due; s.sent++ {
			code := "200"
			failed := int64(math.Floor(float64(s.sent+1)*s.traffic.ErrorRatio + 1e-9))
			if failed > s.failed {
				s.failed = failed
				code = "500"
				if failed%2 == 0 {
					code = "503"
				}
			}
			a.requests.WithLabelValues(key.namespace, key.service, code).Inc()
			a.durations.WithLabelValues(key.namespace, key.service).Observe(s.traffic.latency(s.sent).Seconds())
		}
	}
}
