package rollout

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/providers"
)

// canaryReplicas is the canary's scale for weight percent of total: rounded up, at least one
// while the weight is above zero, never more than total.
func canaryReplicas(total, weight int32) int32 {
	if weight <= 0 || total <= 0 {
		return 0
	}
	n := (total*weight + 99) / 100
	return max(1, min(n, total))
}

// canary walks the steps: a weight is reached when the canary's Pods are ready; a timed pause
// ends by the clock; `pause: {}` ends on kulta.io/promote. After the last step the canary is
// scaled to full size and promoted.
func (p *planner) canary(c *kultav1alpha1.CanaryStrategy) {
	st := &p.out.Status
	if st.CurrentStepIndex == nil {
		st.CurrentStepIndex = ptr.To[int32](0)
	}
	for range len(c.Steps) + 1 {
		index := *st.CurrentStepIndex
		if int(index) >= len(c.Steps) {
			p.canaryFinish()
			return
		}
		step := c.Steps[index]
		if step.SetWeight != nil {
			st.CurrentWeight = ptr.To(*step.SetWeight)
		}
		weight := ptr.Deref(st.CurrentWeight, 0)
		if !p.canaryWeightReached(weight) {
			return
		}
		// Analysis judges the canary while it serves traffic; with no weight it has nothing to
		// measure, unless the step itself is an analysis, which always waits for its verdict.
		if (weight > 0 || step.Analysis != nil) && !p.analysisPassed() {
			return
		}
		if step.Pause != nil && !p.canaryPauseOver(step.Pause) {
			return
		}
		p.advance(index, step)
	}
}

// canaryScale sets the stable and canary scales for weight and reports whether the canary's
// Pods for it are ready.
func (p *planner) canaryWeightReached(weight int32) bool {
	total := p.total()
	want, scaled := p.canaryScale(total, weight)
	canary := p.rev(p.obs.Hash)
	index := ptr.Deref(p.out.Status.CurrentStepIndex, 0)
	if trafficRouting(p.ro) == nil {
		// Without routes the canary's Pods are its traffic: the gates come before it scales.
		if open, failed := p.canaryGates(index, weight); !open {
			if !failed {
				p.out.Replicas[p.obs.Hash] = canary.Replicas
				p.out.Replicas[p.stable] = total - min(canary.Replicas, canary.Available)
				p.pinStableRoles(p.stable, p.obs.Hash)
			}
			return false
		}
	}
	p.out.Replicas[p.obs.Hash] = want
	stableReplicas := total
	if trafficRouting(p.ro) == nil {
		// Without routes, the share of traffic is the share of Pods behind the Services: the
		// stable revision gives up a Pod for each canary Pod that is ready.
		stableReplicas = total - min(want, canary.Available)
	}
	p.out.Replicas[p.stable] = stableReplicas
	p.pinStableRoles(p.stable, p.obs.Hash)
	// A canary scaled to no Pods by setCanaryScale takes no traffic at all. (Without
	// setCanaryScale, spec.replicas 0 gives it none either, and the weights move as before.)
	noPods := scaled && want == 0 && weight > 0
	if canary.Available < want || noPods {
		// Traffic follows ready Pods: until the canary has the Pods for this weight, the routes
		// keep the previous step's, so no request goes to a Pod that cannot serve it yet.
		held := min(previousWeight(p.ro.Spec.Strategy.Canary.Steps, index), weight)
		if noPods {
			held = 0
		}
		p.setWeights(100-held, held)
		if noPods {
			p.waitForPods(fmt.Sprintf("Step %d: setCanaryScale gives the canary no Pods, so it cannot take weight %d%%", index, weight))
			return false
		}
		p.waitForPods(fmt.Sprintf("Step %d: waiting for %d of %d canary Pods for weight %d%%", index, want-canary.Available, want, weight))
		return false
	}
	if trafficRouting(p.ro) != nil {
		// With routes the canary's Pods are ready before the gates are asked; the weights move
		// once they say yes.
		if open, failed := p.canaryGates(index, weight); !open {
			if !failed {
				held := min(previousWeight(p.ro.Spec.Strategy.Canary.Steps, index), weight)
				p.setWeights(100-held, held)
			}
			return false
		}
		if p.promotesAtFull(index, weight) {
			return true
		}
	}
	p.setWeights(100-weight, weight)
	return p.trafficAt(providers.Weights{Stable: 100 - weight, Canary: weight})
}

// promotesAtFull reports whether step index, which puts weight percent on the canary, is the
// last step, gives the canary all the traffic, and leaves nothing to judge it there (no
// analysis, no rollout webhooks): the promotion that follows then moves that traffic itself,
// pointing the stable Service at the canary's Pods before the routes go back to 100/0, so the
// routes never carry 0/100. That saves a route write, a status write and a wait for the routes
// to be accepted, and no request sees a state the step would not have given it: from the
// previous step's weights every request goes to the new revision at once, as with 0/100.
func (p *planner) promotesAtFull(index, weight int32) bool {
	steps := p.ro.Spec.Strategy.Canary.Steps
	if weight != 100 || int(index) != len(steps)-1 || steps[index].SetWeight == nil {
		return false
	}
	view := *p.ro
	view.Status = p.out.Status
	return analysisSpec(&view) == nil
}

// canaryGates asks the gates before step index's weight: pre-rollout before the revision's
// first step, confirm-traffic-increase before a weight above the previous step's. It reports
// whether they are open, and whether one failed the rollout.
func (p *planner) canaryGates(index, weight int32) (open, failed bool) {
	previous := min(previousWeight(p.ro.Spec.Strategy.Canary.Steps, index), weight)
	in := providers.Weights{Stable: 100 - previous, Canary: previous}
	if !p.preRollout(in) {
		return false, p.out.Status.Phase == kultav1alpha1.PhaseFailed
	}
	if weight > previous && !p.gateOpen(Gate{Type: kultav1alpha1.WebhookConfirmTrafficIncrease, Step: index}, in, &providers.Weights{Stable: 100 - weight, Canary: weight}) {
		return false, p.out.Status.Phase == kultav1alpha1.PhaseFailed
	}
	return true, false
}

// canaryScale is the canary's number of Pods at the current step for weight percent of total:
// what the last setCanaryScale at or before the step says (scaled true), or, without one (or
// after matchTrafficWeight), the share of total that weight gives it.
func (p *planner) canaryScale(total, weight int32) (n int32, scaled bool) {
	steps := p.ro.Spec.Strategy.Canary.Steps
	for i := min(int(ptr.Deref(p.out.Status.CurrentStepIndex, 0)), len(steps)-1); i >= 0; i-- {
		scale := steps[i].SetCanaryScale
		if scale == nil {
			continue
		}
		if scale.Replicas != nil {
			return *scale.Replicas, true
		}
		if percent := ptr.Deref(scale.Weight, -1); percent >= 0 {
			return (total*percent + 99) / 100, true
		}
		// matchTrafficWeight: the weight decides again.
		break
	}
	n = canaryReplicas(total, weight)
	if n == 0 && total > 0 && len(activeHeaderRoutes(p.ro, int(ptr.Deref(p.out.Status.CurrentStepIndex, 0))+1)) > 0 {
		// Requests a header route sends (or a mirror route copies) to the canary need a Pod
		// there, whatever the weight.
		n = 1
	}
	return n, false
}

// previousWeight is the weight the steps before step index set: the canary's share before
// that step, 0 at the first step of a revision.
func previousWeight(steps []kultav1alpha1.CanaryStep, index int32) int32 {
	for i := min(int(index), len(steps)) - 1; i >= 0; i-- {
		if w := steps[i].SetWeight; w != nil {
			return *w
		}
	}
	return 0
}

// trafficAt reports whether the routes carry w and their parents accepted it; a step counts
// as done only then. Without trafficRouting there is nothing to wait for.
func (p *planner) trafficAt(w providers.Weights) bool {
	if trafficRouting(p.ro) == nil {
		return true
	}
	t := p.obs.Traffic
	switch {
	case t == nil || t.Weights == nil || *t.Weights != w:
		p.traffic(ReasonWeightsNotApplied, fmt.Sprintf("Waiting for the routes to carry %d/%d", w.Stable, w.Canary))
		p.waitForPods(fmt.Sprintf("Step %d: setting route weights %d/%d", ptr.Deref(p.out.Status.CurrentStepIndex, 0), w.Stable, w.Canary))
		return false
	case !t.Accepted:
		p.traffic(ReasonRouteNotAccepted, t.Message)
		p.waitForPods(fmt.Sprintf("Step %d: %s", ptr.Deref(p.out.Status.CurrentStepIndex, 0), t.Message))
		return false
	}
	return true
}

// canaryPauseOver starts or continues a pause and reports whether it is over.
func (p *planner) canaryPauseOver(pause *kultav1alpha1.RolloutPause) bool {
	st := &p.out.Status
	index := ptr.Deref(st.CurrentStepIndex, 0)
	if st.PauseStartTime == nil {
		st.PauseStartTime = ptr.To(p.now)
		p.decide(kultav1alpha1.ActionPause, "PauseStarted", pauseMessage(index, pause), ptr.To(index), ptr.To(index))
		p.event("Normal", "RolloutPaused", pauseMessage(index, pause))
	}
	if pause.Duration == nil {
		if p.requested(kultav1alpha1.PromoteAnnotation) {
			p.consume(kultav1alpha1.PromoteAnnotation)
			p.pauseReason = "ManualPromotion"
			return true
		}
		p.setPhase(kultav1alpha1.PhasePaused, fmt.Sprintf("Step %d: paused until kulta.io/promote=true", index))
		p.paused("WaitingForPromotion", "Waiting for the kulta.io/promote annotation")
		return false
	}
	d, err := pause.Duration.Parse()
	if err != nil {
		// The CRD admits only durations that parse; this is an object written around validation.
		p.setPhase(kultav1alpha1.PhasePaused, fmt.Sprintf("Step %d: %v", index, err))
		p.paused("InvalidPauseDuration", err.Error())
		return false
	}
	if p.requested(kultav1alpha1.PromoteAnnotation) {
		p.consume(kultav1alpha1.PromoteAnnotation)
		p.pauseReason = "ManualPromotion"
		return true
	}
	end := st.PauseStartTime.Add(d)
	if p.obs.Now.Before(end) {
		p.setPhase(kultav1alpha1.PhasePaused, fmt.Sprintf("Step %d: paused for %s, until %s", index, *pause.Duration, end.UTC().Format(time.RFC3339)))
		p.paused("PausedForDuration", fmt.Sprintf("Paused for %s", *pause.Duration))
		p.requeue(end.Sub(p.obs.Now))
		return false
	}
	p.pauseReason = "PauseDurationExpired"
	p.dueAt(end)
	return true
}

func pauseMessage(index int32, pause *kultav1alpha1.RolloutPause) string {
	if pause.Duration == nil {
		return fmt.Sprintf("Step %d: paused until promoted", index)
	}
	return fmt.Sprintf("Step %d: paused for %s", index, *pause.Duration)
}

// advance moves to the next step.
func (p *planner) advance(index int32, step kultav1alpha1.CanaryStep) {
	st := &p.out.Status
	reason := "WeightReached"
	message := fmt.Sprintf("Step %d done: canary at %d%%", index, ptr.Deref(st.CurrentWeight, 0))
	switch {
	case step.SetCanaryScale != nil:
		reason = "CanaryScaled"
		pods, _ := p.canaryScale(p.total(), ptr.Deref(st.CurrentWeight, 0))
		message = fmt.Sprintf("Step %d done: canary at %d Pods, %d%% of the traffic", index, pods, ptr.Deref(st.CurrentWeight, 0))
	case step.Pause != nil:
		reason = p.pauseReason
		message = fmt.Sprintf("Step %d done: pause ended (%s)", index, reason)
	case step.SetHeaderRoute != nil && len(step.SetHeaderRoute.Match) > 0:
		reason = "HeaderRouteSet"
		message = fmt.Sprintf("Step %d done: requests matching header route %s reach the canary", index, step.SetHeaderRoute.Name)
	case step.SetHeaderRoute != nil:
		reason = "HeaderRouteRemoved"
		message = fmt.Sprintf("Step %d done: header route %s removed", index, step.SetHeaderRoute.Name)
	case step.SetMirrorRoute != nil && step.SetMirrorRoute.Sets():
		reason = "MirrorRouteSet"
		message = fmt.Sprintf("Step %d done: %d%% of the requests matching mirror route %s are copied to the canary", index, step.SetMirrorRoute.PercentageOrDefault(), step.SetMirrorRoute.Name)
	case step.SetMirrorRoute != nil:
		reason = "MirrorRouteRemoved"
		message = fmt.Sprintf("Step %d done: mirror route %s removed", index, step.SetMirrorRoute.Name)
	case step.Analysis != nil:
		reason = "AnalysisPassed"
		message = fmt.Sprintf("Step %d done: analysis passed with the canary at %d%%", index, ptr.Deref(st.CurrentWeight, 0))
		if e := p.evidence; e == nil || e.Verdict != kultav1alpha1.VerdictPass {
			// Past a failed or undecided analysis, as failurePolicy Continue or a person allowed.
			reason = "AnalysisOverridden"
			message = fmt.Sprintf("Step %d done: analysis did not pass, going on as failurePolicy or kulta.io/promote allowed", index)
		}
	}
	p.pauseReason = ""
	next := index + 1
	st.CurrentStepIndex = ptr.To(next)
	st.PauseStartTime = nil
	st.StepStartTime = ptr.To(p.now)
	p.progressed()
	p.decide(kultav1alpha1.ActionStepAdvance, reason, message, ptr.To(index), ptr.To(next))
	p.event("Normal", "StepAdvanced", message)
}

// canaryFinish scales the canary to full size, then promotes it.
func (p *planner) canaryFinish() {
	total := p.total()
	canary := p.rev(p.obs.Hash)
	p.out.Replicas[p.obs.Hash] = total
	stableReplicas := total
	if trafficRouting(p.ro) == nil {
		stableReplicas = total - min(total, canary.Available)
	}
	p.out.Replicas[p.stable] = stableReplicas
	p.pinStableRoles(p.stable, p.obs.Hash)
	weight := ptr.Deref(p.out.Status.CurrentWeight, 0)
	p.setWeights(100-weight, weight)
	if canary.Available < total {
		p.waitForPods(fmt.Sprintf("All steps done: waiting for %d of %d canary Pods before promotion", total-canary.Available, total))
		return
	}
	if !p.confirmPromotion(providers.Weights{Stable: 100 - weight, Canary: weight}) {
		return
	}
	p.promote("AllStepsCompleted", fmt.Sprintf("All %d steps completed", len(p.ro.Spec.Strategy.Canary.Steps)))
}

// activeHeaderRoutes are the header and mirror routes the canary's setHeaderRoute and
// setMirrorRoute steps before step end leave in place, by step name: each step that sets its
// route sets it (replacing one of the other kind with the same name), each that does not
// removes it.
func activeHeaderRoutes(ro *kultav1alpha1.Rollout, end int) map[string]providers.HeaderRoute {
	active := map[string]providers.HeaderRoute{}
	steps := ro.Spec.Strategy.Canary.Steps
	for i := 0; i < min(end, len(steps)); i++ {
		name := providers.StepRouteName(steps[i])
		if name == "" {
			continue
		}
		if hr, sets := providers.StepRoute(ro, steps[i]); sets {
			active[name] = hr
		} else {
			delete(active, name)
		}
	}
	return active
}

// canaryHeaderRoutes plans the canary's header and mirror routes (setHeaderRoute,
// setMirrorRoute): while a canary is in
// flight and has an available Pod, those its steps so far set, with every other the routes may
// carry removed; once the rollout completes, fails or is aborted, none. status.headerRoutes records the ones in place,
// so that a route whose step a later spec no longer names is removed too.
func (p *planner) canaryHeaderRoutes() {
	c := p.ro.Spec.Strategy.Canary
	if c == nil || trafficRouting(p.ro) == nil || p.obs.Problem != nil {
		return
	}
	st := &p.out.Status
	inFlight := p.stable != "" && p.obs.Hash != p.stable && st.Phase != kultav1alpha1.PhaseFailed
	active := map[string]providers.HeaderRoute{}
	// A header route sends requests to the canary whatever the weight, and a mirror route
	// copies them there: never while the canary has no Pod to answer them (its Pods lost,
	// scaled to 0, or steps skipped by kulta.io/promote=full before any was ready).
	if inFlight && p.rev(p.obs.Hash).Available > 0 {
		active = activeHeaderRoutes(p.ro, int(ptr.Deref(st.CurrentStepIndex, 0)))
	}
	gone := map[string]bool{}
	for _, name := range p.ro.Status.HeaderRoutes {
		gone[name] = true
	}
	if !inFlight {
		// Also those a step names, should their record not have been written.
		for _, s := range c.Steps {
			if name := providers.StepRouteName(s); name != "" {
				gone[name] = true
			}
		}
	}
	st.HeaderRoutes = nil
	for _, name := range slices.Sorted(maps.Keys(active)) {
		p.out.HeaderRoutes = append(p.out.HeaderRoutes, active[name])
		st.HeaderRoutes = append(st.HeaderRoutes, name)
		delete(gone, name)
	}
	for _, name := range slices.Sorted(maps.Keys(gone)) {
		p.out.RemoveHeaderRoutes = append(p.out.RemoveHeaderRoutes, providers.StepHeaderRouteName(p.ro, name))
	}
}
