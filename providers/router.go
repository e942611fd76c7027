package providers

import (
	"context"
	"errors"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// Weights is the split of traffic between a strategy's two Services, in percent; they add up to
// 100. Stable is the stable (or active, or variant A) Service; Canary the canary (or preview, or
// variant B) Service.
type Weights struct {
	Stable int32
	Canary int32
}

// HeaderRoute is a managed rule that sends matching requests to the canary Service.
type HeaderRoute struct {
	// Name identifies the rule among the rules KULTA manages on the route.
	Name string
	// Header, Cookie: at least one is set; a request matching either goes to the canary Service.
	Header *kultav1alpha1.HeaderMatch
	Cookie *kultav1alpha1.CookieMatch
}

// Verification is what the routes say now: the weights they carry and whether their parents
// accepted their current generation.
type Verification struct {
	// Weights are the weights every route carries; nil when the routes disagree.
	Weights *Weights
	// Accepted is true when every parent accepted each route's current generation.
	Accepted bool
	// Message explains a route that is not accepted yet, naming it.
	Message string
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
	// Cleanup removes everything KULTA added to the routes and leaves all traffic on stable.
	Cleanup(ctx context.Context, ro *kultav1alpha1.Rollout) error
}

// ErrRouteNotUsable is wrapped by errors a router returns when a route is missing, does not
// reference the Rollout's Services, or may not be used from the Rollout's namespace: the user
// must fix it, and retrying alone will not help.
var ErrRouteNotUsable = errors.New("route not usable")

// RouteError says why a route cannot carry a Rollout's traffic. It wraps ErrRouteNotUsable.
type RouteError struct {
	// Reason is a CamelCase reason, such as HTTPRouteNotFound.
	Reason string
	// Message names the route and what is wrong with it.
	Message string
}

func (e *RouteError) Error() string { return e.Message }

// Unwrap makes errors.Is(err, ErrRouteNotUsable) true.
func (e *RouteError) Unwrap() error { return ErrRouteNotUsable }
