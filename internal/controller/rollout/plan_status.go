package rollout

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// Condition reasons.
const (
	ReasonCompleted         = "Completed"
	ReasonProgressing       = "RolloutInProgress"
	ReasonFailed            = "RolloutFailed"
	ReasonNotPaused         = "NotPaused"
	ReasonNoProblem         = "ReconcileSucceeded"
	ReasonReplicasNotReady  = "ReplicasNotReady"
	ReasonRolloutInProgress = "NewRevisionInProgress"
	// ReasonReconcileError: a read or write failed and is retried.
	ReasonReconcileError = "ReconcileError"
	// ReasonForbidden: RBAC forbids a write KULTA needs.
	ReasonForbidden = "Forbidden"
	// ReasonRejected: the API server rejected a write as invalid.
	ReasonRejected = "WriteRejected"
	// ReasonAnalysisUndecided ends a wait for an analysis that did not decide within
	// progressDeadlineSeconds.
	ReasonAnalysisUndecided = "AnalysisUndecided"
	// ReasonWeightsNotApplied and ReasonWeightsBeingApplied (TrafficRouted False): the routes do
	// not carry the planned weights yet.
	ReasonWeightsNotApplied   = "WeightsNotApplied"
	ReasonWeightsBeingApplied = "WeightsBeingApplied"
	// ReasonRouteNotAccepted (TrafficRouted False): the routes carry the weights, but a parent
	// (Gateway) has not accepted their latest generation.
	ReasonRouteNotAccepted = "RouteNotAccepted"
)

func strategyName(ro *kultav1alpha1.Rollout) kultav1alpha1.StrategyName {
	switch s := ro.Spec.Strategy; {
	case s.Canary != nil:
		return kultav1alpha1.StrategyCanary
	case s.BlueGreen != nil:
		return kultav1alpha1.StrategyBlueGreen
	case s.ABTesting != nil:
		return kultav1alpha1.StrategyABTesting
	default:
		return kultav1alpha1.StrategySimple
	}
}

func trafficRouting(ro *kultav1alpha1.Rollout) *kultav1alpha1.TrafficRouting {
	return ro.Spec.Strategy.TrafficRouting()
}

// serviceRoles returns the strategy's stable-side and new-side Service names.
func serviceRoles(ro *kultav1alpha1.Rollout) (stableSide, newSide string) {
	s := ro.Spec.Strategy.Services()
	return s.Stable, s.Canary
}

// oneRevision returns the revision every role Service of ro selects under services (a plan's
// pins), or "" when they differ or a role has no Service. Then the weights between those
// Services decide nothing: whatever the split, every request reaches that revision.
func oneRevision(ro *kultav1alpha1.Rollout, services map[string]string) string {
	stableSide, newSide := serviceRoles(ro)
	if stableSide == "" || newSide == "" {
		return ""
	}
	if h := services[stableSide]; h != "" && h == services[newSide] {
		return h
	}
	return ""
}

// pinAll points both of the strategy's Services at revision hash.
func (p *planner) pinAll(hash string) {
	p.pinStableRoles(hash, hash)
}

// pinStableRoles points the stable-side Service at stableHash and the new-side one at newHash.
func (p *planner) pinStableRoles(stableHash, newHash string) {
	stableSide, newSide := serviceRoles(p.ro)
	if stableSide != "" {
		p.out.Services[stableSide] = stableHash
	}
	if newSide != "" {
		p.out.Services[newSide] = newHash
	}
}

// summarise fills the replica counts, hashes and conditions of the new status.
func (p *planner) summarise() {
	st := &p.out.Status
	st.StablePodTemplateHash = p.stable
	if p.obs.Problem != nil && len(p.obs.Revisions) == 0 {
		// The problem stopped the observation before the ReplicaSets were read (a missing
		// Deployment, a spec the API server could not check): the Pods and the selector are
		// as last seen, which an autoscaler reading the scale subresource keeps relying on.
		p.setConditions()
		return
	}
	st.Replicas, st.ReadyReplicas, st.AvailableReplicas, st.UpdatedReplicas = 0, 0, 0, 0
	for hash, r := range p.obs.Revisions {
		st.Replicas += r.Pods
		st.ReadyReplicas += r.Ready
		st.AvailableReplicas += r.Available
		if hash == p.obs.Hash {
			st.UpdatedReplicas = r.Pods
		}
	}
	if sel, err := metav1.LabelSelectorAsSelector(p.ro.Spec.Selector.AsMeta()); err == nil {
		st.Selector = sel.String()
	}
	p.setConditions()
}

// routesAcceptedMessage is the message of TrafficRouted=True. It speaks of traffic, not of
// weights, since it also stands while a traffic-neutral weight change is on its way.
const routesAcceptedMessage = "Each revision gets its planned share of the traffic through routes their parents accepted"

// trafficNeutral reports whether the weights this plan writes move no request from one
// revision to another: the routes their parents accepted lead to Services that, pinned first
// in the same reconcile, all select one revision (a promotion resetting 0/100 to 100/0 once
// the stable Service selects the new revision). TrafficRouted then stays True instead of
// turning False for the moment of the write, which saves a status write at every promotion;
// if a parent refuses the new weights, the next reconcile says so.
func (p *planner) trafficNeutral() bool {
	t := p.obs.Traffic
	return t != nil && t.Weights != nil && t.Accepted && oneRevision(p.ro, p.out.Services) != ""
}

// setConditions derives the kstatus and domain conditions from the planned phase.
func (p *planner) setConditions() {
	st := &p.out.Status
	gen := p.ro.Generation
	set := func(condType string, status metav1.ConditionStatus, reason, message string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: condType, Status: status, Reason: reason, Message: message,
			ObservedGeneration: gen, LastTransitionTime: p.now,
		})
	}
	if prob := p.obs.Problem; prob != nil {
		set(kultav1alpha1.ConditionStalled, metav1.ConditionTrue, prob.Reason, prob.Message)
		set(kultav1alpha1.ConditionReconciling, metav1.ConditionFalse, prob.Reason, "Waiting for the user to fix "+prob.Reason)
		set(kultav1alpha1.ConditionReady, metav1.ConditionFalse, prob.Reason, prob.Message)
		st.Message = prob.Message
		return
	}
	// Stalled and Reconciling follow kstatus: never both True. Stalled means someone must act
	// (a failed rollout, an analysis holding it); Reconciling that KULTA is still moving.
	switch {
	case st.Phase == kultav1alpha1.PhaseCompleted:
		set(kultav1alpha1.ConditionStalled, metav1.ConditionFalse, ReasonNoProblem, "")
		set(kultav1alpha1.ConditionReconciling, metav1.ConditionFalse, ReasonCompleted, "")
		set(kultav1alpha1.ConditionProgressing, metav1.ConditionFalse, ReasonCompleted, st.Message)
		set(kultav1alpha1.ConditionReady, metav1.ConditionTrue, ReasonCompleted, st.Message)
	case st.Phase == kultav1alpha1.PhaseFailed:
		reason := ReasonFailed
		if n := len(st.Decisions); n > 0 {
			reason = st.Decisions[n-1].Reason
		}
		set(kultav1alpha1.ConditionStalled, metav1.ConditionTrue, reason, st.Message)
		set(kultav1alpha1.ConditionReconciling, metav1.ConditionFalse, reason, "")
		set(kultav1alpha1.ConditionProgressing, metav1.ConditionFalse, reason, st.Message)
		set(kultav1alpha1.ConditionReady, metav1.ConditionFalse, reason, st.Message)
	case p.pausedReason == "AnalysisFailed" || p.pausedReason == ReasonAnalysisUndecided:
		set(kultav1alpha1.ConditionStalled, metav1.ConditionTrue, p.pausedReason, st.Message)
		set(kultav1alpha1.ConditionReconciling, metav1.ConditionFalse, p.pausedReason, "")
		set(kultav1alpha1.ConditionProgressing, metav1.ConditionTrue, ReasonProgressing, st.Message)
		set(kultav1alpha1.ConditionReady, metav1.ConditionFalse, p.pausedReason, st.Message)
	default:
		set(kultav1alpha1.ConditionStalled, metav1.ConditionFalse, ReasonNoProblem, "")
		set(kultav1alpha1.ConditionReconciling, metav1.ConditionTrue, ReasonProgressing, st.Message)
		set(kultav1alpha1.ConditionProgressing, metav1.ConditionTrue, ReasonProgressing, st.Message)
		set(kultav1alpha1.ConditionReady, metav1.ConditionFalse, ReasonRolloutInProgress, st.Message)
	}
	switch {
	case trafficRouting(p.ro) == nil:
		meta.RemoveStatusCondition(&st.Conditions, kultav1alpha1.ConditionTrafficRouted)
	case p.trafficReason != "":
		set(kultav1alpha1.ConditionTrafficRouted, metav1.ConditionFalse, p.trafficReason, p.trafficMessage)
	case p.out.Weights != nil && (p.obs.Traffic == nil || p.obs.Traffic.Weights == nil || *p.obs.Traffic.Weights != *p.out.Weights) &&
		!p.trafficNeutral():
		set(kultav1alpha1.ConditionTrafficRouted, metav1.ConditionFalse, ReasonWeightsBeingApplied,
			fmt.Sprintf("Writing weights %d/%d to the routes", p.out.Weights.Stable, p.out.Weights.Canary))
	case p.obs.Traffic != nil && !p.obs.Traffic.Accepted:
		set(kultav1alpha1.ConditionTrafficRouted, metav1.ConditionFalse, ReasonRouteNotAccepted, p.obs.Traffic.Message)
	default:
		set(kultav1alpha1.ConditionTrafficRouted, metav1.ConditionTrue, "RoutesAccepted", routesAcceptedMessage)
	}
	if a := st.Analysis; a != nil && analysisSpec(p.ro) != nil {
		status := metav1.ConditionUnknown
		switch a.Verdict {
		case kultav1alpha1.VerdictPass:
			status = metav1.ConditionTrue
		case kultav1alpha1.VerdictFail:
			status = metav1.ConditionFalse
		}
		reason := a.Reason
		if reason == "" {
			reason = string(a.Verdict)
		}
		set(kultav1alpha1.ConditionAnalysis, status, reason, a.Message)
	} else {
		meta.RemoveStatusCondition(&st.Conditions, kultav1alpha1.ConditionAnalysis)
	}
	if p.pausedReason != "" {
		set(kultav1alpha1.ConditionPaused, metav1.ConditionTrue, p.pausedReason, p.pausedMessage)
	} else {
		set(kultav1alpha1.ConditionPaused, metav1.ConditionFalse, ReasonNotPaused, "")
	}
}
