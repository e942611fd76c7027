package simulator

import (
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	apinetworkingv1 "istio.io/api/networking/v1"
	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// VirtualServiceRates returns the request rate each backend of vs receives, as Istio's proxies
// route it: rate requests per second are divided evenly among the HTTP routes that take
// requests without particular headers, headerRate goes to each route whose every match asks for
// a header (KULTA's managed header routes), and each route's share is split among its
// destinations by weight. A route with one destination sends it everything whatever its
// weight, as Istio documents; with several, a destination's share is its weight of their sum.
//
// A destination's host is a Service (see serviceOfHost); other hosts (outside the cluster) are
// left out. A destination naming a subset reaches the Pods of the Service that
// also carry the subset's labels, taken from the DestinationRule of drs for that host in the
// Service's namespace; a subset no DestinationRule defines reaches nothing. TLS and TCP routes
// carry no HTTP requests and are not played.
func VirtualServiceRates(vs *istionetworkingv1.VirtualService, drs []*istionetworkingv1.DestinationRule, rate, headerRate float64) map[Target]float64 {
	out := map[Target]float64{}
	rates := istioRouteRates(vs, rate, headerRate)
	for r, route := range vs.Spec.GetHttp() {
		dests := route.GetRoute()
		weights := make([]*int32, len(dests))
		for i, d := range dests {
			w := d.GetWeight()
			if len(dests) == 1 {
				w = 1
			}
			weights[i] = &w
		}
		for i, share := range SplitByWeight(rates[r], weights) {
			target, ok := istioTarget(vs.Namespace, dests[i].GetDestination(), drs)
			if ok && share > 0 {
				out[target] += share
			}
		}
	}
	return out
}

// VirtualServiceMirrorRates returns the rate of the copies each backend receives from the
// mirrors of vs's HTTP routes (mirrors, or mirror with mirrorPercentage): a route's rate (as
// VirtualServiceRates divides it) times each mirror's percentage, all of it without one.
func VirtualServiceMirrorRates(vs *istionetworkingv1.VirtualService, drs []*istionetworkingv1.DestinationRule, rate, headerRate float64) map[Target]float64 {
	out := map[Target]float64{}
	rates := istioRouteRates(vs, rate, headerRate)
	add := func(r int, dest *apinetworkingv1.Destination, percent *apinetworkingv1.Percent) {
		share := 1.0
		if percent != nil {
			share = percent.GetValue() / 100
		}
		if target, ok := istioTarget(vs.Namespace, dest, drs); ok && rates[r]*share > 0 {
			out[target] += rates[r] * share
		}
	}
	for r, route := range vs.Spec.GetHttp() {
		if m := route.GetMirror(); m != nil {
			add(r, m, route.GetMirrorPercentage())
		}
		for _, m := range route.GetMirrors() {
			add(r, m.GetDestination(), m.GetPercentage())
		}
	}
	return out
}

// istioRouteRates is the request rate each HTTP route of vs takes: headerRate for a route whose
// every match asks for a header, an even share of rate for each other route, none for a route
// whose matches an earlier route without headers already has (Istio takes the first route that
// matches).
func istioRouteRates(vs *istionetworkingv1.VirtualService, rate, headerRate float64) []float64 {
	routes := vs.Spec.GetHttp()
	out := make([]float64, len(routes))
	var seen [][]*apinetworkingv1.HTTPMatchRequest
	var plain []int
	for i, route := range routes {
		if istioHeaderRoute(route) {
			out[i] = headerRate
			continue
		}
		if slices.ContainsFunc(seen, func(m []*apinetworkingv1.HTTPMatchRequest) bool { return sameMatches(m, route.GetMatch()) }) {
			continue
		}
		seen = append(seen, route.GetMatch())
		plain = append(plain, i)
	}
	for _, i := range plain {
		out[i] = rate / float64(len(plain))
	}
	return out
}

// sameMatches reports whether two routes' match lists are equal.
func sameMatches(a, b []*apinetworkingv1.HTTPMatchRequest) bool {
	return slices.EqualFunc(a, b, func(x, y *apinetworkingv1.HTTPMatchRequest) bool { return proto.Equal(x, y) })
}

// istioHeaderRoute reports whether every match of route asks for a header, so that only
// requests carrying it take the route.
func istioHeaderRoute(route *apinetworkingv1.HTTPRoute) bool {
	matches := route.GetMatch()
	if len(matches) == 0 {
		return false
	}
	for _, m := range matches {
		if len(m.GetHeaders()) == 0 {
			return false
		}
	}
	return true
}

// istioTarget is the backend a destination of a VirtualService in namespace names; ok is false
// for hosts outside the cluster.
func istioTarget(namespace string, dest *apinetworkingv1.Destination, drs []*istionetworkingv1.DestinationRule) (Target, bool) {
	svc, ok := serviceOfHost(namespace, dest.GetHost())
	if !ok {
		return Target{}, false
	}
	target := Target{ServiceKey: svc}
	if dest.GetSubset() == "" {
		return target, true
	}
	target.Subset = unknownSubset
	for _, dr := range drs {
		if dr.Namespace != svc.Namespace {
			continue
		}
		if host, ok := serviceOfHost(dr.Namespace, dr.Spec.GetHost()); !ok || host != svc {
			continue
		}
		for _, s := range dr.Spec.GetSubsets() {
			if s.GetName() == dest.GetSubset() {
				target.Subset = labels.Set(s.GetLabels()).String()
			}
		}
	}
	return target, true
}

// unknownSubset is the Subset of a target whose subset no DestinationRule defines: a selector
// no Pod matches.
const unknownSubset = "kulta.io/e2e-undefined-subset=true"

// serviceOfHost is the Service an Istio host names from namespace, as KULTA's Istio provider
// reads hosts: NAME, NAME.NAMESPACE.svc.cluster.local, and NAME.NAMESPACE or
// NAME.NAMESPACE.svc for a Service of namespace itself. ok is false for any other host.
func serviceOfHost(namespace, host string) (ServiceKey, bool) {
	parts := strings.Split(strings.ToLower(host), ".")
	for _, p := range parts {
		if p == "" || p == "*" {
			return ServiceKey{}, false
		}
	}
	switch {
	case len(parts) == 1:
		return ServiceKey{Namespace: namespace, Name: parts[0]}, true
	case len(parts) == 5 && strings.Join(parts[2:], ".") == "svc.cluster.local":
		return ServiceKey{Namespace: parts[1], Name: parts[0]}, true
	case (len(parts) == 2 || len(parts) == 3 && parts[2] == "svc") && parts[1] == namespace:
		return ServiceKey{Namespace: namespace, Name: parts[0]}, true
	}
	return ServiceKey{}, false
}
