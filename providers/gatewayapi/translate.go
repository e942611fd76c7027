package gatewayapi

import (
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/providers"
)

// Backends says which backendRefs of a route belong to a Rollout.
type Backends struct {
	// Namespace is the Services' namespace (the Rollout's).
	Namespace string
	// Stable and Canary are the strategy's two Service names.
	Stable, Canary string
	// Rules, when set, limits KULTA to the rules with these names.
	Rules []string
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

// backendIndexes returns the positions of the stable and canary backendRefs in rule, or -1.
func backendIndexes(route *unstructured.Unstructured, rule map[string]any, b Backends) (stable, canary int) {
	stable, canary = -1, -1
	refs, _ := rule["backendRefs"].([]any)
	for i, item := range refs {
		ref, _ := item.(map[string]any)
		if ref == nil || !isService(ref) {
			continue
		}
		ns, _ := ref["namespace"].(string)
		if ns == "" {
			ns = route.GetNamespace()
		}
		if ns != b.Namespace {
			continue
		}
		switch ref["name"] {
		case b.Stable:
			stable = i
		case b.Canary:
			canary = i
		}
	}
	return stable, canary
}

func isService(ref map[string]any) bool {
	group, _ := ref["group"].(string)
	kind, _ := ref["kind"].(string)
	return group == "" && (kind == "" || kind == "Service")
}

// managedRules returns the indexes of the rules KULTA moves weights in: those that reference
// both Services (and carry one of b.Rules' names, when set), excluding KULTA's own header rules.
func managedRules(route *unstructured.Unstructured, b Backends) []int {
	var out []int
	for i, item := range rules(route) {
		rule, _ := item.(map[string]any)
		if rule == nil {
			continue
		}
		name, _ := rule["name"].(string)
		if strings.HasPrefix(name, headerRulePrefix) {
			continue
		}
		if len(b.Rules) > 0 && !containsString(b.Rules, name) {
			continue
		}
		if s, c := backendIndexes(route, rule, b); s >= 0 && c >= 0 {
			out = append(out, i)
		}
	}
	return out
}

func describe(route *unstructured.Unstructured) string {
	return fmt.Sprintf("%s %s/%s", route.GetKind(), route.GetNamespace(), route.GetName())
}

// SetWeights sets the weights of the stable and canary backendRefs in every managed rule of
// route, and reports whether anything changed. Nothing else in the route is touched.
func SetWeights(route *unstructured.Unstructured, b Backends, w providers.Weights) (bool, error) {
	managed := managedRules(route, b)
	if len(managed) == 0 {
		return false, noRuleError(route, b)
	}
	items := rules(route)
	changed := false
	for _, i := range managed {
		rule := items[i].(map[string]any)
		refs := rule["backendRefs"].([]any)
		s, c := backendIndexes(route, rule, b)
		changed = setWeight(refs[s].(map[string]any), w.Stable) || changed
		changed = setWeight(refs[c].(map[string]any), w.Canary) || changed
	}
	return changed, nil
}

func noRuleError(route *unstructured.Unstructured, b Backends) error {
	msg := fmt.Sprintf("%s has no rule with backendRefs to both Services %q and %q", describe(route), b.Stable, b.Canary)
	if len(b.Rules) > 0 {
		msg = fmt.Sprintf("%s has no rule named %s with backendRefs to both Services %q and %q", describe(route), strings.Join(b.Rules, ", "), b.Stable, b.Canary)
	}
	return &providers.RouteError{Reason: "RouteDoesNotReferenceServices", Message: msg}
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

func toInt64(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case int32:
		return int64(n)
	case int:
		return int64(n)
	case float64:
		return int64(n)
	}
	return -1
}

// CurrentWeights reads the weights of the managed rules; it returns nil when the rules disagree.
func CurrentWeights(route *unstructured.Unstructured, b Backends) (*providers.Weights, error) {
	managed := managedRules(route, b)
	if len(managed) == 0 {
		return nil, noRuleError(route, b)
	}
	var out *providers.Weights
	items := rules(route)
	for _, i := range managed {
		rule := items[i].(map[string]any)
		refs := rule["backendRefs"].([]any)
		s, c := backendIndexes(route, rule, b)
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

// headerRulePrefix starts the name of every rule KULTA adds to a route.
const headerRulePrefix = "kulta-"

// SetHeaderRoute makes route carry hr: for each managed rule, a rule named hr.Name-N placed
// just before it, with the same matches plus hr's header (or Cookie header) match, the same
// filters and timeouts, and only the canary backend. Such a rule is more specific than its
// parent, so every Gateway API implementation prefers it. It reports whether anything changed.
func SetHeaderRoute(route *unstructured.Unstructured, b Backends, hr providers.HeaderRoute) (bool, error) {
	if hr.Cookie != nil && route.GetKind() == string(kultav1alpha1.KindGRPCRoute) {
		return false, &providers.RouteError{Reason: "UnsupportedMatch", Message: fmt.Sprintf("%s: cookie matches are not supported on GRPCRoute; use a header match", describe(route))}
	}
	base := route.DeepCopy()
	if _, err := RemoveHeaderRoute(base, hr.Name); err != nil {
		return false, err
	}
	managed := managedRules(base, b)
	if len(managed) == 0 {
		return false, noRuleError(route, b)
	}
	items := rules(base)
	var out []any
	next := 0
	for n, i := range managed {
		out = append(out, items[next:i]...)
		out = append(out, headerRule(base, items[i].(map[string]any), b, hr, n))
		next = i
	}
	out = append(out, items[next:]...)
	want := base.DeepCopy()
	if err := setRules(want, out); err != nil {
		return false, err
	}
	if equalContent(route, want) {
		return false, nil
	}
	route.Object = want.Object
	return true, nil
}

func headerRule(route *unstructured.Unstructured, parent map[string]any, b Backends, hr providers.HeaderRoute, n int) map[string]any {
	rule := map[string]any{"name": fmt.Sprintf("%s-%d", hr.Name, n)}
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
	for _, extra := range extraHeaders(hr) {
		for _, pm := range parentMatches {
			m := runtime.DeepCopyJSONValue(pm).(map[string]any)
			headers, _ := m["headers"].([]any)
			m["headers"] = append(headers, extra)
			matches = append(matches, m)
		}
	}
	rule["matches"] = matches
	refs := parent["backendRefs"].([]any)
	_, c := backendIndexes(route, parent, b)
	canary := runtime.DeepCopyJSONValue(refs[c]).(map[string]any)
	delete(canary, "weight")
	rule["backendRefs"] = []any{canary}
	return rule
}

// extraHeaders turns the match into Gateway API header matches; a request matching any of them
// goes to the canary. A cookie is matched on the Cookie header, since Gateway API has no cookie
// matcher.
func extraHeaders(hr providers.HeaderRoute) []any {
	var out []any
	if h := hr.Header; h != nil {
		t := string(h.Type)
		if t == "" {
			t = string(kultav1alpha1.MatchExact)
		}
		out = append(out, map[string]any{"type": t, "name": h.Name, "value": h.Value})
	}
	if c := hr.Cookie; c != nil {
		out = append(out, map[string]any{
			"type":  string(kultav1alpha1.MatchRegularExpression),
			"name":  "Cookie",
			"value": CookieRegex(c.Name, c.Value),
		})
	}
	return out
}

// CookieRegex matches a Cookie header that carries name=value as one of its cookies.
func CookieRegex(name, value string) string {
	return `(^|.*;\s*)` + regexp.QuoteMeta(name) + `=` + regexp.QuoteMeta(value) + `(;.*|$)`
}

// RemoveHeaderRoute removes the rules SetHeaderRoute added for the header route named name.
func RemoveHeaderRoute(route *unstructured.Unstructured, name string) (bool, error) {
	items := rules(route)
	kept := make([]any, 0, len(items))
	for _, item := range items {
		rule, _ := item.(map[string]any)
		ruleName, _ := rule["name"].(string)
		if strings.HasPrefix(ruleName, name+"-") && isDigits(strings.TrimPrefix(ruleName, name+"-")) {
			continue
		}
		kept = append(kept, item)
	}
	if len(kept) == len(items) {
		return false, nil
	}
	return true, setRules(route, kept)
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

func equalContent(a, b *unstructured.Unstructured) bool {
	ra, _, _ := unstructured.NestedFieldNoCopy(a.Object, "spec", "rules")
	rb, _, _ := unstructured.NestedFieldNoCopy(b.Object, "spec", "rules")
	return equality.Semantic.DeepEqual(ra, rb)
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
