package istio

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/providers"
)

// KULTA's header routes are HTTP routes of their own, each placed just before a managed HTTP
// route and named after the Rollout's header route; they are found by that name alone.

// isHeaderRoute reports whether an HTTP route is one SetHeaderRoute writes for the header route
// named name: named exactly name, or name-N for the header routes of the second and later
// managed routes. A route of another Rollout, whose name merely starts the same, is not.
func isHeaderRoute(route map[string]any, name string) bool {
	if name == "" || route == nil {
		return false
	}
	routeName, _ := route["name"].(string)
	if routeName == name {
		return true
	}
	suffix, found := strings.CutPrefix(routeName, name+"-")
	return found && suffix != "" && strings.Trim(suffix, "0123456789") == ""
}

// SetHeaderRoute makes vs carry hr: before each managed HTTP route, a route named hr.Name (the
// first) or hr.Name-N (the N+1th) that takes the requests the managed route would take that
// also match hr's header or cookie, and sends them all to its canary destination. It keeps the
// managed route's other settings (rewrite, timeout, retries, fault, mirrors, headers, CORS), so
// those requests are treated as before but for where they go. It reports whether anything
// changed.
func SetHeaderRoute(vs *unstructured.Unstructured, b Backends, hr providers.HeaderRoute) (bool, error) {
	if len(hr.Alternatives()) == 0 {
		return false, fmt.Errorf("header route %q matches neither a header nor a cookie", hr.Name)
	}
	base := vs.DeepCopy()
	if _, err := RemoveHeaderRoute(base, hr.Name); err != nil {
		return false, err
	}
	refs, err := managedRoutes(base, b)
	if err != nil {
		return false, err
	}
	http := routesOf(base, sectionHTTP)
	var out []any
	next, n := 0, 0
	for _, ref := range refs {
		if ref.section != sectionHTTP {
			continue
		}
		route, err := headerRoute(base, ref, hr, n)
		if err != nil {
			return false, err
		}
		at := insertAt(base, b, hr, ref.index, next)
		out = append(out, http[next:at]...)
		out = append(out, route)
		next, n = at, n+1
	}
	if n == 0 {
		return false, routeError(providers.ReasonUnsupportedMatch, "%s: the Rollout manages no HTTP route there, and header and cookie matches need one", describe(vs))
	}
	out = append(out, http[next:]...)
	if err := unstructured.SetNestedField(base.Object, out, "spec", sectionHTTP); err != nil {
		return false, fmt.Errorf("setting spec.http: %w", err)
	}
	before, _, _ := unstructured.NestedFieldNoCopy(vs.Object, "spec", sectionHTTP)
	if equality.Semantic.DeepEqual(before, out) || carries(vs, b, hr) {
		return false, nil
	}
	vs.Object = base.Object
	return true, nil
}

// insertAt is where hr's route for the managed HTTP route at index goes, no earlier than from:
// Istio takes the first route that matches, so a header route goes before KULTA's mirror routes
// of the same managed route (a request it sends to the canary is not copied there too), a
// mirror route with conditions before the mirror routes without (which take every request of
// the managed route), and a mirror route without conditions just before its managed route.
func insertAt(vs *unstructured.Unstructured, b Backends, hr providers.HeaderRoute, index, from int) int {
	if hr.Mirror != nil && len(hr.All) == 0 {
		return index
	}
	parent := routeAt(vs, sectionHTTP, index)
	at := index
	for at > from {
		prev := routeAt(vs, sectionHTTP, at-1)
		if prev == nil || !isMirrorRoute(prev, b) {
			break
		}
		if hr.Mirror != nil && !equality.Semantic.DeepEqual(prev["match"], parent["match"]) {
			// A mirror route with conditions of its own: this one goes after it.
			break
		}
		at--
	}
	return at
}

// carries reports whether vs already holds exactly the HTTP routes SetHeaderRoute writes for
// hr, each somewhere before its managed route: then another header route set after it, and
// placed between, is no reason to write hr's again (two header routes would otherwise swap
// places, and the VirtualService be written, at every reconcile).
func carries(vs *unstructured.Unstructured, b Backends, hr providers.HeaderRoute) bool {
	refs, err := managedRoutes(vs, b)
	if err != nil {
		return false
	}
	http := routesOf(vs, sectionHTTP)
	count := 0
	for _, item := range http {
		if route, _ := item.(map[string]any); isHeaderRoute(route, hr.Name) {
			count++
		}
	}
	n := 0
	for _, ref := range refs {
		if ref.section != sectionHTTP {
			continue
		}
		want, err := headerRoute(vs, ref, hr, n)
		if err != nil {
			return false
		}
		found := false
		for j := ref.index - 1; j >= 0 && !found; j-- {
			found = equality.Semantic.DeepEqual(http[j], want)
		}
		if !found {
			return false
		}
		n++
	}
	return n > 0 && count == n
}

// headerRoute is the n-th header route of hr, for the managed HTTP route ref of vs.
func headerRoute(vs *unstructured.Unstructured, ref routeRef, hr providers.HeaderRoute, n int) (map[string]any, error) {
	parent := routeAt(vs, sectionHTTP, ref.index)
	route := map[string]any{}
	for key, v := range parent {
		switch key {
		case "name", "match", "route":
		default:
			route[key] = runtime.DeepCopyJSONValue(v)
		}
	}
	route["name"] = hr.Name
	if n > 0 {
		route["name"] = fmt.Sprintf("%s-%d", hr.Name, n)
	}
	if hr.Mirror != nil {
		return mirrorRoute(vs, ref, parent, route, hr)
	}
	matches, err := headerRouteMatches(vs, ref, parent, hr)
	if err != nil {
		return nil, err
	}
	route["match"] = matches
	canary, _ := runtime.DeepCopyJSONValue(destinationsOf(parent)[ref.canary]).(map[string]any)
	canary["weight"] = int64(100)
	route["route"] = []any{canary}
	return route, nil
}

// headerRouteMatches are the managed HTTP route ref's matches, each with the conditions of one
// of hr's alternatives added.
func headerRouteMatches(vs *unstructured.Unstructured, ref routeRef, parent map[string]any, hr providers.HeaderRoute) ([]any, error) {
	parentMatches, _ := parent["match"].([]any)
	if len(parentMatches) == 0 {
		parentMatches = []any{map[string]any{}}
	}
	var matches []any
	for _, alt := range alternatives(hr) {
		for _, pm := range parentMatches {
			m, _ := runtime.DeepCopyJSONValue(pm).(map[string]any)
			if m == nil {
				m = map[string]any{}
			}
			headers, _ := m["headers"].(map[string]any)
			if headers == nil {
				headers = map[string]any{}
			}
			for _, extra := range alt {
				if current, found := headers[extra.name]; found && !equality.Semantic.DeepEqual(current, extra.match) {
					return nil, routeError(providers.ReasonUnsupportedMatch, "%s %s already matches header %q, so KULTA cannot add its own condition on it for %s",
						describe(vs), describeRoute(sectionHTTP, ref.index, parent), extra.name, hr.Name)
				}
				headers[extra.name] = runtime.DeepCopyJSONValue(extra.match)
			}
			m["headers"] = headers
			matches = append(matches, m)
		}
	}
	return matches, nil
}

// mirrorRoute completes route, a copy of the managed HTTP route ref's settings, as hr's mirror
// route: the managed route's matches, with hr's conditions added to each when it has any, its
// destinations and weights, and its mirrors plus one that copies hr.Mirror percent of the
// requests to the canary destination. A managed route that mirrors with mirror and
// mirrorPercentage has that mirror moved into the list, as Istio allows only one of the forms.
func mirrorRoute(vs *unstructured.Unstructured, ref routeRef, parent, route map[string]any, hr providers.HeaderRoute) (map[string]any, error) {
	if match, ok := parent["match"]; ok {
		route["match"] = runtime.DeepCopyJSONValue(match)
	}
	if len(hr.All) > 0 {
		withHeaders, err := headerRouteMatches(vs, ref, parent, hr)
		if err != nil {
			return nil, err
		}
		route["match"] = withHeaders
	}
	route["route"] = runtime.DeepCopyJSONValue(parent["route"])
	mirrors, _ := route["mirrors"].([]any)
	if single, ok := route["mirror"]; ok {
		entry := map[string]any{"destination": single}
		if pct, ok := route["mirrorPercentage"]; ok {
			entry["percentage"] = pct
		}
		mirrors = append([]any{entry}, mirrors...)
		delete(route, "mirror")
		delete(route, "mirrorPercentage")
	}
	canary, _ := destinationsOf(parent)[ref.canary].(map[string]any)
	dest := runtime.DeepCopyJSONValue(canary["destination"])
	route["mirrors"] = append(mirrors, map[string]any{"destination": dest, "percentage": map[string]any{"value": int64(*hr.Mirror)}})
	return route, nil
}

// headerCondition is one Istio header match: a request header (lower case, as Istio requires)
// and how its value is matched.
type headerCondition struct {
	name  string
	match map[string]any
}

// alternatives turns hr's match into lists of Istio header conditions: a request that meets every
// condition of any list goes to the canary. A cookie is matched on the cookie header, as Istio
// has no cookie matcher.
func alternatives(hr providers.HeaderRoute) [][]headerCondition {
	var out [][]headerCondition
	for _, alt := range hr.Alternatives() {
		conds := make([]headerCondition, 0, len(alt))
		for _, h := range alt {
			kind := "exact"
			if h.Type == kultav1alpha1.MatchRegularExpression {
				kind = "regex"
			}
			conds = append(conds, headerCondition{name: strings.ToLower(h.Name), match: map[string]any{kind: h.Value}})
		}
		out = append(out, conds)
	}
	return out
}

// RemoveHeaderRoute removes the HTTP routes SetHeaderRoute wrote for the header route named
// name, and only those (see isHeaderRoute), and reports whether there were any.
func RemoveHeaderRoute(vs *unstructured.Unstructured, name string) (bool, error) {
	http := routesOf(vs, sectionHTTP)
	kept := make([]any, 0, len(http))
	for _, item := range http {
		route, _ := item.(map[string]any)
		if isHeaderRoute(route, name) {
			continue
		}
		kept = append(kept, item)
	}
	if len(kept) == len(http) {
		return false, nil
	}
	if err := unstructured.SetNestedField(vs.Object, kept, "spec", sectionHTTP); err != nil {
		return false, fmt.Errorf("setting spec.http: %w", err)
	}
	return true, nil
}
