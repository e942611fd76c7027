package providers

import (
	"context"
	"errors"
	"regexp"

	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// Weights is the split of traffic between a strategy's two Services, in percent; they add up to
// 100. Stable is the stable (or active, or variant A) Service; Canary the canary (or preview, or
// variant B) Service.
type Weights struct {
	Stable int32
	Canary int32
}

// HeaderRoute is a managed rule that sends matching requests to the canary Service, or, with
// Mirror, copies them there.
type HeaderRoute struct {
	// Name identifies the rule among the rules KULTA manages on the route: HeaderRouteName for
	// an A/B test's, StepHeaderRouteName for a canary's setHeaderRoute and setMirrorRoute steps.
	Name string
	// Header, Cookie: an A/B test's match; at least one is set, and a request matching either
	// goes to the canary Service.
	Header *kultav1alpha1.HeaderMatch
	Cookie *kultav1alpha1.CookieMatch
	// All: a setHeaderRoute step's conditions, set instead of Header and Cookie; a request that
	// meets every one goes to the canary Service. A cookie is a regular expression on the Cookie
	// header (CookieRegex), a prefix a regular expression on the header.
	All []kultav1alpha1.HeaderMatch
	// Mirror, when set, makes the rule a setMirrorRoute's: the requests that meet All (every
	// request the managed rule takes, when All is empty) still go where the managed rule's
	// weights send them, and Mirror percent of them are also copied to the canary Service,
	// whose answers are dropped.
	Mirror *int32
}

// Alternatives is hr's match as alternatives, each a list of header conditions that must all
// hold: a request meeting any alternative goes to the canary. An A/B test's header and cookie
// are two alternatives of one condition each (the cookie as a regular expression on the Cookie
// header); a setHeaderRoute's conditions are one alternative, and so are a setMirrorRoute's,
// even none.
func (hr HeaderRoute) Alternatives() [][]kultav1alpha1.HeaderMatch {
	if len(hr.All) > 0 || hr.Mirror != nil {
		// A mirror route without conditions has one alternative with none: every request.
		return [][]kultav1alpha1.HeaderMatch{hr.All}
	}
	var out [][]kultav1alpha1.HeaderMatch
	if h := hr.Header; h != nil {
		m := *h
		if m.Type == "" {
			m.Type = kultav1alpha1.MatchExact
		}
		out = append(out, []kultav1alpha1.HeaderMatch{m})
	}
	if c := hr.Cookie; c != nil {
		out = append(out, []kultav1alpha1.HeaderMatch{CookieHeader(c.Name, c.Value)})
	}
	return out
}

// CookieHeader matches a Cookie header that carries cookie name with value.
func CookieHeader(name, value string) kultav1alpha1.HeaderMatch {
	return kultav1alpha1.HeaderMatch{Name: "Cookie", Type: kultav1alpha1.MatchRegularExpression, Value: CookieRegex(name, value)}
}

// CookieRegex matches a Cookie header that carries name=value as one of its cookies.
func CookieRegex(name, value string) string {
	return `(^|.*;\s*)` + regexp.QuoteMeta(name) + `=` + regexp.QuoteMeta(value) + `(;.*|$)`
}

// StepHeaderRouteName is the managed name of the header route a canary's setHeaderRoute steps
// call name: the Rollout's name and the step's, joined by a dot, which neither step names nor
// the other managed names contain after the Rollout's name, so that no two Rollouts' names
// meet.
func StepHeaderRouteName(ro *kultav1alpha1.Rollout, name string) string {
	return "kulta-" + ro.Name + "." + name
}

// StepHeaderRoute is the header route a setHeaderRoute step with a match asks for.
func StepHeaderRoute(ro *kultav1alpha1.Rollout, step *kultav1alpha1.SetHeaderRoute) HeaderRoute {
	return HeaderRoute{Name: StepHeaderRouteName(ro, step.Name), All: headerConditions(step.Match)}
}

// StepMirrorRoute is the mirror route a setMirrorRoute step that sets one asks for.
func StepMirrorRoute(ro *kultav1alpha1.Rollout, step *kultav1alpha1.SetMirrorRoute) HeaderRoute {
	return HeaderRoute{Name: StepHeaderRouteName(ro, step.Name), All: headerConditions(step.Match), Mirror: ptr.To(step.PercentageOrDefault())}
}

// headerConditions turns a step's match into header conditions: a cookie is a regular
// expression on the Cookie header, a prefix one on the header.
func headerConditions(match []kultav1alpha1.HeaderRouteMatch) []kultav1alpha1.HeaderMatch {
	var all []kultav1alpha1.HeaderMatch
	for _, m := range match {
		switch v := m.HeaderValue; {
		case m.Cookie != nil:
			all = append(all, CookieHeader(m.Cookie.Name, m.Cookie.Value))
		case v == nil:
		case v.Exact != nil:
			all = append(all, kultav1alpha1.HeaderMatch{Name: m.HeaderName, Type: kultav1alpha1.MatchExact, Value: *v.Exact})
		case v.Prefix != nil:
			all = append(all, kultav1alpha1.HeaderMatch{Name: m.HeaderName, Type: kultav1alpha1.MatchRegularExpression, Value: regexp.QuoteMeta(*v.Prefix) + ".*"})
		case v.Regex != nil:
			all = append(all, kultav1alpha1.HeaderMatch{Name: m.HeaderName, Type: kultav1alpha1.MatchRegularExpression, Value: *v.Regex})
		}
	}
	return all
}

// StepRoute is the route a setHeaderRoute or setMirrorRoute step asks for; ok is false when
// the step removes its route (or is of neither kind).
func StepRoute(ro *kultav1alpha1.Rollout, step kultav1alpha1.CanaryStep) (hr HeaderRoute, ok bool) {
	switch {
	case step.SetHeaderRoute != nil && len(step.SetHeaderRoute.Match) > 0:
		return StepHeaderRoute(ro, step.SetHeaderRoute), true
	case step.SetMirrorRoute != nil && step.SetMirrorRoute.Sets():
		return StepMirrorRoute(ro, step.SetMirrorRoute), true
	}
	return HeaderRoute{}, false
}

// StepRouteName is the name a setHeaderRoute or setMirrorRoute step gives its route, or "".
func StepRouteName(step kultav1alpha1.CanaryStep) string {
	switch {
	case step.SetHeaderRoute != nil:
		return step.SetHeaderRoute.Name
	case step.SetMirrorRoute != nil:
		return step.SetMirrorRoute.Name
	}
	return ""
}

// HeaderRouteNames are the managed names of every header route ro may have put on its routes,
// which Cleanup removes: its A/B test's, and those of its canary's setHeaderRoute and
// setMirrorRoute steps, the ones status.headerRoutes records and the ones the steps name.
func HeaderRouteNames(ro *kultav1alpha1.Rollout) []string {
	names := []string{HeaderRouteName(ro)}
	seen := map[string]bool{}
	add := func(step string) {
		if !seen[step] {
			seen[step] = true
			names = append(names, StepHeaderRouteName(ro, step))
		}
	}
	for _, step := range ro.Status.HeaderRoutes {
		add(step)
	}
	if c := ro.Spec.Strategy.Canary; c != nil {
		for _, s := range c.Steps {
			if name := StepRouteName(s); name != "" {
				add(name)
			}
		}
	}
	return names
}

// KnownHeaderRoute is the header route named name that ro's spec describes: its A/B test's, or
// the last route a setHeaderRoute or setMirrorRoute step that sets one gives that name. It lets routers find their rules by
// content where the API server keeps no rule names.
func KnownHeaderRoute(ro *kultav1alpha1.Rollout, name string) (HeaderRoute, bool) {
	if hr, ok := ManagedHeaderRoute(ro); ok && hr.Name == name {
		return hr, true
	}
	if c := ro.Spec.Strategy.Canary; c != nil {
		for i := len(c.Steps) - 1; i >= 0; i-- {
			if hr, ok := StepRoute(ro, c.Steps[i]); ok && hr.Name == name {
				return hr, true
			}
		}
	}
	return HeaderRoute{Name: name}, false
}

// HeaderRouteName is the name of the one header route KULTA manages for ro: A/B testing's rule
// that sends variant B's match to variant B. Routers find their rules by this exact name (with
// a numeric suffix when they write several), never by a prefix: the rules of Rollout web-api,
// kulta-web-api-variant-b-N, are not Rollout web's.
func HeaderRouteName(ro *kultav1alpha1.Rollout) string {
	return "kulta-" + ro.Name + "-variant-b"
}

// ManagedHeaderRoute is the header route ro's strategy asks for: variant B's match under
// HeaderRouteName, for A/B testing. It reports false for the other strategies, which route by
// weight only.
func ManagedHeaderRoute(ro *kultav1alpha1.Rollout) (HeaderRoute, bool) {
	ab := ro.Spec.Strategy.ABTesting
	if ab == nil || (ab.VariantBMatch.Header == nil && ab.VariantBMatch.Cookie == nil) {
		return HeaderRoute{}, false
	}
	return HeaderRoute{Name: HeaderRouteName(ro), Header: ab.VariantBMatch.Header, Cookie: ab.VariantBMatch.Cookie}, true
}

// Verification is what the routes say now: the weights they carry and whether their parents
// route their current generation.
type Verification struct {
	// Weights are the weights every route carries; nil when the routes disagree.
	Weights *Weights
	// Accepted is true when every parent accepted each route's current generation and did not
	// report its references unresolved.
	Accepted bool
	// Message explains a route that is not accepted yet, naming it.
	Message string
	// Pending is true when the routes are not accepted only because a parent has not yet
	// processed their current generation: none refused it. A provider that cannot tell the two
	// apart leaves it false.
	Pending bool
}

// TrafficRouter moves a Rollout's traffic. Every method is idempotent: calling it again with the
// same arguments writes nothing.
type TrafficRouter interface {
	// SetWeights sets the split between the Rollout's stable and canary Services.
	SetWeights(ctx context.Context, ro *kultav1alpha1.Rollout, w Weights) error
	// SetHeaderRoute adds or updates the managed rule r.
	SetHeaderRoute(ctx context.Context, ro *kultav1alpha1.Rollout, r HeaderRoute) error
	// RemoveHeaderRoute removes the managed rule named name, if present.
	RemoveHeaderRoute(ctx context.Context, ro *kultav1alpha1.Rollout, name string) error
	// Verify reports the routes' current weights and whether their controllers accepted them.
	Verify(ctx context.Context, ro *kultav1alpha1.Rollout) (Verification, error)
	// Cleanup removes everything KULTA added to the routes for ro, and only that, and leaves all
	// traffic on stable. A route that is already gone is no error.
	Cleanup(ctx context.Context, ro *kultav1alpha1.Rollout) error
}

// ErrRouteNotUsable is wrapped by errors a router returns when a route is missing, does not
// reference the Rollout's Services, or may not be used from the Rollout's namespace: the user
// must fix it, and retrying alone will not help.
var ErrRouteNotUsable = errors.New("route not usable")

// Reasons of the RouteErrors routers return. A route that is missing has the reason
// KIND + "NotFound", such as HTTPRouteNotFound.
const (
	// ReasonRouteNotPermitted: the route is in another namespace and no ReferenceGrant there
	// lets the Rollout use it.
	ReasonRouteNotPermitted = "RouteNotPermitted"
	// ReasonRouteDoesNotReferenceServices: no rule of the route references both Services at the
	// strategy's port.
	ReasonRouteDoesNotReferenceServices = "RouteDoesNotReferenceServices"
	// ReasonAmbiguousBackendRef: a rule KULTA would manage references one of the Services at the
	// strategy's port more than once, so no single backendRef can carry its weight.
	ReasonAmbiguousBackendRef = "AmbiguousBackendRef"
	// ReasonRouteKindNotServed: the API server does not serve the route's kind at the version
	// KULTA uses.
	ReasonRouteKindNotServed = "RouteKindNotServed"
	// ReasonRuleNamesNotServed: the Rollout selects rules by name, but the API server's route
	// CRDs have no rule names.
	ReasonRuleNamesNotServed = "RuleNamesNotServed"
	// ReasonUnsupportedMatch: the route's kind cannot express the header route's match.
	ReasonUnsupportedMatch = "UnsupportedMatch"
)

// RouteError says why a route cannot carry a Rollout's traffic. It wraps ErrRouteNotUsable.
type RouteError struct {
	// Reason is a CamelCase reason, such as HTTPRouteNotFound or one of the Reason constants.
	Reason string
	// Message names the route and what is wrong with it.
	Message string
}

func (e *RouteError) Error() string { return e.Message }

// Unwrap makes errors.Is(err, ErrRouteNotUsable) true.
func (e *RouteError) Unwrap() error { return ErrRouteNotUsable }
