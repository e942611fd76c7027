package analysis

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/false-systems/kulta/internal/testenv"
)

// resettingApp serves http_requests_total for one service whose Pods restart: its counters grow
// by a fixed number of requests every tick and fall back to 0 when reset is called, as the
// counters of a restarted process do.
type resettingApp struct {
	mu               sync.Mutex
	requests, errors float64
	served, failed   float64 // everything ever counted, across resets
}

func (a *resettingApp) tick(requests, errors float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests += requests
	a.errors += errors
	a.served += requests
	a.failed += errors
}

func (a *resettingApp) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests, a.errors = 0, 0
}

func (a *resettingApp) totals() (served, failed float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.served, a.failed
}

func (a *resettingApp) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	a.mu.Lock()
	ok, failed := a.requests-a.errors, a.errors
	a.mu.Unlock()
	var b strings.Builder
	b.WriteString("# TYPE http_requests_total counter\n")
	fmt.Fprintf(&b, "http_requests_total{namespace=\"reset\",service=\"web\",code=\"200\"} %g\n", ok)
	fmt.Fprintf(&b, "http_requests_total{namespace=\"reset\",service=\"web\",code=\"500\"} %g\n", failed)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	if _, err := w.Write([]byte(b.String())); err != nil {
		return
	}
}

// A sequential check counts every request since the revision started, so a range that spans a
// restart of the revision's Pods must still count the requests before it: a real Prometheus'
// increase() adds the counters back up across the reset, where the difference of the counters
// would lose everything before it.
func TestPrometheusCountsAcrossCounterResets(t *testing.T) {
	app := &resettingApp{}
	// The first scrape, so that the series exist from a known value.
	q, errorRate := scrapedApp(t, app, "reset", 2)
	target := Target{Namespace: "reset", Rollout: "web", Service: "web"}

	start := time.Now()
	run := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			app.tick(100, 5) // 1,000 requests a second, 5 % of them failing
		}
	}
	run(8 * time.Second)
	app.reset()
	run(8 * time.Second)
	time.Sleep(2 * testenv.PrometheusScrapeInterval) // the last requests reach Prometheus
	now := time.Now()
	window, ok := CumulativeWindow(start, now, 10*time.Second)
	if !ok {
		t.Fatalf("window from %s to %s not filled", start, now)
	}
	errorRate.Window = window
	m := Gather(context.Background(), q, errorRate, target, now)
	served, failed := app.totals()
	t.Logf("served %g (%g failed); Prometheus counted %d (%d failed) over %s: %.2f%%", served, failed, m.Samples, m.Events, window, m.Value)
	if m.Outcome != OutcomeOK {
		t.Fatalf("outcome %s: %v", m.Outcome, m.Err)
	}
	// increase() extrapolates to the ends of the range, and the range starts up to a second
	// after the traffic and a scrape before its first sample, so allow a quarter either way;
	// losing the requests before the reset would lose half.
	if s := float64(m.Samples); s < 0.75*served || s > 1.25*served {
		t.Errorf("counted %d requests across the reset, want about %g", m.Samples, served)
	}
	if rate := m.Value; rate < 4 || rate > 6 {
		t.Errorf("error rate %.2f%% across the reset, want about 5%%", rate)
	}
}

// scrapedApp serves app's metrics to a Prometheus of its own and waits until it holds want
// series of http_requests_total in namespace. It returns a querier of that Prometheus and the
// built-in error-rate.
func scrapedApp(t *testing.T, app http.Handler, namespace string, want float64) (Querier, MetricQuery) {
	t.Helper()
	testenv.PrometheusBinary(t)
	server := httptest.NewServer(app)
	t.Cleanup(server.Close)
	prom := testenv.StartPrometheus(t, strings.TrimPrefix(server.URL, "http://"))
	q, err := NewPrometheus(prom.Address(), WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	errorRate, err := BuiltinMetric(MetricErrorRate, BuiltinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	count := fmt.Sprintf(`count(http_requests_total{namespace=%q})`, namespace)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		v, ok, err := prom.Query(context.Background(), count)
		if err == nil && ok && v == want {
			return q, errorRate
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached %v: %v %v", count, want, v, err)
		}
	}
}
