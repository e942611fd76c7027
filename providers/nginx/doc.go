// Package nginx is KULTA's TrafficRouter for ingress-nginx: it moves a Rollout's traffic with a
// canary Ingress it derives from each of the user's stable Ingresses and owns, carrying
// ingress-nginx's canary annotations. The user's Ingresses are read, never written.
//
// The translation (translate.go, annotations.go) is pure: given a Rollout, its stable Ingress
// and the state the canary Ingress should carry (the canary's weight, the managed header route),
// it computes the canary Ingress, named <rollout>-<stableIngress>-canary like Argo Rollouts'.
// Its spec mirrors the stable Ingress's paths that send traffic to the stable Service, pointed
// at the canary Service; what KULTA owns of it and what it leaves to others is said in
// annotations.go. The Router (router.go) reads, translates and writes with optimistic
// concurrency (create, update with the resourceVersion, delete with a UID and resourceVersion
// precondition); a canary Ingress exists only while the canary has weight or a header route is
// set, so a Rollout at rest leaves only the user's Ingresses. Given the manager's cache as its
// Reader, it reads Ingresses from there and goes to the API server only when the cached copy
// cannot decide.
//
// The package must not write any Ingress but the canary Ingresses it owns, and must not guess:
// a match ingress-nginx cannot express is a providers.RouteError, never an approximation.
package nginx
