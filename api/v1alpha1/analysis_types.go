package v1alpha1

// FailurePolicy says what KULTA does when analysis fails or cannot reach a verdict.
//
// +kubebuilder:validation:Enum=Pause;Continue;Rollback
type FailurePolicy string

// Failure policies.
const (
	// FailurePolicyPause holds the rollout where it is until a person promotes or aborts it.
	FailurePolicyPause FailurePolicy = "Pause"
	// FailurePolicyContinue records the failure and carries on.
	FailurePolicyContinue FailurePolicy = "Continue"
	// FailurePolicyRollback sends all traffic back to the stable revision.
	FailurePolicyRollback FailurePolicy = "Rollback"
)

// Analysis configures the metric checks of a canary, blue-green or simple rollout.
type Analysis struct {
	// prometheus says where to query. Without it, the controller's default address is used.
	// +optional
	Prometheus *PrometheusConfig `json:"prometheus,omitempty"`

	// failurePolicy is what happens on a failing verdict: Pause (the default), Continue or Rollback.
	// +optional
	// +kubebuilder:default=Pause
	FailurePolicy FailurePolicy `json:"failurePolicy,omitempty"`

	// warmupDuration is how long after a step starts before its metrics are judged, such as 1m.
	// +optional
	WarmupDuration *Duration `json:"warmupDuration,omitempty"`

	// confidenceLevel is the confidence, strictly between 0 and 1 (default 0.95), at which the
	// sequential checks decide: an error-rate check fails only when the revision's rate is shown
	// above its threshold at this confidence, and passes only when it is shown below it; a
	// comparison with stable (compareToStable) fails only when the revision is shown worse. The
	// checks stay valid however often they look (see "How KULTA decides" in the README).
	// +optional
	// +kubebuilder:validation:XValidation:rule="self > 0.0 && self < 1.0",message="analysis.confidenceLevel must be strictly between 0 and 1"
	ConfidenceLevel *Decimal `json:"confidenceLevel,omitempty"`

	// metrics are the checks; every one must pass.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Metrics []Metric `json:"metrics,omitempty"`
}

// PrometheusConfig says where a Prometheus server answers queries.
type PrometheusConfig struct {
	// address is the server's base URL, such as http://prometheus.monitoring:9090.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^ ]+$')",message="prometheus.address must be an http:// or https:// URL"
	Address string `json:"address,omitempty"`
}

// Metric is one threshold check. Built-in names are error-rate (percent of responses that are
// 5xx), latency-p95 and latency-p99 (milliseconds); any other name needs a query.
//
// +kubebuilder:validation:XValidation:rule="has(self.query) || self.name in ['error-rate', 'latency-p95', 'latency-p99']",message="metrics[].name must be error-rate, latency-p95 or latency-p99 unless query is set"
// +kubebuilder:validation:XValidation:rule="!has(self.compareToStable) || !self.compareToStable || (!has(self.query) && self.name in ['error-rate', 'latency-p95', 'latency-p99'])",message="metrics[].compareToStable applies only to the built-in error-rate, latency-p95 and latency-p99 metrics without a query"
// +kubebuilder:validation:XValidation:rule="!has(self.tolerance) || (has(self.compareToStable) && self.compareToStable && self.name in ['latency-p95', 'latency-p99'])",message="metrics[].tolerance applies only to latency-p95 and latency-p99 with compareToStable: true"
type Metric struct {
	// name identifies the metric: a built-in one, or a name of your choice with a query.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// threshold is the limit, in the metric's unit: the largest acceptable value, or the smallest
	// when direction is higher.
	// +required
	Threshold Decimal `json:"threshold"`

	// direction is lower (the default: smaller is better, threshold is a maximum) or higher
	// (larger is better, threshold is a minimum).
	// +optional
	// +kubebuilder:default=lower
	Direction MetricDirection `json:"direction,omitempty"`

	// query is a PromQL query template giving the metric's value for the revision under test.
	// Go template fields: {{.Namespace}}, {{.Rollout}}, {{.Service}} (the Service of the revision
	// under test) and {{.Revision}}, each inside a double-quoted PromQL string, where it is
	// escaped, and {{.Window}} (such as 5m) anywhere.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Query string `json:"query,omitempty"`

	// compareToStable also judges the revision under test against the stable one (the canary
	// against stableService, a blue-green preview against activeService), on all requests each
	// has served since the revision started. For error-rate, the check fails when the revision's
	// rate is shown higher than stable's (a sequential test at confidenceLevel, after a
	// sample-ratio-mismatch check of the canary's traffic split), even within the threshold.
	// For latency-p95 and latency-p99, the latency distributions are compared from the histogram
	// buckets (Mann-Whitney U and the Hodges-Lehmann shift): the check fails when the revision is
	// shown slower than stable by more than tolerance, and the threshold still applies to the
	// quantile. Without stable data the check is Inconclusive, never a pass. Not available to
	// the simple strategy, which has no stable Service.
	// +optional
	CompareToStable bool `json:"compareToStable,omitempty"`

	// tolerance is how much slower than stable a revision may be before a latency comparison
	// (compareToStable on latency-p95 or latency-p99) fails: milliseconds such as 20ms, or a
	// percentage of stable's median latency such as 10% (the default).
	// +optional
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?(ms|%)$`
	Tolerance string `json:"tolerance,omitempty"`

	// sampleQuery is a PromQL query template giving the number of requests the value is based
	// on, compared with minSampleSize. Built-in metrics count requests on their own.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	SampleQuery string `json:"sampleQuery,omitempty"`

	// interval is how often the metric is checked, such as 30s (default 1m).
	// +optional
	Interval *Duration `json:"interval,omitempty"`

	// failureThreshold is how many consecutive failing checks make a failing verdict (default 1).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	FailureThreshold *int32 `json:"failureThreshold,omitempty"`

	// minSampleSize is the fewest requests for a check to count; below it the check is
	// inconclusive, never a pass. Error-rate checks count every request since the revision
	// started; other metrics count the requests in their window.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MinSampleSize *int32 `json:"minSampleSize,omitempty"`
}

// ABAnalysis configures the statistics that conclude an A/B experiment.
type ABAnalysis struct {
	// prometheus says where to query. Without it, the controller's default address is used.
	// +optional
	Prometheus *PrometheusConfig `json:"prometheus,omitempty"`

	// metrics are compared between the variants.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Metrics []ABMetric `json:"metrics,omitempty"`

	// minDuration is how long the experiment runs before any verdict, such as 1h.
	// +optional
	MinDuration *Duration `json:"minDuration,omitempty"`

	// interval is how often the variants are compared, such as 1m (the default). Each comparison
	// counts every request since the experiment started and the test is sequential (always
	// valid), so comparing often does not raise the false-positive rate.
	// +optional
	Interval *Duration `json:"interval,omitempty"`

	// minSampleSize is the fewest requests per variant before any verdict.
	// +optional
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=1
	MinSampleSize *int32 `json:"minSampleSize,omitempty"`

	// confidenceLevel is one minus the false-positive rate accepted, strictly between 0 and 1.
	// +optional
	// +kubebuilder:default=0.95
	// +kubebuilder:validation:XValidation:rule="self > 0.0 && self < 1.0",message="spec.strategy.abTesting.analysis.confidenceLevel must be strictly between 0 and 1"
	ConfidenceLevel *Decimal `json:"confidenceLevel,omitempty"`
}

// MetricDirection says which way a metric is better.
//
// +kubebuilder:validation:Enum=lower;higher
type MetricDirection string

// Metric directions.
const (
	// DirectionLower means smaller values are better (errors, latency).
	DirectionLower MetricDirection = "lower"
	// DirectionHigher means larger values are better (conversions).
	DirectionHigher MetricDirection = "higher"
)

// ABMetric is one metric compared between the variants of an A/B experiment.
type ABMetric struct {
	// name is the built-in metric compared: error-rate (a proportion, compared with a sequential
	// two-proportion test) or latency-p95 / latency-p99 (the latency distributions, compared with
	// Mann-Whitney U on the histogram buckets).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// direction is lower when B should be lower, higher when B should be higher.
	// +required
	Direction MetricDirection `json:"direction"`

	// minEffectSize is the smallest difference between the variants that matters, as an absolute
	// difference of the metric: for error-rate a difference of proportions (0.05 is five
	// points), for latency a shift in milliseconds.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self >= 0.0",message="minEffectSize must not be negative"
	MinEffectSize *Decimal `json:"minEffectSize,omitempty"`
}
