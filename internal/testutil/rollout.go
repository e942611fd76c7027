package testutil

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// RolloutOption changes a Rollout under construction.
type RolloutOption func(*kultav1alpha1.Rollout)

// Rollout returns a valid Rollout named name with app=name Pods running image nginx:1.27 and a
// two-step canary (setWeight 20, pause {}) between NAME-stable and NAME-canary, changed by opts.
func Rollout(namespace, name string, opts ...RolloutOption) *kultav1alpha1.Rollout {
	labels := map[string]string{"app": name}
	ro := &kultav1alpha1.Rollout{
		TypeMeta:   metav1.TypeMeta{APIVersion: kultav1alpha1.GroupVersion.String(), Kind: "Rollout"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: kultav1alpha1.RolloutSpec{
			Selector: &kultav1alpha1.LabelSelector{MatchLabels: labels},
			Template: kultav1alpha1.PodTemplate{
				Metadata: kultav1alpha1.PodTemplateMetadata{Labels: map[string]string{"app": name}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "app",
					Image: "nginx:1.27",
				}}},
			},
			Strategy: kultav1alpha1.RolloutStrategy{Canary: &kultav1alpha1.CanaryStrategy{
				StableService: name + "-stable",
				CanaryService: name + "-canary",
				Steps:         []kultav1alpha1.CanaryStep{Weight(20), PauseUntilPromoted()},
			}},
		},
	}
	for _, opt := range opts {
		opt(ro)
	}
	return ro
}

// WithReplicas sets spec.replicas.
func WithReplicas(n int32) RolloutOption {
	return func(ro *kultav1alpha1.Rollout) { ro.Spec.Replicas = ptr.To(n) }
}

// WithImage sets the image of the first container.
func WithImage(image string) RolloutOption {
	return func(ro *kultav1alpha1.Rollout) { ro.Spec.Template.Spec.Containers[0].Image = image }
}

// WithCanarySteps replaces the canary's steps.
func WithCanarySteps(steps ...kultav1alpha1.CanaryStep) RolloutOption {
	return func(ro *kultav1alpha1.Rollout) { ro.Spec.Strategy.Canary.Steps = steps }
}

// WithStrategy replaces the whole strategy.
func WithStrategy(s kultav1alpha1.RolloutStrategy) RolloutOption {
	return func(ro *kultav1alpha1.Rollout) { ro.Spec.Strategy = s }
}

// WithBlueGreen switches to a blue-green strategy between NAME-active and NAME-preview.
func WithBlueGreen(mutate ...func(*kultav1alpha1.BlueGreenStrategy)) RolloutOption {
	return func(ro *kultav1alpha1.Rollout) {
		bg := &kultav1alpha1.BlueGreenStrategy{
			ActiveService:  ro.Name + "-active",
			PreviewService: ro.Name + "-preview",
		}
		for _, m := range mutate {
			m(bg)
		}
		ro.Spec.Strategy = kultav1alpha1.RolloutStrategy{BlueGreen: bg}
	}
}

// WithABTesting switches to an A/B strategy between NAME-a and NAME-b, routing X-Variant: B to B.
func WithABTesting(mutate ...func(*kultav1alpha1.ABTestingStrategy)) RolloutOption {
	return func(ro *kultav1alpha1.Rollout) {
		ab := &kultav1alpha1.ABTestingStrategy{
			VariantAService: ro.Name + "-a",
			VariantBService: ro.Name + "-b",
			VariantBMatch: kultav1alpha1.ABMatch{Header: &kultav1alpha1.HeaderMatch{
				Name:  "X-Variant",
				Value: "B",
			}},
		}
		for _, m := range mutate {
			m(ab)
		}
		ro.Spec.Strategy = kultav1alpha1.RolloutStrategy{ABTesting: ab}
	}
}

// WithSimple switches to the simple strategy.
func WithSimple(analysis *kultav1alpha1.Analysis) RolloutOption {
	return func(ro *kultav1alpha1.Rollout) {
		ro.Spec.Strategy = kultav1alpha1.RolloutStrategy{Simple: &kultav1alpha1.SimpleStrategy{Analysis: analysis}}
	}
}

// WithCanary changes the canary strategy in place.
func WithCanary(mutate func(*kultav1alpha1.CanaryStrategy)) RolloutOption {
	return func(ro *kultav1alpha1.Rollout) { mutate(ro.Spec.Strategy.Canary) }
}

// WithHTTPRoute routes the strategy's traffic through the named HTTPRoute.
func WithHTTPRoute(name string) RolloutOption {
	return withTrafficRouting(&kultav1alpha1.TrafficRouting{GatewayAPI: &kultav1alpha1.GatewayAPIRouting{HTTPRoute: name}})
}

// WithNGINX routes the strategy's traffic through canary Ingresses of the named ingress-nginx
// Ingress.
func WithNGINX(stableIngress string) RolloutOption {
	return withTrafficRouting(&kultav1alpha1.TrafficRouting{NGINX: &kultav1alpha1.NGINXRouting{StableIngress: stableIngress}})
}

// withTrafficRouting sets tr as the traffic routing of the strategy, whichever it is.
func withTrafficRouting(tr *kultav1alpha1.TrafficRouting) RolloutOption {
	return func(ro *kultav1alpha1.Rollout) {
		switch s := ro.Spec.Strategy; {
		case s.Canary != nil:
			s.Canary.TrafficRouting = tr
		case s.BlueGreen != nil:
			s.BlueGreen.TrafficRouting = tr
		case s.ABTesting != nil:
			s.ABTesting.TrafficRouting = tr
		}
	}
}

// Weight is a canary step that sets the weight.
func Weight(w int32) kultav1alpha1.CanaryStep {
	return kultav1alpha1.CanaryStep{SetWeight: ptr.To(w)}
}

// PauseUntilPromoted is a canary step `pause: {}`.
func PauseUntilPromoted() kultav1alpha1.CanaryStep {
	return kultav1alpha1.CanaryStep{Pause: &kultav1alpha1.RolloutPause{}}
}

// ScaleCanaryTo is a canary step `setCanaryScale: {replicas: n}`.
func ScaleCanaryTo(n int32) kultav1alpha1.CanaryStep {
	return kultav1alpha1.CanaryStep{SetCanaryScale: &kultav1alpha1.CanaryScale{Replicas: ptr.To(n)}}
}

// ScaleCanaryPercent is a canary step `setCanaryScale: {weight: percent}`.
func ScaleCanaryPercent(percent int32) kultav1alpha1.CanaryStep {
	return kultav1alpha1.CanaryStep{SetCanaryScale: &kultav1alpha1.CanaryScale{Weight: ptr.To(percent)}}
}

// ScaleCanaryWithWeight is a canary step `setCanaryScale: {matchTrafficWeight: true}`.
func ScaleCanaryWithWeight() kultav1alpha1.CanaryStep {
	return kultav1alpha1.CanaryStep{SetCanaryScale: &kultav1alpha1.CanaryScale{MatchTrafficWeight: ptr.To(true)}}
}

// AnalyzeStep is a canary step that runs these metrics once at that point and holds until
// they decide (`analysis: {metrics: [...]}`), rolling back on a failing verdict.
func AnalyzeStep(metrics ...kultav1alpha1.Metric) kultav1alpha1.CanaryStep {
	return kultav1alpha1.CanaryStep{Analysis: &kultav1alpha1.Analysis{FailurePolicy: kultav1alpha1.FailurePolicyRollback, Metrics: metrics}}
}

// HeaderRouteStep is a setHeaderRoute step: matching requests reach the canary from this step on
// under the name; without match it removes the header route of that name.
func HeaderRouteStep(name string, match ...kultav1alpha1.HeaderRouteMatch) kultav1alpha1.CanaryStep {
	return kultav1alpha1.CanaryStep{SetHeaderRoute: &kultav1alpha1.SetHeaderRoute{Name: name, Match: match}}
}

// MirrorRouteStep is a setMirrorRoute step named name copying percent of the requests that meet
// every match to the canary; percent 0 leaves the percentage unset (100, or removal without a
// match).
func MirrorRouteStep(name string, percent int32, match ...kultav1alpha1.HeaderRouteMatch) kultav1alpha1.CanaryStep {
	m := &kultav1alpha1.SetMirrorRoute{Name: name, Match: match}
	if percent > 0 {
		m.Percentage = ptr.To(percent)
	}
	return kultav1alpha1.CanaryStep{SetMirrorRoute: m}
}

// HeaderExact matches header name with exactly value.
func HeaderExact(name, value string) kultav1alpha1.HeaderRouteMatch {
	return kultav1alpha1.HeaderRouteMatch{HeaderName: name, HeaderValue: &kultav1alpha1.StringMatch{Exact: &value}}
}

// PauseFor is a canary step `pause: {duration: d}`.
func PauseFor(d string) kultav1alpha1.CanaryStep {
	return kultav1alpha1.CanaryStep{Pause: &kultav1alpha1.RolloutPause{Duration: ptr.To(kultav1alpha1.Duration(d))}}
}

// WithWebhooks sets the webhooks of the Rollout's strategy, whichever it is.
func WithWebhooks(hooks ...kultav1alpha1.Webhook) RolloutOption {
	return func(ro *kultav1alpha1.Rollout) { ro.Spec.Strategy.SetStrategyWebhooks(hooks) }
}

// Hook is a webhook of type kind named name calling url.
func Hook(name string, kind kultav1alpha1.WebhookType, url string) kultav1alpha1.Webhook {
	return kultav1alpha1.Webhook{Name: name, Type: kind, URL: url}
}
