package rollout

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	"github.com/false-systems/kulta/analysis"
	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	kultaevents "github.com/false-systems/kulta/internal/events"
	"github.com/false-systems/kulta/internal/freshness"
	"github.com/false-systems/kulta/internal/metrics"
	"github.com/false-systems/kulta/providers"
)

// Reconciler reconciles Rollouts.
type Reconciler struct {
	client.Client
	// Recorder records Kubernetes Events on Rollouts.
	Recorder events.EventRecorder
	// Router moves traffic for Rollouts with trafficRouting.
	Router providers.TrafficRouter
	// Clock tells the time; tests inject a fake one.
	Clock clock.PassiveClock
	// WatchRoutes watches HTTPRoutes, GRPCRoutes and ReferenceGrants (set it when the Gateway
	// API CRDs are installed).
	WatchRoutes bool
	// APIReader reads from the API server, bypassing the cache; see fetch.
	APIReader client.Reader
	// Analyzer measures revisions for Rollouts with analysis; without it such Rollouts wait.
	Analyzer Analyzer
	// Events receives every transition (CDEvents, occurrences); it never blocks or fails.
	Events kultaevents.Sink

	// MaxConcurrentReconciles is how many Rollouts are reconciled at once (one when zero).
	// The same Rollout is never reconciled by two workers at a time.
	MaxConcurrentReconciles int

	// written holds, per Rollout, the resourceVersion of KULTA's last write to it.
	written freshness.Tracker
	// told holds, per queued Rollout, when KULTA was last told of a change to it; set by
	// SetupWithManager, nil when the reconciler runs without a manager.
	told *toldTimes
}

// +kubebuilder:rbac:groups=kulta.io,resources=rollouts,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=kulta.io,resources=rollouts/status,verbs=patch
// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes;grpcroutes,verbs=get;list;watch;update
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=referencegrants,verbs=get;list;watch
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
		return ctrl.Result{}, nil
	}
	if !ro.DeletionTimestamp.IsZero() {
		// The ReplicaSets are owned by the Rollout; the garbage collector removes them.
		return ctrl.Result{}, nil
	}
	base := ro.DeepCopy()

	obs, err := r.observe(ctx, ro)
	if err != nil {
		return ctrl.Result{}, err
	}
	analyzed, err := r.analyze(ctx, obs)
	if err != nil {
		return ctrl.Result{}, err
	}
	plan := Compute(obs)
	if err := r.act(ctx, ro, obs, plan); err != nil {
		return ctrl.Result{}, err
	}
	if shifted(obs, plan) {
		due := latest(obs.Now, told, analyzed, plan.DueAt)
		metrics.StepLatency.WithLabelValues(string(plan.Status.Strategy)).Observe(r.Clock.Since(due).Seconds())
	}
	if err := r.consumeAnnotations(ctx, ro, plan.Consume); err != nil {
		return ctrl.Result{}, err
	}
	ro.Status = plan.Status
	if obs.Problem == nil {
		ro.Status.ObservedGeneration = ro.Generation
	}
	if !equality.Semantic.DeepEqual(base.Status, ro.Status) {
		// Diff the status alone: ro's metadata may be newer than base's (annotations consumed
		// above), and a resourceVersion in the patch would turn it into a precondition that a
		// concurrent user edit breaks, losing the step just taken.
		statusBase := ro.DeepCopy()
		statusBase.Status = base.Status
		if err := r.Status().Patch(ctx, ro, client.MergeFrom(statusBase)); err != nil {
			return ctrl.Result{}, fmt.Errorf("patching status of Rollout %s: %w", req.NamespacedName, err)
		}
		r.written.Wrote(req.NamespacedName, ro.ResourceVersion)
	}
	for _, e := range plan.Events {
		r.Recorder.Eventf(ro, nil, e.Type, e.Reason, "Reconcile", "%s", e.Message)
	}
	if r.Events != nil {
		for _, t := range kultaevents.Transitions(base, ro) {
			r.Events.Emit(t)
		}
	}
	observeMetrics(base, ro, plan.Status.Decisions, obs.Now)
	if len(plan.Events) > 0 {
		log.V(1).Info("Rollout moved", "phase", ro.Status.Phase, "step", ro.Status.CurrentStepIndex, "weight", ro.Status.CurrentWeight, "message", ro.Status.Message)
	}
	return ctrl.Result{RequeueAfter: plan.RequeueAfter}, nil
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
func (r *Reconciler) analyze(ctx context.Context, obs Observation) (time.Time, error) {
	ro := obs.Rollout
	if obs.Problem != nil || r.Analyzer == nil || obs.Hash != ro.Status.CurrentPodTemplateHash {
		return time.Time{}, nil
	}
	if ExperimentDue(ro, obs.Now) {
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
	result, err := r.Analyzer.Analyze(ctx, ro, analysisSpec(ro), CanarySplit(obs), obs.Now)
	if err != nil {
		return time.Time{}, fmt.Errorf("analysing Rollout %s/%s: %w", ro.Namespace, ro.Name, err)
	}
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
// Services and HTTPRoutes that Rollouts name (through field indexes).
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &kultav1alpha1.Rollout{}, indexServices, serviceNamesOf); err != nil {
		return fmt.Errorf("indexing Rollouts by Service: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &kultav1alpha1.Rollout{}, indexRoutes, routeKeysOf); err != nil {
		return fmt.Errorf("indexing Rollouts by route: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &kultav1alpha1.Rollout{}, indexRouteNamespaces, routeNamespacesOf); err != nil {
		return fmt.Errorf("indexing Rollouts by route namespace: %w", err)
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&kultav1alpha1.Rollout{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&appsv1.ReplicaSet{}).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.rolloutsNaming(indexServices)))
	if r.WatchRoutes {
		// Routes are watched as unstructured objects: the router reads them from the same
		// informer, so they are cached once and written back without dropping unknown fields.
		b = b.Watches(routeObject("HTTPRoute"), handler.EnqueueRequestsFromMapFunc(r.rolloutsNamingRoute("HTTPRoute"))).
			Watches(routeObject("GRPCRoute"), handler.EnqueueRequestsFromMapFunc(r.rolloutsNamingRoute("GRPCRoute"))).
			Watches(&gatewayv1beta1.ReferenceGrant{}, handler.EnqueueRequestsFromMapFunc(r.rolloutsUsingGrant))
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

// routeObject is an empty Gateway API route of the given kind (HTTPRoute, GRPCRoute), as an
// unstructured object: what the route watches and the router's cache reads share.
func routeObject(kind string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(schema.GroupVersionKind{Group: gatewayv1.GroupName, Version: "v1", Kind: kind})
	return u
}
