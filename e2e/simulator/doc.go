// Package simulator is a stand-in for a Gateway API data plane and its controller, Istio's
// proxies and ingress-nginx, for KULTA's end-to-end tests on the local cluster of package
// e2e/cluster, where none of them runs.
//
// As the data plane, it plays client traffic through every HTTPRoute attached to one Gateway
// (default/kulta-gateway unless told otherwise): each tick it splits a request rate across each
// rule's backendRefs by weight, and records the requests each backend Service answered in the
// metrics an instrumented application exposes, http_requests_total{namespace,service,code} and
// http_request_duration_seconds{namespace,service}, on its own /metrics endpoint. How a Service
// answers depends on the container image of the ready Pods behind it (Options.Behaviour), so a
// test makes a revision misbehave by giving it an image.
//
// As the Gateway's controller, it reports every parentRef of those routes that names the
// Gateway as Accepted at the route's current generation, under the controller name
// ControllerName, with ResolvedRefs True, or False with reason RefNotPermitted when a backendRef
// refers to a Service in another namespace that no ReferenceGrant there opens to the route (the
// simulated Gateway then sends that backend nothing); KULTA waits for both before it counts a
// traffic step as done.
//
// As Istio's proxies, it plays the same rate through every VirtualService's HTTP routes, to the
// Services and DestinationRule subsets their destinations name (VirtualServiceRates); it writes
// no VirtualService status, as istiod does not unless its status reporting is on. As
// ingress-nginx, it plays the same rate through every Ingress of class nginx, and sends part of
// a path's traffic to the canary Ingress of the same host and path by its canary-by-header,
// canary-by-cookie and canary-weight annotations (IngressRates).
//
// It is test support only; KULTA's controller does not import it.
package simulator
