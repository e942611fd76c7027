package analysis

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/false-systems/kulta/internal/testenv"
)

// countingApp serves http_requests_total for services whose counters start when they are first
// ticked, as a Prometheus client's labelled counters do: a service has no series before its
// first request, and its 500 series appears with its first error.
type countingApp struct {
	mu       sync.Mutex
	ok, five map[string]float64
	// scrapes records what each scrape read of the service named watched, once it has a series.
	watched string
	scrapes []scrape
}

// scrape is what one scrape read of a service's counters, and when.
type scrape struct {
	at           time.Time
	served, five float64
}

func (a *countingApp) tick(service string, ok, failed float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ok[service] += ok
	if failed > 0 {
		a.five[service] += failed
	}
}

func (a *countingApp) counts(service string) (served, failed float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ok[service] + a.five[service], a.five[service]
}

func (a *countingApp) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	var b strings.Builder
	b.WriteString("# TYPE http_requests_total counter\n")
	a.mu.Lock()
	services := make([]string, 0, len(a.ok))
	for s := range a.ok {
		services = append(services, s)
	}
	sort.Strings(services)
	for _, s := range services {
		fmt.Fprintf(&b, "http_requests_total{namespace=\"exact\",service=%q,code=\"200\"} %g\n", s, a.ok[s])
		if n, ok := a.five[s]; ok {
			fmt.Fprintf(&b, "http_requests_total{namespace=\"exact\",service=%q,code=\"500\"} %g\n", s, n)
		}
	}
	if _, ok := a.ok[a.watched]; ok {
		a.scrapes = append(a.scrapes, scrape{at: time.Now(), served: a.ok[a.watched] + a.five[a.watched], five: a.five[a.watched]})
	}
	a.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	if _, err := w.Write([]byte(b.String())); err != nil {
		return
	}
}

// The built-in metrics take as their number of trials the requests their samples show, never
// more: increase() stretches a series' growth out to the window's edges, on a young revision's
// first look (a window of two scrapes) to twice it, and a sequential test would take that as
// twice the evidence. The proportion stays increase()'s, whose windows line up across series.
func TestPrometheusCountsExactly(t *testing.T) {
	app := &countingApp{ok: map[string]float64{}, five: map[string]float64{}}
	app.tick("old", 100, 0) // a revision serving before the window: its series exist
	q, errorRate := scrapedApp(t, app, "exact", 1)

	// Both services take 1,000 requests a second, 5 % failing, for 8 s; "new" has no series
	// before, and the 500 series of both appear with the first tick.
	start := time.Now()
	for end := start.Add(8 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		app.tick("old", 95, 5)
		app.tick("new", 95, 5)
	}
	time.Sleep(2 * testenv.PrometheusScrapeInterval) // the last requests reach Prometheus
	// The window starts at start exactly: the query is evaluated a whole number of seconds on.
	window := time.Since(start).Truncate(time.Second)
	now := start.Add(window)
	errorRate.Window = window

	gather := func(service string) Measurement {
		t.Helper()
		m := Gather(context.Background(), q, errorRate, Target{Namespace: "exact", Rollout: service, Service: service}, now)
		if m.Outcome != OutcomeOK {
			t.Fatalf("%s: outcome %s: %v", service, m.Outcome, m.Err)
		}
		return m
	}

	// A series born in the window: its samples show every request from 0, and increase(),
	// which extrapolates back only as far as the counter's zero, estimates a little fewer. The
	// trials are the smaller count, never more than were served.
	served, _ := app.counts("new")
	m := gather("new")
	t.Logf("new: served %g; counted %d (%d failed, %.3g%%), estimated %d, over %s", served, m.Samples, m.Events, m.Value, m.Estimated, window)
	if float64(m.Samples) > served || float64(m.Samples) < served-1500 || m.Value < 4.5 || m.Value > 5.5 {
		t.Errorf("new: counted %d requests at %.3g%%; want at most %g, at least %g, at 5%%", m.Samples, m.Value, served, served-1500)
	}
	// "old"'s 200 series had samples before the window: it counts from its first sample in
	// the window, which leaves out at most a scrape interval's requests (1,000 here, with a
	// second for a late scrape), never adds any; the rate is the window's 5 %.
	served, _ = app.counts("old")
	served -= 100 // those before the window
	m = gather("old")
	t.Logf("old: served %g in the window; counted %d (%d failed), %.3g%%", served, m.Samples, m.Events, m.Value)
	if float64(m.Samples) > served || float64(m.Samples) < served-2000 || m.Value < 4.5 || m.Value > 5.5 {
		t.Errorf("old: counted %d requests at %.3g%%; want at most %g requests, at least %g, at 5%%",
			m.Samples, m.Value, served, served-2000)
	}

	// A young revision's first look: its series born a few scrapes ago, looked at over a 2 s
	// window while its traffic goes on. The window is placed half a second after a scrape, so
	// that no sample lies near its edges, and the count is exactly what the scrapes in it read:
	// the last less the first, the series having had a sample before the window. increase()
	// reports about twice that, the one scrape interval it saw stretched over the 2 s.
	app.mu.Lock()
	app.watched = "young"
	app.mu.Unlock()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				app.tick("young", 95, 5)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	time.Sleep(3500 * time.Millisecond)
	app.mu.Lock()
	scrapes := append([]scrape(nil), app.scrapes...)
	app.mu.Unlock()
	if len(scrapes) < 3 {
		t.Fatalf("young: %d scrapes in 3.5s, want at least 3", len(scrapes))
	}
	looked := scrapes[len(scrapes)-1].at.Add(500 * time.Millisecond)
	from := looked.Add(-2 * time.Second)
	var in []scrape
	before := false
	for _, sc := range scrapes {
		if d := sc.at.Sub(from); d > -100*time.Millisecond && d < 100*time.Millisecond {
			t.Fatalf("young: a scrape at %s lies within 100ms of the window's start %s; scrapes %v", sc.at, from, scrapes)
		}
		if sc.at.After(from) {
			in = append(in, sc)
		} else {
			before = true
		}
	}
	want, wantFailed := in[len(in)-1].served, in[len(in)-1].five
	if before {
		want, wantFailed = want-in[0].served, wantFailed-in[0].five
	}
	// The look waits for the scrape after it, so that Prometheus holds every sample it reads.
	time.Sleep(time.Until(looked.Add(testenv.PrometheusScrapeInterval)))
	errorRate.Window = 2 * time.Second
	m = Gather(context.Background(), q, errorRate, Target{Namespace: "exact", Rollout: "young", Service: "young"}, looked)
	t.Logf("young: %d scrapes in the window (a sample before it: %t); counted %d (%d failed), want %g (%g)", len(in), before, m.Samples, m.Events, want, wantFailed)
	if m.Outcome != OutcomeOK {
		t.Fatalf("young: outcome %s: %v", m.Outcome, m.Err)
	}
	if float64(m.Samples) != want || math.Abs(float64(m.Events)-wantFailed) > 1 {
		t.Errorf("young: counted %d requests, %d failed; want exactly %g, and %g failed within 1", m.Samples, m.Events, want, wantFailed)
	}
	if m.Estimated < m.Samples*3/2 {
		t.Errorf("young: increase() estimated %d requests against %d observed; the look no longer shows what the observed count is for", m.Estimated, m.Samples)
	}
}
