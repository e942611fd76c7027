package gatewayapi

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Accepted reports whether every parent in the route's spec accepted its current generation,
// according to the route's status, and if not, why.
func Accepted(route *unstructured.Unstructured) (bool, string) {
	parentRefs, _, _ := unstructured.NestedSlice(route.Object, "spec", "parentRefs")
	if len(parentRefs) == 0 {
		return false, fmt.Sprintf("%s has no parentRefs, so no Gateway or mesh serves it", describe(route))
	}
	statuses, _, _ := unstructured.NestedSlice(route.Object, "status", "parents")
	var waiting []string
	for _, item := range parentRefs {
		ref, _ := item.(map[string]any)
		if !parentAccepted(route, ref, statuses) {
			waiting = append(waiting, parentKey(route, ref))
		}
	}
	if len(waiting) > 0 {
		return false, fmt.Sprintf("%s generation %d is not yet accepted by parent %s", describe(route), route.GetGeneration(), strings.Join(waiting, ", "))
	}
	return true, ""
}

func parentAccepted(route *unstructured.Unstructured, ref map[string]any, statuses []any) bool {
	key := parentKey(route, ref)
	for _, item := range statuses {
		st, _ := item.(map[string]any)
		statusRef, _ := st["parentRef"].(map[string]any)
		if statusRef == nil || parentKey(route, statusRef) != key {
			continue
		}
		conditions, _ := st["conditions"].([]any)
		for _, c := range conditions {
			cond, _ := c.(map[string]any)
			if cond["type"] == "Accepted" && cond["status"] == "True" && toInt64(cond["observedGeneration"]) == route.GetGeneration() {
				return true
			}
		}
	}
	return false
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
