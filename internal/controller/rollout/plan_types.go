package rollout

import (
	"time"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/revision"
	"github.com/false-systems/kulta/providers"
)

// Revision is one observed ReplicaSet of a Rollout.
type Revision struct {
	// Hash is the pod-template hash the ReplicaSet carries.
	Hash string
	// Name is the ReplicaSet's name.
	Name string
	// Number orders revisions by creation (the revision annotation).
	Number int64
	// Replicas is spec.replicas; Pods, Ready and Available come from its status. Steps,
	// promotions and scale-downs count Available Pods (Ready for minReadySeconds).
	Replicas, Pods, Ready, Available int32
	// MinReadySeconds is the ReplicaSet's spec.minReadySeconds.
	MinReadySeconds int32
	// ScaleDownAt is when KULTA will scale it to zero, if set.
	ScaleDownAt *time.Time
	// PodMetadata is the role metadata its Pods carry (revision.PodMetadataAnnotation), "" when none.
	PodMetadata string
}

// Workload is the Deployment a Rollout adopts (spec.workloadRef), as observed.
type Workload struct {
	// Name is the Deployment's name.
	Name string
	// Replicas is its spec.replicas; Available its available Pods, no more than Replicas while
	// the Deployment controller has not seen the latest spec.
	Replicas, Available int32
	// Adopted is the replica count it had before KULTA first scaled it down
	// (kultav1alpha1.AdoptedReplicasAnnotation); nil while KULTA never has.
	Adopted *int32
}

// WorkloadScale is a new scale for the adopted Deployment.
type WorkloadScale struct {
	// Replicas is its new spec.replicas.
	Replicas int32
	// Adopted is recorded as kultav1alpha1.AdoptedReplicasAnnotation when the Deployment does
	// not carry it yet: the count deleting the Rollout scales it back to.
	Adopted int32
}

// Problem is a condition the user must fix before KULTA can act; the Rollout goes Stalled.
type Problem struct {
	// Reason is a CamelCase reason, such as ServiceNotFound.
	Reason string
	// Message names the object or field at fault.
	Message string
}

// Observation is everything the planner needs, gathered by the reconciler.
type Observation struct {
	// Rollout is the Rollout as read; its status is what the previous reconcile wrote.
	Rollout *kultav1alpha1.Rollout
	// Now is the reconcile's clock reading.
	Now time.Time
	// Hash names the revision of spec.template.
	Hash string
	// Revisions are the Rollout's ReplicaSets by hash.
	Revisions map[string]*Revision
	// Problem, when set, stops all action.
	Problem *Problem
	// Traffic is what the routes carry now; nil when the Rollout has no trafficRouting.
	Traffic *providers.Verification
	// Workload is the adopted Deployment; nil without spec.workloadRef.
	Workload *Workload
	// Answers are the answers of the gates earlier plans of this reconcile asked for
	// (Plan.Gate), by gate; a gate without an entry has not been asked in this reconcile.
	Answers map[Gate][]WebhookAnswer
	// Rollback, when set, is a rollback webhook's 2xx answer: the revision must be rolled back.
	Rollback *WebhookAnswer
}

// Gate is one stage at which webhooks of a type must say yes: a type, and the canary step it
// gates (-1 when it gates no step).
type Gate struct {
	Type kultav1alpha1.WebhookType
	Step int32
}

// WebhookAnswer is one webhook's answer, as the planner reads it.
type WebhookAnswer struct {
	// Name is the webhook's name.
	Name string
	// OK is a 2xx answer.
	OK bool
	// Message says what the answer was; it never holds the URL or a token.
	Message string
}

// GateRequest is a gate the plan waits on and whose webhooks were not asked yet in this
// reconcile: the reconciler calls them and plans again with their answers.
type GateRequest struct {
	Gate
	// Weights is the split in place; Next, for confirm-traffic-increase, the one the step asks.
	Weights providers.Weights
	Next    *providers.Weights
}

// Event is a Kubernetes Event the reconciler records.
type Event struct {
	Type, Reason, Message string
}

// Plan is the planner's answer: the desired next state and why.
type Plan struct {
	// Status is the complete new status.
	Status kultav1alpha1.RolloutStatus
	// Replicas is the desired spec.replicas by revision hash. A hash without a ReplicaSet is
	// created with NewRole; a ReplicaSet not listed is left as it is.
	Replicas map[string]int32
	// NewRole is the role of the ReplicaSet created for Observation.Hash.
	NewRole revision.Role
	// ScaleDownAt marks revisions to be scaled down at a later time; Status.ScaleDowns records
	// these marks with the earlier ones still pending.
	ScaleDownAt map[string]time.Time
	// Delete lists revisions whose ReplicaSets are removed (history beyond the limit).
	Delete []string
	// Services pins each named Service to a revision hash.
	Services map[string]string
	// Weights is the desired split on the routes; nil leaves the routes alone.
	Weights *providers.Weights
	// HeaderRoutes are the managed header rules the routes must carry.
	HeaderRoutes []providers.HeaderRoute
	// RemoveHeaderRoutes name managed header rules that must be gone.
	RemoveHeaderRoutes []string
	// Workload, when set, scales the adopted Deployment.
	Workload *WorkloadScale
	// Consume lists annotations to remove from the Rollout, since they were acted on.
	Consume []string
	// Events are recorded after acting.
	Events []Event
	// RequeueAfter asks for another reconcile after this long (0: only on change).
	RequeueAfter time.Duration
	// Gate, when set, is a gate this plan holds at without an answer: call its webhooks and
	// plan again.
	Gate *GateRequest
	// PostRollout, when set, is the outcome (Completed, Failed) the post-rollout webhooks are
	// told of after this plan is carried out; their answers are recorded in status.webhooks.
	PostRollout string
	// DueAt is when this plan's change became due by the clock (a timed pause or preview
	// ending, an experiment reaching its maximum duration); zero when it waited on something
	// observed instead. The step latency metric counts from it.
	DueAt time.Time
}

// requested reports whether the Rollout carries the action annotation key set to "true" and
// this plan has not acted on it yet: one annotation is one action, such as ending one pause.
func (p *planner) requested(key string) bool {
	return p.ro.Annotations[key] == "true" && !contains(p.out.Consume, key)
}
