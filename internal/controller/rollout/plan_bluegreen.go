package rollout

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/providers"
)

// blueGreen runs the new revision at full scale behind the preview Service, then switches the
// active Service to it on promotion; the old revision keeps its Pods for scaleDownDelaySeconds.
func (p *planner) blueGreen(bg *kultav1alpha1.BlueGreenStrategy) {
	st := &p.out.Status
	if !p.besideStable("preview Pods of revision " + p.obs.Hash) {
		return
	}
	if !p.preRollout(providers.Weights{Stable: 100}) {
		return
	}
	if st.PauseStartTime == nil {
		st.PauseStartTime = ptr.To(p.now)
		p.progressed()
		p.decide(kultav1alpha1.ActionPause, "PreviewReady", fmt.Sprintf("Preview of revision %s is ready behind %s", p.obs.Hash, bg.PreviewService), nil, nil)
		p.event("Normal", "PreviewReady", fmt.Sprintf("Preview of revision %s is ready behind %s", p.obs.Hash, bg.PreviewService))
	}
	if p.requested(kultav1alpha1.PromoteAnnotation) {
		if !p.confirmPromotion(providers.Weights{Stable: 100}) {
			return
		}
		p.consume(kultav1alpha1.PromoteAnnotation)
		p.promote("ManualPromotion", "Promoted by the kulta.io/promote annotation")
		return
	}
	if !p.analysisPassed() {
		return
	}
	if ptr.Deref(bg.AutoPromotionEnabled, false) {
		at := st.PauseStartTime.Add(time.Duration(ptr.Deref(bg.AutoPromotionSeconds, 0)) * time.Second)
		if !p.obs.Now.Before(at) {
			if !p.confirmPromotion(providers.Weights{Stable: 100}) {
				return
			}
			p.dueAt(at)
			p.promote("AutoPromotion", fmt.Sprintf("Promoted automatically after %ds of preview", ptr.Deref(bg.AutoPromotionSeconds, 0)))
			return
		}
		p.setPhase(kultav1alpha1.PhasePreview, fmt.Sprintf("Preview ready; promotion at %s", at.UTC().Format(time.RFC3339)))
		p.requeue(at.Sub(p.obs.Now))
		return
	}
	p.setPhase(kultav1alpha1.PhasePreview, fmt.Sprintf("Preview ready behind %s; waiting for kulta.io/promote=true", bg.PreviewService))
	p.paused("WaitingForPromotion", "Waiting for the kulta.io/promote annotation")
}

// besideStable runs the new revision at full scale next to the stable one, each behind its
// Service with all routed traffic on stable, and reports whether the new revision is ready.
func (p *planner) besideStable(what string) bool {
	total := p.total()
	p.out.Replicas[p.stable] = total
	p.out.Replicas[p.obs.Hash] = total
	p.pinStableRoles(p.stable, p.obs.Hash)
	p.setWeights(100, 0)
	p.out.Status.CurrentWeight = ptr.To[int32](0)
	if ready := p.rev(p.obs.Hash).Available; ready < total {
		p.waitForPods(fmt.Sprintf("Waiting for %d of %d %s", total-ready, total, what))
		return false
	}
	return true
}

// abTesting sends matching requests to variant B (the new revision) until the experiment
// concludes, then promotes B on kulta.io/promote, or rolls it back when A won.
func (p *planner) abTesting(ab *kultav1alpha1.ABTestingStrategy) {
	st := &p.out.Status
	if !p.besideStable("Pods of variant B (revision " + p.obs.Hash + ")") {
		// No request matching variant B goes to its Service before its Pods are ready (a new
		// revision mid-experiment included): the rule comes back once they are.
		p.removeHeaderRoute()
		return
	}
	if !p.preRollout(providers.Weights{Stable: 100}) {
		p.removeHeaderRoute()
		return
	}
	if trafficRouting(p.ro) != nil {
		p.out.HeaderRoutes = []providers.HeaderRoute{{
			Name:   providers.HeaderRouteName(p.ro),
			Header: ab.VariantBMatch.Header,
			Cookie: ab.VariantBMatch.Cookie,
		}}
	}
	if st.ABExperiment == nil {
		st.ABExperiment = &kultav1alpha1.ABExperimentStatus{StartedAt: p.now}
		p.progressed()
		p.decide(kultav1alpha1.ActionInitialize, "ExperimentStarted", fmt.Sprintf("Variant B (revision %s) receives matching requests", p.obs.Hash), nil, nil)
		p.event("Normal", "ExperimentStarted", fmt.Sprintf("Variant B (revision %s) receives matching requests", p.obs.Hash))
	}
	exp := st.ABExperiment
	if exp.ConcludedAt == nil && !p.abConclude(ab, exp) {
		return
	}
	if exp.Winner == kultav1alpha1.VariantA {
		p.fail("VariantBLost", "Experiment concluded with variant A as the winner")
		return
	}
	if p.requested(kultav1alpha1.PromoteAnnotation) {
		if !p.confirmPromotion(providers.Weights{Stable: 100}) {
			return
		}
		p.consume(kultav1alpha1.PromoteAnnotation)
		p.promote("ManualPromotion", "Variant B promoted by the kulta.io/promote annotation")
		return
	}
	p.setPhase(kultav1alpha1.PhaseConcluded, fmt.Sprintf("Experiment concluded (%s); waiting for kulta.io/promote=true to promote variant B", exp.ConclusionReason))
	p.paused("WaitingForPromotion", "Waiting for the kulta.io/promote annotation")
}

// abConclude ends the experiment on the annotation or at maxDuration, and reports whether it
// has ended.
func (p *planner) abConclude(ab *kultav1alpha1.ABTestingStrategy, exp *kultav1alpha1.ABExperimentStatus) bool {
	reason := ""
	switch {
	case exp.Winner != "":
		reason = "SignificanceReached"
	case p.requested(kultav1alpha1.ConcludeExperimentAnnotation):
		p.consume(kultav1alpha1.ConcludeExperimentAnnotation)
		reason = "ManualConclusion"
	case ab.MaxDuration != nil:
		d, err := ab.MaxDuration.Parse()
		if err != nil {
			p.setPhase(kultav1alpha1.PhaseExperimenting, fmt.Sprintf("spec.strategy.abTesting.maxDuration: %v", err))
			return false
		}
		end := exp.StartedAt.Add(d)
		if !p.obs.Now.Before(end) {
			reason = "MaxDurationExceeded"
			p.dueAt(end)
			break
		}
		p.requeue(end.Sub(p.obs.Now))
	}
	if reason == "" {
		msg := fmt.Sprintf("Experiment running since %s", exp.StartedAt.UTC().Format(time.RFC3339))
		if exp.Message != "" {
			msg += ": " + exp.Message
		}
		p.setPhase(kultav1alpha1.PhaseExperimenting, msg)
		if ab.Analysis != nil && len(ab.Analysis.Metrics) > 0 {
			p.requeue(experimentInterval(ab.Analysis))
		}
		return false
	}
	exp.ConcludedAt = ptr.To(metav1.NewTime(p.obs.Now))
	exp.ConclusionReason = reason
	p.progressed()
	message := fmt.Sprintf("Experiment concluded: %s", reason)
	if exp.Winner != "" {
		message += fmt.Sprintf("; variant %s wins: %s", exp.Winner, exp.Message)
	}
	p.decide(kultav1alpha1.ActionConclude, reason, message, nil, nil)
	p.event("Normal", "ExperimentConcluded", message)
	return true
}
