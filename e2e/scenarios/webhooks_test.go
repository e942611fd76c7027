//go:build e2e

package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout"
	"github.com/false-systems/kulta/internal/webhook"
)

// holdFor is how long the confirm-promotion scenario keeps its gate shut once the canary waits
// at it: long enough for the gate to be asked again (every rollout.GateRecheck).
const holdFor = 2*rollout.GateRecheck + 2*time.Second

// canaryHeldForPromotion updates a canary (20 %, then 50 %, no pause and no analysis) whose
// confirm-promotion webhook, a receiver of the test's on loopback, answers 503: the canary
// reaches its last step, is scaled to full size and serves half the users' requests without an
// error, and waits there, Progressing, with the hold in status.webhooks, a decision and an
// Event, while the gate is asked again. Once the receiver answers 200 the next recheck promotes
// it. Every call named the Rollout, the gate and the split it would end; no request went
// unserved.
func canaryHeldForPromotion(ctx context.Context, t *testing.T, w *world) {
	rcv := startHookReceiver(t, http.StatusServiceUnavailable)
	a := canaryApp(w, w.newNamespace(ctx, t, "confirm-promotion"), "billing", "5s")
	c := a.strategy.Canary
	c.Analysis = nil
	c.Steps = []kultav1alpha1.CanaryStep{{SetWeight: ptr.To[int32](20)}, {SetWeight: ptr.To[int32](50)}}
	c.Webhooks = []kultav1alpha1.Webhook{{
		Name: "release-desk", Type: kultav1alpha1.WebhookConfirmPromotion, URL: rcv.URL + "/promote",
		Metadata: map[string]string{"ticket": "CHG-1042"},
	}}
	stableHash := a.deploy(ctx, t, goodImage)
	if n := len(rcv.received()); n != 0 {
		t.Errorf("the receiver was called %d times for the first revision, which has nothing to promote over", n)
	}

	watch := a.watchWeights(ctx, t)
	unservedBefore := w.unserved(ctx, t, a.namespace)
	began := time.Now()
	generation := a.setImage(ctx, t, betterImage)
	held := a.waitRollout(ctx, t, 90*time.Second, func(ro *kultav1alpha1.Rollout) (bool, string) {
		st := ro.Status
		if st.ObservedGeneration < generation || st.CurrentPodTemplateHash == stableHash {
			return false, "the new revision is not rolling out yet"
		}
		if st.Phase == kultav1alpha1.PhaseCompleted || st.Phase == kultav1alpha1.PhaseFailed {
			return true, "" // heldAtLastStep tells how it went past the gate
		}
		hook := webhookRecord(ro, "release-desk")
		if hook == nil || hook.Result != kultav1alpha1.WebhookHeld {
			return false, fmt.Sprintf("confirm-promotion not held yet (record %+v)", hook)
		}
		return true, ""
	})
	heldAt := time.Now()
	newHash := held.Status.CurrentPodTemplateHash
	if problem := heldAtLastStep(held, newHash); problem != "" {
		t.Fatalf("not held at the last step: %s", problem)
	}
	t.Logf("held before promoting %s after %s: %s", newHash, heldAt.Sub(began).Round(time.Millisecond), held.Status.Message)
	since := webhookRecord(held, "release-desk").Since
	a.expectRoute(ctx, t, "50/50")
	if ready, err := a.readyPods(ctx, newHash); err != nil || ready != 3 {
		t.Errorf("%d ready Pods of the held canary %s (%v), want all 3: it is scaled to full size before the gate", ready, newHash, err)
	}
	waitFor(ctx, t, eventTimeout, func() error {
		got, err := a.eventReasons(ctx)
		if err != nil {
			return err
		}
		if !slices.Contains(got, "Warning/ConfirmPromotionHeld") {
			return fmt.Errorf("events of Rollout %s/%s %v, want a Warning/ConfirmPromotionHeld", a.namespace, a.name, got)
		}
		return nil
	})

	// The users' requests during the hold: half reach the canary, which answers all of them.
	a.expectShare(ctx, t, 5*time.Second, 0.5)
	// The gate stays shut: the Rollout neither promotes nor moves the weights, and its record
	// of the hold keeps the time it began.
	for time.Since(heldAt) < holdFor {
		ro, err := a.get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if problem := heldAtLastStep(ro, newHash); problem != "" {
			t.Fatalf("%s into the hold: %s", time.Since(heldAt).Round(time.Millisecond), problem)
		}
		if hook := webhookRecord(ro, "release-desk"); !hook.Since.Equal(&since) {
			t.Fatalf("confirm-promotion record %+v during the hold, want the hold that began at %s", hook, since)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(time.Second):
		}
	}
	asked := rcv.received()
	for _, call := range asked {
		if call.status != http.StatusServiceUnavailable {
			t.Errorf("the receiver answered %d during the hold, want 503", call.status)
		}
	}
	if len(asked) < 2 {
		t.Errorf("the gate was asked %d times in %s of hold, want it asked again at least every %s", len(asked), holdFor, rollout.GateRecheck)
	}
	t.Logf("the gate was asked %d times in %s of hold", len(asked), time.Since(heldAt).Round(time.Millisecond))

	rcv.answer(http.StatusOK)
	released := time.Now()
	ro := a.waitCompleted(ctx, t, stableHash, rollout.GateRecheck+20*time.Second)
	t.Logf("promoted %s after the receiver said yes (%s after the update)", time.Since(released).Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	if ro.Status.StablePodTemplateHash != newHash {
		t.Errorf("stable revision %s after the promotion, want the held canary %s", ro.Status.StablePodTemplateHash, newHash)
	}
	if hook := webhookRecord(ro, "release-desk"); hook == nil || hook.Result != kultav1alpha1.WebhookPassed || hook.Revision != newHash {
		t.Errorf("confirm-promotion record %+v after the promotion, want Passed for %s", hook, newHash)
	}
	wantDecisions := []string{"Pause/ConfirmPromotionHeld", "Resume/ConfirmPromotionPassed", "Complete/AllStepsCompleted"}
	if got := actions(ro); !isSubsequence(got, wantDecisions) {
		t.Errorf("decisions %v, want %v among them in order", got, wantDecisions)
	}
	if got := countOf(actions(ro), "Pause/ConfirmPromotionHeld"); got != 1 {
		t.Errorf("%d ConfirmPromotionHeld decisions, want the hold recorded once", got)
	}
	a.expectRouteHistory(ctx, t, watch, "100/0", "80/20", "50/50", "100/0")
	a.expectEvents(ctx, t, "Normal/RolloutCompleted", "Normal/RolloutStarted", "Normal/StepAdvanced", "Normal/StepAdvanced",
		"Warning/ConfirmPromotionHeld", "Normal/ConfirmPromotionPassed", "Normal/RolloutCompleted")

	calls := rcv.received()
	t.Logf("the confirm-promotion webhook was asked %d times: %s", len(calls), describeCalls(calls, began))
	for i, call := range calls {
		p := call.payload
		want := webhook.Payload{
			Webhook: "release-desk", Type: kultav1alpha1.WebhookConfirmPromotion, Name: a.name, Namespace: a.namespace,
			Strategy: string(kultav1alpha1.StrategyCanary), Revision: newHash, StableRevision: stableHash, Steps: 2,
			Weights: webhook.Weights{Stable: 50, Canary: 50}, NextWeights: &webhook.Weights{Stable: 0, Canary: 100},
			Metadata: map[string]string{"ticket": "CHG-1042"},
		}
		if problem := payloadDiffers(call, "/promote", want); problem != "" {
			t.Errorf("call %d: %s", i, problem)
		}
		if p.Step != nil {
			t.Errorf("call %d names step %d, want none: the promotion is no step", i, *p.Step)
		}
	}
	if n := len(calls); n == 0 || calls[n-1].status != http.StatusOK || countOf(statuses(calls), http.StatusOK) != 1 {
		t.Errorf("the receiver answered %v, want 503s and then the one 200 that promoted", statuses(calls))
	}
	if n := w.unserved(ctx, t, a.namespace) - unservedBefore; n != 0 {
		t.Errorf("%.0f requests found no ready Pod during the update, want 0", n)
	}
}

// canaryRolledBackByWebhook updates a canary (20 %, a pause until promoted, 50 %) whose rollback
// webhook, a receiver of the test's on loopback, answers 404: while the canary waits at its
// pause with a fifth of the users' requests, it is polled, no more often than every
// rollout.GateRecheck, and changes nothing. Once it answers 200 the Rollout fails back to the
// stable revision, Stalled for the reason RollbackWebhook, the users' requests all go to stable
// again, and the polling stops. No request went unserved.
func canaryRolledBackByWebhook(ctx context.Context, t *testing.T, w *world) {
	rcv := startHookReceiver(t, http.StatusNotFound)
	a := canaryApp(w, w.newNamespace(ctx, t, "rollback-hook"), "ledger", "5s")
	c := a.strategy.Canary
	c.Analysis = nil
	c.Steps = []kultav1alpha1.CanaryStep{
		{SetWeight: ptr.To[int32](20)}, {Pause: &kultav1alpha1.RolloutPause{}}, {SetWeight: ptr.To[int32](50)},
	}
	c.Webhooks = []kultav1alpha1.Webhook{{Name: "incident-bot", Type: kultav1alpha1.WebhookRollback, URL: rcv.URL + "/rollback"}}
	stableHash := a.deploy(ctx, t, goodImage)
	if n := len(rcv.received()); n != 0 {
		t.Errorf("the receiver was called %d times for the first revision, which has nothing to roll back to", n)
	}

	watch := a.watchWeights(ctx, t)
	unservedBefore := w.unserved(ctx, t, a.namespace)
	began := time.Now()
	generation := a.setImage(ctx, t, betterImage)
	paused := a.waitRollout(ctx, t, time.Minute, func(ro *kultav1alpha1.Rollout) (bool, string) {
		st := ro.Status
		if st.ObservedGeneration < generation || st.CurrentPodTemplateHash == stableHash {
			return false, "the new revision is not rolling out yet"
		}
		if st.Phase != kultav1alpha1.PhaseFailed && (st.Phase != kultav1alpha1.PhasePaused || ptr.Deref(st.CurrentStepIndex, 0) != 1) {
			return false, "not paused at step 1 of the new generation"
		}
		return true, ""
	})
	if paused.Status.Phase == kultav1alpha1.PhaseFailed {
		t.Fatalf("the canary failed before its pause, while the rollback webhook answered 404: %s", paused.Status.Message)
	}
	canaryHash := paused.Status.CurrentPodTemplateHash
	t.Logf("canary %s paused at 20%% after %s", canaryHash, time.Since(began).Round(time.Millisecond))
	a.expectRoute(ctx, t, "80/20")
	a.expectShare(ctx, t, 5*time.Second, 0.2)
	// Two polls answered 404, a recheck apart, and the canary is where it was.
	waitFor(ctx, t, 2*rollout.GateRecheck+10*time.Second, func() error {
		if n := countOf(statuses(rcv.received()), http.StatusNotFound); n < 2 {
			return fmt.Errorf("the rollback webhook was polled %d times while the canary paused, want 2", n)
		}
		return nil
	})
	still, err := a.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if still.Status.Phase != kultav1alpha1.PhasePaused || ptr.Deref(still.Status.CurrentStepIndex, 0) != 1 || still.Status.CurrentPodTemplateHash != canaryHash {
		t.Fatalf("after the rollback webhook answered 404: phase %s at step %d on %s, want Paused at step 1 on %s: %s",
			still.Status.Phase, ptr.Deref(still.Status.CurrentStepIndex, -1), still.Status.CurrentPodTemplateHash, canaryHash, still.Status.Message)
	}
	a.expectRoute(ctx, t, "80/20")

	rcv.answer(http.StatusOK)
	switched := time.Now()
	failed := a.waitRollout(ctx, t, rollout.GateRecheck+20*time.Second, func(ro *kultav1alpha1.Rollout) (bool, string) {
		if ro.Status.Phase != kultav1alpha1.PhaseFailed {
			return false, "not Failed"
		}
		return true, ""
	})
	failedAt := time.Now()
	t.Logf("Failed %s after the receiver said roll back: %s", failedAt.Sub(switched).Round(time.Millisecond), failed.Status.Message)
	st := failed.Status
	if stalled := meta.FindStatusCondition(st.Conditions, kultav1alpha1.ConditionStalled); stalled == nil ||
		stalled.Status != metav1.ConditionTrue || stalled.Reason != "RollbackWebhook" {
		t.Errorf("Stalled condition %+v, want True with reason RollbackWebhook", stalled)
	}
	if rollback := lastDecision(failed, kultav1alpha1.ActionRollback); rollback == nil || rollback.Reason != "RollbackWebhook" ||
		!strings.Contains(rollback.Message, "incident-bot") {
		t.Errorf("last rollback decision %+v, want one with reason RollbackWebhook naming incident-bot", rollback)
	}
	if hook := webhookRecord(failed, "incident-bot"); hook == nil || hook.Type != kultav1alpha1.WebhookRollback ||
		hook.Result != kultav1alpha1.WebhookPassed || hook.Revision != canaryHash || !strings.Contains(hook.Message, "HTTP 200") {
		t.Errorf("rollback record %+v, want the 200 for %s", hook, canaryHash)
	}
	if st.StablePodTemplateHash != stableHash || st.CurrentPodTemplateHash != canaryHash || ptr.Deref(st.CurrentWeight, -1) != 0 {
		t.Errorf("after the rollback: stable %s, current %s at %d%%; want stable %s unchanged, %s at 0%%",
			st.StablePodTemplateHash, st.CurrentPodTemplateHash, ptr.Deref(st.CurrentWeight, -1), stableHash, canaryHash)
	}

	a.expectRouteHistory(ctx, t, watch, "100/0", "80/20", "100/0")
	a.expectServedByStableOnly(ctx, t, time.Now())
	a.expectEvents(ctx, t, "Normal/RolloutCompleted", "Normal/RolloutStarted", "Normal/RolloutPaused", "Warning/RollbackWebhook")

	// A failed revision is not polled any more.
	atFailure := len(rcv.received())
	if wait := time.Until(failedAt.Add(rollout.GateRecheck + 2*time.Second)); wait > 0 {
		time.Sleep(wait)
	}
	calls := rcv.received()
	t.Logf("the rollback webhook was polled %d times: %s", len(calls), describeCalls(calls, began))
	if len(calls) != atFailure {
		t.Errorf("the rollback webhook was polled %d more times after the revision failed, want none", len(calls)-atFailure)
	}
	for i, call := range calls {
		want := webhook.Payload{
			Webhook: "incident-bot", Type: kultav1alpha1.WebhookRollback, Name: a.name, Namespace: a.namespace,
			Strategy: string(kultav1alpha1.StrategyCanary), Revision: canaryHash, StableRevision: stableHash, Steps: 3,
			Weights: webhook.Weights{Stable: 80, Canary: 20},
		}
		if problem := payloadDiffers(call, "/rollback", want); problem != "" {
			t.Errorf("call %d: %s", i, problem)
		}
		// Polls start as the canary scales for its first step.
		if step := ptr.Deref(call.payload.Step, -1); (step != 0 && step != 1) || (i == len(calls)-1 && step != 1) {
			t.Errorf("call %d names step %d, want 0 or 1, the pause for the last", i, step)
		}
		if i > 0 {
			// A little less than the recheck: the receiver's clock reads arrivals, not the polls.
			if gap := call.at.Sub(calls[i-1].at); gap < rollout.GateRecheck-time.Second {
				t.Errorf("polls %d and %d came %s apart, want at most one every %s", i-1, i, gap.Round(time.Millisecond), rollout.GateRecheck)
			}
		}
	}
	if n := len(calls); n == 0 || calls[n-1].status != http.StatusOK || countOf(statuses(calls), http.StatusOK) != 1 {
		t.Errorf("the receiver answered %v, want 404s and then the one 200 that rolled back", statuses(calls))
	}
	if n := w.unserved(ctx, t, a.namespace) - unservedBefore; n != 0 {
		t.Errorf("%.0f requests found no ready Pod during the update and its rollback, want 0", n)
	}
}

// heldAtLastStep says how ro differs from a Rollout that holds revision hash at its canary's
// last step: past every step at 50 %, Progressing, not promoted, the hold of its
// confirm-promotion webhook in status; "" when it does not.
func heldAtLastStep(ro *kultav1alpha1.Rollout, hash string) string {
	st := ro.Status
	steps := int32(len(ro.Spec.Strategy.Canary.Steps))
	var problems []string
	if st.Phase != kultav1alpha1.PhaseProgressing || st.CurrentPodTemplateHash != hash || st.StablePodTemplateHash == hash ||
		ptr.Deref(st.CurrentStepIndex, -1) != steps || ptr.Deref(st.CurrentWeight, -1) != 50 {
		problems = append(problems, fmt.Sprintf("phase %s, current %s (stable %s), step %d of %d at %d%%; want Progressing on %s past all %d steps at 50%%",
			st.Phase, st.CurrentPodTemplateHash, st.StablePodTemplateHash, ptr.Deref(st.CurrentStepIndex, -1), steps,
			ptr.Deref(st.CurrentWeight, -1), hash, steps))
	}
	if c := meta.FindStatusCondition(st.Conditions, kultav1alpha1.ConditionProgressing); c == nil || c.Status != metav1.ConditionTrue {
		problems = append(problems, fmt.Sprintf("Progressing condition %+v, want True", c))
	}
	if !strings.Contains(st.Message, "confirm-promotion") || !strings.Contains(st.Message, "HTTP 503") {
		problems = append(problems, fmt.Sprintf("status message %q, want it to say the confirm-promotion webhook answered 503", st.Message))
	}
	hook := webhookRecord(ro, "release-desk")
	if hook == nil || hook.Type != kultav1alpha1.WebhookConfirmPromotion || hook.Result != kultav1alpha1.WebhookHeld ||
		hook.Revision != hash || hook.StepIndex != nil || !strings.Contains(hook.Message, "HTTP 503") {
		problems = append(problems, fmt.Sprintf("confirm-promotion record %+v, want Held for %s with the 503", hook, hash))
	}
	return strings.Join(problems, "; ")
}

// expectShare measures, through the request counts Prometheus scrapes from the Gateway
// simulator, the users' requests the app's Services answer over the window that starts now:
// the canary Service (the second) must answer share of them, give or take a tenth, and none
// with an error. Every count is read at the window's two ends (PromQL's @), so that all of
// them come from the same two scrapes.
func (a *app) expectShare(ctx context.Context, t *testing.T, window time.Duration, share float64) {
	t.Helper()
	both := fmt.Sprintf(`http_requests_total{namespace=%q, service=~%q}`, a.namespace, a.services[0]+"|"+a.services[1])
	canary := fmt.Sprintf(`http_requests_total{namespace=%q, service=%q}`, a.namespace, a.services[1])
	failed := fmt.Sprintf(`http_requests_total{namespace=%q, service=%q, code="500"}`, a.namespace, a.services[1])
	query := func(q string) (float64, error) {
		v, ok, err := a.w.prometheus.Query(ctx, q)
		switch {
		case err != nil:
			return 0, err
		case !ok:
			return 0, fmt.Errorf("prometheus has no sample for %s", q)
		}
		return v, nil
	}
	// Both Services' series are scraped before the window opens, and after it closes.
	waitFor(ctx, t, 30*time.Second, func() error {
		n, err := query("count(" + both + ")")
		if err == nil && n < 4 {
			err = fmt.Errorf("%v series of %s, want 4 (two Services, two codes)", n, both)
		}
		return err
	})
	from := time.Now()
	to := from.Add(window)
	waitFor(ctx, t, window+30*time.Second, func() error {
		at, err := query("min(timestamp(" + both + "))")
		if err == nil && at < float64(to.UnixMilli())/1000 {
			err = fmt.Errorf("no scrape of %s after %s yet", both, to.Format(time.StampMilli))
		}
		return err
	})
	delta := func(selector string) float64 {
		t.Helper()
		v, err := query(fmt.Sprintf("sum(%[1]s @ %.3[2]f) - sum(%[1]s @ %.3[3]f)", selector, float64(to.UnixMilli())/1000, float64(from.UnixMilli())/1000))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	total, canaryServed, failures := delta(both), delta(canary), delta(failed)
	t.Logf("the canary answered %v of %v requests in %s", canaryServed, total, window)
	// At the route's 100 requests a second; the simulator may lose ticks under load.
	if total < 30*window.Seconds() {
		t.Fatalf("the Services answered %v requests in %s, want about %v", total, window, 100*window.Seconds())
	}
	if got := canaryServed / total; got < share-0.1 || got > share+0.1 {
		t.Errorf("the canary answered %.0f%% of the users' requests, want %.0f%%", 100*got, 100*share)
	}
	if failures != 0 {
		t.Errorf("the canary answered %v requests with an error, want none", failures)
	}
}

// webhookRecord is the Rollout's status.webhooks entry of the webhook name, or nil.
func webhookRecord(ro *kultav1alpha1.Rollout, name string) *kultav1alpha1.WebhookStatus {
	for i := range ro.Status.Webhooks {
		if ro.Status.Webhooks[i].Name == name {
			return &ro.Status.Webhooks[i]
		}
	}
	return nil
}

// hookCall is one call the receiver got: when it arrived, its path and payload, and the status
// it was answered with.
type hookCall struct {
	at          time.Time
	path        string
	contentType string
	payload     webhook.Payload
	status      int
}

// hookReceiver is an HTTP server on loopback, where the controller process (on the same host)
// sends a scenario's webhook calls. It answers every POST with the status set last and keeps
// each call.
type hookReceiver struct {
	*httptest.Server

	mu     sync.Mutex
	status int
	calls  []hookCall
}

// startHookReceiver starts a receiver that answers status until told otherwise; it stops when t
// ends.
func startHookReceiver(t *testing.T, status int) *hookReceiver {
	t.Helper()
	r := &hookReceiver{status: status}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *hookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	call := hookCall{at: time.Now(), path: req.URL.Path, contentType: req.Header.Get("Content-Type")}
	if req.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if err := json.NewDecoder(req.Body).Decode(&call.payload); err != nil {
		http.Error(w, "not a webhook payload: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	call.status = r.status
	r.calls = append(r.calls, call)
	r.mu.Unlock()
	w.WriteHeader(call.status)
	_, _ = fmt.Fprintf(w, "%s from the test's receiver", http.StatusText(call.status))
}

// answer sets the status later calls are answered with.
func (r *hookReceiver) answer(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = status
}

// received is the calls so far, oldest first.
func (r *hookReceiver) received() []hookCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// payloadDiffers says how call differs from a JSON POST to path with want's fields (all but
// the step and the timestamp, which must be recent), or "" when it does not.
func payloadDiffers(call hookCall, path string, want webhook.Payload) string {
	got := call.payload
	var problems []string
	if call.path != path || call.contentType != "application/json" {
		problems = append(problems, fmt.Sprintf("sent to %s as %q, want %s as application/json", call.path, call.contentType, path))
	}
	if got.Webhook != want.Webhook || got.Type != want.Type {
		problems = append(problems, fmt.Sprintf("webhook %s of type %s, want %s of type %s", got.Webhook, got.Type, want.Webhook, want.Type))
	}
	if got.Name != want.Name || got.Namespace != want.Namespace || got.Strategy != want.Strategy {
		problems = append(problems, fmt.Sprintf("Rollout %s/%s (%s), want %s/%s (%s)", got.Namespace, got.Name, got.Strategy, want.Namespace, want.Name, want.Strategy))
	}
	if got.Revision != want.Revision || got.StableRevision != want.StableRevision || got.Steps != want.Steps {
		problems = append(problems, fmt.Sprintf("revision %s over %s with %d steps, want %s over %s with %d",
			got.Revision, got.StableRevision, got.Steps, want.Revision, want.StableRevision, want.Steps))
	}
	if got.Weights != want.Weights || !ptr.Equal(got.NextWeights, want.NextWeights) {
		problems = append(problems, fmt.Sprintf("weights %+v next %+v, want %+v next %+v", got.Weights, got.NextWeights, want.Weights, want.NextWeights))
	}
	if !maps.Equal(got.Metadata, want.Metadata) {
		problems = append(problems, fmt.Sprintf("metadata %v, want %v", got.Metadata, want.Metadata))
	}
	if skew := call.at.Sub(got.Timestamp); skew < -time.Second || skew > 10*time.Second {
		problems = append(problems, fmt.Sprintf("timestamp %s for a call received at %s", got.Timestamp, call.at))
	}
	return strings.Join(problems, "; ")
}

// describeCalls renders calls as "+TIME STATUS (step N)", TIME since began, for the log.
func describeCalls(calls []hookCall, began time.Time) string {
	out := make([]string, 0, len(calls))
	for _, c := range calls {
		step := "no step"
		if c.payload.Step != nil {
			step = fmt.Sprintf("step %d", *c.payload.Step)
		}
		out = append(out, fmt.Sprintf("+%s %d (%s)", c.at.Sub(began).Round(100*time.Millisecond), c.status, step))
	}
	return strings.Join(out, ", ")
}

// statuses is the statuses the calls were answered with, in order.
func statuses(calls []hookCall) []int {
	out := make([]int, 0, len(calls))
	for _, c := range calls {
		out = append(out, c.status)
	}
	return out
}

// countOf counts the elements of s equal to v.
func countOf[T comparable](s []T, v T) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

// isSubsequence reports whether want appears in got in order, not necessarily side by side.
func isSubsequence(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}
