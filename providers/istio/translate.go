package istio

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/internal/objects"
)

// Reasons of the RouteErrors this provider returns besides the providers.Reason constants.
const (
	// ReasonVirtualServiceNotFound: the VirtualService the Rollout names does not exist.
	ReasonVirtualServiceNotFound = KindVirtualService + "NotFound"
	// ReasonDestinationRuleNotFound: the DestinationRule the Rollout names does not exist.
	ReasonDestinationRuleNotFound = KindDestinationRule + "NotFound"
	// ReasonRouteNotFound: the VirtualService has no HTTP route of a name the Rollout lists, or
	// no TLS or TCP route that one of its tlsRoutes or tcpRoutes selects.
	ReasonRouteNotFound = "VirtualServiceRouteNotFound"
	// ReasonRouteNameRequired: the Rollout names no route, and the VirtualService does not have
	// exactly one HTTP route to take.
	ReasonRouteNameRequired = "VirtualServiceRouteNameRequired"
	// ReasonSubsetNotFound: the DestinationRule has no subset of a name the Rollout gives.
	ReasonSubsetNotFound = "DestinationRuleSubsetNotFound"
	// ReasonOtherWeightedDestinations: a managed route also sends traffic to a destination that
	// is neither stable nor canary. Istio divides a route's traffic by the sum of its weights, so
	// KULTA's weights would not be the shares the Rollout asks for.
	ReasonOtherWeightedDestinations = "OtherWeightedDestinations"
)

// Backends says which routes of a VirtualService KULTA manages for a Rollout, and which of
// their destinations are the Rollout's stable and canary.
type Backends struct {
	// Namespace is the Rollout's (and so the VirtualService's and DestinationRule's): a short
	// host name is a Service there.
	Namespace string
	// Stable and Canary are the strategy's two Services. Without Subsets, a destination is the
	// stable (canary) one when its host is that Service, written as NAME, NAME.NAMESPACE,
	// NAME.NAMESPACE.svc or NAME.NAMESPACE.svc.cluster.local, whatever its port and subset.
	Stable, Canary string
	// Subsets, when set, splits by subset instead: a destination is the stable (canary) one when
	// its host is Subsets.Host and its subset Subsets.Stable (Subsets.Canary).
	Subsets *Subsets
	// Routes, TLSRoutes and TCPRoutes are the Rollout's virtualService.routes, tlsRoutes and
	// tcpRoutes: the routes KULTA manages.
	Routes    []string
	TLSRoutes []kultav1alpha1.IstioTLSRoute
	TCPRoutes []kultav1alpha1.IstioTCPRoute
	// HeaderRoute is the name of the Rollout's own header route (providers.HeaderRouteName):
	// HTTP routes of that name (see isHeaderRoute) are KULTA's, never routes it manages.
	HeaderRoute string
	// StepRoutes are the names of the canary's header and mirror routes
	// (providers.StepHeaderRouteName): KULTA's too.
	StepRoutes []string
}

// isKultaRoute reports whether an HTTP route is one KULTA wrote for b's Rollout: its A/B test's
// header route, one of its canary's header or mirror routes, or a route that mirrors to its
// canary destination (see isMirrorRoute).
func (b Backends) isKultaRoute(route map[string]any) bool {
	if isHeaderRoute(route, b.HeaderRoute) || isMirrorRoute(route, b) {
		return true
	}
	for _, name := range b.StepRoutes {
		if isHeaderRoute(route, name) {
			return true
		}
	}
	return false
}

// isMirrorRoute reports whether an HTTP route copies requests to b's canary destination, as
// KULTA's mirror routes do; KULTA writes no such mirror anywhere else.
func isMirrorRoute(route map[string]any, b Backends) bool {
	mirrors, _ := route["mirrors"].([]any)
	for _, item := range mirrors {
		if m, _ := item.(map[string]any); m != nil && b.role(m) == "canary" {
			return true
		}
	}
	return false
}

// Subsets are a subset-level split's host and subset names.
type Subsets struct {
	// Host is the DestinationRule's spec.host.
	Host string
	// Stable and Canary are the DestinationRule's subsets for the two revisions.
	Stable, Canary string
}

// The sections of a VirtualService's spec that hold routes.
const (
	sectionHTTP = "http"
	sectionTLS  = "tls"
	sectionTCP  = "tcp"
)

// routeRef is one managed route: its section and index, and where its stable and canary
// destinations are in its route list.
type routeRef struct {
	section        string
	index          int
	stable, canary int
}

// The translation works on the VirtualService's unstructured content, so that fields this build
// of KULTA does not know (a newer Istio) survive a write untouched.

func routesOf(vs *unstructured.Unstructured, section string) []any {
	list, _, _ := unstructured.NestedFieldNoCopy(vs.Object, "spec", section)
	items, _ := list.([]any)
	return items
}

func routeAt(vs *unstructured.Unstructured, section string, index int) map[string]any {
	route, _ := routesOf(vs, section)[index].(map[string]any)
	return route
}

func destinationsOf(route map[string]any) []any {
	items, _ := route["route"].([]any)
	return items
}

// routeError is a *providers.RouteError with reason and a formatted message.
func routeError(reason, format string, args ...any) error {
	return &providers.RouteError{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

func describe(obj *unstructured.Unstructured) string {
	return fmt.Sprintf("%s %s/%s", obj.GetKind(), obj.GetNamespace(), obj.GetName())
}

// describeRoute names a route for messages: `HTTP route "primary"`, or `TCP route 0`.
func describeRoute(section string, index int, route map[string]any) string {
	name, _ := route["name"].(string)
	if name != "" {
		return fmt.Sprintf("%s route %q", strings.ToUpper(section), name)
	}
	return fmt.Sprintf("%s route %d", strings.ToUpper(section), index)
}

// serviceFQDN is the fully qualified host of a Service in namespace ns.
func serviceFQDN(name, ns string) string { return name + "." + ns + ".svc.cluster.local" }

// canonicalHost is host as Istio's registry knows it, for the Service forms KULTA accepts in
// namespace ns: NAME, NAME.NS and NAME.NS.svc become NAME.NS.svc.cluster.local. Other hosts
// (another namespace's, a ServiceEntry's) are returned as they are, in lower case.
func canonicalHost(host, ns string) string {
	h := strings.ToLower(host)
	parts := strings.Split(h, ".")
	switch {
	case len(parts) == 1:
		return serviceFQDN(h, ns)
	case len(parts) == 2 && parts[1] == ns:
		return serviceFQDN(parts[0], ns)
	case len(parts) == 3 && parts[1] == ns && parts[2] == "svc":
		return serviceFQDN(parts[0], ns)
	}
	return h
}

// role says whether dest is the stable destination, the canary one, or neither ("").
func (b Backends) role(dest map[string]any) string {
	d, _ := dest["destination"].(map[string]any)
	if d == nil {
		return ""
	}
	host, _ := d["host"].(string)
	if host == "" {
		return ""
	}
	if b.Subsets != nil {
		subset, _ := d["subset"].(string)
		if canonicalHost(host, b.Namespace) != canonicalHost(b.Subsets.Host, b.Namespace) {
			return ""
		}
		switch subset {
		case b.Subsets.Stable:
			return "stable"
		case b.Subsets.Canary:
			return "canary"
		}
		return ""
	}
	switch canonicalHost(host, b.Namespace) {
	case serviceFQDN(b.Stable, b.Namespace):
		return "stable"
	case serviceFQDN(b.Canary, b.Namespace):
		return "canary"
	}
	return ""
}

// describeBackends names the Rollout's destinations for messages.
func (b Backends) describeBackends() string {
	if b.Subsets != nil {
		return fmt.Sprintf("subsets %q and %q of host %s", b.Subsets.Stable, b.Subsets.Canary, b.Subsets.Host)
	}
	return fmt.Sprintf("Services %q and %q", b.Stable, b.Canary)
}

// managedRoutes returns the routes KULTA manages in vs, in the order of the spec (HTTP, TLS,
// TCP), each with its stable and canary destinations. A route the Rollout names that is
// missing, or that does not carry both destinations exactly once and no other weighted one, is
// a RouteError naming the VirtualService and the route.
func managedRoutes(vs *unstructured.Unstructured, b Backends) ([]routeRef, error) {
	var refs []routeRef
	http, err := selectHTTP(vs, b)
	if err != nil {
		return nil, err
	}
	for _, i := range http {
		refs = append(refs, routeRef{section: sectionHTTP, index: i})
	}
	var tls, tcp []l4Selector
	for _, sel := range b.TLSRoutes {
		tls = append(tls, l4Selector{port: sel.Port, sniHosts: sel.SNIHosts})
	}
	for _, sel := range b.TCPRoutes {
		tcp = append(tcp, l4Selector{port: sel.Port})
	}
	for section, selectors := range map[string][]l4Selector{sectionTLS: tls, sectionTCP: tcp} {
		found, err := selectL4(vs, section, selectors)
		if err != nil {
			return nil, err
		}
		refs = append(refs, found...)
	}
	slices.SortStableFunc(refs, func(a, b routeRef) int {
		return cmp.Or(cmp.Compare(sectionOrder[a.section], sectionOrder[b.section]), cmp.Compare(a.index, b.index))
	})
	for n := range refs {
		if err := b.findDestinations(vs, &refs[n]); err != nil {
			return nil, err
		}
	}
	return refs, nil
}

// sectionOrder is the order of the sections in a VirtualService's spec.
var sectionOrder = map[string]int{sectionHTTP: 0, sectionTLS: 1, sectionTCP: 2}

// l4Selector is one of the Rollout's tlsRoutes or tcpRoutes.
type l4Selector struct {
	port     int64
	sniHosts []string
}

func (s l4Selector) String() string {
	port := "any port"
	if s.port != 0 {
		port = fmt.Sprintf("port %d", s.port)
	}
	if len(s.sniHosts) == 0 {
		return port
	}
	return fmt.Sprintf("%s and SNI hosts %s", port, strings.Join(s.sniHosts, ", "))
}

// selectHTTP returns the indexes of the HTTP routes KULTA manages: every route with a name the
// Rollout lists (each must exist), or, when it lists none and selects no TLS or TCP route,
// the VirtualService's only HTTP route. KULTA's own header routes are never among them.
func selectHTTP(vs *unstructured.Unstructured, b Backends) ([]int, error) {
	http := routesOf(vs, sectionHTTP)
	var candidates []int
	for i, item := range http {
		route, _ := item.(map[string]any)
		if route != nil && !b.isKultaRoute(route) {
			candidates = append(candidates, i)
		}
	}
	if len(b.Routes) == 0 {
		if len(b.TLSRoutes) > 0 || len(b.TCPRoutes) > 0 {
			return nil, nil
		}
		switch len(candidates) {
		case 0:
			return nil, routeError(ReasonRouteNotFound, "%s has no HTTP route; the Rollout names none, nor any tlsRoutes or tcpRoutes", describe(vs))
		case 1:
			return candidates, nil
		}
		var names []string
		for _, i := range candidates {
			names = append(names, describeRoute(sectionHTTP, i, routeAt(vs, sectionHTTP, i)))
		}
		return nil, routeError(ReasonRouteNameRequired, "%s has %d HTTP routes (%s); list the ones KULTA splits in virtualService.routes",
			describe(vs), len(candidates), strings.Join(names, ", "))
	}
	var out []int
	for _, name := range b.Routes {
		found := false
		for _, i := range candidates {
			if routeName, _ := routeAt(vs, sectionHTTP, i)["name"].(string); routeName == name {
				found = true
				if !slices.Contains(out, i) {
					out = append(out, i)
				}
			}
		}
		if !found {
			return nil, routeError(ReasonRouteNotFound, "%s has no HTTP route named %q", describe(vs), name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// selectL4 returns the TLS or TCP routes (section) the selectors pick, each once, in any
// order. A selector that picks none is a RouteError.
func selectL4(vs *unstructured.Unstructured, section string, selectors []l4Selector) ([]routeRef, error) {
	picked := map[int]bool{}
	for _, sel := range selectors {
		found := false
		for i, item := range routesOf(vs, section) {
			route, _ := item.(map[string]any)
			if sel.picks(route) {
				picked[i], found = true, true
			}
		}
		if !found {
			return nil, routeError(ReasonRouteNotFound, "%s has no %s route whose match has %s", describe(vs), strings.ToUpper(section), sel)
		}
	}
	var refs []routeRef
	for i := range picked {
		refs = append(refs, routeRef{section: section, index: i})
	}
	return refs, nil
}

// picks reports whether route has a match entry at the selector's port (any, when 0) whose
// sniHosts include all of the selector's. A route without a match takes every connection, so
// a selector of any port without SNI hosts picks it.
func (s l4Selector) picks(route map[string]any) bool {
	matches, _ := route["match"].([]any)
	if len(matches) == 0 {
		return s.port == 0 && len(s.sniHosts) == 0
	}
	for _, m := range matches {
		match, _ := m.(map[string]any)
		if match == nil || (s.port != 0 && toInt64(match["port"]) != s.port) {
			continue
		}
		hosts, _, _ := unstructured.NestedStringSlice(match, "sniHosts")
		if containsAll(hosts, s.sniHosts) {
			return true
		}
	}
	return false
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.ContainsFunc(have, func(h string) bool { return strings.EqualFold(h, w) }) {
			return false
		}
	}
	return true
}

// findDestinations fills ref's stable and canary indexes, or says why the route cannot be split.
func (b Backends) findDestinations(vs *unstructured.Unstructured, ref *routeRef) error {
	route := routeAt(vs, ref.section, ref.index)
	where := fmt.Sprintf("%s %s", describe(vs), describeRoute(ref.section, ref.index, route))
	ref.stable, ref.canary = -1, -1
	var others []string
	for i, item := range destinationsOf(route) {
		dest, _ := item.(map[string]any)
		role := b.role(dest)
		switch {
		case role == "stable" && ref.stable >= 0, role == "canary" && ref.canary >= 0:
			return routeError(providers.ReasonAmbiguousBackendRef, "%s has more than one %s destination among %s, so KULTA cannot tell which one carries its weight; keep one",
				where, role, b.describeBackends())
		case role == "stable":
			ref.stable = i
		case role == "canary":
			ref.canary = i
		case weightOf(dest) != 0:
			host, _, _ := unstructured.NestedString(dest, "destination", "host")
			others = append(others, fmt.Sprintf("%s (weight %d)", host, weightOf(dest)))
		}
	}
	if ref.stable < 0 || ref.canary < 0 {
		return routeError(providers.ReasonRouteDoesNotReferenceServices, "%s does not route to both %s", where, b.describeBackends())
	}
	if len(others) > 0 {
		return routeError(ReasonOtherWeightedDestinations,
			"%s also sends traffic to %s; Istio divides a route's traffic by the sum of its weights, so KULTA's weights would not be the Rollout's shares: give the other destinations weight 0 or move them to another route",
			where, strings.Join(others, ", "))
	}
	return nil
}

// weightOf is a destination's weight; an absent one is 0, as in Istio (proto3).
func weightOf(dest map[string]any) int32 {
	v, found := dest["weight"]
	if !found {
		return 0
	}
	return int32(toInt64(v))
}

// toInt64 is a number of the object, or 0 when it is none (see objects.Int64).
func toInt64(v any) int64 {
	if n, ok := objects.Int64(v); ok {
		return n
	}
	return 0
}

// setWeight sets a destination's weight and reports whether it changed. An absent weight is 0,
// so setting 0 on it changes nothing.
func setWeight(dest map[string]any, weight int32) bool {
	if weightOf(dest) == weight {
		return false
	}
	dest["weight"] = int64(weight)
	return true
}

// weightedRoutes are the managed routes and KULTA's mirror routes, which split the requests they
// take as their managed route does, in the order of the spec.
func weightedRoutes(vs *unstructured.Unstructured, b Backends) ([]routeRef, error) {
	refs, err := managedRoutes(vs, b)
	if err != nil {
		return nil, err
	}
	for i, item := range routesOf(vs, sectionHTTP) {
		route, _ := item.(map[string]any)
		if route == nil || !isMirrorRoute(route, b) {
			continue
		}
		ref := routeRef{section: sectionHTTP, index: i}
		if b.findDestinations(vs, &ref) == nil {
			refs = append(refs, ref)
		}
	}
	slices.SortStableFunc(refs, func(a, b routeRef) int {
		return cmp.Or(cmp.Compare(sectionOrder[a.section], sectionOrder[b.section]), cmp.Compare(a.index, b.index))
	})
	return refs, nil
}

// SetWeights sets the weights of the stable and canary destinations in every managed route of
// vs, and in KULTA's mirror routes, and reports whether anything changed. Nothing else in vs is
// touched.
func SetWeights(vs *unstructured.Unstructured, b Backends, w providers.Weights) (bool, error) {
	refs, err := weightedRoutes(vs, b)
	if err != nil {
		return false, err
	}
	changed := false
	for _, ref := range refs {
		dests := destinationsOf(routeAt(vs, ref.section, ref.index))
		changed = setWeight(dests[ref.stable].(map[string]any), w.Stable) || changed
		changed = setWeight(dests[ref.canary].(map[string]any), w.Canary) || changed
	}
	return changed, nil
}

// CurrentWeights reads the weights of the managed routes; it returns nil when they disagree.
func CurrentWeights(vs *unstructured.Unstructured, b Backends) (*providers.Weights, error) {
	refs, err := weightedRoutes(vs, b)
	if err != nil {
		return nil, err
	}
	var out *providers.Weights
	for _, ref := range refs {
		dests := destinationsOf(routeAt(vs, ref.section, ref.index))
		w := providers.Weights{Stable: weightOf(dests[ref.stable].(map[string]any)), Canary: weightOf(dests[ref.canary].(map[string]any))}
		if out != nil && *out != w {
			return nil, nil
		}
		out = &w
	}
	return out, nil
}
