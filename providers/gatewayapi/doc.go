// Package gatewayapi is KULTA's reference TrafficRouter: it moves traffic on the user's own
// Gateway API HTTPRoutes and GRPCRoutes, which work with every Gateway API implementation.
//
// The translation (translate.go) is pure: given a route and the desired weights or header rule,
// it computes the route to write, touching only the weights of the backendRefs that name the
// Rollout's Services and the rules KULTA adds and names itself. The Router (router.go) reads,
// translates and writes with optimistic concurrency; it must never rewrite what it does not own.
// Given the manager's cache as its Reader it reads routes from there, and from the API server
// only while the cached copy is older than its own last write, missing, or just lost a conflict.
package gatewayapi
