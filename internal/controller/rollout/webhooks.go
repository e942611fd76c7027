package rollout

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/event"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	kultaevents "github.com/false-systems/kulta/internal/events"
	"github.com/false-systems/kulta/internal/webhook"
	"github.com/false-systems/kulta/providers"
)

// WebhookCaller calls one webhook of a Rollout; webhook.Caller is the implementation.
type WebhookCaller interface {
	Call(ctx context.Context, namespace string, hook kultav1alpha1.Webhook, payload webhook.Payload) webhook.Answer
}

// Notifications tells people and systems of transitions (notify.Notifier): Emit queues a
// transition's notifications, Replay queues again those of a Rollout's decisions after its
// status.notifiedThrough that this process does not have, Cursor is the new
// status.notifiedThrough, and Updates names Rollouts whose cursor may move.
type Notifications interface {
	kultaevents.Sink
	Replay(ro *kultav1alpha1.Rollout)
	Cursor(ro *kultav1alpha1.Rollout, stored *kultav1alpha1.NotificationCursor, before []kultav1alpha1.Decision) *kultav1alpha1.NotificationCursor
	Forget(key types.NamespacedName)
	Updates() <-chan event.GenericEvent
}

// maxGatesPerReconcile bounds the gates one reconcile asks (pre-rollout, then
// confirm-traffic-increase of the same step, then a gate of the next step when nothing else
// waits between them).
const maxGatesPerReconcile = 4

// webhookMetricPrefix names a rollout webhook's entry among the analysis metrics.
const webhookMetricPrefix = "webhook/"

// rollbackPolls remembers when each Rollout's rollback webhooks were last polled, so that
// reconciles in quick succession do not call them each time.
type rollbackPolls struct {
	mu   sync.Mutex
	last map[types.NamespacedName]time.Time
}

// due reports whether key's rollback webhooks may be polled at now, and notes the poll.
func (r *rollbackPolls) due(key types.NamespacedName, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == nil {
		r.last = map[types.NamespacedName]time.Time{}
	}
	if last, ok := r.last[key]; ok && now.Sub(last) < GateRecheck {
		return false
	}
	r.last[key] = now
	return true
}

func (r *rollbackPolls) forget(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.last, key)
}

// plan computes the plan, asking the gates it holds at and planning again with their answers.
func (r *Reconciler) plan(ctx context.Context, obs *Observation) Plan {
	if r.Webhooks == nil {
		return Compute(*obs)
	}
	return ComputeWithGates(obs, func(req GateRequest, st kultav1alpha1.RolloutStatus) []WebhookAnswer {
		return r.callAll(ctx, obs.Rollout, WebhooksOf(obs.Rollout, req.Type), r.payload(obs, st, req.Step, req.Weights, req.Next, ""))
	})
}

// ComputeWithGates plans as Compute does; when the plan holds at a gate not yet asked in this
// reconcile, ask calls its webhooks (st is the status the plan had then) and the answers,
// noted in obs.Answers, go into a new plan: a gate that says yes lets the same reconcile go
// on, up to maxGatesPerReconcile gates.
func ComputeWithGates(obs *Observation, ask func(req GateRequest, st kultav1alpha1.RolloutStatus) []WebhookAnswer) Plan {
	plan := Compute(*obs)
	for range maxGatesPerReconcile {
		if plan.Gate == nil {
			break
		}
		req := *plan.Gate
		if _, asked := obs.Answers[req.Gate]; asked {
			break
		}
		if obs.Answers == nil {
			obs.Answers = map[Gate][]WebhookAnswer{}
		}
		obs.Answers[req.Gate] = ask(req, plan.Status)
		plan = Compute(*obs)
	}
	return plan
}

// pollRollback calls the rollback webhooks of a revision rolling out, at most every
// GateRecheck, and notes the first 2xx answer in obs.
func (r *Reconciler) pollRollback(ctx context.Context, obs *Observation) {
	ro := obs.Rollout
	if r.Webhooks == nil || obs.Problem != nil || !RollbackPollDue(ro, obs.Hash) || obs.Hash != ro.Status.CurrentPodTemplateHash ||
		!r.polls.due(types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}, obs.Now) {
		return
	}
	weights := providers.Weights{Stable: 100 - ptr.Deref(ro.Status.CurrentWeight, 0), Canary: ptr.Deref(ro.Status.CurrentWeight, 0)}
	step := int32(noStep)
	if ro.Status.CurrentStepIndex != nil {
		step = *ro.Status.CurrentStepIndex
	}
	payload := r.payload(obs, ro.Status, step, weights, nil, "")
	for _, a := range r.callAll(ctx, ro, WebhooksOf(ro, kultav1alpha1.WebhookRollback), payload) {
		if a.OK {
			obs.Rollback = &a
			return
		}
	}
}

// callAll calls hooks in order with payload.
func (r *Reconciler) callAll(ctx context.Context, ro *kultav1alpha1.Rollout, hooks []kultav1alpha1.Webhook, payload webhook.Payload) []WebhookAnswer {
	log := ctrl.LoggerFrom(ctx)
	answers := make([]WebhookAnswer, 0, len(hooks))
	for _, h := range hooks {
		p := payload
		p.Webhook, p.Type, p.Metadata = h.Name, h.Type, h.Metadata
		a := r.Webhooks.Call(ctx, ro.Namespace, h, p)
		log.V(1).Info("Webhook called", "webhook", h.Name, "type", h.Type, "result", a.Result, "message", a.Message)
		answers = append(answers, WebhookAnswer{Name: h.Name, OK: a.OK(), Message: a.Message})
	}
	return answers
}

// payload is the body of a call for the Rollout as st describes it.
func (r *Reconciler) payload(obs *Observation, st kultav1alpha1.RolloutStatus, step int32, weights providers.Weights, next *providers.Weights, outcome string) webhook.Payload {
	ro := obs.Rollout
	p := webhook.Payload{
		Name: ro.Name, Namespace: ro.Namespace, Strategy: string(strategyName(ro)), Phase: string(st.Phase),
		Revision: obs.Hash, StableRevision: ro.Status.StablePodTemplateHash, Step: gateStep(step),
		Weights: webhook.Weights{Stable: weights.Stable, Canary: weights.Canary}, Outcome: outcome, Timestamp: r.Clock.Now().UTC(),
	}
	if p.StableRevision == obs.Hash {
		p.StableRevision = ""
	}
	if c := ro.Spec.Strategy.Canary; c != nil {
		p.Steps = len(c.Steps)
	}
	if next != nil {
		p.NextWeights = &webhook.Weights{Stable: next.Stable, Canary: next.Canary}
	}
	return p
}

// callRolloutHooks calls the rollout webhooks as part of an analysis check and adds their
// answers to result as metrics: a failed call counts as a failing check, and failureThreshold
// of them in a row fail the analysis.
func (r *Reconciler) callRolloutHooks(ctx context.Context, obs *Observation, result *kultav1alpha1.AnalysisStatus) {
	ro := obs.Rollout
	hooks := WebhooksOf(ro, kultav1alpha1.WebhookRollout)
	if len(hooks) == 0 || r.Webhooks == nil {
		return
	}
	weight := ptr.Deref(ro.Status.CurrentWeight, 0)
	step := int32(noStep)
	if ro.Status.CurrentStepIndex != nil && ro.Spec.Strategy.Canary != nil {
		step = *ro.Status.CurrentStepIndex
	}
	payload := r.payload(obs, ro.Status, step, providers.Weights{Stable: 100 - weight, Canary: weight}, nil, "")
	JudgeRolloutHooks(ro, result, r.callAll(ctx, ro, hooks, payload), obs.Now)
}

// JudgeRolloutHooks adds the answers of the rollout webhooks (in the order WebhooksOf gives
// them) to the analysis result as metrics, and records them in ro's status: a failed call
// counts as a failing check, failureThreshold of them in a row fail the analysis, fewer leave
// it inconclusive.
func JudgeRolloutHooks(ro *kultav1alpha1.Rollout, result *kultav1alpha1.AnalysisStatus, answers []WebhookAnswer, now time.Time) {
	hooks := WebhooksOf(ro, kultav1alpha1.WebhookRollout)
	previous := map[string]kultav1alpha1.MetricStatus{}
	if a := ro.Status.Analysis; a != nil && a.Revision == result.Revision && ptr.Equal(a.StepIndex, result.StepIndex) {
		for _, m := range a.Metrics {
			previous[m.Name] = m
		}
	}
	step := int32(noStep)
	if ro.Status.CurrentStepIndex != nil && ro.Spec.Strategy.Canary != nil {
		step = *ro.Status.CurrentStepIndex
	}
	var failing []string
	for i, a := range answers {
		name := webhookMetricPrefix + a.Name
		ms := kultav1alpha1.MetricStatus{Name: name, Verdict: kultav1alpha1.VerdictPass, Reason: "WebhookPassed"}
		status := kultav1alpha1.WebhookStatus{Name: a.Name, Type: kultav1alpha1.WebhookRollout, Revision: result.Revision, StepIndex: gateStep(step), Result: kultav1alpha1.WebhookPassed, Message: a.Message, Since: metav1.NewTime(now)}
		if !a.OK {
			ms.ConsecutiveFailures = previous[name].ConsecutiveFailures + 1
			limit := ptr.Deref(hooks[i].FailureThreshold, 1)
			ms.Verdict, ms.Reason = kultav1alpha1.VerdictInconclusive, "WebhookFailing"
			if ms.ConsecutiveFailures >= limit {
				ms.Verdict, ms.Reason = kultav1alpha1.VerdictFail, "WebhookFailed"
			}
			status.Result = kultav1alpha1.WebhookFailed
			failing = append(failing, fmt.Sprintf("rollout webhook %s failed (%d of %d in a row): %s", a.Name, ms.ConsecutiveFailures, limit, a.Message))
		}
		result.Metrics = append(result.Metrics, ms)
		setWebhookStatus(&ro.Status, status)
		result.Verdict = worse(result.Verdict, ms.Verdict)
	}
	if len(failing) > 0 {
		message := strings.Join(failing, "; ")
		if result.Message != "" {
			message += "; " + result.Message
		}
		result.Message = truncate(message, 4096)
		if result.Verdict == kultav1alpha1.VerdictFail && result.Reason == "" {
			result.Reason = "WebhookFailed"
		}
	}
}

// worse is the worse of two verdicts: Fail, then Inconclusive, then Pass.
func worse(a, b kultav1alpha1.Verdict) kultav1alpha1.Verdict {
	rank := map[kultav1alpha1.Verdict]int{kultav1alpha1.VerdictPass: 0, kultav1alpha1.VerdictInconclusive: 1, kultav1alpha1.VerdictFail: 2}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

// tellPostRollout tells the post-rollout webhooks of the plan's outcome and records their
// answers in the plan's status; informational, so an answer changes nothing else.
func (r *Reconciler) tellPostRollout(ctx context.Context, obs *Observation, plan *Plan) {
	if plan.PostRollout == "" || r.Webhooks == nil {
		return
	}
	st := &plan.Status
	weight := ptr.Deref(st.CurrentWeight, 0)
	hooks := WebhooksOf(obs.Rollout, kultav1alpha1.WebhookPostRollout)
	payload := r.payload(obs, *st, noStep, providers.Weights{Stable: 100 - weight, Canary: weight}, nil, plan.PostRollout)
	RecordPostRollout(st, obs.Hash, plan.PostRollout, r.callAll(ctx, obs.Rollout, hooks, payload), obs.Now)
}

// RecordPostRollout records the post-rollout webhooks' answers about revision's outcome in st.
func RecordPostRollout(st *kultav1alpha1.RolloutStatus, revision, outcome string, answers []WebhookAnswer, now time.Time) {
	for _, a := range answers {
		result := kultav1alpha1.WebhookPassed
		if !a.OK {
			result = kultav1alpha1.WebhookFailed
		}
		setWebhookStatus(st, kultav1alpha1.WebhookStatus{Name: a.Name, Type: kultav1alpha1.WebhookPostRollout, Revision: revision, Outcome: outcome,
			Result: result, Message: a.Message, Since: metav1.NewTime(now)})
	}
}

// setWebhookStatus puts w in st.webhooks in place of the webhook's last record; w.Since gives
// way to the old record's when it said the same for the same revision and step.
func setWebhookStatus(st *kultav1alpha1.RolloutStatus, w kultav1alpha1.WebhookStatus) {
	w.Message = truncate(w.Message, 1024)
	for i := range st.Webhooks {
		old := &st.Webhooks[i]
		if old.Name != w.Name {
			continue
		}
		if old.Type == w.Type && old.Revision == w.Revision && ptr.Equal(old.StepIndex, w.StepIndex) && old.Outcome == w.Outcome && old.Result == w.Result {
			w.Since = old.Since
		}
		*old = w
		return
	}
	st.Webhooks = append(st.Webhooks, w)
}
