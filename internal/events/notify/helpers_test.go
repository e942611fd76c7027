package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	. "github.com/onsi/gomega"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/events"
	"github.com/false-systems/kulta/internal/testutil"
)

const (
	testNamespace = "shop"
	testName      = "checkout"
	waitFor       = 5 * time.Second
	pollEvery     = 5 * time.Millisecond
)

// epoch is the time of decision at(0); decisions are whole seconds after it, as the API server
// stores them.
var epoch = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func at(sec int) metav1.Time { return metav1.NewTime(epoch.Add(time.Duration(sec) * time.Second)) }

// request is one call a receiver got, with the status it answered.
type request struct {
	Path   string
	Header http.Header
	Body   []byte
	Status int
}

// message decodes a generic webhook's body.
func (r request) message(t *testing.T) Message {
	t.Helper()
	var m Message
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is not a notify.Message: %v\n%s", err, r.Body)
	}
	return m
}

// receiver is a real loopback HTTP endpoint. respond picks the status and body of the n-th
// request (from 1); it may block, and should then also watch ctx, the request's context.
type receiver struct {
	server  *httptest.Server
	respond func(ctx context.Context, n int, req *http.Request) (int, string)
	arrived atomic.Int32
	mu      sync.Mutex
	done    []request
}

func newReceiver(t *testing.T, respond func(ctx context.Context, n int, req *http.Request) (int, string)) *receiver {
	t.Helper()
	r := &receiver{respond: respond}
	r.server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.server.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	n := int(r.arrived.Add(1))
	body, _ := io.ReadAll(req.Body)
	status, text := http.StatusOK, ""
	if r.respond != nil {
		status, text = r.respond(req.Context(), n, req)
	}
	r.mu.Lock()
	r.done = append(r.done, request{Path: req.URL.Path, Header: req.Header.Clone(), Body: body, Status: status})
	r.mu.Unlock()
	w.WriteHeader(status)
	_, _ = io.WriteString(w, text)
}

// URL is the receiver's address with path appended.
func (r *receiver) URL(path string) string { return r.server.URL + path }

// requests are the requests answered so far, in order.
func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.done...)
}

// delivered are the requests answered with a 2xx status.
func (r *receiver) delivered() []request {
	var out []request
	for _, req := range r.requests() {
		if req.Status/100 == 2 {
			out = append(out, req)
		}
	}
	return out
}

func (r *receiver) countDelivered() int { return len(r.delivered()) }

// gate makes a respond function: requests for which hold says so wait until release is
// closed (then 200) or the request is abandoned (then 503).
func gate(release <-chan struct{}, hold func(n int) bool) func(ctx context.Context, n int, req *http.Request) (int, string) {
	return func(ctx context.Context, n int, _ *http.Request) (int, string) {
		if !hold(n) {
			return http.StatusOK, ""
		}
		select {
		case <-release:
			return http.StatusOK, ""
		case <-ctx.Done():
			return http.StatusServiceUnavailable, ""
		}
	}
}

// writeFile writes content into a new file of the test's temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// loadConfig loads the YAML configuration text with LoadConfig.
func loadConfig(t *testing.T, text string) *Config {
	t.Helper()
	cfg, err := LoadConfig(writeFile(t, "notifications.yaml", text))
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	return cfg
}

// fastOptions retry quickly.
func fastOptions() Options {
	return Options{BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, MaxAttempts: 4, Timeout: 2 * time.Second}
}

// start creates a Notifier and runs it until the test ends (or stop is called).
func start(t *testing.T, cfg *Config, opts Options) (n *Notifier, stop func()) {
	t.Helper()
	n = New(cfg, opts)
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		_ = n.Start(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-finished:
			case <-time.After(waitFor):
				t.Error("Start did not return after its context ended")
			}
		})
	}
	t.Cleanup(stop)
	return n, stop
}

// rollout is shop/checkout, a canary at 20% of the traffic, with these annotations and
// decisions.
func rollout(annotations map[string]string, decisions ...kultav1alpha1.Decision) *kultav1alpha1.Rollout {
	ro := testutil.Rollout(testNamespace, testName)
	ro.Annotations = annotations
	ro.CreationTimestamp = metav1.NewTime(epoch.Add(-time.Hour))
	ro.Status = kultav1alpha1.RolloutStatus{
		Phase:                  kultav1alpha1.PhaseProgressing,
		Strategy:               kultav1alpha1.StrategyCanary,
		CurrentPodTemplateHash: "7d9f6c",
		StablePodTemplateHash:  "5c4b8a",
		CurrentWeight:          ptr.To[int32](20),
		Decisions:              decisions,
	}
	return ro
}

func subscribe(services string) map[string]string {
	return map[string]string{kultav1alpha1.NotifyAnnotation: services}
}

func decision(sec int, action kultav1alpha1.DecisionAction, reason, message string, from, to *int32) kultav1alpha1.Decision {
	return kultav1alpha1.Decision{Timestamp: at(sec), Action: action, Reason: reason, Message: message, FromStep: from, ToStep: to}
}

func step(i int32) *int32 { return ptr.To(i) }

// transition is the transition d of ro records.
func transition(t *testing.T, ro *kultav1alpha1.Rollout, d kultav1alpha1.Decision) events.Transition {
	t.Helper()
	kind, ok := events.KindOf(d)
	if !ok {
		t.Fatalf("decision %s/%s is not a transition", d.Action, d.Reason)
	}
	return events.Transition{Rollout: ro, Kind: kind, Decision: d, Time: d.Timestamp.Time}
}

// emitAll emits the transitions of ro's decisions at these indexes.
func emitAll(t *testing.T, n *Notifier, ro *kultav1alpha1.Rollout, indexes ...int) {
	t.Helper()
	for _, i := range indexes {
		n.Emit(transition(t, ro, ro.Status.Decisions[i]))
	}
}

// waitUpdates receives count events from n.Updates(), each naming shop/checkout.
func waitUpdates(t *testing.T, n *Notifier, count int) {
	t.Helper()
	for i := 0; i < count; i++ {
		select {
		case ev := <-n.Updates():
			if ev.Object.GetNamespace() != testNamespace || ev.Object.GetName() != testName {
				t.Fatalf("update names %s/%s, want %s/%s", ev.Object.GetNamespace(), ev.Object.GetName(), testNamespace, testName)
			}
		case <-time.After(waitFor):
			t.Fatalf("no update %d of %d from Updates()", i+1, count)
		}
	}
}

// noUpdate checks that Updates() stays quiet for a moment.
func noUpdate(t *testing.T, n *Notifier) {
	t.Helper()
	select {
	case ev := <-n.Updates():
		t.Fatalf("unexpected update for %s/%s", ev.Object.GetNamespace(), ev.Object.GetName())
	case <-time.After(100 * time.Millisecond):
	}
}

// expectCursor checks a cursor's time (a decision second) and count.
func expectCursor(g Gomega, got *kultav1alpha1.NotificationCursor, sec int, count int32) {
	g.Expect(got).NotTo(BeNil())
	want := at(sec)
	g.Expect(got.Time.Equal(&want)).To(BeTrue(), "cursor time %s, want %s", got.Time.UTC(), want.UTC())
	g.Expect(got.Count).To(Equal(count), "cursor count at %s", got.Time.UTC())
}

// cursorIs is expectCursor for Eventually.
func cursorIs(n *Notifier, ro *kultav1alpha1.Rollout, stored *kultav1alpha1.NotificationCursor, sec int, count int32) func(Gomega) {
	return func(g Gomega) { expectCursor(g, n.Cursor(ro, stored, nil), sec, count) }
}

// counted is the value of kulta_notifications_total for a service, type and result.
func counted(service string, typ ServiceType, result string) float64 {
	return promtest.ToFloat64(deliveries.WithLabelValues(service, string(typ), result))
}

// logBuffer collects what a logr.Logger writes.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.b.WriteString(prefix + " " + args + "\n")
	}, funcr.Options{})
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
