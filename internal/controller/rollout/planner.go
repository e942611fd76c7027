package rollout

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/revision"
	"github.com/false-systems/kulta/providers"
)

// DefaultScaleDownDelay is how long a revision that stopped serving keeps its Pods when the
// strategy routes traffic and sets no scaleDownDelaySeconds.
const DefaultScaleDownDelay = 30 * time.Second

// scaleDownRecheck is how often a scale-down held back for an unavailable stable is looked at
// again; a change to a ReplicaSet also wakes the reconciler sooner.
const scaleDownRecheck = 5 * time.Second

// planner computes a Plan from an Observation. It never touches a client or the wall clock.
type planner struct {
	obs    Observation
	ro     *kultav1alpha1.Rollout
	now    metav1.Time
	stable string // stable revision hash after this plan
	out    Plan
	// pausedReason and pausedMessage feed the Paused condition.
	pausedReason, pausedMessage string
	// pauseReason says how the last pause ended, for the decision that advances past it.
	pauseReason string
	// evidence is the analysis behind this reconcile's decisions, recorded with them.
	evidence *kultav1alpha1.AnalysisStatus
	// trafficReason and trafficMessage, when set, say why the routes are not where the plan
	// wants them, for the TrafficRouted condition.
	trafficReason, trafficMessage string
	// holding lists the revisions kept up because they may still serve, for the status message.
	holding []string
}

// Compute plans the next state of obs.Rollout.
func Compute(obs Observation) Plan {
	p := &planner{
		obs:    obs,
		ro:     obs.Rollout,
		now:    metav1.NewTime(obs.Now),
		stable: obs.Rollout.Status.StablePodTemplateHash,
		out: Plan{
			Status:      *obs.Rollout.Status.DeepCopy(),
			Replicas:    map[string]int32{},
			ScaleDownAt: map[string]time.Time{},
			Services:    map[string]string{},
			NewRole:     revision.RoleCanary,
		},
	}
	p.run()
	return p.out
}

func (p *planner) run() {
	st := &p.out.Status
	st.Strategy = strategyName(p.ro)
	if p.obs.Problem != nil {
		p.summarise()
		return
	}
	if p.stable != "" && p.obs.Revisions[p.stable] == nil && p.obs.Hash != p.stable {
		// The stable ReplicaSet is gone (deleted by hand): the current template is all there is.
		p.event(corev1.EventTypeWarning, "StableRevisionMissing", fmt.Sprintf("ReplicaSet of stable revision %s not found; rolling out %s as the first revision", p.stable, p.obs.Hash))
		p.stable = ""
	}
	p.detectNewRevision()
	switch {
	case p.stable == "":
		p.out.NewRole = revision.RoleStable
		p.initial()
	case p.obs.Hash == p.stable:
		p.steady()
	default:
		p.inFlight()
	}
	p.canaryHeaderRoutes()
	p.scaleDownOthers()
	p.scaleWorkload()
	p.cleanupHistory()
	p.recordScaleDowns()
	p.pruneWebhooks()
	p.postRollout()
	if len(p.holding) > 0 {
		sort.Strings(p.holding)
		p.setPhase(p.out.Status.Phase, p.out.Status.Message+"; "+strings.Join(p.holding, "; "))
	}
	p.summarise()
}

func (p *planner) total() int32 { return ptr.Deref(p.ro.Spec.Replicas, 1) }

func (p *planner) rev(hash string) *Revision {
	if r := p.obs.Revisions[hash]; r != nil {
		return r
	}
	return &Revision{Hash: hash}
}

// detectNewRevision resets the progress fields when spec.template names a new revision.
func (p *planner) detectNewRevision() {
	st := &p.out.Status
	if st.CurrentPodTemplateHash == p.obs.Hash {
		return
	}
	previous := st.CurrentPodTemplateHash
	st.CurrentPodTemplateHash = p.obs.Hash
	st.CurrentStepIndex = nil
	st.CurrentWeight = ptr.To[int32](0)
	st.PauseStartTime = nil
	st.StepStartTime = ptr.To(p.now)
	st.ProgressStartedAt = ptr.To(p.now)
	st.ABExperiment = nil
	switch {
	case p.stable == "":
		p.decide(kultav1alpha1.ActionInitialize, "Initialization", fmt.Sprintf("First revision %s", p.obs.Hash), nil, nil)
	case p.obs.Hash == p.stable:
		if previous != "" && previous != p.stable {
			p.abandon(previous)
			p.decide(kultav1alpha1.ActionRollback, "RevertedToStable", fmt.Sprintf("Template reverted to stable revision %s; revision %s abandoned", p.stable, previous), nil, nil)
			p.event(corev1.EventTypeNormal, "RevertedToStable", fmt.Sprintf("Template reverted to stable revision %s", p.stable))
		}
	default:
		msg := fmt.Sprintf("New revision %s; stable is %s", p.obs.Hash, p.stable)
		switch {
		case st.Phase == kultav1alpha1.PhaseFailed:
			// Fixing forward: a new template after an abort or a rollback is a new rollout from
			// stable, as a retry would be; the failed revision keeps its scale-down time.
			st.Phase = kultav1alpha1.PhaseProgressing
			msg = fmt.Sprintf("New revision %s after failed revision %s; stable is %s", p.obs.Hash, previous, p.stable)
		case previous != "" && previous != p.stable:
			msg = fmt.Sprintf("New revision %s replaces revision %s in flight; stable is %s", p.obs.Hash, previous, p.stable)
			p.abandon(previous)
		}
		if p.ro.Spec.Strategy.Canary != nil {
			st.CurrentStepIndex = ptr.To[int32](0)
		}
		p.decide(kultav1alpha1.ActionInitialize, "NewRevision", msg, nil, st.CurrentStepIndex)
		p.event(corev1.EventTypeNormal, "RolloutStarted", msg)
	}
}

// abandon gives a revision that stops being rolled out, and may still carry traffic until the
// routes move off it, the scale-down delay; a delay already running is kept.
func (p *planner) abandon(hash string) {
	prev := p.obs.Revisions[hash]
	if prev == nil || prev.Replicas == 0 || (prev.ScaleDownAt != nil && prev.ScaleDownAt.After(p.obs.Now)) {
		return
	}
	p.out.ScaleDownAt[hash] = p.obs.Now.Add(scaleDownDelay(p.ro))
}

// initial rolls out the first revision at full scale, with no steps.
func (p *planner) initial() {
	st := &p.out.Status
	p.out.Replicas[p.obs.Hash] = p.total()
	// An adopted Deployment's Pods serve through the Services until the first revision can
	// take all their traffic: the Services, which select both, are pinned to it only then.
	adopting := p.ro.Spec.WorkloadRef != nil
	if !adopting {
		p.pinAll(p.obs.Hash)
	}
	p.setWeights(100, 0)
	if p.rev(p.obs.Hash).Available < p.total() {
		msg := fmt.Sprintf("Waiting for %d of %d Pods of first revision %s", p.total()-p.rev(p.obs.Hash).Available, p.total(), p.obs.Hash)
		if adopting {
			msg += fmt.Sprintf("; Deployment %s serves until then", p.ro.Spec.WorkloadRef.Name)
		}
		p.waitForPods(msg)
		return
	}
	if adopting {
		p.pinAll(p.obs.Hash)
	}
	p.stable = p.obs.Hash
	st.CurrentWeight = ptr.To[int32](100)
	p.setPhase(kultav1alpha1.PhaseCompleted, fmt.Sprintf("Revision %s is stable", p.obs.Hash))
	p.decide(kultav1alpha1.ActionComplete, "FirstRevisionReady", fmt.Sprintf("Revision %s is ready and stable", p.obs.Hash), nil, nil)
	p.event(corev1.EventTypeNormal, "RolloutCompleted", fmt.Sprintf("Revision %s is ready and stable", p.obs.Hash))
}

// scaleWorkload scales the adopted Deployment as spec.workloadRef.scaleDown says: to zero once
// the Rollout has a stable revision (its first revision had all its Pods available, and the
// Services were pinned to it in the same plan, before the Deployment is scaled); before that,
// with progressively, down by one Pod for each available Pod of the first revision, and back
// up when they stop being available.
func (p *planner) scaleWorkload() {
	ref, w := p.ro.Spec.WorkloadRef, p.obs.Workload
	if ref == nil || w == nil || ref.ScaleDown == "" || ref.ScaleDown == kultav1alpha1.ScaleDownNever {
		return
	}
	adopted := ptr.Deref(w.Adopted, w.Replicas)
	want := adopted
	switch {
	case p.stable != "":
		want = 0
	case ref.ScaleDown == kultav1alpha1.ScaleDownProgressively:
		want = max(0, adopted-p.rev(p.obs.Hash).Available)
	}
	if want == w.Replicas {
		return
	}
	p.out.Workload = &WorkloadScale{Replicas: want, Adopted: adopted}
	p.event(corev1.EventTypeNormal, "WorkloadScaled", fmt.Sprintf("Deployment %s scaled from %d to %d Pods (scaleDown %s)", w.Name, w.Replicas, want, ref.ScaleDown))
	if w.Adopted == nil && p.total() < adopted {
		// Said once, as the adoption begins: the count is recorded with this scale.
		p.event(corev1.EventTypeWarning, "FewerReplicasThanWorkload", fmt.Sprintf(
			"Rollout runs %d Pods (spec.replicas) where Deployment %s ran %d: once adopted, the service has %d; set spec.replicas to %d to keep its capacity",
			p.total(), w.Name, adopted, p.total(), adopted))
	}
}

// steady keeps the stable revision at full scale with all traffic.
func (p *planner) steady() {
	st := &p.out.Status
	p.out.Replicas[p.stable] = p.total()
	p.pinAll(p.stable)
	p.setWeights(100, 0)
	p.removeHeaderRoute()
	p.consume(kultav1alpha1.PromoteAnnotation, kultav1alpha1.AbortAnnotation, kultav1alpha1.RetryAnnotation, kultav1alpha1.ConcludeExperimentAnnotation)
	st.CurrentWeight = ptr.To[int32](100)
	st.PauseStartTime = nil
	if c := p.ro.Spec.Strategy.Canary; c != nil {
		st.CurrentStepIndex = ptr.To(int32(len(c.Steps)))
	}
	if ready := p.rev(p.stable).Available; ready < p.total() {
		p.setPhase(kultav1alpha1.PhaseProgressing, fmt.Sprintf("Scaling stable revision %s: %d of %d Pods ready", p.stable, ready, p.total()))
		return
	}
	p.setPhase(kultav1alpha1.PhaseCompleted, fmt.Sprintf("Revision %s is stable", p.stable))
}

// inFlight moves from the stable revision to the current one with the Rollout's strategy.
func (p *planner) inFlight() {
	st := &p.out.Status
	if st.Phase == kultav1alpha1.PhaseFailed {
		if !p.requested(kultav1alpha1.RetryAnnotation) {
			p.consume(kultav1alpha1.AbortAnnotation, kultav1alpha1.PromoteAnnotation)
			p.holdRolledBack()
			return
		}
		p.consume(kultav1alpha1.RetryAnnotation)
		p.retry()
	}
	if p.requested(kultav1alpha1.AbortAnnotation) {
		p.consume(kultav1alpha1.AbortAnnotation)
		p.fail("Aborted", "Rollout aborted by the kulta.io/abort annotation")
		return
	}
	if p.ro.Spec.Paused {
		p.holdPaused()
		return
	}
	if p.rollbackRequested() || !p.confirmRollout() {
		return
	}
	if len(WebhooksOf(p.ro, kultav1alpha1.WebhookRollback)) > 0 {
		// The rollback webhooks are polled while the revision rolls out.
		defer func() {
			if p.out.Status.Phase != kultav1alpha1.PhaseFailed && p.out.Status.Phase != kultav1alpha1.PhaseCompleted {
				p.requeue(GateRecheck)
			}
		}()
	}
	if p.ro.Annotations[kultav1alpha1.PromoteAnnotation] == "full" && p.ro.Spec.Strategy.Canary != nil {
		p.consume(kultav1alpha1.PromoteAnnotation)
		from := st.CurrentStepIndex
		st.CurrentStepIndex = ptr.To(int32(len(p.ro.Spec.Strategy.Canary.Steps)))
		st.PauseStartTime = nil
		p.progressed()
		p.decide(kultav1alpha1.ActionPromotion, "FullPromotion", "Remaining steps skipped by kulta.io/promote=full", from, st.CurrentStepIndex)
		p.event(corev1.EventTypeNormal, "FullPromotion", "Remaining steps skipped by kulta.io/promote=full")
	}
	switch s := p.ro.Spec.Strategy; {
	case s.Canary != nil:
		p.canary(s.Canary)
	case s.BlueGreen != nil:
		p.blueGreen(s.BlueGreen)
	case s.ABTesting != nil:
		p.abTesting(s.ABTesting)
	case s.Simple != nil:
		p.simple()
	}
}

// holdPaused keeps a rollout in flight exactly where it is while spec.paused is true.
func (p *planner) holdPaused() {
	for hash, r := range p.obs.Revisions {
		p.out.Replicas[hash] = r.Replicas
	}
	if t := p.obs.Traffic; t != nil && t.Weights != nil {
		p.out.Weights = t.Weights
	}
	// Time paused does not count against progressDeadlineSeconds.
	p.progressed()
	p.setPhase(kultav1alpha1.PhasePaused, "Paused by spec.paused; set it to false to go on")
	p.paused("PausedByUser", "spec.paused is true")
}

// retry starts the current revision's rollout again from the beginning.
func (p *planner) retry() {
	st := &p.out.Status
	from := st.CurrentStepIndex
	st.CurrentWeight = ptr.To[int32](0)
	st.PauseStartTime = nil
	st.StepStartTime = ptr.To(p.now)
	st.ProgressStartedAt = ptr.To(p.now)
	st.ABExperiment = nil
	st.CurrentStepIndex = nil
	if p.ro.Spec.Strategy.Canary != nil {
		st.CurrentStepIndex = ptr.To[int32](0)
	}
	st.Phase = kultav1alpha1.PhaseProgressing
	p.decide(kultav1alpha1.ActionResume, "Retry", fmt.Sprintf("Retrying revision %s from the start", p.obs.Hash), from, st.CurrentStepIndex)
	p.event(corev1.EventTypeNormal, "RolloutRetried", fmt.Sprintf("Retrying revision %s from the start", p.obs.Hash))
}

// fail rolls back to the stable revision and marks the rollout Failed with reason.
func (p *planner) fail(reason, message string) {
	st := &p.out.Status
	p.decide(kultav1alpha1.ActionRollback, reason, message, st.CurrentStepIndex, nil)
	p.event(corev1.EventTypeWarning, reason, message+"; all traffic back to stable revision "+p.stable)
	st.Phase = kultav1alpha1.PhaseFailed
	st.Message = message
	p.out.ScaleDownAt[p.obs.Hash] = p.obs.Now.Add(scaleDownDelay(p.ro))
	p.holdRolledBack()
}

// holdRolledBack keeps a failed rollout on the stable revision: all traffic there, the current
// revision scaled down once its delay has passed.
func (p *planner) holdRolledBack() {
	st := &p.out.Status
	p.out.Replicas[p.stable] = p.total()
	p.pinStableRoles(p.stable, p.obs.Hash)
	p.setWeights(100, 0)
	p.removeHeaderRoute()
	st.CurrentWeight = ptr.To[int32](0)
	st.PauseStartTime = nil
	// The message is the failure's, written afresh: notes of this reconcile (revisions kept
	// up) are added to it, never to the last one's.
	st.Phase = kultav1alpha1.PhaseFailed
	for i := len(st.Decisions) - 1; i >= 0; i-- {
		if d := st.Decisions[i]; d.Action == kultav1alpha1.ActionRollback || d.Action == kultav1alpha1.ActionFail {
			st.Message = d.Message
			break
		}
	}
	p.scaleDownWhenSafe(p.obs.Hash)
}

// sinceProgress is how long the rollout has gone without progress, and how long it may.
func (p *planner) sinceProgress() (elapsed, deadline time.Duration) {
	deadline = time.Duration(ptr.Deref(p.ro.Spec.ProgressDeadlineSeconds, 600)) * time.Second
	if at := p.out.Status.ProgressStartedAt; at != nil {
		return p.obs.Now.Sub(at.Time), deadline
	}
	return 0, deadline
}

// deadlineMessage explains a wait that has gone on past progressDeadlineSeconds.
func (p *planner) deadlineMessage(elapsed time.Duration, message string) string {
	return fmt.Sprintf("No progress for %s (progressDeadlineSeconds %d): %s", elapsed.Round(time.Second), ptr.Deref(p.ro.Spec.ProgressDeadlineSeconds, 600), message)
}

// waitForPods reports that the rollout waits for Pods (or routes), or fails it when the
// progress deadline has passed.
func (p *planner) waitForPods(message string) bool {
	if elapsed, deadline := p.sinceProgress(); elapsed >= deadline {
		msg := p.deadlineMessage(elapsed, message)
		if p.stable == "" || p.stable == p.obs.Hash {
			// Nothing to roll back to: the rollout stays Failed, decided and told once.
			if st := &p.out.Status; st.Phase == kultav1alpha1.PhaseFailed {
				p.setPhase(kultav1alpha1.PhaseFailed, st.Message)
				return false
			}
			p.setPhase(kultav1alpha1.PhaseFailed, msg)
			p.decide(kultav1alpha1.ActionFail, "ProgressDeadlineExceeded", msg, nil, nil)
			p.event(corev1.EventTypeWarning, "ProgressDeadlineExceeded", msg)
			return false
		}
		p.fail("ProgressDeadlineExceeded", msg)
		return false
	}
	p.setPhase(kultav1alpha1.PhaseProgressing, message)
	elapsed, deadline := p.sinceProgress()
	p.requeue(deadline - elapsed)
	return true
}

// progressed records that the rollout moved on, restarting the progress deadline.
func (p *planner) progressed() {
	p.out.Status.ProgressStartedAt = ptr.To(p.now)
}

// promote makes the current revision stable.
func (p *planner) promote(reason, message string) {
	st := &p.out.Status
	previous := p.stable
	p.stable = p.obs.Hash
	delete(p.out.Replicas, previous) // scaleDownOthers scales it down once it is safe
	if delay := scaleDownDelay(p.ro); delay > 0 && p.obs.Revisions[previous] != nil && p.obs.Revisions[previous].Replicas > 0 {
		p.out.ScaleDownAt[previous] = p.obs.Now.Add(delay)
	}
	p.out.Replicas[p.stable] = p.total()
	p.pinAll(p.stable)
	p.setWeights(100, 0)
	p.removeHeaderRoute()
	st.CurrentWeight = ptr.To[int32](100)
	st.PauseStartTime = nil
	p.progressed()
	p.setPhase(kultav1alpha1.PhaseCompleted, fmt.Sprintf("Revision %s is stable", p.stable))
	p.decide(kultav1alpha1.ActionComplete, reason, message, st.CurrentStepIndex, st.CurrentStepIndex)
	p.event(corev1.EventTypeNormal, "RolloutCompleted", fmt.Sprintf("Revision %s replaced %s: %s", p.stable, previous, message))
}

// scaleDownOthers scales every revision the plan does not mention to zero, after its
// scale-down time when it has one.
func (p *planner) scaleDownOthers() {
	for hash, r := range p.obs.Revisions {
		if _, planned := p.out.Replicas[hash]; planned {
			continue
		}
		if r.Replicas == 0 {
			p.out.Replicas[hash] = 0
			continue
		}
		p.scaleDownWhenSafe(hash)
	}
}

// scaleDownWhenSafe scales revision hash to zero once nothing may still be served by it: its
// scale-down time has passed, the stable revision has all its Pods available, no Service is
// pinned to it and the routes carry the planned weights. Until then it keeps its replicas.
func (p *planner) scaleDownWhenSafe(hash string) {
	r := p.rev(hash)
	at, pending := p.out.ScaleDownAt[hash]
	if !pending && r.ScaleDownAt != nil {
		at, pending = *r.ScaleDownAt, true
	}
	if pending && p.obs.Now.Before(at) {
		p.out.Replicas[hash] = r.Replicas
		p.requeue(at.Sub(p.obs.Now))
		return
	}
	if why := p.stillServing(hash); why != "" && r.Replicas > 0 {
		p.out.Replicas[hash] = r.Replicas
		p.holding = append(p.holding, fmt.Sprintf("revision %s keeps %d Pods: %s", hash, r.Replicas, why))
		p.requeue(scaleDownRecheck)
		return
	}
	p.out.Replicas[hash] = 0
}

// stillServing says why revision hash may still serve requests, or "" when it cannot.
func (p *planner) stillServing(hash string) string {
	// The stable-side Service carries the users' traffic; the other one only what the routes
	// send it, checked below.
	if stableSide, _ := serviceRoles(p.ro); stableSide != "" && p.out.Services[stableSide] == hash {
		return "Service " + stableSide + " still selects it"
	}
	if p.stable != "" && p.stable != hash {
		if avail := p.rev(p.stable).Available; avail < p.total() {
			return fmt.Sprintf("stable revision %s has %d of %d Pods available", p.stable, avail, p.total())
		}
	}
	if w := p.out.Weights; w != nil && trafficRouting(p.ro) != nil {
		if t := p.obs.Traffic; t == nil || t.Weights == nil || *t.Weights != *w {
			return fmt.Sprintf("the routes do not carry %d/%d yet", w.Stable, w.Canary)
		}
	}
	return ""
}

// maxScaleDowns bounds status.scaleDowns (the CRD's maxItems).
const maxScaleDowns = 128

// recordScaleDowns writes to status.scaleDowns the scale-down time of each revision that keeps
// its Pods for now, marked by this plan or before it: the record the next reconcile, or another
// controller after a restart, waits on. A mark goes when the revision's last Pod has (with the
// status write its Pod counts need anyway, not one of its own), and from the stable
// revision and the one rolling out (unless it failed: its Pods wait out the delay after the
// rollback). Times are to the second, as the API server keeps them, so an unchanged mark never
// looks changed.
func (p *planner) recordScaleDowns() {
	var out []kultav1alpha1.ScaleDown
	failed := p.out.Status.Phase == kultav1alpha1.PhaseFailed
	for hash, r := range p.obs.Revisions {
		gone := p.out.Replicas[hash] == 0 && r.Pods == 0
		if gone || hash == p.stable || (hash == p.obs.Hash && !failed) || slices.Contains(p.out.Delete, hash) {
			continue
		}
		at, marked := p.out.ScaleDownAt[hash]
		if !marked {
			if r.ScaleDownAt == nil {
				continue
			}
			at = *r.ScaleDownAt
		}
		out = append(out, kultav1alpha1.ScaleDown{PodTemplateHash: hash, At: metav1.NewTime(at.Truncate(time.Second))})
	}
	if len(out) > maxScaleDowns {
		// The latest marks stay; revisions past the bound are scaled down once nothing routes to them.
		sort.Slice(out, func(i, j int) bool { return out[i].At.After(out[j].At.Time) })
		out = out[:maxScaleDowns]
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PodTemplateHash < out[j].PodTemplateHash })
	p.out.Status.ScaleDowns = out
}

// scaleDownDelay is how long a revision that stopped serving keeps its Pods: the strategy's
// scaleDownDelaySeconds, or 30 s with trafficRouting and none without.
func scaleDownDelay(ro *kultav1alpha1.Rollout) time.Duration {
	var set *int32
	switch s := ro.Spec.Strategy; {
	case s.Canary != nil:
		set = s.Canary.ScaleDownDelaySeconds
	case s.BlueGreen != nil:
		// The CRD defaults it to 30: the previous active revision is the instant rollback.
		set = ptr.To(ptr.Deref(s.BlueGreen.ScaleDownDelaySeconds, 30))
	case s.ABTesting != nil:
		set = s.ABTesting.ScaleDownDelaySeconds
	case s.Simple != nil:
		set = s.Simple.ScaleDownDelaySeconds
	}
	if set != nil {
		return time.Duration(*set) * time.Second
	}
	if trafficRouting(ro) != nil {
		return DefaultScaleDownDelay
	}
	return 0
}

// cleanupHistory deletes scaled-down revisions beyond spec.revisionHistoryLimit, oldest first.
func (p *planner) cleanupHistory() {
	limit := int(ptr.Deref(p.ro.Spec.RevisionHistoryLimit, 10))
	var old []*Revision
	for hash, r := range p.obs.Revisions {
		if hash == p.stable || hash == p.obs.Hash || p.out.Replicas[hash] != 0 || r.Pods != 0 {
			continue
		}
		old = append(old, r)
	}
	if len(old) <= limit {
		return
	}
	sort.Slice(old, func(i, j int) bool { return old[i].Number > old[j].Number })
	for _, r := range old[limit:] {
		p.out.Delete = append(p.out.Delete, r.Hash)
		delete(p.out.Replicas, r.Hash)
	}
	sort.Strings(p.out.Delete)
}

// dueAt records that the plan's change became due by the clock at t.
func (p *planner) dueAt(t time.Time) {
	if t.After(p.out.DueAt) {
		p.out.DueAt = t
	}
}

func (p *planner) setWeights(stable, canary int32) {
	if trafficRouting(p.ro) == nil {
		return
	}
	p.out.Weights = &providers.Weights{Stable: stable, Canary: canary}
}

func (p *planner) removeHeaderRoute() {
	if p.ro.Spec.Strategy.ABTesting != nil && trafficRouting(p.ro) != nil {
		p.out.HeaderRoutes = nil
		p.out.RemoveHeaderRoutes = []string{providers.HeaderRouteName(p.ro)}
	}
}

func (p *planner) setPhase(phase kultav1alpha1.Phase, message string) {
	p.out.Status.Phase = phase
	p.out.Status.Message = truncate(message, 8000)
}

func (p *planner) traffic(reason, message string) {
	p.trafficReason, p.trafficMessage = reason, message
}

func (p *planner) paused(reason, message string) {
	p.pausedReason, p.pausedMessage = reason, message
}

func (p *planner) requeue(after time.Duration) {
	if after <= 0 {
		after = time.Second
	}
	if p.out.RequeueAfter == 0 || after < p.out.RequeueAfter {
		p.out.RequeueAfter = after
	}
}

func (p *planner) consume(keys ...string) {
	for _, k := range keys {
		if _, ok := p.ro.Annotations[k]; ok && !contains(p.out.Consume, k) {
			p.out.Consume = append(p.out.Consume, k)
		}
	}
}

// event adds a Kubernetes Event to the plan. A step's StepAdvanced followed in the same plan by
// another Normal Event (the next step, a pause, the completion) is folded into that one, its
// message first: one Event write instead of two, and the Event users read for the later
// transition still says which step was done.
func (p *planner) event(eventType, reason, message string) {
	if n := len(p.out.Events); n > 0 && eventType == corev1.EventTypeNormal {
		if last := p.out.Events[n-1]; last.Type == corev1.EventTypeNormal && last.Reason == "StepAdvanced" {
			p.out.Events[n-1] = Event{Type: eventType, Reason: reason, Message: last.Message + "; " + message}
			return
		}
	}
	p.out.Events = append(p.out.Events, Event{Type: eventType, Reason: reason, Message: message})
}

func (p *planner) decide(action kultav1alpha1.DecisionAction, reason, message string, from, to *int32) {
	st := &p.out.Status
	st.Decisions = append(st.Decisions, kultav1alpha1.Decision{
		Timestamp: p.now,
		Action:    action,
		FromStep:  copyInt32(from),
		ToStep:    copyInt32(to),
		Reason:    reason,
		Message:   truncate(message, 4000),
		Metrics:   snapshots(p.evidence),
	})
	if n := len(st.Decisions); n > kultav1alpha1.MaxDecisions {
		st.Decisions = st.Decisions[n-kultav1alpha1.MaxDecisions:]
	}
}

func copyInt32(v *int32) *int32 {
	if v == nil {
		return nil
	}
	return ptr.To(*v)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// truncate keeps status text within the API's bounds.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
