package occurrence

import (
	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// Source is the source of every occurrence KULTA writes.
const Source = "kulta"

// Severity says how much attention an occurrence needs.
type Severity string

// Severities.
const (
	SeverityInfo    Severity = "info"
	SeverityWarning Severity = "warning"
	SeverityError   Severity = "error"
)

// Outcome says how the work an occurrence reports on turned out.
type Outcome string

// Outcomes.
const (
	OutcomeSuccess    Outcome = "success"
	OutcomeFailure    Outcome = "failure"
	OutcomeInProgress Outcome = "in_progress"
)

// Occurrence is one FALSE Protocol occurrence, as written on one line.
type Occurrence struct {
	// ID is a ULID.
	ID string `json:"id"`
	// Timestamp is when the transition happened, RFC 3339 with nanoseconds, in UTC.
	Timestamp string `json:"timestamp"`
	// Source is always "kulta".
	Source string `json:"source"`
	// Type is <strategy>.rollout.<progressing|paused|completed|failed>, the strategy being
	// canary, bluegreen, abtesting or rolling.
	Type string `json:"type"`
	// Severity is info, warning or error.
	Severity Severity `json:"severity"`
	// Outcome is success, failure or in_progress.
	Outcome Outcome `json:"outcome"`
	// Context places the occurrence and links it to others.
	Context Context `json:"context"`
	// Data is the Rollout's state and the decision behind the occurrence.
	Data Data `json:"data"`
	// Entities are the Kubernetes objects involved.
	Entities []Entity `json:"entities"`
	// Error explains a failure; it is set on failures and on pauses caused by a failed analysis.
	Error *Error `json:"error,omitempty"`
	// Reasoning is the evidence the decision used, when there was any.
	Reasoning *Reasoning `json:"reasoning,omitempty"`
	// History is the decisions that led here, oldest first.
	History *History `json:"history,omitempty"`
}

// Context places an occurrence: its cluster and namespace, and the keys other occurrences about
// the same things share.
type Context struct {
	// Cluster names the cluster, when configured.
	Cluster string `json:"cluster,omitempty"`
	// Namespace is the Rollout's namespace.
	Namespace string `json:"namespace"`
	// CorrelationKeys are rollout, namespace, revision, stable_revision and decision.
	CorrelationKeys []CorrelationKey `json:"correlation_keys"`
}

// CorrelationKey is one typed value other occurrences can share.
type CorrelationKey struct {
	// Type names what the value identifies.
	Type string `json:"type"`
	// Value is the identifier.
	Value string `json:"value"`
}

// Data holds the Rollout's state after the transition and the decision that caused it.
type Data struct {
	// Rollout is the Rollout's state.
	Rollout RolloutData `json:"rollout"`
	// Decision is the decision behind the occurrence.
	Decision Step `json:"decision"`
}

// RolloutData is a Rollout's state after a transition.
type RolloutData struct {
	// Name is the Rollout's name.
	Name string `json:"name"`
	// Namespace is the Rollout's namespace.
	Namespace string `json:"namespace"`
	// Strategy is canary, bluegreen, abtesting or rolling.
	Strategy string `json:"strategy"`
	// Phase is status.phase.
	Phase kultav1alpha1.Phase `json:"phase"`
	// Step is status.currentStepIndex; null when the strategy has no steps.
	Step *int32 `json:"step"`
	// Weight is status.currentWeight, the new revision's share of traffic in percent.
	Weight *int32 `json:"weight"`
	// Image is the first container image of spec.template.
	Image string `json:"image"`
	// Revision is the pod-template hash of spec.template.
	Revision string `json:"revision,omitempty"`
	// StableRevision is the pod-template hash of the stable revision.
	StableRevision string `json:"stable_revision,omitempty"`
	// Replicas is status.replicas.
	Replicas int32 `json:"replicas"`
	// ReadyReplicas is status.readyReplicas.
	ReadyReplicas int32 `json:"ready_replicas"`
	// Message is status.message.
	Message string `json:"message,omitempty"`
}

// Entity is a Kubernetes object an occurrence involves.
type Entity struct {
	// Type is rollout, replicaset or service.
	Type string `json:"type"`
	// ID is the object's API path.
	ID string `json:"id"`
	// Name is the object's name.
	Name string `json:"name"`
	// Namespace is the object's namespace.
	Namespace string `json:"namespace"`
	// Role is the object's part in the rollout: current or stable for ReplicaSets, the
	// strategy's field name for Services.
	Role string `json:"role,omitempty"`
	// Version is the object's resourceVersion, when known.
	Version string `json:"version,omitempty"`
}

// Error explains a failure to whoever has to act on it.
type Error struct {
	// Code is the decision's reason, such as AnalysisFailed.
	Code string `json:"code"`
	// WhatFailed says what went wrong.
	WhatFailed string `json:"what_failed"`
	// WhyItMatters says what it means for the service and its users.
	WhyItMatters string `json:"why_it_matters"`
	// PossibleCauses lists likely causes, most likely first.
	PossibleCauses []string `json:"possible_causes"`
	// SuggestedFix says what to do next.
	SuggestedFix string `json:"suggested_fix"`
}

// Reasoning is the evidence behind a decision.
type Reasoning struct {
	// Summary is the decision's message.
	Summary string `json:"summary"`
	// Evidence is the metric values the decision used, by metric name.
	Evidence []Evidence `json:"evidence,omitempty"`
	// Analysis is status.analysis: the latest verdict on the current revision.
	Analysis *Analysis `json:"analysis,omitempty"`
	// Experiment is the A/B experiment's state.
	Experiment *Experiment `json:"experiment,omitempty"`
}

// Evidence is one metric's value at a decision.
type Evidence struct {
	// Metric is the metric's name.
	Metric string `json:"metric"`
	// Value is the measured value.
	Value kultav1alpha1.Decimal `json:"value"`
	// Threshold is the limit it was judged against.
	Threshold *kultav1alpha1.Decimal `json:"threshold,omitempty"`
	// Passed says whether the value was acceptable.
	Passed bool `json:"passed"`
}

// Analysis is the latest analysis of the current revision.
type Analysis struct {
	// Revision is the pod-template hash measured.
	Revision string `json:"revision"`
	// Verdict is Pass, Fail or Inconclusive.
	Verdict kultav1alpha1.Verdict `json:"verdict"`
	// Reason is the verdict's CamelCase reason.
	Reason string `json:"reason,omitempty"`
	// Message explains the verdict with values and thresholds.
	Message string `json:"message,omitempty"`
}

// Experiment is the state of an A/B experiment.
type Experiment struct {
	// Winner is the winning variant, when one won.
	Winner kultav1alpha1.ABVariant `json:"winner,omitempty"`
	// ConclusionReason says why the experiment ended.
	ConclusionReason string `json:"conclusion_reason,omitempty"`
	// Message explains the latest comparison.
	Message string `json:"message,omitempty"`
	// SampleSizeA is the number of requests variant A served.
	SampleSizeA *int64 `json:"sample_size_a,omitempty"`
	// SampleSizeB is the number of requests variant B served.
	SampleSizeB *int64 `json:"sample_size_b,omitempty"`
}

// History is the decisions that led to an occurrence.
type History struct {
	// Steps are the decisions, oldest first, ending with the occurrence's own.
	Steps []Step `json:"steps"`
}

// Step is one decision KULTA took.
type Step struct {
	// Timestamp is when it was taken, RFC 3339 in UTC.
	Timestamp string `json:"timestamp"`
	// Action is what was done, such as StepAdvance.
	Action kultav1alpha1.DecisionAction `json:"action"`
	// Reason is why, such as PauseDurationExpired.
	Reason string `json:"reason"`
	// Description is the decision's message.
	Description string `json:"description,omitempty"`
	// Status is failed for rollbacks and failures, else completed.
	Status string `json:"status"`
	// FromStep is the step index before the decision.
	FromStep *int32 `json:"from_step,omitempty"`
	// ToStep is the step index after the decision.
	ToStep *int32 `json:"to_step,omitempty"`
}
