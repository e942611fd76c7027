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

	// compareToStable also judges the canary against the stable revision over the same window:
	// when the canary is significantly worse (a one-sided sequential test at 95 % confidence,
	// after a sample-ratio-mismatch check of the traffic split), the check fails even within the
	// threshold. It applies to the canary strategy and proportion metrics (error-rate).
	// +optional
	CompareToStable bool `json:"compareToStable,omitempty"`

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

	// minSampleSize is the fewest requests in the window for a check to count; below it the check
	// is inconclusive, never a pass.
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

	// interval is how often the variants are compared, such as 1m (the default). The test is
	// sequential (always valid), so comparing often does not raise the false-positive rate.
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
	// name identifies the metric, such as error-rate.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// direction is lower when B should be lower, higher when B should be higher.
	// +required
	Direction MetricDirection `json:"direction"`

	// minEffectSize is the smallest difference between the variants that matters, as an absolute
	// difference of the metric (0.05 is five points of a proportion).
	// +optional
	// +kubebuilder:validation:XValidation:rule="self >= 0.0",message="minEffectSize must not be negative"
	MinEffectSize *Decimal `json:"minEffectSize,omitempty"`
}
