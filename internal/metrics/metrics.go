package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

var (
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

	// WebhookCalls counts the calls of Rollouts' webhooks by type and result: passed (2xx),
	// rejected (another status), unanswered (no answer: timeout, connection refused) and
	// misconfigured (a Secret or URL KULTA could not use). Never labelled by URL.
	WebhookCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kulta_webhook_calls_total",
		Help: "Calls of Rollouts' webhooks by webhook type and result (passed, rejected, unanswered, misconfigured).",
	}, []string{"type", "result"})

	// WebhookDuration observes how long webhook calls take until their answer or their timeout.
	WebhookDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kulta_webhook_call_duration_seconds",
		Help:    "Time from sending a webhook call to its answer (or its timeout), by webhook type.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
	}, []string{"type"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(rollouts, RolloutDuration, StepDuration, StepLatency, TrafficDriftCorrections, RouteWrites,
		AnalysisValue, AnalysisThreshold, AnalysisChecks, AnalysisQueryErrors, AnalysisDuration, PausedSeconds,
		WebhookCalls, WebhookDuration)
}

// rollouts holds the per-Rollout state series and transition counters.
var rollouts = newRolloutCollector()

// Observe publishes a Rollout's state after a reconcile.
func Observe(ro *kultav1alpha1.Rollout) {
	rollouts.observe(ro)
}

// Workload is the Deployment a Rollout adopts, as the controller observed it.
type Workload struct {
	// Name is the Deployment's name.
	Name string
	// Replicas is its spec.replicas, Available its available Pods.
	Replicas, Available int32
	// Adopted is its count before KULTA first scaled it; nil while KULTA has not.
	Adopted *int32
}

// ObserveWorkload publishes the Deployment a Rollout adopts; nil says it adopts none.
func ObserveWorkload(namespace, rollout string, w *Workload) {
	rollouts.observeWorkload(namespace, rollout, w)
}

// Transition counts one transition of a Rollout by kind (step, promotion, rollback, abort,
// pause) and reason.
func Transition(namespace, rollout, kind, reason string) {
	rollouts.transition(namespace, rollout, kind, reason)
}

// Forget removes every series of a deleted Rollout.
func Forget(namespace, rollout string) {
	rollouts.forget(namespace, rollout)
	labels := prometheus.Labels{"namespace": namespace, "rollout": rollout}
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
