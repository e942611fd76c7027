package gatewayapi

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The route conditions KULTA reads.
const (
	conditionAccepted     = "Accepted"
	conditionResolvedRefs = "ResolvedRefs"
)

// Accepted reports whether every parent in the route's spec routes its current generation,
// according to the route's status, and if not, why, naming the route and the parents.
//
// A parent routes it when its status entry has Accepted=True at the route's generation and no
// ResolvedRefs=False at that generation: a parent that could not resolve a backendRef (reason
// RefNotPermitted, BackendNotFound, InvalidKind) does not send traffic where the weights say.
// A parent that reports no ResolvedRefs condition is taken to route it: the spec asks for the
// condition, but some implementations omit it, and Accepted at the generation already says the
// parent processed it. For the same reason a ResolvedRefs of an older generation is ignored.
func Accepted(route *unstructured.Unstructured) (bool, string) {
	ok, _, msg := Acceptance(route)
	return ok, msg
}

// Acceptance is Accepted, also telling whether a route that is not routed only waits for a
// parent to process its current generation (pending), none refusing it.
func Acceptance(route *unstructured.Unstructured) (ok, pending bool, message string) {
	parentRefs, _, _ := unstructured.NestedSlice(route.Object, "spec", "parentRefs")
	if len(parentRefs) == 0 {
		return false, false, fmt.Sprintf("%s has no parentRefs, so no Gateway or mesh serves it", describe(route))
	}
	statuses, _, _ := unstructured.NestedSlice(route.Object, "status", "parents")
	var waiting, refused []string
	for _, item := range parentRefs {
		ref, _ := item.(map[string]any)
		key := parentKey(route, ref)
		switch ok, why := parentRoutes(route, key, statuses); {
		case ok:
		case why == "":
			waiting = append(waiting, key)
		default:
			refused = append(refused, fmt.Sprintf("parent %s reports %s", key, why))
		}
	}
	if len(refused) > 0 {
		return false, false, fmt.Sprintf("%s generation %d is not routed: %s", describe(route), route.GetGeneration(), strings.Join(refused, "; "))
	}
	if len(waiting) > 0 {
		return false, true, fmt.Sprintf("%s generation %d is not yet accepted by parent %s", describe(route), route.GetGeneration(), strings.Join(waiting, ", "))
	}
	return true, false, ""
}

// parentRoutes reports whether the parent key routes the route's current generation; when it
// does not, why is the condition that refuses it, or empty while the parent has not accepted
// the generation yet. Should several status entries name the parent, one that routes it wins.
func parentRoutes(route *unstructured.Unstructured, key string, statuses []any) (ok bool, why string) {
	generation := route.GetGeneration()
	for _, item := range statuses {
		st, _ := item.(map[string]any)
		statusRef, _ := st["parentRef"].(map[string]any)
		if statusRef == nil || parentKey(route, statusRef) != key {
			continue
		}
		conditions, _ := st["conditions"].([]any)
		accepted := findCondition(conditions, conditionAccepted)
		if accepted == nil || toInt64(accepted["observedGeneration"]) != generation {
			continue
		}
		resolved := findCondition(conditions, conditionResolvedRefs)
		switch {
		case accepted["status"] != "True":
			why = describeCondition(accepted)
		case resolved != nil && resolved["status"] == "False" && toInt64(resolved["observedGeneration"]) == generation:
			why = describeCondition(resolved)
		default:
			return true, ""
		}
	}
	return false, why
}

func findCondition(conditions []any, conditionType string) map[string]any {
	for _, c := range conditions {
		if cond, _ := c.(map[string]any); cond != nil && cond["type"] == conditionType {
			return cond
		}
	}
	return nil
}

// describeCondition is "TYPE=STATUS (REASON: MESSAGE)", leaving out what is empty.
func describeCondition(cond map[string]any) string {
	out := fmt.Sprintf("%v=%v", cond["type"], cond["status"])
	reason, _ := cond["reason"].(string)
	message, _ := cond["message"].(string)
	switch {
	case reason != "" && message != "":
		out += fmt.Sprintf(" (%s: %s)", reason, message)
	case reason != "" || message != "":
		out += fmt.Sprintf(" (%s%s)", reason, message)
	}
	return out
}

func parentKey(route *unstructured.Unstructured, ref map[string]any) string {
	kind, _ := ref["kind"].(string)
	if kind == "" {
		kind = "Gateway"
	}
	ns, _ := ref["namespace"].(string)
	if ns == "" {
		ns = route.GetNamespace()
	}
	name, _ := ref["name"].(string)
	key := kind + " " + ns + "/" + name
	if section, _ := ref["sectionName"].(string); section != "" {
		key += "#" + section
	}
	return key
}
