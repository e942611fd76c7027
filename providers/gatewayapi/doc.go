// Package gatewayapi is KULTA's reference TrafficRouter: it moves traffic on the user's own
// Gateway API HTTPRoutes and GRPCRoutes, which work with every Gateway API implementation.
//
// The translation (translate.go) is pure: given a route and the desired weights or header rule,
// it computes the route to write, touching only the weights of the backendRefs that name the
// Rollout's Services at its port and the rules KULTA adds itself, named exactly after the
// Rollout (or, where the API server prunes rule names, recognised by their content). The Router
// (router.go) reads, translates and writes with optimistic concurrency; it must never rewrite
// what it does not own. Given the manager's cache as its Reader it reads routes from there, and
// from the API server only while the cached copy is older than its own last write, missing, or
// just lost a conflict. Detect (detect.go) tells at start-up which route kinds the API server
// serves and whether their CRDs keep rule names, from Gateway API v1.0.0 on.
package gatewayapi
