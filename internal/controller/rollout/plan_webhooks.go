package rollout

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/providers"
)

// GateRecheck is how often a held gate is asked again, and how often rollback webhooks are
// polled while a revision rolls out.
const GateRecheck = 10 * time.Second

// noStep is Gate.Step for gates of no canary step.
const noStep = -1

// Webhooks are the webhooks of the Rollout's strategy.
func Webhooks(ro *kultav1alpha1.Rollout) []kultav1alpha1.Webhook {
	return ro.Spec.Strategy.StrategyWebhooks()
}

// WebhooksOf are the strategy's webhooks of type kind.
func WebhooksOf(ro *kultav1alpha1.Rollout, kind kultav1alpha1.WebhookType) []kultav1alpha1.Webhook {
	var out []kultav1alpha1.Webhook
	for _, w := range Webhooks(ro) {
		if w.Type == kind {
			out = append(out, w)
		}
	}
	return out
}

// RollbackPollDue reports whether rollback webhooks should be polled: the Rollout has some and
// a revision other than stable is rolling out and has not failed.
func RollbackPollDue(ro *kultav1alpha1.Rollout, hash string) bool {
	st := ro.Status
	return len(WebhooksOf(ro, kultav1alpha1.WebhookRollback)) > 0 && st.StablePodTemplateHash != "" &&
		hash != st.StablePodTemplateHash && st.Phase != kultav1alpha1.PhaseFailed && !ro.Spec.Paused
}

// gateReason is the CamelCase form of a webhook type, for reasons: ConfirmPromotion.
func gateReason(kind kultav1alpha1.WebhookType) string {
	var b strings.Builder
	for _, part := range strings.Split(string(kind), "-") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// gateStep is the step a gate record carries.
func gateStep(step int32) *int32 {
	if step == noStep {
		return nil
	}
	return ptr.To(step)
}

// gateOpen reports whether every webhook of the gate has said yes for the current revision
// (and step). When one has not, it holds: without answers in this reconcile it asks for them
// (Plan.Gate) and keeps the rollout waiting; with answers it records them, and a gate that
// still says no holds the rollout (counted against progressDeadlineSeconds) or, for
// pre-rollout, rolls it back. weights is the split in place and next the one the gate allows.
func (p *planner) gateOpen(gate Gate, weights providers.Weights, next *providers.Weights) bool {
	hooks := WebhooksOf(p.ro, gate.Type)
	if len(hooks) == 0 || p.gatePassed(gate, hooks) {
		return true
	}
	answers, asked := p.obs.Answers[gate]
	if !asked {
		p.out.Gate = &GateRequest{Gate: gate, Weights: weights, Next: next}
		p.setPhase(kultav1alpha1.PhaseProgressing, fmt.Sprintf("Asking the %s webhooks", gate.Type))
		p.requeue(GateRecheck)
		return false
	}
	wasHeld := p.gateHeld(gate)
	var refused []string
	for _, a := range answers {
		result := kultav1alpha1.WebhookPassed
		if !a.OK {
			result = kultav1alpha1.WebhookHeld
			if gate.Type == kultav1alpha1.WebhookPreRollout {
				result = kultav1alpha1.WebhookFailed
			}
			refused = append(refused, fmt.Sprintf("%s: %s", a.Name, a.Message))
		}
		p.recordWebhook(kultav1alpha1.WebhookStatus{Name: a.Name, Type: gate.Type, Revision: p.obs.Hash, StepIndex: gateStep(gate.Step), Result: result, Message: a.Message})
	}
	reason := gateReason(gate.Type)
	where := p.gateWhere(gate)
	if len(refused) == 0 {
		message := fmt.Sprintf("%s webhooks said yes %s", gate.Type, where)
		p.decide(kultav1alpha1.ActionResume, reason+"Passed", message, p.out.Status.CurrentStepIndex, p.out.Status.CurrentStepIndex)
		p.event(corev1.EventTypeNormal, reason+"Passed", message)
		return true
	}
	message := fmt.Sprintf("%s webhooks did not say yes %s: %s", gate.Type, where, strings.Join(refused, "; "))
	if gate.Type == kultav1alpha1.WebhookPreRollout {
		p.fail(reason+"Failed", message)
		return false
	}
	if !wasHeld {
		p.decide(kultav1alpha1.ActionPause, reason+"Held", message, p.out.Status.CurrentStepIndex, p.out.Status.CurrentStepIndex)
		p.event(corev1.EventTypeWarning, reason+"Held", message)
	}
	if p.waitForPods("Held: " + message) {
		p.requeue(GateRecheck)
	}
	return false
}

// gateWhere says what the gate stands before, for messages.
func (p *planner) gateWhere(gate Gate) string {
	switch gate.Type {
	case kultav1alpha1.WebhookConfirmRollout:
		return "before revision " + p.obs.Hash + " rolls out"
	case kultav1alpha1.WebhookPreRollout:
		return "before revision " + p.obs.Hash + " takes traffic"
	case kultav1alpha1.WebhookConfirmTrafficIncrease:
		return fmt.Sprintf("before step %d raises the canary's weight", gate.Step)
	case kultav1alpha1.WebhookConfirmPromotion:
		return "before revision " + p.obs.Hash + " is promoted"
	}
	return ""
}

// gatePassed reports whether every hook has a Passed record for the gate.
func (p *planner) gatePassed(gate Gate, hooks []kultav1alpha1.Webhook) bool {
	for _, h := range hooks {
		w := p.webhookStatus(h.Name)
		if w == nil || w.Type != gate.Type || w.Revision != p.obs.Hash || !ptr.Equal(w.StepIndex, gateStep(gate.Step)) || w.Result != kultav1alpha1.WebhookPassed {
			return false
		}
	}
	return true
}

// gateHeld reports whether a webhook of the gate already held it (a decision is recorded once).
func (p *planner) gateHeld(gate Gate) bool {
	for _, w := range p.out.Status.Webhooks {
		if w.Type == gate.Type && w.Revision == p.obs.Hash && ptr.Equal(w.StepIndex, gateStep(gate.Step)) && w.Result == kultav1alpha1.WebhookHeld {
			return true
		}
	}
	return false
}

func (p *planner) webhookStatus(name string) *kultav1alpha1.WebhookStatus {
	for i := range p.out.Status.Webhooks {
		if p.out.Status.Webhooks[i].Name == name {
			return &p.out.Status.Webhooks[i]
		}
	}
	return nil
}

// recordWebhook puts w in status.webhooks in place of the webhook's last record; since stays
// when the result is the one already recorded for the same revision and step.
func (p *planner) recordWebhook(w kultav1alpha1.WebhookStatus) {
	w.Since = p.now
	setWebhookStatus(&p.out.Status, w)
}

// pruneWebhooks drops the records of webhooks the spec no longer has.
func (p *planner) pruneWebhooks() {
	st := &p.out.Status
	if len(st.Webhooks) == 0 {
		return
	}
	names := map[string]bool{}
	for _, w := range Webhooks(p.ro) {
		names[w.Name] = true
	}
	kept := st.Webhooks[:0:0]
	for _, w := range st.Webhooks {
		if names[w.Name] {
			kept = append(kept, w)
		}
	}
	st.Webhooks = kept
	if len(kept) == 0 {
		st.Webhooks = nil
	}
}

// rolloutFresh reports whether the current revision has taken no step yet: a canary at its
// first step, no preview, no experiment, no new Pod of a rolling update. confirm-rollout and
// pre-rollout are asked only then (once each, as status.webhooks records), so that webhooks
// added to a Rollout mid-way do not stop a revision that already serves.
func (p *planner) rolloutFresh() bool {
	st := &p.out.Status
	switch s := p.ro.Spec.Strategy; {
	case s.Canary != nil:
		return ptr.Deref(st.CurrentStepIndex, 0) == 0
	case s.BlueGreen != nil:
		return st.PauseStartTime == nil
	case s.ABTesting != nil:
		return st.ABExperiment == nil
	case s.Simple != nil:
		return p.rev(p.obs.Hash).Replicas == 0
	}
	return false
}

// confirmRollout holds a fresh revision with no Pods, all traffic on stable, until the
// confirm-rollout webhooks say yes.
func (p *planner) confirmRollout() bool {
	if !p.rolloutFresh() || p.gateOpen(Gate{Type: kultav1alpha1.WebhookConfirmRollout, Step: noStep}, providers.Weights{Stable: 100}, nil) {
		return true
	}
	p.out.Replicas[p.stable] = p.total()
	p.out.Replicas[p.obs.Hash] = 0
	p.pinStableRoles(p.stable, p.obs.Hash)
	p.setWeights(100, 0)
	p.out.Status.CurrentWeight = ptr.To[int32](0)
	p.removeHeaderRoute()
	return false
}

// preRollout calls the pre-rollout webhooks once, before a fresh revision takes traffic; a
// failure rolls it back.
func (p *planner) preRollout(weights providers.Weights) bool {
	if !p.rolloutFresh() {
		return true
	}
	return p.gateOpen(Gate{Type: kultav1alpha1.WebhookPreRollout, Step: noStep}, weights, nil)
}

// confirmPromotion holds the promotion until the confirm-promotion webhooks say yes.
func (p *planner) confirmPromotion(weights providers.Weights) bool {
	return p.gateOpen(Gate{Type: kultav1alpha1.WebhookConfirmPromotion, Step: noStep}, weights, &providers.Weights{Stable: 0, Canary: 100})
}

// rollbackRequested rolls the revision back when a rollback webhook answered 2xx.
func (p *planner) rollbackRequested() bool {
	a := p.obs.Rollback
	if a == nil {
		return false
	}
	p.recordWebhook(kultav1alpha1.WebhookStatus{Name: a.Name, Type: kultav1alpha1.WebhookRollback, Revision: p.obs.Hash, Result: kultav1alpha1.WebhookPassed, Message: a.Message})
	p.fail("RollbackWebhook", fmt.Sprintf("Rolled back by rollback webhook %s: %s", a.Name, a.Message))
	return true
}

// postRollout asks the reconciler to tell the post-rollout webhooks when this plan completes or
// rolls back a revision that replaced a stable one.
func (p *planner) postRollout() {
	if len(WebhooksOf(p.ro, kultav1alpha1.WebhookPostRollout)) == 0 || p.ro.Status.StablePodTemplateHash == "" {
		return
	}
	for _, d := range p.out.Status.Decisions {
		if !d.Timestamp.Equal(&p.now) {
			continue
		}
		switch d.Action {
		case kultav1alpha1.ActionComplete:
			if d.Reason != "Initialization" {
				p.out.PostRollout = string(kultav1alpha1.PhaseCompleted)
			}
		case kultav1alpha1.ActionRollback:
			p.out.PostRollout = string(kultav1alpha1.PhaseFailed)
		}
	}
}
