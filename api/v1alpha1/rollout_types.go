package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Labels and annotations KULTA reads or writes on Rollouts, ReplicaSets, Pods and Services.
const (
	// PodTemplateHashLabel carries the hash of the pod template a ReplicaSet was built from. KULTA
	// sets it on each ReplicaSet, its pod template and its selector, and pins Service selectors to it.
	PodTemplateHashLabel = "rollouts.kulta.io/pod-template-hash"

	// RolloutTypeLabel marks a revision's Pods as `stable` or `canary` when they are created.
	// KULTA's example Services select on it; once KULTA pins a Service to a revision it replaces
	// this key in the Service selector with PodTemplateHashLabel, since a promoted canary's Pods
	// keep the label value they were created with.
	RolloutTypeLabel = "rollouts.kulta.io/type"

	// ShardLabel on a Rollout assigns it to the controller replicas started with
	// --shard-key=VALUE; replicas started without a shard key leave such Rollouts alone when
	// they watch with --watch-label-selector='!kulta.io/shard', as the chart's main replicas do
	// once shards are configured.
	ShardLabel = "kulta.io/shard"

	// PromoteAnnotation, set to "true", advances past the current pause or promotes the preview or
	// the winning variant; set to "full", it skips a canary's remaining steps and promotes it.
	// KULTA removes it once it has acted on it.
	PromoteAnnotation = "kulta.io/promote"

	// ConcludeExperimentAnnotation, set to "true", ends a running A/B experiment. KULTA removes it
	// once it has acted on it.
	ConcludeExperimentAnnotation = "kulta.io/conclude-experiment"

	// AbortAnnotation, set to "true", stops a rollout in flight: all traffic goes back to the
	// stable revision and the new one is scaled down. KULTA removes it once it has acted on it.
	AbortAnnotation = "kulta.io/abort"

	// RetryAnnotation, set to "true", starts a failed or aborted rollout again from its first
	// step. KULTA removes it once it has acted on it.
	RetryAnnotation = "kulta.io/retry"

	// NotifyAnnotation subscribes the Rollout to notification services configured for the
	// controller, by name, comma-separated: "team-slack,audit".
	NotifyAnnotation = "kulta.io/notify"

	// NotifyOnAnnotation narrows the notifications to the triggers it lists, comma-separated
	// (started, step-advanced, paused, analysis-failed, rolled-back, promoted, completed); all of
	// them when absent.
	NotifyOnAnnotation = "kulta.io/notify-on"

	// CleanupFinalizer holds a deleted Rollout until KULTA has handed its traffic back: managed
	// route rules removed, the managed weights all on the stable Service, and each Service's
	// selector as the user wrote it.
	CleanupFinalizer = "kulta.io/cleanup"

	// OriginalSelectorAnnotation, on a Service, keeps the selector the user wrote (JSON) from
	// before KULTA first pinned the Service to a revision; deleting the Rollout restores it.
	OriginalSelectorAnnotation = "kulta.io/original-selector"
)

// RolloutSpec is the desired state of a Rollout: the Pods it runs and the strategy that moves
// users from one revision of them to the next.
//
// +kubebuilder:validation:XValidation:rule="has(self.template) != has(self.workloadRef)",message="spec must set exactly one of template and workloadRef"
// +kubebuilder:validation:XValidation:rule="has(self.selector) || has(self.workloadRef)",message="spec.selector is required unless spec.workloadRef is set"
// +kubebuilder:validation:XValidation:rule="has(self.selector) == has(oldSelf.selector)",message="spec.selector cannot be added or removed after creation"
// +kubebuilder:validation:XValidation:rule="has(self.workloadRef) == has(oldSelf.workloadRef)",message="spec.workloadRef cannot be added or removed after creation: create a new Rollout (deleting this one hands an adopted Deployment back)"
// +kubebuilder:validation:XValidation:rule="!has(self.workloadRef) || !has(oldSelf.workloadRef) || self.workloadRef.name == oldSelf.workloadRef.name",message="spec.workloadRef.name is immutable: the adopted Deployment is scaled back up only when the Rollout is deleted"
// +kubebuilder:validation:XValidation:rule="!has(self.template) || !has(self.selector) || !has(self.selector.matchLabels) || self.selector.matchLabels.all(k, has(self.template.metadata) && has(self.template.metadata.labels) && k in self.template.metadata.labels && self.template.metadata.labels[k] == self.selector.matchLabels[k])",message="spec.selector.matchLabels must match spec.template.metadata.labels"
// +kubebuilder:validation:XValidation:rule="!has(self.canaryMetadata) || !has(self.canaryMetadata.labels) || !has(self.selector) || self.canaryMetadata.labels.all(k, !(has(self.selector.matchLabels) && k in self.selector.matchLabels) && !(has(self.selector.matchExpressions) && self.selector.matchExpressions.exists(e, e.key == k)))",message="spec.canaryMetadata.labels must not set a label that spec.selector selects on"
// +kubebuilder:validation:XValidation:rule="!has(self.stableMetadata) || !has(self.stableMetadata.labels) || !has(self.selector) || self.stableMetadata.labels.all(k, !(has(self.selector.matchLabels) && k in self.selector.matchLabels) && !(has(self.selector.matchExpressions) && self.selector.matchExpressions.exists(e, e.key == k)))",message="spec.stableMetadata.labels must not set a label that spec.selector selects on"
type RolloutSpec struct {
	// replicas is the number of Pods wanted once a revision is fully rolled out.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	Replicas *int32 `json:"replicas,omitempty"`

	// selector picks the Pods this Rollout owns. It must match the Pod template's labels and must
	// not change after creation. Required with template; with workloadRef it may be left out, and
	// the Deployment's selector is used.
	// +optional
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.selector is immutable"
	Selector *LabelSelector `json:"selector,omitempty"`

	// template is the Pod template. Each distinct template becomes one revision with its own
	// ReplicaSet. Exactly one of template and workloadRef is set.
	// +optional
	Template PodTemplate `json:"template,omitzero"`

	// workloadRef adopts a running Deployment: the Rollout takes its Pod template (and, without
	// spec.selector, its selector) from the Deployment, so that a change to the Deployment's
	// template is a new revision, and scales the Deployment's own Pods down as its scaleDown
	// says. Deleting the Rollout scales the Deployment back up before traffic is handed back to
	// its Pods.
	// +optional
	WorkloadRef *WorkloadRef `json:"workloadRef,omitempty"`

	// strategy says how a new revision replaces the current one. Exactly one of its members is set.
	// +required
	Strategy RolloutStrategy `json:"strategy"`

	// maxSurge is how many Pods (a number, or a percentage of replicas such as "25%") may run above
	// replicas while the simple strategy rolls. Rounded up.
	// +optional
	// +kubebuilder:default="25%"
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^[0-9]+%?$')",message="spec.maxSurge must be a non-negative number or a percentage such as 25%"
	MaxSurge *intstr.IntOrString `json:"maxSurge,omitempty"`

	// maxUnavailable is how many Pods (a number, or a percentage of replicas) may be unavailable
	// while the simple strategy rolls. Rounded down.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^[0-9]+%?$')",message="spec.maxUnavailable must be a non-negative number or a percentage such as 25%"
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`

	// progressDeadlineSeconds is how long a rollout may go without making progress (a step, a
	// promotion or replicas turning ready) before it is marked Failed. Time spent in a pause that
	// waits for a person does not count.
	// +optional
	// +kubebuilder:default=600
	// +kubebuilder:validation:Minimum=1
	ProgressDeadlineSeconds *int32 `json:"progressDeadlineSeconds,omitempty"`

	// minReadySeconds is how long a new Pod must be Ready, without any of its containers
	// crashing, before it counts as available, as for a Deployment. Steps, promotions and
	// scale-downs count available Pods only.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	MinReadySeconds int32 `json:"minReadySeconds,omitempty"`

	// antiAffinity keeps a new revision's Pods off the nodes that run the stable revision's
	// Pods, so that a bad canary does not share a node with the Pods it may have to fall back
	// to: Preferred asks the scheduler to avoid them, Required forbids them (a canary that finds
	// no free node waits, and the progress deadline bounds that wait). The rule is written into
	// the new revision's ReplicaSet when KULTA creates it.
	// +optional
	AntiAffinity AntiAffinity `json:"antiAffinity,omitempty"`

	// canaryMetadata are labels and annotations for the Pods of the revision being rolled out
	// (the canary, the preview, variant B), so that dashboards and queries can tell them apart.
	// When the revision is promoted they make way for stableMetadata, on its ReplicaSet and on its
	// running Pods, by patches: no Pod restarts. Keys must not be the selector's or KULTA's own
	// (rollouts.kulta.io/).
	// +optional
	CanaryMetadata *PodMetadata `json:"canaryMetadata,omitempty"`

	// stableMetadata are labels and annotations for the Pods of the stable revision (the
	// stable, the active, variant A), under the same rules as canaryMetadata.
	// +optional
	StableMetadata *PodMetadata `json:"stableMetadata,omitempty"`

	// paused, when true, holds a rollout in flight where it is: no step, scale or traffic change
	// until it is set back to false. It does not stop a first rollout or a return to stable.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// revisionHistoryLimit is how many old, scaled-down ReplicaSets are kept for rollback.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	RevisionHistoryLimit *int32 `json:"revisionHistoryLimit,omitempty"`
}

// LabelSelector is a metav1.LabelSelector with bounds, so that the API server can afford to
// check it against the template's labels. Its JSON is the same.
type LabelSelector struct {
	// matchLabels selects Pods whose labels have these values.
	// +optional
	// +kubebuilder:validation:MaxProperties=24
	MatchLabels map[string]string `json:"matchLabels,omitempty"`

	// matchExpressions are further requirements on Pod labels; all must hold.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	MatchExpressions []metav1.LabelSelectorRequirement `json:"matchExpressions,omitempty"`
}

// AsMeta returns the selector as the metav1 type that label tooling takes.
func (s *LabelSelector) AsMeta() *metav1.LabelSelector {
	if s == nil {
		return nil
	}
	return &metav1.LabelSelector{MatchLabels: s.MatchLabels, MatchExpressions: s.MatchExpressions}
}

// PodTemplate is a corev1.PodTemplateSpec whose metadata keeps only labels and annotations (the
// parts a ReplicaSet's Pods use), with bounds. Its JSON is the same.
type PodTemplate struct {
	// metadata holds the Pods' labels and annotations.
	// +optional
	Metadata PodTemplateMetadata `json:"metadata,omitempty"`

	// spec is the Pods' specification.
	// +optional
	Spec corev1.PodSpec `json:"spec,omitempty"`
}

// PodTemplateMetadata is the metadata given to a revision's Pods.
type PodTemplateMetadata struct {
	// labels are added to each Pod. They must include spec.selector.matchLabels.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Labels map[string]string `json:"labels,omitempty"`

	// annotations are added to each Pod.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// AsPodTemplateSpec returns the template as the core type a ReplicaSet takes.
func (t *PodTemplate) AsPodTemplateSpec() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: t.Metadata.Labels, Annotations: t.Metadata.Annotations},
		Spec:       t.Spec,
	}
}

// RolloutStrategy holds exactly one way of moving to a new revision.
//
// +kubebuilder:validation:XValidation:rule="[has(self.canary), has(self.blueGreen), has(self.abTesting), has(self.simple)].filter(x, x).size() == 1",message="spec.strategy must set exactly one of canary, blueGreen, abTesting or simple"
type RolloutStrategy struct {
	// canary shifts a growing share of traffic to the new revision in steps.
	// +optional
	Canary *CanaryStrategy `json:"canary,omitempty"`

	// blueGreen runs the new revision beside the old one behind a preview Service, then switches
	// all traffic at once.
	// +optional
	BlueGreen *BlueGreenStrategy `json:"blueGreen,omitempty"`

	// abTesting routes requests that match a header or cookie to variant B and keeps the rest on
	// variant A until statistics decide.
	// +optional
	ABTesting *ABTestingStrategy `json:"abTesting,omitempty"`

	// simple replaces Pods in a rolling update, with optional analysis afterwards.
	// +optional
	Simple *SimpleStrategy `json:"simple,omitempty"`
}

// Rollout replaces a Deployment: each new Pod template becomes a new ReplicaSet, and KULTA moves
// users onto it step by step, rolling back on its own when the new revision is worse.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=kro,categories={kulta,all}
// +kubebuilder:printcolumn:name="Strategy",type=string,JSONPath=`.status.strategy`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Step",type=integer,JSONPath=`.status.currentStepIndex`
// +kubebuilder:printcolumn:name="Weight",type=integer,JSONPath=`.status.currentWeight`
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.spec.replicas`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Rollout struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state.
	// +required
	Spec RolloutSpec `json:"spec"`

	// status is the state KULTA observed and acted on.
	// +optional
	Status RolloutStatus `json:"status,omitempty"`
}

// RolloutList is a list of Rollouts.
//
// +kubebuilder:object:root=true
type RolloutList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Rollout `json:"items"`
}

// PodMetadata are labels and annotations KULTA adds to the Pods of a revision in one role.
//
// +kubebuilder:validation:XValidation:rule="!has(self.labels) || self.labels.all(k, !k.startsWith('rollouts.kulta.io/'))",message="labels must not use KULTA's prefix rollouts.kulta.io/"
// +kubebuilder:validation:XValidation:rule="!has(self.annotations) || self.annotations.all(k, !k.startsWith('rollouts.kulta.io/'))",message="annotations must not use KULTA's prefix rollouts.kulta.io/"
type PodMetadata struct {
	// labels are added to the Pods.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	Labels map[string]string `json:"labels,omitempty"`

	// annotations are added to the Pods.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	Annotations map[string]string `json:"annotations,omitempty"`
}

// AntiAffinity is how strongly a new revision's Pods avoid the stable revision's nodes.
//
// +kubebuilder:validation:Enum=Preferred;Required
type AntiAffinity string

// Anti-affinity between revisions.
const (
	AntiAffinityPreferred AntiAffinity = "Preferred"
	AntiAffinityRequired  AntiAffinity = "Required"
)

// WorkloadRef names the Deployment, in the Rollout's namespace, that a Rollout adopts.
type WorkloadRef struct {
	// apiVersion of the workload: apps/v1.
	// +optional
	// +kubebuilder:default="apps/v1"
	// +kubebuilder:validation:Enum="apps/v1"
	APIVersion string `json:"apiVersion,omitempty"`

	// kind of the workload: Deployment.
	// +optional
	// +kubebuilder:default=Deployment
	// +kubebuilder:validation:Enum=Deployment
	Kind string `json:"kind,omitempty"`

	// name of the Deployment.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// scaleDown says what happens to the Deployment's own Pods: never (the default) leaves the
	// Deployment as it is; onsuccess scales it to zero once the Rollout's first revision has all
	// its Pods available and serves through the Rollout's Services; progressively scales it
	// down by one Pod for each of the first revision's Pods that turns available, so that the
	// service never runs below the Deployment's replica count, and back up if they stop being
	// available before the first revision is complete.
	// +optional
	// +kubebuilder:default=never
	ScaleDown WorkloadScaleDown `json:"scaleDown,omitempty"`
}

// WorkloadScaleDown is what happens to an adopted Deployment's own Pods.
//
// +kubebuilder:validation:Enum=never;onsuccess;progressively
type WorkloadScaleDown string

// Ways of scaling an adopted Deployment down.
const (
	ScaleDownNever         WorkloadScaleDown = "never"
	ScaleDownOnSuccess     WorkloadScaleDown = "onsuccess"
	ScaleDownProgressively WorkloadScaleDown = "progressively"
)

// AdoptedReplicasAnnotation, on an adopted Deployment, keeps the replica count it had before
// KULTA first scaled it down; deleting the Rollout scales the Deployment back to it.
const AdoptedReplicasAnnotation = "kulta.io/adopted-replicas"
