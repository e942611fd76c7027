package v1alpha1

// CanaryStrategy shifts traffic to the new revision in weighted steps, with pauses between them.
//
// +kubebuilder:validation:XValidation:rule="self.canaryService != self.stableService",message="spec.strategy.canary.canaryService and stableService must name different Services"
// +kubebuilder:validation:XValidation:rule="self.steps.filter(s, has(s.setWeight)).map(s, s.setWeight).isSorted()",message="spec.strategy.canary.steps: setWeight must not decrease from one step to the next"
// +kubebuilder:validation:XValidation:rule="has(self.trafficRouting) || !self.steps.exists(s, has(s.setCanaryScale))",message="spec.strategy.canary.steps[].setCanaryScale needs trafficRouting: without routes the canary's share of traffic is its share of the Pods"
// +kubebuilder:validation:XValidation:rule="has(self.trafficRouting) || !self.steps.exists(s, has(s.setHeaderRoute))",message="spec.strategy.canary.steps[].setHeaderRoute needs trafficRouting: requests are routed by header only through routes"
// +kubebuilder:validation:XValidation:rule="has(self.trafficRouting) || !self.steps.exists(s, has(s.setMirrorRoute))",message="spec.strategy.canary.steps[].setMirrorRoute needs trafficRouting: requests are mirrored only by routes"
// +kubebuilder:validation:XValidation:rule="!has(self.trafficRouting) || !has(self.trafficRouting.nginx) || !self.steps.exists(s, has(s.setMirrorRoute))",message="spec.strategy.canary.steps[].setMirrorRoute needs Gateway API or Istio routes: ingress-nginx cannot copy a share of requests to the canary"
type CanaryStrategy struct {
	// canaryService is the Service that KULTA points at the new revision's Pods.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	CanaryService string `json:"canaryService"`

	// stableService is the Service that KULTA points at the stable revision's Pods.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	StableService string `json:"stableService"`

	// port is the Service port that the routes send traffic to.
	// +optional
	// +kubebuilder:default=80
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port *int32 `json:"port,omitempty"`

	// steps are taken in order; after the last one the new revision becomes stable.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Steps []CanaryStep `json:"steps"`

	// trafficRouting names the routes whose weights KULTA moves. Without it, the share of traffic
	// is approximated by the share of replicas.
	// +optional
	TrafficRouting *TrafficRouting `json:"trafficRouting,omitempty"`

	// scaleDownDelaySeconds is how long a revision that stops serving (the previous stable after a
	// promotion, a rolled-back or a superseded new revision) keeps its Pods once traffic has left
	// it, so that connections in flight can finish. Unset: 30 with trafficRouting, 0 without.
	// Pods are never removed before the stable revision is fully available.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=86400
	ScaleDownDelaySeconds *int32 `json:"scaleDownDelaySeconds,omitempty"`

	// analysis checks the canary's metrics at each step and acts on a failing verdict.
	// +optional
	Analysis *Analysis `json:"analysis,omitempty"`

	// webhooks are called at the stages their types name: gates that must answer 2xx before the
	// rollout goes on, hooks it drives, listeners it tells.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Webhooks []Webhook `json:"webhooks,omitempty"`
}

// SetHeaderRoute names a header route of a canary and what it matches.
type SetHeaderRoute struct {
	// name tells this header route from the canary's others; a later step with the same name
	// changes or removes it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="!self.matches('-[0-9]+$')",message="setHeaderRoute.name must not end in a dash and digits: KULTA numbers the rules of a header route that way"
	Name string `json:"name"`

	// match lists the conditions a request must all meet to reach the canary. Empty: the header
	// route is removed.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:XValidation:rule="self.filter(m, has(m.cookie)).size() <= 1",message="setHeaderRoute.match may hold one cookie condition"
	Match []HeaderRouteMatch `json:"match,omitempty"`
}

// HeaderRouteMatch is one condition of a header route: a header and how its value matches, or
// a cookie.
//
// +kubebuilder:validation:XValidation:rule="has(self.headerName) != has(self.cookie)",message="each match entry sets exactly one of headerName and cookie"
// +kubebuilder:validation:XValidation:rule="has(self.headerName) == has(self.headerValue)",message="match[].headerName needs headerValue"
// +kubebuilder:validation:XValidation:rule="!has(self.headerName) || self.headerName.lowerAscii() != 'cookie'",message="match[].headerName must not be Cookie: match a cookie with cookie"
type HeaderRouteMatch struct {
	// headerName is the request header to match, such as X-Canary.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_|~]+$`
	HeaderName string `json:"headerName,omitempty"`

	// headerValue says how the header's value must match.
	// +optional
	HeaderValue *StringMatch `json:"headerValue,omitempty"`

	// cookie matches one cookie by exact value.
	// +optional
	Cookie *CookieMatch `json:"cookie,omitempty"`
}

// StringMatch matches a string: exactly, by its prefix, or by a regular expression (RE2 syntax).
//
// +kubebuilder:validation:XValidation:rule="[has(self.exact), has(self.prefix), has(self.regex)].filter(x, x).size() == 1",message="headerValue must set exactly one of exact, prefix and regex"
type StringMatch struct {
	// exact is the whole value.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Exact *string `json:"exact,omitempty"`

	// prefix is how the value starts.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Prefix *string `json:"prefix,omitempty"`

	// regex is a regular expression the whole value matches.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Regex *string `json:"regex,omitempty"`
}

// CanaryStep is one step of a canary: set a weight, pause, or both (the weight first); or set
// the canary's scale; or run an analysis.
//
// +kubebuilder:validation:XValidation:rule="has(self.setWeight) || has(self.pause) || has(self.setCanaryScale) || has(self.analysis) || has(self.setHeaderRoute) || has(self.setMirrorRoute)",message="each canary step must set setWeight, pause (or both), setCanaryScale, analysis, setHeaderRoute or setMirrorRoute"
// +kubebuilder:validation:XValidation:rule="!has(self.setHeaderRoute) || (!has(self.setWeight) && !has(self.pause) && !has(self.setCanaryScale) && !has(self.analysis) && !has(self.setMirrorRoute))",message="a canary step with setHeaderRoute must not also set setWeight, pause, setCanaryScale, analysis or setMirrorRoute"
// +kubebuilder:validation:XValidation:rule="!has(self.setMirrorRoute) || (!has(self.setWeight) && !has(self.pause) && !has(self.setCanaryScale) && !has(self.analysis))",message="a canary step with setMirrorRoute must not also set setWeight, pause, setCanaryScale or analysis"
// +kubebuilder:validation:XValidation:rule="!has(self.setCanaryScale) || (!has(self.setWeight) && !has(self.pause))",message="a canary step with setCanaryScale must not also set setWeight or pause"
// +kubebuilder:validation:XValidation:rule="!has(self.analysis) || (!has(self.setWeight) && !has(self.pause) && !has(self.setCanaryScale))",message="a canary step with analysis must not also set setWeight, pause or setCanaryScale"
// +kubebuilder:validation:XValidation:rule="!has(self.analysis) || (has(self.analysis.metrics) && size(self.analysis.metrics) > 0)",message="a canary step's analysis must list at least one metric"
type CanaryStep struct {
	// setWeight is the percentage of traffic sent to the canary from this step on.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	SetWeight *int32 `json:"setWeight,omitempty"`

	// pause holds the rollout at this step: for pause.duration, or until the Rollout is annotated
	// kulta.io/promote=true when no duration is given (`pause: {}`).
	// +optional
	Pause *RolloutPause `json:"pause,omitempty"`

	// setCanaryScale sets how many Pods the canary runs from this step on, apart from its share
	// of the traffic, until a later setCanaryScale changes it; the step is done when the canary
	// has those Pods available. Needs trafficRouting.
	// +optional
	SetCanaryScale *CanaryScale `json:"setCanaryScale,omitempty"`

	// analysis runs these metrics against the canary at this point, at the weight the steps
	// before set, and holds the step until they decide: a passing verdict ends the step, a
	// failing one acts as its failurePolicy says (Pause, the default, Rollback or Continue), and
	// one that never decides ends at progressDeadlineSeconds as failurePolicy says. While the
	// step runs, its metrics are judged instead of spec.strategy.canary.analysis. Alone in its
	// step.
	// +optional
	Analysis *Analysis `json:"analysis,omitempty"`

	// setHeaderRoute sends the requests that match, on every route the Rollout names, to the
	// canary from this step on, whatever the weight: testers reach the canary by a header or a
	// cookie before users do. With match, the route named name is added (or changed); without,
	// it is removed. Every header route is removed when the rollout completes, is rolled back or
	// aborted, or the Rollout is deleted. Alone in its step; needs trafficRouting.
	// +optional
	SetHeaderRoute *SetHeaderRoute `json:"setHeaderRoute,omitempty"`

	// setMirrorRoute copies a percentage of the requests that match, on every route the Rollout
	// names, to the canary from this step on: they are still answered where the weights send
	// them, and the canary's answers to the copies are dropped, so analysis can judge the canary
	// on real requests before it answers anyone. With percentage or match, the route named name
	// is added (or changed); with the name alone, it is removed. Header and mirror routes share
	// their names: a later step of either kind with the same name replaces the route. Every mirror
	// route is removed when the rollout completes, is rolled back or aborted, or the Rollout is
	// deleted. A request that a header route sends to the canary is not mirrored. Alone in its
	// step; needs trafficRouting (Gateway API or Istio).
	// +optional
	SetMirrorRoute *SetMirrorRoute `json:"setMirrorRoute,omitempty"`
}

// SetMirrorRoute names a mirror route of a canary, what it matches and how much of it is copied.
type SetMirrorRoute struct {
	// name tells this route from the canary's other header and mirror routes; a later step with
	// the same name changes or removes it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="!self.matches('-[0-9]+$')",message="setMirrorRoute.name must not end in a dash and digits: KULTA numbers the rules of a route that way"
	Name string `json:"name"`

	// percentage is the share of the matching requests copied to the canary; 100 when only match
	// is given.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Percentage *int32 `json:"percentage,omitempty"`

	// match lists the conditions a request must all meet to be copied. Without match, every
	// request the Rollout's rules take may be.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:XValidation:rule="self.filter(m, has(m.cookie)).size() <= 1",message="setMirrorRoute.match may hold one cookie condition"
	Match []HeaderRouteMatch `json:"match,omitempty"`
}

// Sets reports whether the step adds or changes its mirror route; false: it removes it.
func (m *SetMirrorRoute) Sets() bool {
	return m.Percentage != nil || len(m.Match) > 0
}

// PercentageOrDefault is the share of matching requests the route copies: percentage, or 100.
func (m *SetMirrorRoute) PercentageOrDefault() int32 {
	if m.Percentage != nil {
		return *m.Percentage
	}
	return 100
}

// CanaryScale is the canary's size: a count, a percentage of spec.replicas, or the share of
// spec.replicas its traffic weight gives it (what the canary runs without setCanaryScale).
//
// +kubebuilder:validation:XValidation:rule="(has(self.replicas) ? 1 : 0) + (has(self.weight) ? 1 : 0) + (has(self.matchTrafficWeight) && self.matchTrafficWeight ? 1 : 0) == 1",message="setCanaryScale must set exactly one of replicas, weight and matchTrafficWeight: true"
type CanaryScale struct {
	// replicas is the canary's number of Pods.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Replicas *int32 `json:"replicas,omitempty"`

	// weight is the canary's number of Pods as a percentage of spec.replicas, rounded up.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Weight *int32 `json:"weight,omitempty"`

	// matchTrafficWeight: true gives the canary Pods in proportion to its traffic weight again.
	// +optional
	MatchTrafficWeight *bool `json:"matchTrafficWeight,omitempty"`
}

// RolloutPause is a pause in a canary, timed or waiting for a person.
type RolloutPause struct {
	// duration is how long to wait, such as 30s, 5m, 2h or 1d. Without it the pause lasts until
	// the Rollout is promoted.
	// +optional
	Duration *Duration `json:"duration,omitempty"`
}

// BlueGreenStrategy runs the new revision at full scale behind previewService, then points
// activeService at it in one switch.
//
// +kubebuilder:validation:XValidation:rule="self.activeService != self.previewService",message="spec.strategy.blueGreen.activeService and previewService must name different Services"
// +kubebuilder:validation:XValidation:rule="!has(self.autoPromotionSeconds) || (has(self.autoPromotionEnabled) && self.autoPromotionEnabled)",message="spec.strategy.blueGreen.autoPromotionSeconds requires autoPromotionEnabled: true"
// +kubebuilder:validation:XValidation:rule="!has(self.webhooks) || self.webhooks.all(w, w.type != 'confirm-traffic-increase')",message="spec.strategy.blueGreen.webhooks: confirm-traffic-increase gates canary weight steps; blue-green cuts over at once, gated by confirm-promotion"
type BlueGreenStrategy struct {
	// activeService is the Service that receives production traffic.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	ActiveService string `json:"activeService"`

	// previewService is the Service that reaches the new revision before promotion.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	PreviewService string `json:"previewService"`

	// port is the Service port that the routes send traffic to.
	// +optional
	// +kubebuilder:default=80
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port *int32 `json:"port,omitempty"`

	// autoPromotionEnabled promotes the preview on its own, after autoPromotionSeconds (or as soon
	// as it is ready and its analysis passed). Without it, promotion waits for kulta.io/promote.
	// +optional
	AutoPromotionEnabled *bool `json:"autoPromotionEnabled,omitempty"`

	// autoPromotionSeconds is how long the preview must be ready before it is promoted on its own.
	// +optional
	// +kubebuilder:validation:Minimum=0
	AutoPromotionSeconds *int32 `json:"autoPromotionSeconds,omitempty"`

	// scaleDownDelaySeconds is how long the previous revision keeps running after the switch (and
	// a rolled-back or superseded preview after traffic left it), so that connections in flight
	// can finish and a quick rollback stays instant. Pods are never removed before the stable
	// revision is fully available.
	// +optional
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=0
	ScaleDownDelaySeconds *int32 `json:"scaleDownDelaySeconds,omitempty"`

	// trafficRouting names the routes whose weights KULTA switches from active to preview.
	// +optional
	TrafficRouting *TrafficRouting `json:"trafficRouting,omitempty"`

	// analysis checks the preview's metrics before promotion.
	// +optional
	Analysis *Analysis `json:"analysis,omitempty"`

	// webhooks are called at the stages their types name: gates that must answer 2xx before the
	// rollout goes on, hooks it drives, listeners it tells. confirm-traffic-increase has no place here: the cutover is the promotion.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Webhooks []Webhook `json:"webhooks,omitempty"`
}

// ABTestingStrategy sends requests that match variantBMatch to variant B and all others to
// variant A, until the experiment concludes.
//
// +kubebuilder:validation:XValidation:rule="self.variantAService != self.variantBService",message="spec.strategy.abTesting.variantAService and variantBService must name different Services"
// +kubebuilder:validation:XValidation:rule="!has(self.webhooks) || self.webhooks.all(w, w.type != 'confirm-traffic-increase' && w.type != 'rollout')",message="spec.strategy.abTesting.webhooks: confirm-traffic-increase and rollout webhooks need canary steps or threshold analysis; an A/B test is gated by confirm-rollout, pre-rollout and confirm-promotion"
type ABTestingStrategy struct {
	// variantAService is the Service of the control group (the current revision).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	VariantAService string `json:"variantAService"`

	// variantBService is the Service of the experiment group (the new revision).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	VariantBService string `json:"variantBService"`

	// port is the Service port that the routes send traffic to.
	// +optional
	// +kubebuilder:default=80
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port *int32 `json:"port,omitempty"`

	// maxDuration ends the experiment after this long, such as 24h or 7d, whatever the statistics say.
	// +optional
	MaxDuration *Duration `json:"maxDuration,omitempty"`

	// variantBMatch says which requests go to variant B.
	// +required
	VariantBMatch ABMatch `json:"variantBMatch"`

	// trafficRouting names the routes that get the variant B rule.
	// +optional
	TrafficRouting *TrafficRouting `json:"trafficRouting,omitempty"`

	// scaleDownDelaySeconds is how long a revision that stops serving (the previous stable after a
	// promotion, a rolled-back or a superseded new revision) keeps its Pods once traffic has left
	// it, so that connections in flight can finish. Unset: 30 with trafficRouting, 0 without.
	// Pods are never removed before the stable revision is fully available.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=86400
	ScaleDownDelaySeconds *int32 `json:"scaleDownDelaySeconds,omitempty"`

	// analysis compares the two variants' metrics.
	// +optional
	Analysis *ABAnalysis `json:"analysis,omitempty"`

	// webhooks are called at the stages their types name: gates that must answer 2xx before the
	// rollout goes on, hooks it drives, listeners it tells. The experiment is judged by its statistics, so rollout webhooks and confirm-traffic-increase have no place here.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Webhooks []Webhook `json:"webhooks,omitempty"`
}

// ABMatch picks the requests for variant B by a header, a cookie, or either of the two.
//
// +kubebuilder:validation:XValidation:rule="has(self.header) || has(self.cookie)",message="spec.strategy.abTesting.variantBMatch must set header or cookie"
type ABMatch struct {
	// header matches a request header.
	// +optional
	Header *HeaderMatch `json:"header,omitempty"`

	// cookie matches a cookie in the Cookie header.
	// +optional
	Cookie *CookieMatch `json:"cookie,omitempty"`
}

// MatchType says how a header value is compared.
//
// +kubebuilder:validation:Enum=Exact;RegularExpression
type MatchType string

// Header match types, as in Gateway API.
const (
	MatchExact             MatchType = "Exact"
	MatchRegularExpression MatchType = "RegularExpression"
)

// HeaderMatch matches one request header.
type HeaderMatch struct {
	// name is the header name, such as X-Variant.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_|~]+$`
	Name string `json:"name"`

	// value is the value to match.
	// +required
	// +kubebuilder:validation:MaxLength=4096
	Value string `json:"value"`

	// type is Exact (the default) or RegularExpression.
	// +optional
	// +kubebuilder:default=Exact
	Type MatchType `json:"type,omitempty"`
}

// CookieMatch matches one cookie by exact value.
type CookieMatch struct {
	// name is the cookie name, such as ab_variant.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_|~]+$`
	Name string `json:"name"`

	// value is the cookie value to match.
	// +required
	// +kubebuilder:validation:MaxLength=4096
	Value string `json:"value"`
}

// SimpleStrategy is a rolling update bounded by spec.maxSurge and spec.maxUnavailable.
//
// +kubebuilder:validation:XValidation:rule="!has(self.analysis) || !has(self.analysis.metrics) || self.analysis.metrics.all(m, !has(m.compareToStable) || !m.compareToStable)",message="spec.strategy.simple.analysis.metrics[].compareToStable needs a stable Service to compare with, and the simple strategy has none"
// +kubebuilder:validation:XValidation:rule="!has(self.webhooks) || self.webhooks.all(w, w.type != 'confirm-traffic-increase')",message="spec.strategy.simple.webhooks: confirm-traffic-increase gates canary weight steps; a rolling update has none"
type SimpleStrategy struct {
	// scaleDownDelaySeconds is how long a revision that stops serving (a rolled-back or a
	// superseded new revision) keeps its Pods, so that connections in flight can finish. Default
	// 0. Pods are never removed before the stable revision is fully available.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=86400
	ScaleDownDelaySeconds *int32 `json:"scaleDownDelaySeconds,omitempty"`

	// analysis checks the new revision's metrics after the update and rolls back on failure.
	// +optional
	Analysis *Analysis `json:"analysis,omitempty"`

	// webhooks are called at the stages their types name: gates that must answer 2xx before the
	// rollout goes on, hooks it drives, listeners it tells. confirm-traffic-increase has no place here: a rolling update has no weights.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Webhooks []Webhook `json:"webhooks,omitempty"`
}

// TrafficRouting names the objects whose weights and rules KULTA manages: Gateway API routes,
// Istio VirtualServices, NGINX Ingresses, or several of them at once (say a Gateway for
// north-south traffic and Istio for the mesh). Each step is applied to every provider named
// here and counts as done only once all of them carry it.
//
// +kubebuilder:validation:XValidation:rule="has(self.gatewayAPI) || has(self.istio) || has(self.nginx)",message="trafficRouting must set at least one of gatewayAPI, istio or nginx"
type TrafficRouting struct {
	// gatewayAPI routes traffic with Gateway API routes the user owns.
	// +optional
	GatewayAPI *GatewayAPIRouting `json:"gatewayAPI,omitempty"`

	// istio routes traffic with the user's Istio VirtualServices (and a DestinationRule for
	// subset-level splits). Field names follow Argo Rollouts' istio block.
	// +optional
	Istio *IstioRouting `json:"istio,omitempty"`

	// nginx routes traffic with a canary Ingress KULTA derives from the user's stable Ingress
	// and owns, for ingress-nginx. Field names follow Argo Rollouts' nginx block.
	// +optional
	NGINX *NGINXRouting `json:"nginx,omitempty"`
}

// IstioRouting names the VirtualServices whose routes KULTA splits between the stable and the
// canary, by host (the strategy's two Services) or, with destinationRule, by subset.
//
// +kubebuilder:validation:XValidation:rule="has(self.virtualService) != (has(self.virtualServices) && size(self.virtualServices) > 0)",message="istio must set exactly one of virtualService and virtualServices"
type IstioRouting struct {
	// virtualService is the one VirtualService to manage.
	// +optional
	VirtualService *IstioVirtualService `json:"virtualService,omitempty"`

	// virtualServices are several VirtualServices to manage alike.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	VirtualServices []IstioVirtualService `json:"virtualServices,omitempty"`

	// destinationRule switches to subset-level splits: the routes' destinations name the
	// stable and canary subsets of one host, whose labels KULTA points at the two revisions.
	// +optional
	DestinationRule *IstioDestinationRule `json:"destinationRule,omitempty"`
}

// IstioVirtualService is one VirtualService in the Rollout's namespace and the routes of it that
// KULTA manages.
type IstioVirtualService struct {
	// name is the VirtualService's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// routes are the names of the HTTP routes whose weights KULTA sets. May be left out when the
	// VirtualService has exactly one HTTP route (and neither tlsRoutes nor tcpRoutes is set).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=253
	Routes []string `json:"routes,omitempty"`

	// tlsRoutes are TLS routes to split, found by port and SNI hosts.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	TLSRoutes []IstioTLSRoute `json:"tlsRoutes,omitempty"`

	// tcpRoutes are TCP routes to split, found by port.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	TCPRoutes []IstioTCPRoute `json:"tcpRoutes,omitempty"`
}

// IstioTLSRoute picks the TLS routes whose match has this port and these SNI hosts.
type IstioTLSRoute struct {
	// port is the match's port; 0 matches any.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	Port int64 `json:"port,omitempty"`

	// sniHosts must all appear in the match's sniHosts.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=253
	SNIHosts []string `json:"sniHosts,omitempty"`
}

// IstioTCPRoute picks the TCP routes whose match has this port.
type IstioTCPRoute struct {
	// port is the match's port; 0 matches any.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	Port int64 `json:"port,omitempty"`
}

// IstioDestinationRule names the DestinationRule whose two subsets KULTA labels with the stable
// and canary revisions' pod-template hashes.
//
// +kubebuilder:validation:XValidation:rule="self.canarySubsetName != self.stableSubsetName",message="istio.destinationRule: canarySubsetName and stableSubsetName must differ"
type IstioDestinationRule struct {
	// name is the DestinationRule's name, in the Rollout's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// canarySubsetName is the subset that selects the new revision.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	CanarySubsetName string `json:"canarySubsetName"`

	// stableSubsetName is the subset that selects the stable revision.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	StableSubsetName string `json:"stableSubsetName"`
}

// NGINXRouting names the user's stable Ingresses. For each, KULTA creates and owns a canary
// Ingress with the same hosts and paths pointing at the canary Service, and moves traffic with
// ingress-nginx's canary annotations; the user's Ingress is never written.
//
// +kubebuilder:validation:XValidation:rule="has(self.stableIngress) != (has(self.stableIngresses) && size(self.stableIngresses) > 0)",message="nginx must set exactly one of stableIngress and stableIngresses"
type NGINXRouting struct {
	// stableIngress is the Ingress, in the Rollout's namespace, that sends traffic to the stable
	// Service.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	StableIngress string `json:"stableIngress,omitempty"`

	// stableIngresses are several such Ingresses.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=253
	StableIngresses []string `json:"stableIngresses,omitempty"`

	// annotationPrefix is the prefix of ingress-nginx's annotations, as set by its
	// --annotations-prefix flag.
	// +optional
	// +kubebuilder:default="nginx.ingress.kubernetes.io"
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/[-a-zA-Z0-9_.]*)?$`
	AnnotationPrefix string `json:"annotationPrefix,omitempty"`

	// additionalIngressAnnotations are further canary annotations (without the prefix, such as
	// canary-by-header) written on the canary Ingress.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	AdditionalIngressAnnotations map[string]string `json:"additionalIngressAnnotations,omitempty"`

	// canaryIngressAnnotations are copied as they are onto the canary Ingress.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	CanaryIngressAnnotations map[string]string `json:"canaryIngressAnnotations,omitempty"`
}

// TrafficRouting returns the trafficRouting of whichever strategy is set, or nil.
func (s *RolloutStrategy) TrafficRouting() *TrafficRouting {
	switch {
	case s.Canary != nil:
		return s.Canary.TrafficRouting
	case s.BlueGreen != nil:
		return s.BlueGreen.TrafficRouting
	case s.ABTesting != nil:
		return s.ABTesting.TrafficRouting
	}
	return nil
}

// StrategyServices are a strategy's two Services and the port routes send them traffic on. It
// is not part of the API's objects.
//
// +kubebuilder:object:generate=false
type StrategyServices struct {
	// Stable is the stable-side Service (stableService, activeService, variantAService);
	// Canary the new-side one (canaryService, previewService, variantBService).
	Stable, Canary string
	// Port is the strategy's port, 80 when unset (as the CRD defaults it).
	Port int32
	// Field is the strategy's field path, such as spec.strategy.canary, for messages.
	Field string
}

// Services returns the two Services of whichever strategy is set; the simple strategy has none.
func (s *RolloutStrategy) Services() StrategyServices {
	var out StrategyServices
	var port *int32
	switch {
	case s.Canary != nil:
		out = StrategyServices{Stable: s.Canary.StableService, Canary: s.Canary.CanaryService, Field: "spec.strategy.canary"}
		port = s.Canary.Port
	case s.BlueGreen != nil:
		out = StrategyServices{Stable: s.BlueGreen.ActiveService, Canary: s.BlueGreen.PreviewService, Field: "spec.strategy.blueGreen"}
		port = s.BlueGreen.Port
	case s.ABTesting != nil:
		out = StrategyServices{Stable: s.ABTesting.VariantAService, Canary: s.ABTesting.VariantBService, Field: "spec.strategy.abTesting"}
		port = s.ABTesting.Port
	default:
		return StrategyServices{Field: "spec.strategy.simple"}
	}
	out.Port = 80
	if port != nil {
		out.Port = *port
	}
	return out
}

// Providers lists the providers the routing names, by their field names.
func (t *TrafficRouting) Providers() []string {
	if t == nil {
		return nil
	}
	var names []string
	if t.GatewayAPI != nil {
		names = append(names, "gatewayAPI")
	}
	if t.Istio != nil {
		names = append(names, "istio")
	}
	if t.NGINX != nil {
		names = append(names, "nginx")
	}
	return names
}

// Ingresses lists the stable Ingresses the routing names.
func (n *NGINXRouting) Ingresses() []string {
	if n == nil {
		return nil
	}
	if n.StableIngress != "" {
		return []string{n.StableIngress}
	}
	return n.StableIngresses
}

// Services lists the VirtualServices the routing names.
func (i *IstioRouting) Services() []IstioVirtualService {
	if i == nil {
		return nil
	}
	if i.VirtualService != nil {
		return []IstioVirtualService{*i.VirtualService}
	}
	return i.VirtualServices
}

// GatewayAPIRouting names the user's Gateway API routes. In each, KULTA changes only the weights
// of the backendRefs that name the strategy's two Services (in the rules that reference both), and
// the rules it adds and names itself; every other rule, match, filter and backend stays as it is.
//
// +kubebuilder:validation:XValidation:rule="has(self.httpRoute) || has(self.grpcRoute) || (has(self.routes) && size(self.routes) > 0)",message="gatewayAPI must name at least one route: httpRoute, grpcRoute or routes"
type GatewayAPIRouting struct {
	// httpRoute is the name of an HTTPRoute in the Rollout's namespace.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	HTTPRoute string `json:"httpRoute,omitempty"`

	// grpcRoute is the name of a GRPCRoute in the Rollout's namespace.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	GRPCRoute string `json:"grpcRoute,omitempty"`

	// rules limits httpRoute and grpcRoute to the rules with these names. By default every rule
	// that references both Services is managed.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=253
	Rules []string `json:"rules,omitempty"`

	// routes are further routes, of either kind, in this or another namespace. A route in another
	// namespace is used only when a ReferenceGrant in that namespace allows Rollouts from this one
	// to refer to it.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	Routes []RouteReference `json:"routes,omitempty"`
}

// RouteKind is the kind of a Gateway API route.
//
// +kubebuilder:validation:Enum=HTTPRoute;GRPCRoute
type RouteKind string

// Route kinds.
const (
	KindHTTPRoute RouteKind = "HTTPRoute"
	KindGRPCRoute RouteKind = "GRPCRoute"
)

// RouteReference names one Gateway API route.
type RouteReference struct {
	// kind is HTTPRoute (the default) or GRPCRoute.
	// +optional
	// +kubebuilder:default=HTTPRoute
	Kind RouteKind `json:"kind,omitempty"`

	// name is the route's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// namespace is the route's namespace; the Rollout's by default.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`

	// rules limits KULTA to the route's rules with these names.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=253
	Rules []string `json:"rules,omitempty"`
}

// RouteRefs lists every route the routing names, with namespaces filled in.
func (g *GatewayAPIRouting) RouteRefs(rolloutNamespace string) []RouteReference {
	if g == nil {
		return nil
	}
	var refs []RouteReference
	if g.HTTPRoute != "" {
		refs = append(refs, RouteReference{Kind: KindHTTPRoute, Name: g.HTTPRoute, Namespace: rolloutNamespace, Rules: g.Rules})
	}
	if g.GRPCRoute != "" {
		refs = append(refs, RouteReference{Kind: KindGRPCRoute, Name: g.GRPCRoute, Namespace: rolloutNamespace, Rules: g.Rules})
	}
	for _, r := range g.Routes {
		if r.Kind == "" {
			r.Kind = KindHTTPRoute
		}
		if r.Namespace == "" {
			r.Namespace = rolloutNamespace
		}
		refs = append(refs, r)
	}
	return refs
}
