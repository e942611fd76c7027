package gatewayapi

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/internal/objects"
)

// Backends says which parts of a route belong to a Rollout.
type Backends struct {
	// Namespace is the Services' namespace (the Rollout's).
	Namespace string
	// Stable and Canary are the strategy's two Service names.
	Stable, Canary string
	// Port is the strategy's port. A backendRef is the Rollout's only when it names one of the
	// Services in Namespace, as a core Service, at this port. A backendRef without a port is
	// never the Rollout's: Gateway API requires a port for Service backends (the CRDs reject
	// one without), so such a ref routes nothing.
	Port int32
	// Rules, when set, limits KULTA to the rules with these names.
	Rules []string
	// NoRuleNames is set when the API server prunes spec.rules[].name (Gateway API CRDs older
	// than v1.4.0): header rules are then written without a name and recognised by their
	// content, and Rules cannot select anything.
	NoRuleNames bool
	// NoMirrorPercent is set when the API server prunes a RequestMirror filter's percent (Gateway
	// API CRDs older than v1.3.0): a mirror route of less than 100 percent cannot be written.
	NoMirrorPercent bool
}

// The translation works on the route's unstructured content, so that fields this build of
// KULTA does not know (a newer Gateway API) survive a write untouched.

func rules(route *unstructured.Unstructured) []any {
	list, _, _ := unstructured.NestedFieldNoCopy(route.Object, "spec", "rules")
	items, _ := list.([]any)
	return items
}

func setRules(route *unstructured.Unstructured, items []any) error {
	if err := unstructured.SetNestedField(route.Object, items, "spec", "rules"); err != nil {
		return fmt.Errorf("setting spec.rules: %w", err)
	}
	return nil
}

// refersTo reports whether the backendRef ref of route names the Service service of b: same
// name, namespace (the route's when unset), core Service kind and b's port.
func (b Backends) refersTo(route *unstructured.Unstructured, ref map[string]any, service string) bool {
	if ref == nil || !isService(ref) {
		return false
	}
	if name, _ := ref["name"].(string); name != service {
		return false
	}
	ns, _ := ref["namespace"].(string)
	if ns == "" {
		ns = route.GetNamespace()
	}
	port, found := ref["port"]
	return ns == b.Namespace && found && toInt64(port) == int64(b.Port)
}

// backendIndexes returns the positions of the stable and canary backendRefs in rule, or -1, and
// the name of a Service that more than one backendRef refers to, if any.
func backendIndexes(route *unstructured.Unstructured, rule map[string]any, b Backends) (stable, canary int, twice string) {
	stable, canary = -1, -1
	refs, _ := rule["backendRefs"].([]any)
	for i, item := range refs {
		ref, _ := item.(map[string]any)
		switch {
		case b.refersTo(route, ref, b.Stable):
			if stable >= 0 {
				twice = b.Stable
			}
			stable = i
		case b.refersTo(route, ref, b.Canary):
			if canary >= 0 {
				twice = b.Canary
			}
			canary = i
		}
	}
	return stable, canary, twice
}

func isService(ref map[string]any) bool {
	group, _ := ref["group"].(string)
	kind, _ := ref["kind"].(string)
	return group == "" && (kind == "" || kind == "Service")
}

// managedRules returns the indexes of the user's rules KULTA moves weights in: those that
// reference both Services at the port (and carry one of b.Rules' names, when set), KULTA's
// mirror rules aside (see isMirrorRule). Such a rule that refers to one of the Services twice
// is an AmbiguousBackendRef RouteError: KULTA could weight neither without guessing.
func managedRules(route *unstructured.Unstructured, b Backends) ([]int, error) {
	if b.NoRuleNames && len(b.Rules) > 0 {
		return nil, &providers.RouteError{Reason: providers.ReasonRuleNamesNotServed, Message: fmt.Sprintf(
			"%s: the Rollout selects rules named %s, but the API server's %s CRD has no spec.rules[].name (Gateway API v1.4.0 or later has)",
			describe(route), strings.Join(b.Rules, ", "), route.GetKind())}
	}
	var out []int
	for i, item := range rules(route) {
		rule, _ := item.(map[string]any)
		if rule == nil || isMirrorRule(route, rule, b) {
			continue
		}
		name, _ := rule["name"].(string)
		if len(b.Rules) > 0 && !containsString(b.Rules, name) {
			continue
		}
		s, c, twice := backendIndexes(route, rule, b)
		if s < 0 || c < 0 {
			continue
		}
		if twice != "" {
			return nil, ambiguousError(route, i, name, b, twice)
		}
		out = append(out, i)
	}
	return out, nil
}

func ambiguousError(route *unstructured.Unstructured, index int, name string, b Backends, service string) error {
	rule := fmt.Sprintf("rule %d", index)
	if name != "" {
		rule += fmt.Sprintf(" (%q)", name)
	}
	return &providers.RouteError{Reason: providers.ReasonAmbiguousBackendRef, Message: fmt.Sprintf(
		"%s %s has more than one backendRef to Service %s/%s port %d, so KULTA cannot tell which one carries its weight; keep one",
		describe(route), rule, b.Namespace, service, b.Port)}
}

func describe(route *unstructured.Unstructured) string {
	return fmt.Sprintf("%s %s/%s", route.GetKind(), route.GetNamespace(), route.GetName())
}

// weightedRules returns the indexes of the rules whose weights KULTA sets: the managed rules,
// and KULTA's mirror rules, which split the requests they take as their managed rule does.
func weightedRules(route *unstructured.Unstructured, b Backends) ([]int, error) {
	managed, err := managedRules(route, b)
	if err != nil {
		return nil, err
	}
	if len(managed) == 0 {
		return nil, noRuleError(route, b)
	}
	var out []int
	for i, item := range rules(route) {
		rule, _ := item.(map[string]any)
		if slices.Contains(managed, i) {
			out = append(out, i)
			continue
		}
		if rule != nil && isMirrorRule(route, rule, b) {
			if s, c, twice := backendIndexes(route, rule, b); s >= 0 && c >= 0 && twice == "" {
				out = append(out, i)
			}
		}
	}
	return out, nil
}

// isMirrorRule reports whether rule is one of KULTA's mirror rules for b: one with a
// RequestMirror filter whose backend is the canary Service at the port. KULTA writes no such
// filter anywhere else, and a rule of the user's that copies requests to the canary Service is
// taken for KULTA's.
func isMirrorRule(route *unstructured.Unstructured, rule map[string]any, b Backends) bool {
	_, found := mirrorFilter(route, rule, b)
	return found
}

// mirrorFilter returns the RequestMirror filter of rule that copies requests to b's canary
// Service at the port.
func mirrorFilter(route *unstructured.Unstructured, rule map[string]any, b Backends) (map[string]any, bool) {
	filters, _ := rule["filters"].([]any)
	for _, item := range filters {
		f, _ := item.(map[string]any)
		if f == nil || f["type"] != "RequestMirror" {
			continue
		}
		mirror, _ := f["requestMirror"].(map[string]any)
		if ref, _ := mirror["backendRef"].(map[string]any); b.refersTo(route, ref, b.Canary) {
			return mirror, true
		}
	}
	return nil, false
}

// SetWeights sets the weights of the stable and canary backendRefs in every managed rule of
// route, and in KULTA's mirror rules, and reports whether anything changed. Nothing else in the
// route is touched.
func SetWeights(route *unstructured.Unstructured, b Backends, w providers.Weights) (bool, error) {
	managed, err := weightedRules(route, b)
	if err != nil {
		return false, err
	}
	items := rules(route)
	changed := false
	for _, i := range managed {
		rule := items[i].(map[string]any)
		refs := rule["backendRefs"].([]any)
		s, c, _ := backendIndexes(route, rule, b)
		changed = setWeight(refs[s].(map[string]any), w.Stable) || changed
		changed = setWeight(refs[c].(map[string]any), w.Canary) || changed
	}
	return changed, nil
}

func noRuleError(route *unstructured.Unstructured, b Backends) error {
	msg := fmt.Sprintf("%s has no rule with backendRefs to both Services %q and %q on port %d", describe(route), b.Stable, b.Canary, b.Port)
	if len(b.Rules) > 0 {
		msg = fmt.Sprintf("%s has no rule named %s with backendRefs to both Services %q and %q on port %d", describe(route), strings.Join(b.Rules, ", "), b.Stable, b.Canary, b.Port)
	}
	return &providers.RouteError{Reason: providers.ReasonRouteDoesNotReferenceServices, Message: msg}
}

func setWeight(ref map[string]any, weight int32) bool {
	current, found := ref["weight"]
	if found && toInt64(current) == int64(weight) {
		return false
	}
	if !found && weight == 1 {
		// An absent weight means 1; writing it would change the route for nothing.
		return false
	}
	ref["weight"] = int64(weight)
	return true
}

// toInt64 is a number of the object, or -1 when it is none (see objects.Int64).
func toInt64(v any) int64 {
	if n, ok := objects.Int64(v); ok {
		return n
	}
	return -1
}

// CurrentWeights reads the weights of the managed rules and KULTA's mirror rules; it returns
// nil when the rules disagree.
func CurrentWeights(route *unstructured.Unstructured, b Backends) (*providers.Weights, error) {
	managed, err := weightedRules(route, b)
	if err != nil {
		return nil, err
	}
	var out *providers.Weights
	items := rules(route)
	for _, i := range managed {
		rule := items[i].(map[string]any)
		refs := rule["backendRefs"].([]any)
		s, c, _ := backendIndexes(route, rule, b)
		w := providers.Weights{Stable: weightOf(refs[s]), Canary: weightOf(refs[c])}
		if out != nil && *out != w {
			return nil, nil
		}
		out = &w
	}
	return out, nil
}

func weightOf(item any) int32 {
	ref := item.(map[string]any)
	v, found := ref["weight"]
	if !found {
		return 1
	}
	return int32(toInt64(v))
}

// SetHeaderRoute makes route carry hr: for each managed rule, a rule placed before it with the
// same matches plus hr's header (or Cookie header) match, the same filters and timeouts, and
// only the canary backend at the port. It is named hr.Name-N, unless b.NoRuleNames. Such a rule
// is more specific than its parent, so every Gateway API implementation prefers it.
//
// A mirror route (hr.Mirror) is a rule placed just before its managed rule, with the same
// matches plus hr's conditions if any, the same backendRefs and weights, and the managed rule's
// filters plus a RequestMirror filter that copies hr.Mirror percent of its requests to the
// canary Service. Without conditions its matches are its parent's, and Gateway API gives a tie
// to the rule listed first: the mirror rule takes all the managed rule's requests. A header
// rule is placed before the mirror rules of its managed rule, so that a request both match
// goes to the canary and is not copied there too. It reports whether anything changed.
func SetHeaderRoute(route *unstructured.Unstructured, b Backends, hr providers.HeaderRoute) (bool, error) {
	if hr.Cookie != nil && route.GetKind() == string(kultav1alpha1.KindGRPCRoute) {
		return false, &providers.RouteError{Reason: providers.ReasonUnsupportedMatch, Message: fmt.Sprintf("%s: cookie matches are not supported on GRPCRoute; use a header match", describe(route))}
	}
	if hr.Mirror != nil && *hr.Mirror < 100 && b.NoMirrorPercent {
		return false, &providers.RouteError{Reason: providers.ReasonUnsupportedMatch, Message: fmt.Sprintf(
			"%s: mirror route %s copies %d%% of its requests, but the API server's %s CRD has no requestMirror.percent (Gateway API v1.3.0 or later has); mirror 100%% or upgrade the CRDs",
			describe(route), hr.Name, *hr.Mirror, route.GetKind())}
	}
	base := route.DeepCopy()
	if _, err := RemoveHeaderRoute(base, b, hr); err != nil {
		return false, err
	}
	managed, err := managedRules(base, b)
	if err != nil {
		return false, err
	}
	if len(managed) == 0 {
		return false, noRuleError(route, b)
	}
	items := rules(base)
	var out []any
	next := 0
	for n, i := range managed {
		at := i
		if hr.Mirror == nil {
			for at > next && isMirrorRuleItem(base, items[at-1], b) {
				at--
			}
		}
		out = append(out, items[next:at]...)
		out = append(out, headerRule(base, items[i].(map[string]any), b, hr, n))
		next = at
	}
	out = append(out, items[next:]...)
	want := base.DeepCopy()
	if err := setRules(want, out); err != nil {
		return false, err
	}
	if equalContent(route, want) || carries(route, b, hr) {
		return false, nil
	}
	route.Object = want.Object
	return true, nil
}

func isMirrorRuleItem(route *unstructured.Unstructured, item any, b Backends) bool {
	rule, _ := item.(map[string]any)
	return rule != nil && isMirrorRule(route, rule, b)
}

// carries reports whether route already holds exactly the rules SetHeaderRoute writes for hr,
// each somewhere before its managed rule: then another header route set after it, and placed
// between, is no reason to write hr's again. Without this, two header routes set in turn would
// swap places, and the route be written, at every reconcile.
func carries(route *unstructured.Unstructured, b Backends, hr providers.HeaderRoute) bool {
	managed, err := managedRules(route, b)
	if err != nil || len(managed) == 0 {
		return false
	}
	items := rules(route)
	count := 0
	for _, item := range items {
		if rule, _ := item.(map[string]any); isHeaderRule(route, rule, b, hr) {
			count++
		}
	}
	if count != len(managed) {
		return false
	}
	for n, i := range managed {
		want := withDefaults(route.GetKind(), []any{headerRule(route, items[i].(map[string]any), b, hr, n)})
		found := false
		for j := i - 1; j >= 0 && !found; j-- {
			found = equality.Semantic.DeepEqual(withDefaults(route.GetKind(), []any{items[j]}), want)
		}
		if !found {
			return false
		}
	}
	return true
}

func headerRule(route *unstructured.Unstructured, parent map[string]any, b Backends, hr providers.HeaderRoute, n int) map[string]any {
	rule := map[string]any{}
	if !b.NoRuleNames {
		rule["name"] = fmt.Sprintf("%s-%d", hr.Name, n)
	}
	for _, key := range []string{"filters", "timeouts", "sessionPersistence", "retry"} {
		if v, ok := parent[key]; ok {
			rule[key] = runtime.DeepCopyJSONValue(v)
		}
	}
	parentMatches, _ := parent["matches"].([]any)
	if len(parentMatches) == 0 {
		parentMatches = []any{map[string]any{}}
	}
	var matches []any
	for _, alt := range alternatives(hr) {
		for _, pm := range parentMatches {
			m := runtime.DeepCopyJSONValue(pm).(map[string]any)
			if len(alt) > 0 {
				headers, _ := m["headers"].([]any)
				m["headers"] = append(headers, runtime.DeepCopyJSONValue(alt).([]any)...)
			}
			matches = append(matches, m)
		}
	}
	rule["matches"] = matches
	refs := parent["backendRefs"].([]any)
	_, c, _ := backendIndexes(route, parent, b)
	// A copy of the parent's canary backendRef: the Service at the port, with its filters.
	canary := runtime.DeepCopyJSONValue(refs[c]).(map[string]any)
	if hr.Mirror != nil {
		// The parent's backends and weights, and a copy of the requests to the canary.
		rule["backendRefs"] = runtime.DeepCopyJSONValue(refs)
		filters, _ := rule["filters"].([]any)
		rule["filters"] = append(filters, mirrorFilterFor(canary, *hr.Mirror))
		return rule
	}
	delete(canary, "weight")
	rule["backendRefs"] = []any{canary}
	return rule
}

// mirrorFilterFor is the RequestMirror filter that copies percent of a rule's requests to the
// Service of the backendRef canary. At 100 it carries no percent, which Gateway API defaults to
// all requests, so that it can be written where the CRDs have no percent.
func mirrorFilterFor(canary map[string]any, percent int32) map[string]any {
	ref := map[string]any{}
	for _, key := range []string{"group", "kind", "name", "namespace", "port"} {
		if v, ok := canary[key]; ok {
			ref[key] = v
		}
	}
	mirror := map[string]any{"backendRef": ref}
	if percent < 100 {
		mirror["percent"] = int64(percent)
	}
	return map[string]any{"type": "RequestMirror", "requestMirror": mirror}
}

// alternatives turns hr's match into lists of Gateway API header matches: a request that meets
// every match of any list goes to the canary. A cookie is matched on the Cookie header, since
// Gateway API has no cookie matcher.
func alternatives(hr providers.HeaderRoute) [][]any {
	var out [][]any
	for _, alt := range hr.Alternatives() {
		headers := make([]any, 0, len(alt))
		for _, h := range alt {
			headers = append(headers, map[string]any{"type": string(h.Type), "name": h.Name, "value": h.Value})
		}
		out = append(out, headers)
	}
	return out
}

// RemoveHeaderRoute removes the rules SetHeaderRoute added for hr (see isHeaderRule) and
// reports whether there were any. Only hr.Name is needed to find named rules; hr's header and
// cookie find the unnamed ones.
func RemoveHeaderRoute(route *unstructured.Unstructured, b Backends, hr providers.HeaderRoute) (bool, error) {
	items := rules(route)
	kept := make([]any, 0, len(items))
	for _, item := range items {
		rule, _ := item.(map[string]any)
		if isHeaderRule(route, rule, b, hr) {
			continue
		}
		kept = append(kept, item)
	}
	if len(kept) == len(items) {
		return false, nil
	}
	return true, setRules(route, kept)
}

// isHeaderRule reports whether rule is one SetHeaderRoute wrote for hr. A rule named hr.Name-N
// is. So is a rule without a name whose content is one SetHeaderRoute writes for hr: its only
// backendRef is the canary Service at the port (for a mirror route: it copies hr.Mirror percent
// to the canary Service), and each of its matches ends with the header matches of one of hr's
// alternatives, every one of which is used. Those are the rules SetHeaderRoute writes where
// the API server prunes rule names, and the ones it wrote before an upgrade of the Gateway API
// CRDs brought rule names; a rule of the user's that does exactly what KULTA's does is taken
// for KULTA's.
func isHeaderRule(route *unstructured.Unstructured, rule map[string]any, b Backends, hr providers.HeaderRoute) bool {
	if rule == nil {
		return false
	}
	if name, _ := rule["name"].(string); name != "" {
		suffix, found := strings.CutPrefix(name, hr.Name+"-")
		return found && isDigits(suffix)
	}
	if hr.Mirror != nil {
		mirror, found := mirrorFilter(route, rule, b)
		if !found || toInt64(mirror["percent"]) != int64(mirrorPercentWritten(*hr.Mirror)) {
			return false
		}
		if len(hr.All) == 0 {
			// Without conditions, the rule that copies this share of requests is the route's.
			return true
		}
	} else {
		refs, _ := rule["backendRefs"].([]any)
		if len(refs) != 1 {
			return false
		}
		if ref, _ := refs[0].(map[string]any); !b.refersTo(route, ref, b.Canary) {
			return false
		}
	}
	alts := alternatives(hr)
	matches, _ := rule["matches"].([]any)
	if len(alts) == 0 || len(matches) == 0 {
		return false
	}
	used := make([]bool, len(alts))
	for _, item := range matches {
		m, _ := item.(map[string]any)
		headers, _ := m["headers"].([]any)
		found := false
		for i, alt := range alts {
			if endsWith(headers, alt) {
				used[i], found = true, true
			}
		}
		if !found {
			return false
		}
	}
	for _, u := range used {
		if !u {
			return false
		}
	}
	return true
}

// endsWith reports whether the last header matches of headers are tail's, defaults filled in.
func endsWith(headers, tail []any) bool {
	if len(tail) == 0 || len(headers) < len(tail) {
		return false
	}
	for i, want := range tail {
		if !equality.Semantic.DeepEqual(normalizedHeader(headers[len(headers)-len(tail)+i]), normalizedHeader(want)) {
			return false
		}
	}
	return true
}

// mirrorPercentWritten is the percent field mirrorFilterFor writes for percent: none (read as
// -1) at 100.
func mirrorPercentWritten(percent int32) int32 {
	if percent >= 100 {
		return -1
	}
	return percent
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// equalContent reports whether two routes' rules say the same once the Gateway API defaults the
// API server applies are filled in, so that a rule KULTA writes without a default (a backendRef
// without weight) equals the stored one that carries it, and is not written again.
func equalContent(a, b *unstructured.Unstructured) bool {
	ra, _, _ := unstructured.NestedFieldNoCopy(a.Object, "spec", "rules")
	rb, _, _ := unstructured.NestedFieldNoCopy(b.Object, "spec", "rules")
	return equality.Semantic.DeepEqual(withDefaults(a.GetKind(), ra), withDefaults(b.GetKind(), rb))
}

// withDefaults returns a copy of a route's rules with the defaults of the Gateway API CRDs that
// concern what KULTA writes: a backendRef's group, kind and weight, a header match's type, and
// an HTTPRoute match's path.
func withDefaults(kind string, rules any) any {
	items, ok := runtime.DeepCopyJSONValue(rules).([]any)
	if !ok {
		return rules
	}
	for _, item := range items {
		rule, _ := item.(map[string]any)
		if rule == nil {
			continue
		}
		refs, _ := rule["backendRefs"].([]any)
		for _, r := range refs {
			if ref, _ := r.(map[string]any); ref != nil {
				setDefault(ref, "group", "")
				setDefault(ref, "kind", "Service")
				setDefault(ref, "weight", int64(1))
			}
		}
		filters, _ := rule["filters"].([]any)
		for _, f := range filters {
			filter, _ := f.(map[string]any)
			mirror, _ := filter["requestMirror"].(map[string]any)
			if ref, _ := mirror["backendRef"].(map[string]any); ref != nil {
				setDefault(ref, "group", "")
				setDefault(ref, "kind", "Service")
			}
		}
		matches, _ := rule["matches"].([]any)
		for i, m := range matches {
			match, _ := m.(map[string]any)
			if match == nil {
				continue
			}
			if kind == string(kultav1alpha1.KindHTTPRoute) {
				setDefault(match, "path", map[string]any{"type": "PathPrefix", "value": "/"})
			}
			headers, _ := match["headers"].([]any)
			for j := range headers {
				headers[j] = normalizedHeader(headers[j])
			}
			matches[i] = match
		}
	}
	return items
}

// normalizedHeader is a copy of a header match with its type defaulted to Exact.
func normalizedHeader(h any) any {
	m, ok := h.(map[string]any)
	if !ok {
		return h
	}
	out := runtime.DeepCopyJSONValue(m).(map[string]any)
	setDefault(out, "type", string(kultav1alpha1.MatchExact))
	return out
}

func setDefault(m map[string]any, key string, value any) {
	if _, found := m[key]; !found {
		m[key] = value
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
