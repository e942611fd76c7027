package cdevents

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cdevents "github.com/cdevents/sdk-go/pkg/api"
	cdeventsv05 "github.com/cdevents/sdk-go/pkg/api/v05"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/events"
)

const (
	testNamespace = "shop"
	testName      = "checkout"
	rolloutURI    = "/apis/kulta.io/v1alpha1/namespaces/shop/rollouts/checkout"
	nginx128PURL  = "pkg:oci/nginx@1.28?repository_url=docker.io/library/nginx"
	nginx127PURL  = "pkg:oci/nginx@1.27?repository_url=docker.io/library/nginx"
)

// receiver is a real CloudEvents HTTP endpoint that answers each request with the status
// respond picks and records the events it accepted.
type receiver struct {
	server   *httptest.Server
	requests atomic.Int32
	respond  func(n int32) int
	mu       sync.Mutex
	events   []cloudevents.Event
}

func newReceiver(t *testing.T, respond func(n int32) int) *receiver {
	t.Helper()
	r := &receiver{respond: respond}
	r.server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.server.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	status := http.StatusOK
	if r.respond != nil {
		status = r.respond(r.requests.Add(1))
	} else {
		r.requests.Add(1)
	}
	if status/100 == 2 {
		ev, err := cehttp.NewEventFromHTTPRequest(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.events = append(r.events, *ev)
		r.mu.Unlock()
	}
	w.WriteHeader(status)
}

func (r *receiver) received() []cloudevents.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]cloudevents.Event(nil), r.events...)
}

func (r *receiver) waitFor(t *testing.T, n int) []cloudevents.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if got := r.received(); len(got) >= n {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("receiver got %d events, want %d", len(r.received()), n)
	return nil
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startSink creates and starts a Sink; it is stopped when the test ends.
func startSink(t *testing.T, opts Options) *Sink {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	go func() {
		if err := s.Start(context.Background()); err != nil {
			t.Errorf("Start: %v", err)
		}
	}()
	t.Cleanup(s.Stop)
	return s
}

func canaryRollout(image string) *kultav1alpha1.Rollout {
	return &kultav1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: testName},
		Spec: kultav1alpha1.RolloutSpec{
			Template: kultav1alpha1.PodTemplate{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}},
			Strategy: kultav1alpha1.RolloutStrategy{Canary: &kultav1alpha1.CanaryStrategy{CanaryService: "checkout-canary", StableService: "checkout-stable"}},
		},
		Status: kultav1alpha1.RolloutStatus{
			Strategy:               kultav1alpha1.StrategyCanary,
			Phase:                  kultav1alpha1.PhaseProgressing,
			StablePodTemplateHash:  "6f7c9d",
			CurrentPodTemplateHash: "8b5d4c",
		},
	}
}

var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// transition builds the transition decision action/reason records, at base plus seconds, with
// the Rollout at step and weight.
func transition(t *testing.T, ro *kultav1alpha1.Rollout, action kultav1alpha1.DecisionAction, reason string, seconds int, step, weight int32) events.Transition {
	t.Helper()
	ro = ro.DeepCopy()
	ro.Status.CurrentStepIndex = ptr.To(step)
	ro.Status.CurrentWeight = ptr.To(weight)
	d := kultav1alpha1.Decision{Timestamp: metav1.NewTime(base.Add(time.Duration(seconds) * time.Second)), Action: action, Reason: reason, Message: reason}
	kind, ok := events.KindOf(d)
	if !ok {
		t.Fatalf("decision %s/%s is no transition", action, reason)
	}
	return events.Transition{Rollout: ro, Kind: kind, Decision: d, Time: d.Timestamp.Time}
}

// parse reads a received CloudEvent back as a CDEvent and validates it against the schema.
func parse(t *testing.T, ev cloudevents.Event) cdevents.CDEventV04 {
	t.Helper()
	cd, err := cdeventsv05.NewFromJsonBytes(ev.Data())
	if err != nil {
		t.Fatalf("parsing CDEvent %s: %v", ev.Type(), err)
	}
	if err := cdevents.Validate(cd); err != nil {
		t.Fatalf("received CDEvent %s does not validate: %v", ev.Type(), err)
	}
	if cd.GetType().String() != ev.Type() {
		t.Errorf("CloudEvent type %s carries CDEvent %s", ev.Type(), cd.GetType())
	}
	return cd
}

func artifactID(cd cdevents.CDEventV04) string {
	switch e := cd.(type) {
	case *cdeventsv05.ServiceDeployedEvent:
		return e.Subject.Content.ArtifactId
	case *cdeventsv05.ServiceUpgradedEvent:
		return e.Subject.Content.ArtifactId
	case *cdeventsv05.ServiceRolledbackEvent:
		return e.Subject.Content.ArtifactId
	default:
		return ""
	}
}

func environmentID(cd cdevents.CDEventV04) string {
	var env *cdevents.Reference
	switch e := cd.(type) {
	case *cdeventsv05.ServiceDeployedEvent:
		env = e.Subject.Content.Environment
	case *cdeventsv05.ServiceUpgradedEvent:
		env = e.Subject.Content.Environment
	case *cdeventsv05.ServiceRolledbackEvent:
		env = e.Subject.Content.Environment
	case *cdeventsv05.ServicePublishedEvent:
		env = e.Subject.Content.Environment
	}
	if env == nil {
		return ""
	}
	return env.Id
}

type want struct {
	eventType string
	artifact  string // empty for service.published, which has none
	reason    string
}

func checkReceived(t *testing.T, got []cloudevents.Event, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("received %d events, want %d", len(got), len(wants))
	}
	for i, w := range wants {
		cd := parse(t, got[i])
		if cd.GetType().String() != w.eventType {
			t.Errorf("event %d: type %s, want %s", i, cd.GetType(), w.eventType)
		}
		if cd.GetSource() != rolloutURI || cd.GetSubjectId() != rolloutURI || got[i].Source() != rolloutURI {
			t.Errorf("event %d: source %q, subject id %q, CloudEvent source %q; want %q", i, cd.GetSource(), cd.GetSubjectId(), got[i].Source(), rolloutURI)
		}
		if a := artifactID(cd); a != w.artifact {
			t.Errorf("event %d: artifact id %q, want %q", i, a, w.artifact)
		}
		if env := environmentID(cd); env != testNamespace {
			t.Errorf("event %d: environment id %q, want %q", i, env, testNamespace)
		}
		var data CustomData
		if err := cd.GetCustomDataAs(&data); err != nil {
			t.Fatalf("event %d: custom data: %v", i, err)
		}
		if data.Reason != w.reason || data.Strategy != "canary" {
			t.Errorf("event %d: custom data %+v, want reason %s and strategy canary", i, data, w.reason)
		}
	}
}

func TestCanaryToCompletion(t *testing.T) {
	r := newReceiver(t, nil)
	s := startSink(t, Options{URL: r.server.URL})
	ro := canaryRollout("nginx:1.28")
	for _, tr := range []events.Transition{
		transition(t, ro, kultav1alpha1.ActionInitialize, "NewRevision", 0, 0, 0),
		transition(t, ro, kultav1alpha1.ActionStepAdvance, "WeightReached", 10, 1, 20),
		transition(t, ro, kultav1alpha1.ActionPause, "PauseStarted", 11, 1, 20),
		transition(t, ro, kultav1alpha1.ActionStepAdvance, "ManualPromotion", 60, 2, 50),
		transition(t, ro, kultav1alpha1.ActionComplete, "AllStepsCompleted", 90, 2, 100),
	} {
		s.Emit(tr)
	}
	got := r.waitFor(t, 4)
	s.Stop()
	checkReceived(t, r.received(), []want{
		{cdeventsv05.ServiceDeployedEventType.String(), nginx128PURL, "NewRevision"},
		{cdeventsv05.ServiceUpgradedEventType.String(), nginx128PURL, "WeightReached"},
		{cdeventsv05.ServiceUpgradedEventType.String(), nginx128PURL, "ManualPromotion"},
		{cdeventsv05.ServicePublishedEventType.String(), "", "AllStepsCompleted"},
	})
	if !parse(t, got[1]).GetTimestamp().Equal(base.Add(10 * time.Second)) {
		t.Errorf("timestamp %s, want the decision's", parse(t, got[1]).GetTimestamp())
	}
	if st := s.Stats(); st != (Stats{Sent: 4}) {
		t.Errorf("stats %+v, want 4 sent", st)
	}
}

func TestRollback(t *testing.T) {
	r := newReceiver(t, nil)
	s := startSink(t, Options{URL: r.server.URL})
	ro := canaryRollout("nginx:1.28")
	rollback := transition(t, ro, kultav1alpha1.ActionRollback, "AnalysisFailed", 30, 1, 0)
	rollback.Rollout.Status.Phase = kultav1alpha1.PhaseFailed
	rollback.StableImage = "nginx:1.27"
	s.Emit(transition(t, ro, kultav1alpha1.ActionInitialize, "NewRevision", 0, 0, 0))
	s.Emit(transition(t, ro, kultav1alpha1.ActionStepAdvance, "WeightReached", 10, 1, 20))
	s.Emit(rollback)
	r.waitFor(t, 3)
	s.Stop()
	checkReceived(t, r.received(), []want{
		{cdeventsv05.ServiceDeployedEventType.String(), nginx128PURL, "NewRevision"},
		{cdeventsv05.ServiceUpgradedEventType.String(), nginx128PURL, "WeightReached"},
		{cdeventsv05.ServiceRolledbackEventType.String(), nginx127PURL, "AnalysisFailed"},
	})
}

func TestRetriesUntilAccepted(t *testing.T) {
	r := newReceiver(t, func(n int32) int {
		if n <= 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	s := startSink(t, Options{URL: r.server.URL, BackoffBase: time.Millisecond, BackoffMax: 10 * time.Millisecond})
	s.Emit(transition(t, canaryRollout("nginx:1.28"), kultav1alpha1.ActionInitialize, "NewRevision", 0, 0, 0))
	r.waitFor(t, 1)
	s.Stop()
	checkReceived(t, r.received(), []want{{cdeventsv05.ServiceDeployedEventType.String(), nginx128PURL, "NewRevision"}})
	if n := r.requests.Load(); n != 4 {
		t.Errorf("receiver saw %d requests, want 3 refused and 1 accepted", n)
	}
	if st := s.Stats(); st != (Stats{Sent: 1}) {
		t.Errorf("stats %+v, want 1 sent", st)
	}
}

func TestRejectedAndInvalidEventsAreNotRetried(t *testing.T) {
	r := newReceiver(t, func(int32) int { return http.StatusBadRequest })
	s := startSink(t, Options{URL: r.server.URL, BackoffBase: time.Millisecond})
	typ := cdeventsv05.ServiceDeployedEventType.String()
	failedBefore := testutil.ToFloat64(failedTotal.WithLabelValues(typ))
	s.Emit(transition(t, canaryRollout("nginx:1.28"), kultav1alpha1.ActionInitialize, "NewRevision", 0, 0, 0))
	s.Emit(transition(t, canaryRollout(""), kultav1alpha1.ActionInitialize, "NewRevision", 1, 0, 0)) // no image: no valid artifact id
	s.Emit(transition(t, canaryRollout("nginx:1.28"), kultav1alpha1.ActionPause, "PauseStarted", 2, 0, 0))
	waitUntil(t, func() bool { return s.Stats().Failed == 2 })
	s.Stop()
	if n := r.requests.Load(); n != 1 {
		t.Errorf("receiver saw %d requests, want 1 (a 400 is not retried, an invalid event not sent)", n)
	}
	if st := s.Stats(); st != (Stats{Failed: 2}) {
		t.Errorf("stats %+v, want 2 failed and the pause ignored", st)
	}
	if d := testutil.ToFloat64(failedTotal.WithLabelValues(typ)) - failedBefore; d != 2 {
		t.Errorf("kulta_cdevents_failed_total{type=%q} grew by %v, want 2", typ, d)
	}
}

// TestEmitNeverBlocks measures Emit against a receiver that is down or slow: 100 calls must
// return at once, and what does not fit in the queue is dropped and counted.
func TestEmitNeverBlocks(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// Reading the body lets the server notice when the client gives up.
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
		select {
		case <-time.After(2 * time.Second):
		case <-req.Context().Done():
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(slow.Close)
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	down := "http://" + listener.Addr().String()
	if err := listener.Close(); err != nil {
		t.Fatalf("closing listener: %v", err)
	}
	for name, url := range map[string]string{"down": down, "slow": slow.URL} {
		t.Run(name, func(t *testing.T) { checkEmitNeverBlocks(t, url) })
	}
}

func checkEmitNeverBlocks(t *testing.T, url string) {
	const emits, queueSize = 100, 10
	s := startSink(t, Options{URL: url, QueueSize: queueSize, BackoffBase: 50 * time.Millisecond, FlushTimeout: 200 * time.Millisecond})
	tr := transition(t, canaryRollout("nginx:1.28"), kultav1alpha1.ActionStepAdvance, "WeightReached", 0, 1, 20)
	droppedBefore := testutil.ToFloat64(droppedTotal)
	s.Emit(tr)
	// The worker takes the first event off the queue and is stuck with it.
	for deadline := time.Now().Add(5 * time.Second); len(s.queue) > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the worker never took the first event")
		}
	}
	start := time.Now()
	for range emits {
		s.Emit(tr)
	}
	elapsed := time.Since(start)
	t.Logf("%d Emit calls took %s (%s each)", emits, elapsed, elapsed/emits)
	if elapsed > 200*time.Millisecond {
		t.Errorf("%d Emit calls took %s, want well under 200ms", emits, elapsed)
	}
	if st := s.Stats(); st.Dropped != emits-queueSize {
		t.Errorf("dropped %d, want the %d beyond the queue of %d", st.Dropped, emits-queueSize, queueSize)
	}
	if d := testutil.ToFloat64(droppedTotal) - droppedBefore; d != emits-queueSize {
		t.Errorf("kulta_cdevents_dropped_total grew by %v, want %d", d, emits-queueSize)
	}
	stopStart := time.Now()
	s.Stop()
	if d := time.Since(stopStart); d > 1500*time.Millisecond {
		t.Errorf("Stop took %s, want about FlushTimeout (200ms)", d)
	}
	if st := s.Stats(); st.Sent != 0 || st.Sent+st.Failed+st.Dropped != emits+1 {
		t.Errorf("stats %+v: want nothing sent and all %d events accounted for", st, emits+1)
	}
}
