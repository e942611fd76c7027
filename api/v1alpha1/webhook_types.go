package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// WebhookType says when KULTA calls a webhook and what its answer does.
//
// +kubebuilder:validation:Enum=confirm-rollout;pre-rollout;rollout;confirm-traffic-increase;confirm-promotion;post-rollout;rollback
type WebhookType string

// Webhook types, in the order a rollout meets them.
const (
	// WebhookConfirmRollout is asked before a new revision gets Pods or traffic; until it
	// answers 2xx the rollout holds on the stable revision.
	WebhookConfirmRollout WebhookType = "confirm-rollout"
	// WebhookPreRollout is called once before the first step; any other answer rolls back.
	WebhookPreRollout WebhookType = "pre-rollout"
	// WebhookRollout is called at every analysis interval (a load generator, a smoke test); a
	// failed call counts as a failing metric of the analysis.
	WebhookRollout WebhookType = "rollout"
	// WebhookConfirmTrafficIncrease is asked before each canary step that raises the weight.
	WebhookConfirmTrafficIncrease WebhookType = "confirm-traffic-increase"
	// WebhookConfirmPromotion is asked before the new revision becomes stable.
	WebhookConfirmPromotion WebhookType = "confirm-promotion"
	// WebhookPostRollout is told once a revision completes or is rolled back; its answer
	// changes nothing.
	WebhookPostRollout WebhookType = "post-rollout"
	// WebhookRollback is polled while a revision rolls out; a 2xx answer rolls it back.
	WebhookRollback WebhookType = "rollback"
)

// Webhook is an HTTP endpoint KULTA calls at one stage of a rollout: a gate that must say yes,
// a hook it drives, or a listener it tells. KULTA sends a POST with a JSON body naming the
// Rollout, its revisions, phase, step and weights, and this webhook's metadata; a 2xx answer
// is a yes.
//
// +kubebuilder:validation:XValidation:rule="has(self.url) != has(self.urlFrom)",message="set exactly one of url and urlFrom"
// +kubebuilder:validation:XValidation:rule="!has(self.failureThreshold) || self.type == 'rollout'",message="failureThreshold applies to rollout webhooks only"
// +kubebuilder:validation:XValidation:rule="!has(self.interval) || self.type == 'rollout'",message="interval applies to rollout webhooks only"
type Webhook struct {
	// name tells this webhook from the strategy's others in status, Events and metrics.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// type says when the webhook is called and what its answer does.
	// +required
	Type WebhookType `json:"type"`

	// url is the endpoint, http or https. Use urlFrom when the URL carries a secret.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''",message="must be an absolute http or https URL"
	URL string `json:"url,omitempty"`

	// urlFrom reads the endpoint from a key of a Secret in the Rollout's namespace. KULTA never
	// writes it to status, Events, logs or metrics.
	// +optional
	URLFrom *SecretKeyRef `json:"urlFrom,omitempty"`

	// tokenFrom reads a bearer token from a key of a Secret in the Rollout's namespace, sent as
	// the Authorization header.
	// +optional
	TokenFrom *SecretKeyRef `json:"tokenFrom,omitempty"`

	// timeout bounds one call, such as 10s; a call without an answer by then is a failure (a
	// gate holds, pre-rollout rolls back, rollout counts a failure). Default 10s; a longer timeout than 5m is cut to 5m.
	// +optional
	// +kubebuilder:default="10s"
	Timeout *Duration `json:"timeout,omitempty"`

	// interval is how often a rollout webhook is called, such as 30s: the analysis is checked at
	// the shortest interval of its metrics and its rollout webhooks (1m when none sets one), and
	// every rollout webhook is called with each check.
	// +optional
	Interval *Duration `json:"interval,omitempty"`

	// failureThreshold is how many failed calls in a row of a rollout webhook make the analysis
	// fail; fewer leave it inconclusive. Default 1.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	FailureThreshold *int32 `json:"failureThreshold,omitempty"`

	// metadata is sent as is in the call's body, for the receiver (a load test's command, a
	// ticket number).
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	Metadata map[string]string `json:"metadata,omitempty"`
}

// SecretKeyRef names one key of a Secret in the Rollout's namespace.
type SecretKeyRef struct {
	// name is the Secret's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// key is the key in the Secret's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// WebhookResult is what a webhook's last call said.
type WebhookResult string

// Webhook results.
const (
	// WebhookPassed: it answered 2xx.
	WebhookPassed WebhookResult = "Passed"
	// WebhookHeld: a gate that did not say yes (another status, or no answer); the rollout waits.
	WebhookHeld WebhookResult = "Held"
	// WebhookFailed: a call whose failure acted (a pre-rollout rollback, a rollout hook's
	// failing check) or a post-rollout call that was not delivered.
	WebhookFailed WebhookResult = "Failed"
)

// WebhookStatus is the latest answer of one of the strategy's webhooks for the current revision.
type WebhookStatus struct {
	// name is the webhook's name.
	// +required
	Name string `json:"name"`

	// type is the webhook's type.
	// +required
	Type WebhookType `json:"type"`

	// revision is the pod-template hash of the revision it answered for.
	// +required
	Revision string `json:"revision"`

	// stepIndex is the canary step it answered for, when it gates a step.
	// +optional
	StepIndex *int32 `json:"stepIndex,omitempty"`

	// outcome is what the rollout made of the answer, for a post-rollout webhook the outcome it
	// was told of: Completed or Failed.
	// +optional
	Outcome string `json:"outcome,omitempty"`

	// result is what the answer meant.
	// +required
	Result WebhookResult `json:"result"`

	// message is the answer: its status code and the start of its body, or why there was none.
	// It never holds the webhook's URL.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// since is when the webhook first gave this result for this revision and step.
	// +required
	Since metav1.Time `json:"since"`
}

// StrategyWebhooks are the webhooks of whichever strategy s sets.
func (s *RolloutStrategy) StrategyWebhooks() []Webhook {
	switch {
	case s.Canary != nil:
		return s.Canary.Webhooks
	case s.BlueGreen != nil:
		return s.BlueGreen.Webhooks
	case s.ABTesting != nil:
		return s.ABTesting.Webhooks
	case s.Simple != nil:
		return s.Simple.Webhooks
	}
	return nil
}

// SetStrategyWebhooks sets the webhooks of whichever strategy s sets.
func (s *RolloutStrategy) SetStrategyWebhooks(hooks []Webhook) {
	switch {
	case s.Canary != nil:
		s.Canary.Webhooks = hooks
	case s.BlueGreen != nil:
		s.BlueGreen.Webhooks = hooks
	case s.ABTesting != nil:
		s.ABTesting.Webhooks = hooks
	case s.Simple != nil:
		s.Simple.Webhooks = hooks
	}
}
