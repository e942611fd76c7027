package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/false-systems/kulta/analysis"
	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	kultaevents "github.com/false-systems/kulta/internal/events"
	"github.com/false-systems/kulta/internal/freshness"
	"github.com/false-systems/kulta/internal/metrics"
	"github.com/false-systems/kulta/internal/shard"
	"github.com/false-systems/kulta/providers"
)

// Reconciler reconciles Rollouts.
type Reconciler struct {
	client.Client
	// Recorder records Kubernetes Events on Rollouts.
	Recorder events.EventRecorder
	// Providers are the traffic providers the controller runs: they move traffic for Rollouts
	// with trafficRouting, and their objects are watched. The reconciler knows no provider by
	// name; a Rollout that names one not listed here is Stalled.
	Providers []providers.Provider
	// Clock tells the time; tests inject a fake one.
	Clock clock.PassiveClock
	// APIReader reads from the API server, bypassing the cache; see fetch.
	APIReader client.Reader
	// Analyzer measures revisions for Rollouts with analysis; without it such Rollouts wait.
	Analyzer Analyzer
	// Events receives every transition (CDEvents, occurrences); it never blocks or fails.
	Events kultaevents.Sink
	// Webhooks calls the strategies' webhooks; without it a Rollout with gates holds at them.
	Webhooks WebhookCaller
	// Notifications tells subscribed services of transitions; nil without notification services.
	Notifications Notifications

	// MaxConcurrentReconciles is how many Rollouts are reconciled at once (one when zero).
	// The same Rollout is never reconciled by two workers at a time.
	MaxConcurrentReconciles int

	// RolloutSelector, when set and not empty, is the shard's selector the manager's cache was
	// narrowed to (SelectRollouts): events of ReplicaSets whose Rollout the cache does not hold
	// (another shard's) are then dropped instead of reconciled to no effect.
	RolloutSelector labels.Selector

	// ShardKey, when set, is the shard whose objects alone the manager's cache holds (package
	// shard): the reconciler marks the ReplicaSets it creates for the shard, and the first time
	// it sees a Rollout it marks the ReplicaSets the Rollout had before it came to the shard.
	// Client should then be a shard.Client, which marks what else the cache misses.
	ShardKey string

	// FoldedStatusBound bounds how long a status write left out after KULTA's own route write
	// (see transientAfterOwnWrite) waits for the routes' acceptance before a reconcile comes to
	// record where the step stands (DefaultFoldedStatusBound when zero). Under load the
	// acceptance's own reconcile may come later than this; the status is then written as it
	// stands.
	FoldedStatusBound time.Duration

	// CountsInterval is how long a status write that would change only the Pod counts (and
	// the message that tells them) may wait, so that Pods turning ready one after another make
	// one write rather than one each (DefaultCountsInterval when zero). A write for any other
	// reason carries the counts at once.
	CountsInterval time.Duration

	// CountsBound bounds how long such a write of the Pod counts alone waits, past
	// CountsInterval, while the client's writes to Rollouts queue (DefaultCountsBound when
	// zero): the writes that move Rollouts go first, and under a wave of rollouts the counts
	// follow when the client has room again.
	CountsBound time.Duration

	// ClientQPS and ClientBurst are the rate limit of the client's requests (rest.Config's QPS
	// and Burst, which controller-runtime applies to each resource kind apart): the reconciler
	// counts its writes to Rollouts against them to tell when those writes queue. A ClientQPS
	// that is not positive means no limit: nothing ever queues.
	ClientQPS   float64
	ClientBurst int

	// written holds, per Rollout, the resourceVersion of KULTA's last write to it.
	written freshness.Tracker
	// inShard notes, per Rollout, the UID and traffic providers (shardSeen) whose older
	// ReplicaSets, and the objects those providers' routers made, were marked for the shard.
	inShard sync.Map
	// landing notes, per Rollout whose status write was left out after KULTA's own route
	// write, the weights written and when (a landingWrite).
	landing sync.Map
	// counting notes, per Rollout, since when a write of its Pod counts alone has waited.
	counting sync.Map
	// budget mirrors the client's bucket for Rollout writes; built once, from ClientQPS.
	budget     *writeBudget
	budgetOnce sync.Once
	// polls notes when each Rollout's rollback webhooks were last polled.
	polls rollbackPolls
	// told holds, per queued Rollout, when KULTA was last told of a change to it; set by
	// SetupWithManager, nil when the reconciler runs without a manager.
	told *toldTimes
	// index maps Services, adopted Deployments and the providers' objects to the Rollouts that
	// name them, for the watches; set by SetupWithManager.
	index *rolloutIndex
}

// +kubebuilder:rbac:groups=kulta.io,resources=rollouts,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=kulta.io,resources=rollouts/status,verbs=patch
// +kubebuilder:rbac:groups=kulta.io,resources=rollouts/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile observes one Rollout, plans its next state and applies the plan.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, err error) {
	log := ctrl.LoggerFrom(ctx)
	var told time.Time
	if r.told != nil {
		var ok bool
		if told, ok = r.told.take(req); ok {
			defer func() {
				if err != nil {
					r.told.restore(req, told)
				}
			}()
		}
	}
	ro, err := r.fetch(ctx, req.NamespacedName)
	if err != nil {
		return ctrl.Result{}, err
	}
	if ro == nil {
		metrics.Forget(req.Namespace, req.Name)
		r.inShard.Delete(req.NamespacedName)
		r.landing.Delete(req.NamespacedName)
		r.counting.Delete(req.NamespacedName)
		r.polls.forget(req.NamespacedName)
		if r.Notifications != nil {
			r.Notifications.Forget(req.NamespacedName)
		}
		return ctrl.Result{}, nil
	}
	if !ro.DeletionTimestamp.IsZero() {
		// The ReplicaSets are owned by the Rollout; once traffic is handed back, the garbage
		// collector removes them.
		return r.finalize(ctx, ro)
	}
	if err := r.addFinalizer(ctx, ro); err != nil {
		return ctrl.Result{}, err
	}
	base := ro.DeepCopy()
	if r.Notifications != nil {
		// What a previous leader had not delivered, or what did not fit a queue.
		r.Notifications.Replay(base)
	}

	if marked, err := r.markForShard(ctx, ro); err != nil {
		return ctrl.Result{}, r.reportFailure(ctx, base, err)
	} else if marked {
		// The cache holds the ReplicaSets (and routers' objects) just marked once their watch
		// events arrive, which also reconcile the Rollout; until then it would plan without them.
		return ctrl.Result{RequeueAfter: shardCatchUp}, nil
	}
	obs, err := r.observe(ctx, ro)
	if err != nil {
		return ctrl.Result{}, r.reportFailure(ctx, base, err)
	}
	r.pollRollback(ctx, &obs)
	analyzed, err := r.analyze(ctx, &obs)
	if err != nil {
		return ctrl.Result{}, r.reportFailure(ctx, base, err)
	}
	plan := r.plan(ctx, &obs)
	if err := r.act(ctx, ro, obs, plan); err != nil {
		return ctrl.Result{}, r.reportFailure(ctx, base, err)
	}
	r.tellPostRollout(ctx, &obs, &plan)
	// Whether the plan moved the routes, told before ro (which obs.Rollout is) takes the plan's
	// status below: compared with itself, a promotion's status would look like a drift.
	moved := shifted(obs, plan)
	if moved {
		due := latest(obs.Now, told, analyzed, plan.DueAt)
		metrics.StepLatency.WithLabelValues(string(plan.Status.Strategy)).Observe(r.Clock.Since(due).Seconds())
	}
	// The answers to the patches below replace ro; with workloadRef its spec then lacks the
	// Deployment's template and selector, which the transitions reported last name (the image).
	template, selector := ro.Spec.Template, ro.Spec.Selector
	keepResolved := func() {
		if ro.Spec.WorkloadRef != nil {
			ro.Spec.Template, ro.Spec.Selector = template, selector
		}
	}
	if err := r.consumeAnnotations(ctx, ro, plan.Consume); err != nil {
		return ctrl.Result{}, err
	}
	keepResolved()
	ro.Status = plan.Status
	// Also while stalled: kstatus reads a Stalled condition only for the observed generation.
	ro.Status.ObservedGeneration = ro.Generation
	if r.Notifications != nil {
		ro.Status.NotifiedThrough = r.Notifications.Cursor(ro, base.Status.NotifiedThrough, base.Status.Decisions)
	}
	requeue := plan.RequeueAfter
	if wait, folded := r.foldStatus(req.NamespacedName, base, ro, obs, plan, moved); folded {
		// The next reconcile (the routes' acceptance, or the requeue below) records where the
		// step stands; until then the status keeps saying what it said.
		if requeue == 0 || requeue > wait {
			requeue = wait
		}
	} else if wait, later := r.countsLater(req.NamespacedName, base, ro, obs.Now); later {
		if requeue == 0 || requeue > wait {
			requeue = wait
		}
	} else if !equality.Semantic.DeepEqual(base.Status, ro.Status) {
		// Diff the status alone: ro's metadata may be newer than base's (annotations consumed
		// above), and a resourceVersion in the patch would turn it into a precondition that a
		// concurrent user edit breaks, losing the step just taken.
		statusBase := ro.DeepCopy()
		statusBase.Status = base.Status
		if err := r.Status().Patch(ctx, ro, client.MergeFrom(statusBase)); err != nil {
			return ctrl.Result{}, fmt.Errorf("patching status of Rollout %s: %w", req.NamespacedName, err)
		}
		r.written.Wrote(req.NamespacedName, ro.ResourceVersion)
		if v := log.V(1); v.Enabled() {
			v.Info("Status written", "changed", statusChanges(&base.Status, &ro.Status), "resourceVersion", ro.ResourceVersion)
		}
		keepResolved()
	}
	for _, e := range plan.Events {
		r.Recorder.Eventf(ro, nil, e.Type, e.Reason, "Reconcile", "%s", e.Message)
	}
	if r.Events != nil || r.Notifications != nil {
		for _, t := range kultaevents.Transitions(base, ro) {
			if r.Events != nil {
				r.Events.Emit(t)
			}
			if r.Notifications != nil {
				r.Notifications.Emit(t)
			}
		}
	}
	observeMetrics(base, ro, obs.Workload, plan.Status.Decisions, obs.Now)
	if len(plan.Events) > 0 {
		log.V(1).Info("Rollout moved", "phase", ro.Status.Phase, "step", ro.Status.CurrentStepIndex, "weight", ro.Status.CurrentWeight, "message", ro.Status.Message)
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// DefaultFoldedStatusBound is Reconciler.FoldedStatusBound's default: if the routes'
// acceptance does not bring the next reconcile sooner, one comes after this. Long enough for
// the acceptance of a busy controller's step (its p99 step latency at 1,000 Rollouts in a wave
// is tens of seconds), short enough that a Gateway that never answers shows in the status
// well within the progress deadline.
const DefaultFoldedStatusBound = 30 * time.Second

// DefaultCountsInterval is Reconciler.CountsInterval's default.
const DefaultCountsInterval = 5 * time.Second

// DefaultMaxConcurrentReconciles is how many Rollouts the controller reconciles at once unless
// --max-concurrent-reconciles says otherwise: enough to keep a wave's requests in flight while
// each reconcile waits on the API server (bench/README.md, "Where a wave's time goes").
const DefaultMaxConcurrentReconciles = 16

// DefaultCountsBound is Reconciler.CountsBound's default: about the time the client takes, at
// its default limit, for the step writes of a wave of 1,000 Rollouts.
const DefaultCountsBound = time.Minute

// countsLater decides whether the status write of this reconcile, which would change only the
// Pod counts, the messages that tell them and the scale-down marks of revisions whose Pods
// are gone (onlyCounts), waits for a later reconcile (the next Pod's change, or the requeue
// it returns), and for how long:
//   - until CountsInterval has passed since the first such write waited, so that Pods turning
//     ready one after another make one write rather than one each;
//   - then while the client's writes to Rollouts queue (writeBudget), up to CountsBound since
//     the first wait: a write that moves a Rollout (a step, a promotion, a rollback) takes
//     the client's room before one that only keeps its counts current. It retries after as
//     long again as it has waited, so a long wait costs few reconciles.
//
// Kept in memory only: after a restart the write is made as it stands.
func (r *Reconciler) countsLater(key types.NamespacedName, base, ro *kultav1alpha1.Rollout, now time.Time) (time.Duration, bool) {
	if !onlyCounts(base, ro) {
		r.counting.Delete(key)
		return 0, false
	}
	interval, bound := r.CountsInterval, r.CountsBound
	if interval <= 0 {
		interval = DefaultCountsInterval
	}
	if bound <= 0 {
		bound = DefaultCountsBound
	}
	since := now
	if v, ok := r.counting.Load(key); ok {
		since = v.(time.Time)
	}
	waited := now.Sub(since)
	switch {
	case waited < interval:
		r.counting.Store(key, since)
		return interval - waited, true
	case waited < bound && !r.rolloutWrites().spare(now):
		r.counting.Store(key, since)
		return min(waited, bound-waited), true
	}
	r.counting.Delete(key)
	return 0, false
}

// rolloutWrites is the mirror of the client's bucket for writes to Rollouts.
func (r *Reconciler) rolloutWrites() *writeBudget {
	r.budgetOnce.Do(func() { r.budget = newWriteBudget(r.ClientQPS, r.ClientBurst) })
	return r.budget
}

// onlyCounts reports whether ro's status differs from base's, and only in the Pod counts, the
// message and the conditions' messages (which tell those counts), and in scale-down marks
// dropped (their revisions' Pods are gone): no condition changes its status or reason.
func onlyCounts(base, ro *kultav1alpha1.Rollout) bool {
	if equality.Semantic.DeepEqual(base.Status, ro.Status) {
		return false
	}
	before, after := base.Status.DeepCopy(), ro.Status.DeepCopy()
	if onlyDropped(before.ScaleDowns, after.ScaleDowns) {
		before.ScaleDowns, after.ScaleDowns = nil, nil
	}
	if len(before.Conditions) != len(after.Conditions) {
		return false
	}
	for _, st := range []*kultav1alpha1.RolloutStatus{before, after} {
		st.Message = ""
		st.Replicas, st.ReadyReplicas, st.UpdatedReplicas, st.AvailableReplicas = 0, 0, 0, 0
		for i := range st.Conditions {
			st.Conditions[i].Message = ""
		}
	}
	return equality.Semantic.DeepEqual(before, after)
}

// landingWrite is a route write whose status write was left out: the weights and when.
type landingWrite struct {
	weights providers.Weights
	at      time.Time
}

// foldStatus decides whether this reconcile leaves its status write to the next one, and how
// long that one may wait: after KULTA's own route write (transientAfterOwnWrite), and in the
// reconciles that follow any route write of a step while its weights wait for their
// acceptance (the watch event of the write itself brings one at once), until
// FoldedStatusBound has passed since the write.
// Then the status says the routes are not accepted. What is noted is kept in memory only: after
// a restart the status is written as it stands. moved tells whether this reconcile moved the
// routes to the plan's weights (shifted, told from the status observed before the plan's).
func (r *Reconciler) foldStatus(key types.NamespacedName, base, ro *kultav1alpha1.Rollout, obs Observation, plan Plan, moved bool) (time.Duration, bool) {
	bound := r.FoldedStatusBound
	if bound <= 0 {
		bound = DefaultFoldedStatusBound
	}
	if moved {
		r.landing.Store(key, landingWrite{weights: *plan.Weights, at: obs.Now})
		return bound, transientAfterOwnWrite(base, ro, plan)
	}
	v, ok := r.landing.LoadAndDelete(key)
	if !ok {
		return 0, false
	}
	w := v.(landingWrite)
	left := bound - obs.Now.Sub(w.at)
	if left <= 0 || !stillLanding(base, ro, obs, plan, w.weights) {
		return 0, false
	}
	r.landing.Store(key, w)
	return left, true
}

// stillLanding reports whether the routes carry the weights KULTA wrote, which the plan still
// wants, and wait only for their acceptance (a parent that refused them is written at once),
// with a status that says no more than that since the one stored (as transientAfterOwnWrite
// compares them).
func stillLanding(base, ro *kultav1alpha1.Rollout, obs Observation, plan Plan, written providers.Weights) bool {
	t := obs.Traffic
	if t == nil || t.Weights == nil || *t.Weights != written || !t.Pending || plan.Weights == nil || *plan.Weights != written || len(plan.Events) > 0 {
		return false
	}
	routed := meta.FindStatusCondition(ro.Status.Conditions, kultav1alpha1.ConditionTrafficRouted)
	return routed != nil && routed.Status == metav1.ConditionFalse && routed.Reason == ReasonRouteNotAccepted && onlyTransient(base, ro)
}

// transientAfterOwnWrite reports whether the status this reconcile computed only says that the
// weights it just wrote are on their way, so that writing it can be left to the next
// reconcile, which the routes' acceptance triggers at once. The caller has seen that KULTA
// moved the routes to the plan's weights (a step, a promotion or a rollback, not a drift
// correction: shifted); no event is due, and apart from the message, the conditions (which
// say "waiting for the routes to carry ..."), the Pod counts (which the next write brings up
// to date) and scale-down marks of revisions whose Pods are gone (each reconcile drops them
// again) nothing differs from the status already stored: the same phase, step, weight,
// revisions, decisions and analysis, at the same observed generation. This folds the second
// of the two status patches of every traffic step.
func transientAfterOwnWrite(base, ro *kultav1alpha1.Rollout, plan Plan) bool {
	if len(plan.Events) > 0 || !onlyTransient(base, ro) {
		return false
	}
	routed := meta.FindStatusCondition(ro.Status.Conditions, kultav1alpha1.ConditionTrafficRouted)
	return routed != nil && routed.Status == metav1.ConditionFalse &&
		(routed.Reason == ReasonWeightsNotApplied || routed.Reason == ReasonWeightsBeingApplied)
}

// onlyTransient reports whether ro's status differs from base's only in what a step's landing
// changes for a moment: the message, the conditions, the Pod counts and the scale-down marks
// of revisions whose Pods are gone.
func onlyTransient(base, ro *kultav1alpha1.Rollout) bool {
	before, after := base.Status.DeepCopy(), ro.Status.DeepCopy()
	if onlyDropped(before.ScaleDowns, after.ScaleDowns) {
		before.ScaleDowns, after.ScaleDowns = nil, nil
	}
	for _, st := range []*kultav1alpha1.RolloutStatus{before, after} {
		st.Message, st.Conditions = "", nil
		st.Replicas, st.ReadyReplicas, st.UpdatedReplicas, st.AvailableReplicas = 0, 0, 0, 0
	}
	return equality.Semantic.DeepEqual(before, after)
}

// onlyDropped reports whether every scale-down mark in after is in before, unchanged.
func onlyDropped(before, after []kultav1alpha1.ScaleDown) bool {
	for _, sd := range after {
		if !slices.ContainsFunc(before, func(b kultav1alpha1.ScaleDown) bool {
			return b.PodTemplateHash == sd.PodTemplateHash && b.At.Equal(&sd.At)
		}) {
			return false
		}
	}
	return true
}

// Analyzer measures the current revision of a Rollout against its analysis.
type Analyzer interface {
	// Analyze queries the metrics and returns the new analysis status, carrying the counters
	// of ro.Status.Analysis forward when it measured the same revision and step.
	// split is the traffic split the canary has now, for the sample-ratio-mismatch check.
	Analyze(ctx context.Context, ro *kultav1alpha1.Rollout, spec *kultav1alpha1.Analysis, split analysis.Split, now time.Time) (*kultav1alpha1.AnalysisStatus, error)
	// Compare looks at a running A/B experiment and returns its new status, with a winner
	// when the statistics have one.
	Compare(ctx context.Context, ro *kultav1alpha1.Rollout, spec *kultav1alpha1.ABAnalysis, now time.Time) (*kultav1alpha1.ABExperimentStatus, error)
}

// shifted reports whether act moved the routes to new weights the plan chose: a step, a
// promotion, a rollback. Putting back weights someone else changed is not a step.
func shifted(obs Observation, plan Plan) bool {
	if plan.Weights == nil || obs.Traffic == nil || drifted(obs, plan) {
		return false
	}
	return obs.Traffic.Weights == nil || *obs.Traffic.Weights != *plan.Weights
}

// latest is the latest of the times that are set, or fallback when none is.
func latest(fallback time.Time, times ...time.Time) time.Time {
	var at time.Time
	for _, t := range times {
		if t.After(at) {
			at = t
		}
	}
	if at.IsZero() {
		return fallback
	}
	return at
}

// analyze runs the analysis when one is due and records it in the observed status, where the
// planner reads it and the status patch keeps it. It returns when the result was in, zero when
// no analysis ran.
func (r *Reconciler) analyze(ctx context.Context, obs *Observation) (time.Time, error) {
	ro := obs.Rollout
	if obs.Problem != nil || obs.Hash != ro.Status.CurrentPodTemplateHash {
		return time.Time{}, nil
	}
	if r.Analyzer != nil && ExperimentDue(ro, obs.Now) {
		exp, err := r.Analyzer.Compare(ctx, ro, ro.Spec.Strategy.ABTesting.Analysis, obs.Now)
		if err != nil {
			return time.Time{}, fmt.Errorf("comparing the variants of Rollout %s/%s: %w", ro.Namespace, ro.Name, err)
		}
		ro.Status.ABExperiment = exp
		ctrl.LoggerFrom(ctx).V(1).Info("Experiment compared", "winner", exp.Winner, "message", exp.Message)
		return r.Clock.Now(), nil
	}
	if !AnalysisDue(ro, obs.Now) {
		return time.Time{}, nil
	}
	spec := analysisSpec(ro)
	var result *kultav1alpha1.AnalysisStatus
	if len(spec.Metrics) > 0 {
		if r.Analyzer == nil {
			return time.Time{}, nil
		}
		var err error
		if result, err = r.Analyzer.Analyze(ctx, ro, spec, CanarySplit(*obs), obs.Now); err != nil {
			return time.Time{}, fmt.Errorf("analysing Rollout %s/%s: %w", ro.Namespace, ro.Name, err)
		}
	} else {
		// Rollout webhooks alone: the check is theirs.
		result = &kultav1alpha1.AnalysisStatus{Revision: ro.Status.CurrentPodTemplateHash, StepIndex: copyInt32(ro.Status.CurrentStepIndex),
			Verdict: kultav1alpha1.VerdictPass, CheckedAt: metav1.NewTime(obs.Now)}
	}
	r.callRolloutHooks(ctx, obs, result)
	done := r.Clock.Now()
	metrics.ObserveAnalysis(ro, result, done.Sub(obs.Now).Seconds())
	r.warnOfMismatch(ro, result)
	ro.Status.Analysis = result
	ctrl.LoggerFrom(ctx).V(1).Info("Analysis", "verdict", result.Verdict, "reason", result.Reason, "message", result.Message)
	return done, nil
}

// warnOfMismatch records a Warning Event when a metric's traffic split starts to disagree with
// the one KULTA set: the analysis holds (and after a few checks in a row fails) until it agrees.
func (r *Reconciler) warnOfMismatch(ro *kultav1alpha1.Rollout, result *kultav1alpha1.AnalysisStatus) {
	before := map[string]string{}
	if prev := ro.Status.Analysis; prev != nil && prev.Revision == result.Revision {
		for _, m := range prev.Metrics {
			before[m.Name] = m.Reason
		}
	}
	for _, m := range result.Metrics {
		if m.Reason == string(analysis.ReasonSampleRatioMismatch) && before[m.Name] != m.Reason {
			r.Recorder.Eventf(ro, nil, corev1.EventTypeWarning, m.Reason, "Analysis", "%s", result.Message)
		}
	}
}

// fetch reads a Rollout from the cache, or from the API server while the cache has not yet
// seen KULTA's own last write to it: planning from a status older than the one just written
// would repeat or undo a step. It returns nil when the Rollout is gone.
func (r *Reconciler) fetch(ctx context.Context, key types.NamespacedName) (*kultav1alpha1.Rollout, error) {
	ro := &kultav1alpha1.Rollout{}
	if err := r.Get(ctx, key, ro); err != nil {
		if apierrors.IsNotFound(err) {
			r.written.Forget(key)
			return nil, nil
		}
		return nil, fmt.Errorf("getting Rollout %s: %w", key, err)
	}
	if r.APIReader == nil || r.written.Fresh(key, ro.ResourceVersion) {
		return ro, nil
	}
	cachedVersion := ro.ResourceVersion
	ctrl.LoggerFrom(ctx).V(4).Info("Cache has not seen the last write; reading from the API server", "cachedResourceVersion", cachedVersion)
	if err := r.APIReader.Get(ctx, key, ro); err != nil {
		if apierrors.IsNotFound(err) {
			r.written.Forget(key)
			return nil, nil
		}
		return nil, fmt.Errorf("getting Rollout %s from the API server: %w", key, err)
	}
	if ro.ResourceVersion == cachedVersion {
		// The cache holds the latest version after all (resource versions that do not compare).
		r.written.Forget(key)
	}
	return ro, nil
}

// consumeAnnotations removes the annotations the plan acted on. It runs before the status
// patch: if the status write then fails, a promotion is lost rather than applied twice.
func (r *Reconciler) consumeAnnotations(ctx context.Context, ro *kultav1alpha1.Rollout, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	before := ro.DeepCopy()
	for _, k := range keys {
		delete(ro.Annotations, k)
	}
	if err := r.Patch(ctx, ro, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("removing annotations %v from Rollout %s/%s: %w", keys, ro.Namespace, ro.Name, err)
	}
	r.written.Wrote(types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}, ro.ResourceVersion)
	return nil
}

// SetupWithManager registers the reconciler and its watches: owned ReplicaSets, and the
// Services, Deployments and routes that Rollouts name (through rolloutIndex); the cache's
// index of ReplicaSets by controller, which ownedReplicaSets reads; and the providers' cache
// indexes, which their routers read. From then on its
// client counts its writes to Rollouts (budgetedClient).
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	r.Client = budgetedClient{Client: r.Client, spend: func() { r.rolloutWrites().spend(r.Clock.Now()) }}
	r.index = newRolloutIndex(r.indexKeysOf)
	if err := r.index.watch(ctx, mgr.GetCache()); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &appsv1.ReplicaSet{}, replicaSetControllerIndex, controllerUID); err != nil {
		return fmt.Errorf("indexing ReplicaSets by their controller: %w", err)
	}
	for _, p := range r.Providers {
		for _, ix := range p.Indexes {
			if err := mgr.GetFieldIndexer().IndexField(ctx, ix.Object, ix.Field, ix.Extract); err != nil {
				return fmt.Errorf("adding the %s provider's cache index %s: %w", p.Name, ix.Field, err)
			}
		}
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&kultav1alpha1.Rollout{}, builder.WithPredicates(predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}, deletionStarted))).
		Owns(&appsv1.ReplicaSet{}, builder.WithPredicates(r.ownerServed())).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.rolloutsNaming(byService))).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(r.rolloutsNaming(byWorkload)))
	// Each provider's objects are watched as the provider gives them (routes as unstructured
	// objects, so that its router reads the same informer and writes back unknown fields).
	for _, p := range r.Providers {
		for _, w := range p.Watches {
			b = b.Watches(w.Object, handler.EnqueueRequestsFromMapFunc(r.rolloutsReading(w)))
		}
	}
	if r.Notifications != nil {
		// A Rollout whose notifications of a decision are all done records it in its status.
		b = b.WatchesRawSource(source.Channel(r.Notifications.Updates(), &handler.EnqueueRequestForObject{}))
	}
	r.told = newToldTimes(r.Clock)
	b = b.WithOptions(controller.Options{
		MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1),
		NewQueue:                newMarkingQueue(r.told, mgr.GetLogger()),
	})
	if err := b.Named("rollout").Complete(r); err != nil {
		return fmt.Errorf("building the Rollout controller: %w", err)
	}
	return nil
}

// ownerServed passes the events of ReplicaSets whose Rollout this replica serves: every event
// without a RolloutSelector, and with one, those whose controlling Rollout is in the cache.
func (r *Reconciler) ownerServed() predicate.Predicate {
	return predicate.NewPredicateFuncs(func(obj client.Object) bool {
		if r.RolloutSelector == nil || r.RolloutSelector.Empty() {
			return true
		}
		ref := metav1.GetControllerOf(obj)
		if ref == nil || ref.Kind != "Rollout" {
			return false
		}
		err := r.Get(context.Background(), types.NamespacedName{Namespace: obj.GetNamespace(), Name: ref.Name}, &kultav1alpha1.Rollout{})
		// Any other error: let the reconcile find out.
		return !apierrors.IsNotFound(err)
	})
}

// deletionStarted passes the update that marks a Rollout for deletion, so its finalizer runs.
var deletionStarted = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetDeletionTimestamp().IsZero() && !e.ObjectNew.GetDeletionTimestamp().IsZero()
	},
}

// reportFailure records on the Rollout's status why a reconcile could not finish (a read or a
// write that failed) and returns cause for the retry. The status keeps what the last successful
// reconcile wrote; only the conditions and observedGeneration change. A rejected write (the API
// server found it invalid, or RBAC forbids it), or a route the provider cannot write as asked (a
// RouteError, with its reason), will not succeed by retrying: Stalled. Any other
// error is retried: Reconciling. A conflict is retried at once and not reported, nor is
// anything once ctx is done (the controller is stopping).
func (r *Reconciler) reportFailure(ctx context.Context, base *kultav1alpha1.Rollout, cause error) error {
	if apierrors.IsConflict(cause) || ctx.Err() != nil {
		return cause
	}
	ro := base.DeepCopy()
	now := metav1.NewTime(r.Clock.Now())
	message := truncate(cause.Error(), 8000)
	set := func(condType string, status metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&ro.Status.Conditions, metav1.Condition{
			Type: condType, Status: status, Reason: reason, Message: msg,
			ObservedGeneration: ro.Generation, LastTransitionTime: now,
		})
	}
	reason := ReasonReconcileError
	var routeErr *providers.RouteError
	switch {
	case apierrors.IsForbidden(cause):
		reason = ReasonForbidden
	case apierrors.IsInvalid(cause) || apierrors.IsBadRequest(cause):
		reason = ReasonRejected
	case errors.As(cause, &routeErr):
		// A route KULTA cannot write as the Rollout asks (a match the provider cannot express):
		// the user must change the route or the steps.
		reason = routeErr.Reason
	}
	if reason == ReasonReconcileError {
		set(kultav1alpha1.ConditionStalled, metav1.ConditionFalse, ReasonNoProblem, "")
		set(kultav1alpha1.ConditionReconciling, metav1.ConditionTrue, reason, message)
	} else {
		set(kultav1alpha1.ConditionReconciling, metav1.ConditionFalse, reason, "")
		set(kultav1alpha1.ConditionStalled, metav1.ConditionTrue, reason, message)
	}
	set(kultav1alpha1.ConditionReady, metav1.ConditionFalse, reason, message)
	ro.Status.ObservedGeneration = ro.Generation
	if equality.Semantic.DeepEqual(base.Status, ro.Status) {
		return cause
	}
	if err := r.Status().Patch(ctx, ro, client.MergeFrom(base)); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Recording the failure in the Rollout's status", "failure", cause.Error())
		return cause
	}
	r.written.Wrote(types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}, ro.ResourceVersion)
	return cause
}

// router is the TrafficRouter over every provider the controller runs.
func (r *Reconciler) router() providers.TrafficRouter { return providers.Compose(r.Providers) }

// shardCatchUp is how long a reconcile that marked ReplicaSets for the shard waits before it
// plans, should their watch events not come first.
const shardCatchUp = time.Second

// markForShard, on a shard's replica, marks for the shard the ReplicaSets ro had before it came
// to the shard (created unsharded, or by another shard), and the objects the traffic routers it
// uses had created for it (providers.Provider.Created), once per Rollout and process, so that
// the shard's cache holds them; again when the Rollout changes traffic providers. It reports
// whether it marked any.
//
// A router's object that another shard's replica, still finishing a reconcile of a Rollout
// that has moved, creates after this list is not marked here: the shard's client marks it when
// the router creates it here in turn, and clean-up on deletion reads the API server.
func (r *Reconciler) markForShard(ctx context.Context, ro *kultav1alpha1.Rollout) (bool, error) {
	if r.ShardKey == "" {
		return false, nil
	}
	nn := types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}
	using := providers.Using(r.Providers, ro.Spec.Strategy.TrafficRouting())
	seen := shardSeen{uid: ro.UID}
	for _, p := range using {
		seen.providers += p.Name + ","
	}
	if was, ok := r.inShard.Load(nn); ok && was == seen {
		return false, nil
	}
	var selector map[string]string
	if ro.Spec.Selector != nil {
		selector = ro.Spec.Selector.MatchLabels
	}
	marked, err := shard.AdoptReplicaSets(ctx, r.live(), r.Client, r.ShardKey, ro.Namespace, selector, kultav1alpha1.PodTemplateHashLabel, ro.UID)
	if err != nil {
		return false, fmt.Errorf("rollout %s/%s: %w", ro.Namespace, ro.Name, err)
	}
	if marked > 0 {
		ctrl.LoggerFrom(ctx).Info("Marked the Rollout's earlier ReplicaSets for this shard", "replicaSets", marked, "shard", r.ShardKey)
	}
	routed := 0
	for _, p := range using {
		for _, created := range p.Created {
			n, err := shard.AdoptCreated(ctx, r.live(), r.Client, r.ShardKey, ro.Namespace, created, ro.UID)
			if err != nil {
				return false, fmt.Errorf("rollout %s/%s, traffic provider %s: %w", ro.Namespace, ro.Name, p.Name, err)
			}
			routed += n
		}
	}
	if routed > 0 {
		ctrl.LoggerFrom(ctx).Info("Marked the objects the traffic routers made for the Rollout for this shard", "objects", routed, "shard", r.ShardKey)
	}
	r.inShard.Store(nn, seen)
	return marked+routed > 0, nil
}

// shardSeen is what markForShard marked a Rollout's objects for: its UID, and the names of
// the traffic providers it used then, each followed by a comma.
type shardSeen struct {
	uid       types.UID
	providers string
}
