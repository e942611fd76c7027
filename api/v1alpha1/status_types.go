package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Phase is where a Rollout is in its life. Conditions carry the detail; the phase is the summary
// users and KULTA's first controller know.
type Phase string

// Phases.
const (
	PhaseInitializing  Phase = "Initializing"
	PhaseProgressing   Phase = "Progressing"
	PhasePaused        Phase = "Paused"
	PhasePreview       Phase = "Preview"
	PhaseExperimenting Phase = "Experimenting"
	PhaseConcluded     Phase = "Concluded"
	PhaseCompleted     Phase = "Completed"
	PhaseFailed        Phase = "Failed"
)

// StrategyName names the strategy a Rollout uses, as shown in status.strategy.
type StrategyName string

// Strategy names.
const (
	StrategyCanary    StrategyName = "canary"
	StrategyBlueGreen StrategyName = "blueGreen"
	StrategyABTesting StrategyName = "abTesting"
	StrategySimple    StrategyName = "simple"
)

// Condition types KULTA owns on a Rollout, following kstatus.
const (
	// ConditionReady is True when the current revision serves all traffic at full scale.
	ConditionReady = "Ready"
	// ConditionProgressing is True while a rollout is moving between revisions.
	ConditionProgressing = "Progressing"
	// ConditionPaused is True while a rollout waits at a pause, for promotion, or after a failure
	// whose policy is Pause.
	ConditionPaused = "Paused"
	// ConditionStalled is True when KULTA cannot go on until someone acts: a spec or reference
	// to fix, a rollout that failed and was rolled back, or one held by a failed analysis.
	ConditionStalled = "Stalled"
	// ConditionReconciling is True while KULTA is still working towards the spec: a rollout in
	// flight, Pods starting, routes not yet accepted, or a write that failed and will be retried.
	ConditionReconciling = "Reconciling"
	// ConditionAnalysis reports the last analysis verdict.
	ConditionAnalysis = "Analysis"
	// ConditionTrafficRouted is True when the routes carry the weights the current step wants.
	ConditionTrafficRouted = "TrafficRouted"
)

// MaxDecisions bounds status.decisions; older entries are dropped first.
const MaxDecisions = 20

// RolloutStatus is what KULTA observed and did.
type RolloutStatus struct {
	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions are the Ready, Progressing, Paused, Stalled, Analysis and TrafficRouted conditions.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// phase summarises the conditions.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// strategy is the strategy in use: canary, blueGreen, abTesting or simple.
	// +optional
	Strategy StrategyName `json:"strategy,omitempty"`

	// message explains the phase.
	// +optional
	// +kubebuilder:validation:MaxLength=32768
	Message string `json:"message,omitempty"`

	// currentStepIndex is the canary step being carried out (0-based).
	// +optional
	CurrentStepIndex *int32 `json:"currentStepIndex,omitempty"`

	// currentWeight is the percentage of traffic the new revision receives.
	// +optional
	CurrentWeight *int32 `json:"currentWeight,omitempty"`

	// stablePodTemplateHash identifies the revision that has been fully rolled out.
	// +optional
	StablePodTemplateHash string `json:"stablePodTemplateHash,omitempty"`

	// currentPodTemplateHash identifies the revision of spec.template.
	// +optional
	CurrentPodTemplateHash string `json:"currentPodTemplateHash,omitempty"`

	// headerRoutes names the canary's header and mirror routes (setHeaderRoute and setMirrorRoute
	// steps) KULTA has put on the routes, so that they are removed even when a later spec no
	// longer names them.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	HeaderRoutes []string `json:"headerRoutes,omitempty"`

	// collisionCount counts pod-template hash collisions; it is mixed into the hash to make a new one.
	// +optional
	CollisionCount *int32 `json:"collisionCount,omitempty"`

	// pauseStartTime is when the current pause began.
	// +optional
	PauseStartTime *metav1.Time `json:"pauseStartTime,omitempty"`

	// stepStartTime is when the current step began; analysis warm-up counts from it.
	// +optional
	StepStartTime *metav1.Time `json:"stepStartTime,omitempty"`

	// progressStartedAt is when the rollout last made progress; progressDeadlineSeconds counts from it.
	// +optional
	ProgressStartedAt *metav1.Time `json:"progressStartedAt,omitempty"`

	// replicas is the number of Pods of all revisions.
	// +optional
	Replicas int32 `json:"replicas"`

	// readyReplicas is the number of ready Pods of all revisions.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas"`

	// updatedReplicas is the number of Pods of the current revision.
	// +optional
	UpdatedReplicas int32 `json:"updatedReplicas"`

	// availableReplicas is the number of available Pods of all revisions.
	// +optional
	AvailableReplicas int32 `json:"availableReplicas"`

	// scaleDowns are the revisions that stopped serving and still have Pods, each with the time
	// KULTA scales it to zero (scaleDownDelaySeconds after it stopped serving), so the delay
	// survives a controller restart. An entry goes when its revision is scaled to zero; past
	// 128 revisions at once, those due first lose theirs and are scaled down when nothing
	// routes to them.
	// +optional
	// +listType=map
	// +listMapKey=podTemplateHash
	// +kubebuilder:validation:MaxItems=128
	ScaleDowns []ScaleDown `json:"scaleDowns,omitempty"`

	// selector is spec.selector in label-query form, for the scale subresource.
	// +optional
	Selector string `json:"selector,omitempty"`

	// decisions are the latest steps KULTA took and why, oldest first.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	Decisions []Decision `json:"decisions,omitempty"`

	// abExperiment is the state of the A/B experiment.
	// +optional
	ABExperiment *ABExperimentStatus `json:"abExperiment,omitempty"`

	// analysis is the latest analysis of the current revision.
	// +optional
	Analysis *AnalysisStatus `json:"analysis,omitempty"`

	// notifiedThrough marks the decisions whose notifications are all delivered (or given up
	// after their retries); those of later decisions are sent again after a controller
	// restart, so that each is delivered at least once.
	// +optional
	NotifiedThrough *NotificationCursor `json:"notifiedThrough,omitempty"`

	// webhooks are the latest answers of the strategy's webhooks for the current revision, one
	// per webhook.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Webhooks []WebhookStatus `json:"webhooks,omitempty"`
}

// ScaleDown is when a revision that stopped serving is scaled to zero.
type ScaleDown struct {
	// podTemplateHash names the revision (its ReplicaSet's pod-template-hash label).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	PodTemplateHash string `json:"podTemplateHash"`

	// at is when KULTA scales the revision to zero, once nothing routes to it any more.
	At metav1.Time `json:"at"`
}

// NotificationCursor marks a place in status.decisions: every decision before time, and the
// first count of those at time (decisions are recorded to the second, in order).
type NotificationCursor struct {
	// time is the timestamp of the last decision marked.
	// +required
	Time metav1.Time `json:"time"`

	// count is how many of the decisions at time are marked.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Count int32 `json:"count,omitempty"`
}

// Verdict is the outcome of an analysis.
type Verdict string

// Verdicts. No data is never a pass: it is Inconclusive, with a reason.
const (
	VerdictPass         Verdict = "Pass"
	VerdictFail         Verdict = "Fail"
	VerdictInconclusive Verdict = "Inconclusive"
)

// AnalysisStatus is the latest analysis of one revision (and canary step).
type AnalysisStatus struct {
	// revision is the pod-template hash that was measured.
	// +required
	Revision string `json:"revision"`

	// stepIndex is the canary step the analysis belongs to.
	// +optional
	StepIndex *int32 `json:"stepIndex,omitempty"`

	// verdict combines the metrics: Fail if any failed, else Inconclusive if any was, else Pass.
	// +required
	Verdict Verdict `json:"verdict"`

	// reason is a CamelCase reason, such as ThresholdExceeded or NoTraffic.
	// +optional
	Reason string `json:"reason,omitempty"`

	// message explains the verdict with the values and thresholds it used.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Message string `json:"message,omitempty"`

	// checkedAt is when the metrics were last queried.
	// +required
	CheckedAt metav1.Time `json:"checkedAt"`

	// countingSince is the start of the range the sequential checks count over: when the
	// revision began to receive traffic. Every check of the revision counts all requests since
	// then, so repeated looks keep the checks' error rates; it survives a controller restart.
	// +optional
	CountingSince *metav1.Time `json:"countingSince,omitempty"`

	// expectedCanaryPercent is the share of traffic, in percent, that the canary should receive
	// under the split KULTA set (the route weight, or without traffic routing the canary's share
	// of ready Pods), which the sample-ratio-mismatch check compares the observed split with.
	// +optional
	ExpectedCanaryPercent *Decimal `json:"expectedCanaryPercent,omitempty"`

	// splitSince is when that split was first seen; the sample-ratio-mismatch check only looks
	// at requests served since then.
	// +optional
	SplitSince *metav1.Time `json:"splitSince,omitempty"`

	// metrics holds each metric's latest result.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Metrics []MetricStatus `json:"metrics,omitempty"`
}

// MetricStatus is one metric's latest result and the counters that span checks.
type MetricStatus struct {
	// name is the metric.
	// +required
	Name string `json:"name"`

	// verdict is this metric's verdict.
	// +required
	Verdict Verdict `json:"verdict"`

	// reason is a CamelCase reason.
	// +optional
	Reason string `json:"reason,omitempty"`

	// value is the measured value, when there was one.
	// +optional
	Value *Decimal `json:"value,omitempty"`

	// threshold is the limit it was judged against.
	// +optional
	Threshold *Decimal `json:"threshold,omitempty"`

	// sampleSize is the number of requests behind the value.
	// +optional
	SampleSize *int64 `json:"sampleSize,omitempty"`

	// consecutiveFailures counts checks in a row over the threshold.
	// +optional
	ConsecutiveFailures int32 `json:"consecutiveFailures,omitempty"`

	// consecutiveErrors counts checks in a row whose query failed or whose traffic split did not
	// match the one KULTA set (sample-ratio mismatch).
	// +optional
	ConsecutiveErrors int32 `json:"consecutiveErrors,omitempty"`

	// lowerBound and upperBound are the anytime-valid confidence bounds of an error-rate
	// check's rate, in percent, over all requests since countingSince.
	// +optional
	LowerBound *Decimal `json:"lowerBound,omitempty"`

	// upperBound: see lowerBound.
	// +optional
	UpperBound *Decimal `json:"upperBound,omitempty"`

	// stableValue is the stable revision's value over the same range, for compareToStable.
	// +optional
	StableValue *Decimal `json:"stableValue,omitempty"`

	// pValue is the p-value of the latest comparison with stable: for error-rate the
	// always-valid p-value, which may be judged against 1 - confidenceLevel at any look, for
	// latency the Mann-Whitney p-value, judged against that look's share of alpha.
	// +optional
	PValue *Decimal `json:"pValue,omitempty"`

	// looks counts the comparisons with stable taken for this revision; each look spends a
	// share of alpha that shrinks with the look number, so that every look together stay
	// within 1 - confidenceLevel.
	// +optional
	Looks int32 `json:"looks,omitempty"`
}

// DecisionAction is what KULTA did.
type DecisionAction string

// Decision actions.
const (
	ActionInitialize  DecisionAction = "Initialize"
	ActionStepAdvance DecisionAction = "StepAdvance"
	ActionPromotion   DecisionAction = "Promotion"
	ActionRollback    DecisionAction = "Rollback"
	ActionPause       DecisionAction = "Pause"
	ActionResume      DecisionAction = "Resume"
	ActionComplete    DecisionAction = "Complete"
	ActionConclude    DecisionAction = "Conclude"
	ActionFail        DecisionAction = "Fail"
)

// Decision is one action KULTA took, with its reason and the evidence it used.
type Decision struct {
	// timestamp is when the decision was taken.
	// +required
	Timestamp metav1.Time `json:"timestamp"`

	// action is what was done.
	// +required
	Action DecisionAction `json:"action"`

	// fromStep is the step index before the decision.
	// +optional
	FromStep *int32 `json:"fromStep,omitempty"`

	// toStep is the step index after the decision.
	// +optional
	ToStep *int32 `json:"toStep,omitempty"`

	// reason is a CamelCase reason, such as PauseDurationExpired or AnalysisFailed.
	// +required
	Reason string `json:"reason"`

	// message explains the decision.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Message string `json:"message,omitempty"`

	// metrics are the metric values the decision used, by metric name.
	// +optional
	Metrics map[string]MetricSnapshot `json:"metrics,omitempty"`
}

// MetricSnapshot is one metric's value at a decision.
type MetricSnapshot struct {
	// value is the measured value.
	// +required
	Value Decimal `json:"value"`

	// threshold is the limit it was judged against.
	// +optional
	Threshold *Decimal `json:"threshold,omitempty"`

	// passed says whether the value was acceptable.
	// +required
	Passed bool `json:"passed"`
}

// ABVariant names a variant of an A/B experiment.
type ABVariant string

// Variants.
const (
	VariantA ABVariant = "A"
	VariantB ABVariant = "B"
)

// ABExperimentStatus is the state of an A/B experiment.
type ABExperimentStatus struct {
	// startedAt is when variant B started receiving traffic.
	// +required
	StartedAt metav1.Time `json:"startedAt"`

	// concludedAt is when the experiment ended.
	// +optional
	ConcludedAt *metav1.Time `json:"concludedAt,omitempty"`

	// checkedAt is when the variants were last compared.
	// +optional
	CheckedAt *metav1.Time `json:"checkedAt,omitempty"`

	// message explains the latest comparison, metric by metric.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Message string `json:"message,omitempty"`

	// sampleSizeA is the number of requests variant A served since the experiment started.
	// +optional
	SampleSizeA *int64 `json:"sampleSizeA,omitempty"`

	// sampleSizeB is the number of requests variant B served since the experiment started.
	// +optional
	SampleSizeB *int64 `json:"sampleSizeB,omitempty"`

	// results holds one comparison per metric.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Results []ABMetricResult `json:"results,omitempty"`

	// winner is the variant that won, when one did.
	// +optional
	Winner ABVariant `json:"winner,omitempty"`

	// conclusionReason says why the experiment ended: SignificanceReached, MaxDurationExceeded,
	// ManualConclusion or ConsensusReached.
	// +optional
	ConclusionReason string `json:"conclusionReason,omitempty"`
}

// ABMetricResult is the comparison of one metric between the variants.
type ABMetricResult struct {
	// name is the metric.
	// +required
	Name string `json:"name"`

	// valueA is variant A's value.
	// +required
	ValueA Decimal `json:"valueA"`

	// valueB is variant B's value.
	// +required
	ValueB Decimal `json:"valueB"`

	// confidence is one minus pValue, rounded to nine digits.
	// +required
	Confidence Decimal `json:"confidence"`

	// pValue is the p-value behind confidence, with every digit kept: for error-rate the
	// always-valid p-value of the latest look, for latency the Mann-Whitney p-value of the
	// latest look times looks*(looks+1), both valid at any look.
	// +optional
	PValue *Decimal `json:"pValue,omitempty"`

	// looks counts the comparisons taken so far; a latency comparison spends a share of alpha
	// per look that shrinks with the look number.
	// +optional
	Looks int32 `json:"looks,omitempty"`

	// reason says why the metric is or is not significant, such as NotSignificant or NoTraffic.
	// +optional
	Reason string `json:"reason,omitempty"`

	// isSignificant says whether the difference is significant at the configured level.
	// +required
	IsSignificant bool `json:"isSignificant"`

	// winner is the better variant for this metric, when the difference is significant.
	// +optional
	Winner ABVariant `json:"winner,omitempty"`
}
