package gatewayapi

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// IsRoute reports whether u is a route kind the router handles (HTTPRoute, GRPCRoute).
func IsRoute(u *unstructured.Unstructured) bool {
	return isRouteKind(u.GroupVersionKind())
}

// isRouteKind reports whether gvk is a route kind the router handles.
func isRouteKind(gvk schema.GroupVersionKind) bool {
	return gvk.Group == Group && (gvk.Kind == string(kultav1alpha1.KindHTTPRoute) || gvk.Kind == string(kultav1alpha1.KindGRPCRoute))
}

// TrimRoute drops from a route what the router never reads, for an informer cache that holds
// every route a Rollout names for as long as the controller runs. It keeps the metadata
// without annotations and managedFields, spec.parentRefs and spec.rules whole (every decision
// about weights and header rules is made from them), and of status.parents only each parent's
// reference and its Accepted and ResolvedRefs conditions' type, status and observedGeneration,
// with their reason and message when the status is not True (Accepted explains a refusal with
// them). It drops the rest: hostnames, annotations such as kubectl's last-applied copy of the
// route, other conditions, and the times. Running it twice keeps what the first run kept.
//
// A trimmed route must never be written back whole: the Router patches only what it changed
// in spec.rules, which the trim keeps (see Router.apply).
func TrimRoute(u *unstructured.Unstructured) {
	u.SetManagedFields(nil)
	u.SetAnnotations(nil)
	if spec, ok := u.Object["spec"].(map[string]any); ok {
		kept := map[string]any{}
		for _, key := range []string{"parentRefs", "rules"} {
			if v, ok := spec[key]; ok {
				kept[key] = v
			}
		}
		u.Object["spec"] = kept
	}
	status, ok := u.Object["status"].(map[string]any)
	if !ok {
		return
	}
	parents, _ := status["parents"].([]any)
	trimmed := make([]any, 0, len(parents))
	for _, item := range parents {
		ps, ok := item.(map[string]any)
		if !ok {
			continue
		}
		out := map[string]any{"parentRef": ps["parentRef"]}
		if conditions := trimConditions(ps["conditions"]); len(conditions) > 0 {
			out["conditions"] = conditions
		}
		trimmed = append(trimmed, out)
	}
	u.Object["status"] = map[string]any{"parents": trimmed}
}

// trimConditions keeps of a parent's conditions what Accepted reads.
func trimConditions(v any) []any {
	conditions, _ := v.([]any)
	var out []any
	for _, c := range conditions {
		cond, ok := c.(map[string]any)
		if !ok || (cond["type"] != conditionAccepted && cond["type"] != conditionResolvedRefs) {
			continue
		}
		kept := map[string]any{"type": cond["type"], "status": cond["status"], "observedGeneration": cond["observedGeneration"]}
		if cond["status"] != "True" {
			for _, key := range []string{"reason", "message"} {
				if v, ok := cond[key]; ok {
					kept[key] = v
				}
			}
		}
		out = append(out, kept)
	}
	return out
}
