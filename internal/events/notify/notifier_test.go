package notify

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// lifecycle is shop/checkout going through start, a step, an analysis failure with rollback,
// a retry and completion, a decision a second apart.
func lifecycle(annotations map[string]string) *kultav1alpha1.Rollout {
	return rollout(annotations,
		decision(1, kultav1alpha1.ActionInitialize, "NewRevision", "New revision 7d9f6c", nil, step(0)),
		decision(2, kultav1alpha1.ActionStepAdvance, "StepComplete", "setWeight 20 reached", step(0), step(1)),
		decision(3, kultav1alpha1.ActionRollback, "AnalysisFailed", "error-rate 0.12 > 0.05", step(1), nil),
		decision(4, kultav1alpha1.ActionResume, "Retry", "Retry requested", nil, step(0)),
		decision(5, kultav1alpha1.ActionComplete, "Completed", "", step(1), nil),
	)
}

// triggersReceived are the triggers of the messages a generic webhook receiver accepted.
func triggersReceived(t *testing.T, recv *receiver) []Trigger {
	t.Helper()
	var out []Trigger
	for _, req := range recv.delivered() {
		out = append(out, req.message(t).Trigger)
	}
	return out
}

func TestOnlySubscribedServicesAreNotified(t *testing.T) {
	g := NewWithT(t)
	a, b, c := newReceiver(t, nil), newReceiver(t, nil), newReceiver(t, nil)
	cfg := loadConfig(t, fmt.Sprintf(`
services:
- {name: sub-a, type: webhook, url: %q}
- {name: sub-b, type: webhook, url: %q}
- {name: sub-c, type: webhook, url: %q, triggers: [completed]}
`, a.URL("/a"), b.URL("/b"), c.URL("/c")))
	n, _ := start(t, cfg, fastOptions())

	ro := lifecycle(subscribe(" sub-a , sub-c "))
	emitAll(t, n, ro, 0, 1, 2, 3, 4)

	// Each queue is delivered in order: once the last transition is in, so is everything before.
	g.Eventually(a.countDelivered).WithTimeout(waitFor).WithPolling(pollEvery).Should(Equal(5))
	g.Expect(triggersReceived(t, a)).To(Equal([]Trigger{Started, StepAdvanced, AnalysisFailed, Started, Completed}))
	// sub-c's own triggers keep only the completion.
	g.Eventually(c.countDelivered).WithTimeout(waitFor).WithPolling(pollEvery).Should(Equal(1))
	g.Expect(triggersReceived(t, c)).To(Equal([]Trigger{Completed}))
	// sub-b is configured but not subscribed to: nothing queued, nothing sent.
	g.Expect(n.queues["sub-b"]).To(BeEmpty())
	g.Consistently(func() int { return len(b.requests()) }).WithTimeout(100 * time.Millisecond).Should(BeZero())
	g.Expect(len(c.requests())).To(Equal(1))
}

func TestNotifyOnAnnotationFilters(t *testing.T) {
	g := NewWithT(t)
	recv := newReceiver(t, nil)
	cfg := loadConfig(t, fmt.Sprintf(`
services:
- {name: on-filter, type: webhook, url: %q}
`, recv.URL("/w")))
	n, _ := start(t, cfg, fastOptions())

	ro := lifecycle(map[string]string{
		kultav1alpha1.NotifyAnnotation:   "on-filter",
		kultav1alpha1.NotifyOnAnnotation: "rolled-back, completed",
	})
	emitAll(t, n, ro, 0, 1, 2, 3, 4)

	g.Eventually(recv.countDelivered).WithTimeout(waitFor).WithPolling(pollEvery).Should(Equal(2))
	got := recv.delivered()
	// The rollback after a failed analysis matches rolled-back; its most specific trigger leads.
	rollback := got[0].message(t)
	g.Expect(rollback.Triggers).To(Equal([]Trigger{AnalysisFailed, RolledBack}))
	g.Expect(got[1].message(t).Trigger).To(Equal(Completed))
	g.Expect(recv.requests()).To(HaveLen(2))
}

func TestAnalysisFailedRollbackTriggers(t *testing.T) {
	g := NewWithT(t)
	failed := newReceiver(t, nil)
	rolled := newReceiver(t, nil)
	cfg := loadConfig(t, fmt.Sprintf(`
services:
- {name: only-analysis, type: webhook, url: %q, triggers: [analysis-failed]}
- {name: only-rollback, type: webhook, url: %q, triggers: [rolled-back]}
`, failed.URL("/f"), rolled.URL("/r")))
	n, _ := start(t, cfg, fastOptions())

	ro := rollout(subscribe("only-analysis,only-rollback"),
		decision(3, kultav1alpha1.ActionRollback, "AnalysisFailed", "error-rate 0.12 > 0.05", step(1), nil),
		decision(9, kultav1alpha1.ActionRollback, "ManualRollback", "kulta.io/rollback", step(1), nil),
	)
	g.Expect(triggersOf(transition(t, ro, ro.Status.Decisions[0]))).To(Equal([]Trigger{AnalysisFailed, RolledBack}))
	g.Expect(triggersOf(transition(t, ro, ro.Status.Decisions[1]))).To(Equal([]Trigger{RolledBack}))
	emitAll(t, n, ro, 0, 1)

	g.Eventually(rolled.countDelivered).WithTimeout(waitFor).WithPolling(pollEvery).Should(Equal(2))
	g.Eventually(failed.countDelivered).WithTimeout(waitFor).WithPolling(pollEvery).Should(Equal(1))
	m := failed.delivered()[0].message(t)
	g.Expect(m.Trigger).To(Equal(AnalysisFailed))
	g.Expect(m.Triggers).To(Equal([]Trigger{AnalysisFailed, RolledBack}))
	g.Expect(m.Reason).To(Equal("AnalysisFailed"))
	g.Expect(m.Summary).To(Equal("analysis of revision 7d9f6c failed: error-rate 0.12 > 0.05"))
	g.Consistently(func() int { return len(failed.requests()) }).WithTimeout(100 * time.Millisecond).Should(Equal(1))
}

func TestUnknownServiceIsSkippedAndCounted(t *testing.T) {
	g := NewWithT(t)
	recv := newReceiver(t, nil)
	var logs logBuffer
	cfg := loadConfig(t, fmt.Sprintf(`
services:
- {name: known-svc, type: slack, url: %q}
`, recv.URL("/s")))
	opts := fastOptions()
	opts.Logger = logs.logger()
	n, _ := start(t, cfg, opts)
	before := counted("ghost-svc", "unknown", "unknown-service")

	ro := stepAdvanced("ghost-svc,known-svc")
	emitAll(t, n, ro, 1)

	g.Eventually(recv.countDelivered).WithTimeout(waitFor).WithPolling(pollEvery).Should(Equal(1))
	g.Expect(counted("ghost-svc", "unknown", "unknown-service")).To(Equal(before + 1))
	g.Expect(logs.String()).To(ContainSubstring("ghost-svc"))
	// The unknown service holds nothing back: the cursor passes the delivered decision.
	waitUpdates(t, n, 1)
	expectCursor(g, n.Cursor(ro, &kultav1alpha1.NotificationCursor{Time: at(0), Count: 1}, nil), 10, 1)
}

func TestRetriedUntilDelivered(t *testing.T) {
	g := NewWithT(t)
	recv := newReceiver(t, func(_ context.Context, n int, _ *http.Request) (int, string) {
		if n <= 2 {
			return http.StatusServiceUnavailable, "try later"
		}
		return http.StatusOK, ""
	})
	cfg := loadConfig(t, fmt.Sprintf(`
services:
- {name: retry-ok, type: webhook, url: %q}
`, recv.URL("/w")))
	n, _ := start(t, cfg, Options{BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, MaxAttempts: 4})
	retried, delivered, failed := counted("retry-ok", Webhook, "retried"), counted("retry-ok", Webhook, "delivered"), counted("retry-ok", Webhook, "failed")

	emitAll(t, n, stepAdvanced("retry-ok"), 1)

	waitUpdates(t, n, 1)
	g.Expect(recv.countDelivered()).To(Equal(1))
	g.Expect(recv.requests()).To(HaveLen(3))
	g.Expect(counted("retry-ok", Webhook, "retried")).To(Equal(retried + 2))
	g.Expect(counted("retry-ok", Webhook, "delivered")).To(Equal(delivered + 1))
	g.Expect(counted("retry-ok", Webhook, "failed")).To(Equal(failed))
	g.Consistently(func() int { return len(recv.requests()) }).WithTimeout(100 * time.Millisecond).Should(Equal(3))
}

func TestClientErrorIsNotRetried(t *testing.T) {
	g := NewWithT(t)
	recv := newReceiver(t, func(context.Context, int, *http.Request) (int, string) {
		return http.StatusBadRequest, "invalid_payload"
	})
	var logs logBuffer
	cfg := loadConfig(t, fmt.Sprintf(`
services:
- {name: bad-request, type: slack, url: %q}
`, recv.URL("/s")))
	opts := Options{BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, MaxAttempts: 4, Logger: logs.logger()}
	n, _ := start(t, cfg, opts)
	retried, delivered, failed := counted("bad-request", Slack, "retried"), counted("bad-request", Slack, "delivered"), counted("bad-request", Slack, "failed")

	ro := stepAdvanced("bad-request")
	emitAll(t, n, ro, 1)

	// Given up is done too: the decision no longer holds the cursor.
	waitUpdates(t, n, 1)
	g.Expect(counted("bad-request", Slack, "failed")).To(Equal(failed + 1))
	g.Expect(counted("bad-request", Slack, "retried")).To(Equal(retried))
	g.Expect(counted("bad-request", Slack, "delivered")).To(Equal(delivered))
	g.Expect(recv.requests()).To(HaveLen(1))
	g.Expect(logs.String()).To(ContainSubstring("Notification not delivered"))
	g.Expect(logs.String()).To(ContainSubstring("HTTP 400"))
	expectCursor(g, n.Cursor(ro, &kultav1alpha1.NotificationCursor{Time: at(0), Count: 1}, nil), 10, 1)
	g.Consistently(func() int { return len(recv.requests()) }).WithTimeout(100 * time.Millisecond).Should(Equal(1))
}

func TestNoAnswerIsRetriedThenGivenUp(t *testing.T) {
	g := NewWithT(t)
	recv := newReceiver(t, func(ctx context.Context, _ int, _ *http.Request) (int, string) {
		<-ctx.Done() // never answers; the client gives up
		return http.StatusOK, ""
	})
	var logs logBuffer
	cfg := loadConfig(t, fmt.Sprintf(`
services:
- {name: no-answer, type: teams, url: %q}
`, recv.URL("/t")))
	opts := Options{BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, MaxAttempts: 4, Timeout: 100 * time.Millisecond, Logger: logs.logger()}
	n, _ := start(t, cfg, opts)
	retried, delivered, failed := counted("no-answer", Teams, "retried"), counted("no-answer", Teams, "delivered"), counted("no-answer", Teams, "failed")

	began := time.Now()
	emitAll(t, n, stepAdvanced("no-answer"), 1)

	waitUpdates(t, n, 1)
	g.Expect(time.Since(began)).To(BeNumerically(">=", 4*100*time.Millisecond), "each attempt waits for the timeout")
	g.Expect(counted("no-answer", Teams, "retried")).To(Equal(retried + 3))
	g.Expect(counted("no-answer", Teams, "failed")).To(Equal(failed + 1))
	g.Expect(counted("no-answer", Teams, "delivered")).To(Equal(delivered))
	g.Eventually(func() int { return int(recv.arrived.Load()) }).WithTimeout(waitFor).WithPolling(pollEvery).Should(Equal(4))
	g.Expect(logs.String()).To(ContainSubstring("after 4 attempts"))
	g.Expect(logs.String()).To(ContainSubstring("no answer"))
}

func TestSecretsStayOutOfLogsAndMetrics(t *testing.T) {
	g := NewWithT(t)
	const (
		token      = "tok-S3cr3tBearerValue"
		secretPath = "/services/T0SECRET/B0SECRET/pathsecret42"
	)
	recv := newReceiver(t, func(_ context.Context, _ int, req *http.Request) (int, string) {
		// A careless receiver echoes what it was sent.
		return http.StatusInternalServerError, "cannot post to " + req.URL.Path + " with " + req.Header.Get("Authorization") + " (" + req.RequestURI + ")"
	})
	// A service whose receiver is gone: the transport error must not show the URL either.
	gone := newReceiver(t, nil)
	gone.server.Close()

	urlFile := writeFile(t, "url", recv.URL(secretPath)+"\n")
	goneURLFile := writeFile(t, "gone-url", gone.URL("/hooks/GONESECRET/pathsecret43"))
	tokenFile := writeFile(t, "token", token+"\n")
	var logs logBuffer
	cfg := loadConfig(t, fmt.Sprintf(`
services:
- {name: secret-hook, type: webhook, urlFile: %q, tokenFile: %q}
- {name: secret-gone, type: slack, urlFile: %q}
`, urlFile, tokenFile, goneURLFile))
	opts := Options{BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, MaxAttempts: 2, Logger: logs.logger()}
	n, _ := start(t, cfg, opts)
	failedHook, failedGone := counted("secret-hook", Webhook, "failed"), counted("secret-gone", Slack, "failed")

	emitAll(t, n, stepAdvanced("secret-hook,secret-gone"), 1)

	g.Eventually(func() float64 { return counted("secret-hook", Webhook, "failed") }).WithTimeout(waitFor).WithPolling(pollEvery).Should(Equal(failedHook + 1))
	g.Eventually(func() float64 { return counted("secret-gone", Slack, "failed") }).WithTimeout(waitFor).WithPolling(pollEvery).Should(Equal(failedGone + 1))

	reqs := recv.requests()
	g.Expect(reqs).To(HaveLen(2))
	for _, req := range reqs {
		g.Expect(req.Path).To(Equal(secretPath))
		g.Expect(req.Header.Get("Authorization")).To(Equal("Bearer " + token))
	}

	out := logs.String()
	g.Expect(out).To(ContainSubstring("Notification not delivered"))
	g.Expect(out).To(ContainSubstring("HTTP 500"))
	g.Expect(out).To(ContainSubstring("secret-hook"))
	g.Expect(out).To(ContainSubstring("secret-gone"))
	secrets := []string{token, secretPath, "T0SECRET", "pathsecret42", "GONESECRET", "pathsecret43", recv.server.URL, gone.server.URL}
	for _, s := range secrets {
		g.Expect(out).NotTo(ContainSubstring(s), "the log shows a secret")
	}

	families, err := ctrlmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	seen := 0
	for _, mf := range families {
		if !strings.HasPrefix(mf.GetName(), "kulta_notification") {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				seen++
				for _, s := range append(secrets, "http://", "127.0.0.1") {
					g.Expect(l.GetValue()).NotTo(ContainSubstring(s), "metric %s label %s shows a secret", mf.GetName(), l.GetName())
				}
			}
		}
	}
	g.Expect(seen).To(BeNumerically(">", 0), "no notification metrics gathered")
}

// Emit never blocks: with a full queue the notification is deferred, counted, and the decision
// holds the cursor until a later Replay queues it again.
func TestFullQueueDefersUntilReplay(t *testing.T) {
	g := NewWithT(t)
	release := make(chan struct{})
	recv := newReceiver(t, gate(release, func(n int) bool { return n == 1 }))
	cfg := loadConfig(t, fmt.Sprintf(`
services:
- {name: tiny-queue, type: webhook, url: %q}
`, recv.URL("/w")))
	opts := fastOptions()
	opts.QueueSize = 1
	n, _ := start(t, cfg, opts)
	deferred := counted("tiny-queue", Webhook, "deferred")

	ro := lifecycle(subscribe("tiny-queue"))
	ro.Status.Decisions = ro.Status.Decisions[:3] // started, step, rollback after a failed analysis
	stored := &kultav1alpha1.NotificationCursor{Time: at(0)}
	emitAll(t, n, ro, 0)
	// The first job is being delivered (held); the second fills the queue; the third is deferred.
	g.Eventually(func() int32 { return recv.arrived.Load() }).WithTimeout(waitFor).WithPolling(pollEvery).Should(Equal(int32(1)))
	step, rollback := transition(t, ro, ro.Status.Decisions[1]), transition(t, ro, ro.Status.Decisions[2])
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.Emit(step)
		n.Emit(rollback)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("Emit blocked on a full queue")
	}
	g.Expect(counted("tiny-queue", Webhook, "deferred")).To(Equal(deferred + 1))

	close(release)
	waitUpdates(t, n, 2)
	g.Expect(triggersReceived(t, recv)).To(Equal([]Trigger{Started, StepAdvanced}))
	cur := n.Cursor(ro, stored, nil)
	expectCursor(g, cur, 2, 1) // the deferred rollback at 3 holds it

	ro.Status.NotifiedThrough = cur
	n.Replay(ro)
	g.Eventually(recv.countDelivered).WithTimeout(waitFor).WithPolling(pollEvery).Should(Equal(3))
	g.Expect(triggersReceived(t, recv)).To(Equal([]Trigger{Started, StepAdvanced, AnalysisFailed}))
	g.Eventually(cursorIs(n, ro, cur, 3, 1)).WithTimeout(waitFor).WithPolling(pollEvery).Should(Succeed())
}
