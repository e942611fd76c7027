// Package istio moves a Rollout's traffic with the user's own Istio VirtualServices, split by
// host (the strategy's two Services) or, with a DestinationRule, by subset.
//
// The translation (translate.go, headerroute.go, destinationrule.go) is pure: given a VirtualService and the
// desired weights or header route, it computes the VirtualService to write, touching only the
// weights of the destinations that are the Rollout's stable and canary (in the HTTP, TLS and
// TCP routes the Rollout names) and the HTTP routes KULTA adds itself, named exactly after the
// Rollout's header route; retries, faults, mirrors, timeouts, header operations, other routes
// and other destinations stay as they are, byte for byte. In a DestinationRule it sets only the
// pod-template-hash label of the two subsets the Rollout names. Objects are handled as
// unstructured, so fields this build does not know survive a write; Istio's own Go types
// (istio.io/api) read the status.
//
// The Router (router.go) reads, translates and writes with optimistic concurrency; it must never
// rewrite what it does not own. Given the manager's cache as its Reader it reads objects from
// there, and from the API server only while the cached copy is older than its own last write,
// missing, or just lost a conflict. This package must not create, delete or own Istio objects.
package istio
