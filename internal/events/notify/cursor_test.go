package notify

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// progressing is shop/checkout with an initialization at 0 (already notified: the stored cursor
// passes it), a step at 10 and a pause at 20.
func progressing(annotations map[string]string) (*kultav1alpha1.Rollout, *kultav1alpha1.NotificationCursor) {
	ro := rollout(annotations,
		decision(0, kultav1alpha1.ActionInitialize, "NewRevision", "New revision 7d9f6c", nil, step(0)),
		decision(10, kultav1alpha1.ActionStepAdvance, "StepComplete", "setWeight 20 reached", step(0), step(1)),
		decision(20, kultav1alpha1.ActionPause, "PauseUntilPromoted", "Waiting for kulta.io/promote", step(1), step(1)),
	)
	stored := &kultav1alpha1.NotificationCursor{Time: at(0), Count: 1}
	ro.Status.NotifiedThrough = stored
	return ro, stored
}

func singleService(t *testing.T, name string, recv *receiver) *Config {
	t.Helper()
	return loadConfig(t, fmt.Sprintf(`
services:
- {name: %s, type: webhook, url: %q}
`, name, recv.URL("/w")))
}

func TestCursorAdvancesOnlyAfterDelivery(t *testing.T) {
	g := NewWithT(t)
	release := make(chan struct{})
	recv := newReceiver(t, gate(release, func(int) bool { return true }))
	n, _ := start(t, singleService(t, "cur-basic", recv), fastOptions())

	ro, stored := progressing(subscribe("cur-basic"))
	emitAll(t, n, ro, 1, 2)

	// Queued, not delivered: the cursor stays where it was stored.
	g.Eventually(func() int32 { return recv.arrived.Load() }).WithTimeout(waitFor).WithPolling(pollEvery).Should(Equal(int32(1)))
	cur := n.Cursor(ro, stored, nil)
	expectCursor(g, cur, 0, 1)
	g.Expect(cur).NotTo(BeIdenticalTo(stored), "Cursor returns a new cursor")

	close(release)
	waitUpdates(t, n, 2)
	g.Expect(recv.countDelivered()).To(Equal(2))
	expectCursor(g, n.Cursor(ro, cur, nil), 20, 1)
}

func TestCursorPassesDecisionsNobodyIsToldOf(t *testing.T) {
	for name, setup := range map[string]struct {
		annotations map[string]string
		triggers    string
	}{
		"kulta.io/notify-on": {
			annotations: map[string]string{kultav1alpha1.NotifyAnnotation: "cur-skip-on", kultav1alpha1.NotifyOnAnnotation: "completed"},
		},
		"service triggers": {
			annotations: subscribe("cur-skip-svc"),
			triggers:    "[completed]",
		},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			release := make(chan struct{})
			recv := newReceiver(t, gate(release, func(int) bool { return true }))
			service := setup.annotations[kultav1alpha1.NotifyAnnotation]
			text := fmt.Sprintf("services:\n- {name: %s, type: webhook, url: %q}\n", service, recv.URL("/w"))
			if setup.triggers != "" {
				text = fmt.Sprintf("services:\n- {name: %s, type: webhook, url: %q, triggers: %s}\n", service, recv.URL("/w"), setup.triggers)
			}
			n, _ := start(t, loadConfig(t, text), fastOptions())

			ro := rollout(setup.annotations,
				decision(0, kultav1alpha1.ActionInitialize, "NewRevision", "", nil, step(0)),
				decision(10, kultav1alpha1.ActionStepAdvance, "StepComplete", "", step(0), step(1)),
				decision(15, kultav1alpha1.ActionResume, "Continue", "failurePolicy Continue", step(1), step(1)),
				decision(20, kultav1alpha1.ActionComplete, "Completed", "", step(1), nil),
			)
			stored := &kultav1alpha1.NotificationCursor{Time: at(0), Count: 1}
			emitAll(t, n, ro, 1, 3)

			// The step (not subscribed) and the resume (no transition) do not hold the cursor;
			// the completion, queued and not delivered, does.
			g.Eventually(func() int32 { return recv.arrived.Load() }).WithTimeout(waitFor).WithPolling(pollEvery).Should(Equal(int32(1)))
			cur := n.Cursor(ro, stored, nil)
			expectCursor(g, cur, 15, 1)

			close(release)
			waitUpdates(t, n, 1)
			g.Expect(triggersReceived(t, recv)).To(Equal([]Trigger{Completed}))
			expectCursor(g, n.Cursor(ro, cur, nil), 20, 1)
		})
	}
}

func TestCursorPassesASecondOnlyWhenAllItsDecisionsAreDone(t *testing.T) {
	g := NewWithT(t)
	release := make(chan struct{})
	recv := newReceiver(t, gate(release, func(n int) bool { return n == 2 }))
	n, _ := start(t, singleService(t, "cur-same", recv), fastOptions())

	ro := rollout(subscribe("cur-same"),
		decision(0, kultav1alpha1.ActionInitialize, "NewRevision", "", nil, step(0)),
		decision(10, kultav1alpha1.ActionStepAdvance, "StepComplete", "", step(0), step(1)),
		decision(10, kultav1alpha1.ActionPause, "PauseUntilPromoted", "", step(1), step(1)),
	)
	stored := &kultav1alpha1.NotificationCursor{Time: at(0), Count: 1}
	emitAll(t, n, ro, 1, 2)

	waitUpdates(t, n, 1) // the step is delivered; the pause is held
	cur := n.Cursor(ro, stored, nil)
	expectCursor(g, cur, 10, 1)
	noUpdate(t, n)
	expectCursor(g, n.Cursor(ro, cur, nil), 10, 1)

	close(release)
	waitUpdates(t, n, 1)
	expectCursor(g, n.Cursor(ro, cur, nil), 10, 2)
}

// Three decisions in one second, told to two services: the first and third are delivered
// while the second is still held. The cursor must end past all three, and nothing be sent
// twice.
//
// KNOWN BUG (see report): prune forgets finished decisions by whole second (unix <=
// cur.Unix()), so the third, finished but not yet passed, is forgotten when the cursor stops
// at the first; the cursor then sticks at the second and Replay sends the third again.
func TestCursorSameSecondAcrossServices(t *testing.T) {
	g := NewWithT(t)
	release := make(chan struct{})
	fast := newReceiver(t, nil)
	slow := newReceiver(t, gate(release, func(int) bool { return true }))
	cfg := loadConfig(t, fmt.Sprintf(`
services:
- {name: same-fast, type: webhook, url: %q, triggers: [started, paused]}
- {name: same-slow, type: webhook, url: %q, triggers: [step-advanced]}
`, fast.URL("/f"), slow.URL("/s")))
	n, _ := start(t, cfg, fastOptions())

	ro := rollout(subscribe("same-fast,same-slow"),
		decision(0, kultav1alpha1.ActionInitialize, "NewRevision", "", nil, step(0)),
		decision(10, kultav1alpha1.ActionResume, "Retry", "", nil, step(0)),
		decision(10, kultav1alpha1.ActionStepAdvance, "StepComplete", "", step(0), step(1)),
		decision(10, kultav1alpha1.ActionPause, "PauseUntilPromoted", "", step(1), step(1)),
	)
	stored := &kultav1alpha1.NotificationCursor{Time: at(0), Count: 1}
	ro.Status.NotifiedThrough = stored
	emitAll(t, n, ro, 1, 2, 3)

	waitUpdates(t, n, 2) // the retry and the pause, on same-fast
	g.Expect(triggersReceived(t, fast)).To(Equal([]Trigger{Started, Paused}))
	cur := n.Cursor(ro, stored, nil)
	expectCursor(g, cur, 10, 1)
	ro.Status.NotifiedThrough = cur

	close(release)
	waitUpdates(t, n, 1) // the step, on same-slow
	// Both checks below report, so that a failure shows the stuck cursor and the duplicate.
	soft := NewGomega(func(message string, _ ...int) { t.Helper(); t.Error(message) })
	cur = n.Cursor(ro, cur, nil)
	expectCursor(soft, cur, 10, 3)
	ro.Status.NotifiedThrough = cur
	n.Replay(ro) // what the next reconcile does
	soft.Consistently(fast.countDelivered).WithTimeout(150*time.Millisecond).WithPolling(pollEvery).Should(Equal(2), "a notification was sent twice")
}

func TestReplayQueuesOncePerProcess(t *testing.T) {
	g := NewWithT(t)
	recv := newReceiver(t, nil)
	n, _ := start(t, singleService(t, "replay-once", recv), fastOptions())

	ro, stored := progressing(subscribe("replay-once"))
	n.Replay(ro)
	waitUpdates(t, n, 2)
	g.Expect(triggersReceived(t, recv)).To(Equal([]Trigger{StepAdvanced, Paused}), "only the decisions after the cursor")

	// Replayed again, or emitted as fresh transitions: this process already has them.
	n.Replay(ro)
	emitAll(t, n, ro, 1, 2)
	g.Consistently(func() int { return len(recv.requests()) }).WithTimeout(150 * time.Millisecond).Should(Equal(2))

	// Recorded: nothing is left after the new cursor.
	cur := n.Cursor(ro, stored, nil)
	expectCursor(g, cur, 20, 1)
	ro.Status.NotifiedThrough = cur
	n.Replay(ro)
	g.Consistently(func() int { return len(recv.requests()) }).WithTimeout(100 * time.Millisecond).Should(Equal(2))
	noUpdate(t, n)
}

func TestReplayAfterRestartDeliversWhatWasLeft(t *testing.T) {
	g := NewWithT(t)
	var stopped atomic.Bool
	release := make(chan struct{}) // never closed: the first process gets no answer
	recv := newReceiver(t, gate(release, func(int) bool { return !stopped.Load() }))
	cfg := singleService(t, "replay-restart", recv)

	// The first process queues both decisions and stops before delivering any.
	first, stopFirst := start(t, cfg, fastOptions())
	ro, stored := progressing(subscribe("replay-restart"))
	emitAll(t, first, ro, 1, 2)
	g.Eventually(func() int32 { return recv.arrived.Load() }).WithTimeout(waitFor).WithPolling(pollEvery).Should(Equal(int32(1)))
	expectCursor(g, first.Cursor(ro, stored, nil), 0, 1)
	stopFirst()
	g.Expect(recv.countDelivered()).To(BeZero())
	stopped.Store(true)

	// The next process finds them after the stored cursor.
	second, _ := start(t, cfg, fastOptions())
	second.Replay(ro)
	waitUpdates(t, second, 2)
	g.Expect(triggersReceived(t, recv)).To(Equal([]Trigger{StepAdvanced, Paused}))
	expectCursor(g, second.Cursor(ro, stored, nil), 20, 1)
}

func TestNoStoredCursorSkipsHistory(t *testing.T) {
	g := NewWithT(t)
	recv := newReceiver(t, nil)
	n, _ := start(t, singleService(t, "replay-fresh", recv), fastOptions())

	// Subscribed just now: the decisions before this reconcile (0 and 10) are history.
	ro, _ := progressing(subscribe("replay-fresh"))
	ro.Status.NotifiedThrough = nil
	before := ro.Status.Decisions[:2]

	n.Replay(ro)
	g.Consistently(func() int { return len(recv.requests()) }).WithTimeout(100 * time.Millisecond).Should(BeZero())
	cur := n.Cursor(ro, nil, before)
	expectCursor(g, cur, 10, 1)

	// Stored, it replays the pause alone.
	ro.Status.NotifiedThrough = cur
	n.Replay(ro)
	waitUpdates(t, n, 1)
	g.Expect(triggersReceived(t, recv)).To(Equal([]Trigger{Paused}))
	expectCursor(g, n.Cursor(ro, cur, nil), 20, 1)
	g.Expect(recv.requests()).To(HaveLen(1))
}

func TestCursorIsNilWithoutSubscription(t *testing.T) {
	g := NewWithT(t)
	recv := newReceiver(t, nil)
	n, _ := start(t, singleService(t, "cur-none", recv), fastOptions())
	ro, stored := progressing(nil)
	g.Expect(n.Cursor(ro, stored, nil)).To(BeNil())
	n.Replay(ro)
	emitAll(t, n, ro, 1, 2)
	g.Consistently(func() int { return len(recv.requests()) }).WithTimeout(100 * time.Millisecond).Should(BeZero())
}
