package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

var (
	rolloutInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kulta_rollout_info",
		Help: "One series per Rollout, 1, labelled with its strategy and current phase.",
	}, []string{"namespace", "rollout", "strategy", "phase"})

	rolloutStep = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kulta_rollout_step",
		Help: "Current canary step index of the Rollout (-1 when it has no steps).",
	}, []string{"namespace", "rollout"})

	rolloutWeight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kulta_rollout_canary_weight",
		Help: "Percentage of traffic the Rollout's current revision receives.",
	}, []string{"namespace", "rollout"})

	rolloutReplicas = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kulta_rollout_replicas",
		Help: "Replicas of the Rollout by kind: desired, ready or updated.",
	}, []string{"namespace", "rollout", "kind"})

	// Transitions counts the Rollouts' transitions by kind (promotion, rollback, abort, step)
	// and reason.
	Transitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kulta_rollout_transitions_total",
		Help: "Rollout transitions by kind (step, promotion, rollback, abort, pause) and reason.",
	}, []string{"namespace", "rollout", "kind", "reason"})

	// RolloutDuration observes how long rollouts take, from a new revision to Completed or Failed.
	RolloutDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kulta_rollout_duration_seconds",
		Help:    "Time from a new revision to Completed or Failed, by strategy and result.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 16),
	}, []string{"strategy", "result"})

	// StepDuration observes how long canary steps take.
	StepDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kulta_rollout_step_duration_seconds",
		Help:    "Time spent in one canary step, by strategy.",
		Buckets: prometheus.ExponentialBuckets(0.5, 2, 16),
	}, []string{"strategy"})

	// StepLatency observes the time from a traffic change becoming due to KULTA having
	// written it to the routes.
	StepLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "kulta_rollout_step_latency_seconds",
		Help: "Time from a Rollout's next traffic weight becoming due (the change that met the step's " +
			"condition was seen, a pause ended, an analysis concluded) to KULTA having written it to the routes, by strategy.",
		Buckets: prometheus.ExponentialBucketsRange(0.001, 600, 30),
	}, []string{"strategy"})

	// PausedSeconds adds up the time Rollouts spent in pauses that have ended.
	PausedSeconds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kulta_rollout_paused_seconds_total",
		Help: "Seconds the Rollout spent in canary pauses, counted when each pause ends.",
	}, []string{"namespace", "rollout"})

	// TrafficDriftCorrections counts the times KULTA put back route weights that someone else
	// had changed.
	TrafficDriftCorrections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kulta_traffic_drift_corrections_total",
		Help: "Times KULTA restored route weights changed by someone else, by Rollout.",
	}, []string{"namespace", "rollout"})

	// AnalysisValue is the last measured value of each analysis metric.
	AnalysisValue = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kulta_analysis_metric_value",
		Help: "Last measured value of an analysis metric of the Rollout's revision under test.",
	}, []string{"namespace", "rollout", "metric"})

	// AnalysisThreshold is each analysis metric's threshold, to plot against its value.
	AnalysisThreshold = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "kulta_analysis_metric_threshold",
		Help: "Threshold of an analysis metric.",
	}, []string{"namespace", "rollout", "metric"})

	// AnalysisChecks counts analysis checks by combined verdict.
	AnalysisChecks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kulta_analysis_checks_total",
		Help: "Analysis checks by verdict (Pass, Fail, Inconclusive).",
	}, []string{"namespace", "rollout", "verdict"})

	// AnalysisQueryErrors counts metrics whose query failed in a check.
	AnalysisQueryErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kulta_analysis_query_errors_total",
		Help: "Analysis metrics whose Prometheus query failed.",
	}, []string{"namespace", "rollout"})

	// AnalysisDuration observes how long one check (all its queries) takes.
	AnalysisDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "kulta_analysis_check_duration_seconds",
		Help:    "Time one analysis check takes, all of its Prometheus queries included.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	})

	// RouteWrites counts writes to routes by kind and result (ok, conflict, error).
	RouteWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kulta_traffic_route_writes_total",
		Help: "Writes to Gateway API routes by route kind and result (ok, conflict, error).",
	}, []string{"kind", "result"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(rolloutInfo, rolloutStep, rolloutWeight, rolloutReplicas,
		Transitions, RolloutDuration, StepDuration, StepLatency, TrafficDriftCorrections, RouteWrites,
		AnalysisValue, AnalysisThreshold, AnalysisChecks, AnalysisQueryErrors, AnalysisDuration, PausedSeconds)
}

// phases remembers each Rollout's labelled series so a change of phase or strategy replaces it.
var phases sync.Map

type infoLabels struct{ strategy, phase string }

// Observe publishes a Rollout's state after a reconcile.
func Observe(ro *kultav1alpha1.Rollout) {
	key := ro.Namespace + "/" + ro.Name
	now := infoLabels{strategy: string(ro.Status.Strategy), phase: string(ro.Status.Phase)}
	if prev, ok := phases.Load(key); ok && prev.(infoLabels) != now {
		old := prev.(infoLabels)
		rolloutInfo.DeleteLabelValues(ro.Namespace, ro.Name, old.strategy, old.phase)
	}
	phases.Store(key, now)
	rolloutInfo.WithLabelValues(ro.Namespace, ro.Name, now.strategy, now.phase).Set(1)

	step := float64(-1)
	if ro.Status.CurrentStepIndex != nil {
		step = float64(*ro.Status.CurrentStepIndex)
	}
	rolloutStep.WithLabelValues(ro.Namespace, ro.Name).Set(step)
	weight := float64(0)
	if ro.Status.CurrentWeight != nil {
		weight = float64(*ro.Status.CurrentWeight)
	}
	rolloutWeight.WithLabelValues(ro.Namespace, ro.Name).Set(weight)
	desired := float64(1)
	if ro.Spec.Replicas != nil {
		desired = float64(*ro.Spec.Replicas)
	}
	rolloutReplicas.WithLabelValues(ro.Namespace, ro.Name, "desired").Set(desired)
	rolloutReplicas.WithLabelValues(ro.Namespace, ro.Name, "ready").Set(float64(ro.Status.ReadyReplicas))
	rolloutReplicas.WithLabelValues(ro.Namespace, ro.Name, "updated").Set(float64(ro.Status.UpdatedReplicas))
}

// Forget removes every series of a deleted Rollout.
func Forget(namespace, rollout string) {
	key := namespace + "/" + rollout
	if prev, ok := phases.LoadAndDelete(key); ok {
		old := prev.(infoLabels)
		rolloutInfo.DeleteLabelValues(namespace, rollout, old.strategy, old.phase)
	}
	labels := prometheus.Labels{"namespace": namespace, "rollout": rollout}
	rolloutStep.DeletePartialMatch(labels)
	rolloutWeight.DeletePartialMatch(labels)
	rolloutReplicas.DeletePartialMatch(labels)
	Transitions.DeletePartialMatch(labels)
	TrafficDriftCorrections.DeletePartialMatch(labels)
	PausedSeconds.DeletePartialMatch(labels)
	AnalysisValue.DeletePartialMatch(labels)
	AnalysisThreshold.DeletePartialMatch(labels)
	AnalysisChecks.DeletePartialMatch(labels)
	AnalysisQueryErrors.DeletePartialMatch(labels)
}

// ObserveAnalysis publishes one analysis check of a Rollout.
func ObserveAnalysis(ro *kultav1alpha1.Rollout, a *kultav1alpha1.AnalysisStatus, took float64) {
	AnalysisDuration.Observe(took)
	AnalysisChecks.WithLabelValues(ro.Namespace, ro.Name, string(a.Verdict)).Inc()
	for _, m := range a.Metrics {
		if m.Reason == "QueryError" || m.Reason == "ConsecutiveErrors" {
			AnalysisQueryErrors.WithLabelValues(ro.Namespace, ro.Name).Inc()
		}
		if m.Value != nil {
			if v, err := m.Value.Float64(); err == nil {
				AnalysisValue.WithLabelValues(ro.Namespace, ro.Name, m.Name).Set(v)
			}
		}
		if m.Threshold != nil {
			if v, err := m.Threshold.Float64(); err == nil {
				AnalysisThreshold.WithLabelValues(ro.Namespace, ro.Name, m.Name).Set(v)
			}
		}
	}
}
