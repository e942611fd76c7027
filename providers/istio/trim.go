package istio

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// IsVirtualService reports whether u is a networking.istio.io VirtualService.
func IsVirtualService(u *unstructured.Unstructured) bool {
	return isKind(u.GroupVersionKind(), KindVirtualService)
}

// IsDestinationRule reports whether u is a networking.istio.io DestinationRule.
func IsDestinationRule(u *unstructured.Unstructured) bool {
	return isKind(u.GroupVersionKind(), KindDestinationRule)
}

// isKind reports whether gvk is the networking.istio.io kind.
func isKind(gvk schema.GroupVersionKind, kind string) bool {
	return gvk.Group == Group && gvk.Kind == kind
}

// isCached reports whether gvk is a kind the provider caches: VirtualService, DestinationRule.
func isCached(gvk schema.GroupVersionKind) bool {
	return isKind(gvk, KindVirtualService) || isKind(gvk, KindDestinationRule)
}

// Trim drops from a VirtualService or DestinationRule what the Router never reads, for an
// informer cache that holds every one in the namespaces it watches for as long as the
// controller runs, and reports whether u was one. It keeps the metadata without annotations
// and managedFields; of a VirtualService's spec its http, tls and tcp routes whole (weights and
// header routes are decided from them); of a DestinationRule's spec its host and its subsets
// whole (their labels are KULTA's to set, and a patch replaces the list whole); of the status, observedGeneration and the Reconciled and Ready conditions'
// type, status and observedGeneration, with their reason and message when the status is not
// True. It drops the rest: hosts, gateways, traffic policies, kubectl's last-applied copy, the
// analyzers' messages. Running it twice keeps what the first run kept.
//
// A trimmed object must never be written back whole: the Router patches only what it changed
// in the lists Trim keeps whole (see Router).
func Trim(u *unstructured.Unstructured) bool {
	var spec map[string]any
	switch {
	case IsVirtualService(u):
		spec = keep(u.Object["spec"], "http", "tls", "tcp")
	case IsDestinationRule(u):
		spec = keep(u.Object["spec"], "host", "subsets")
	default:
		return false
	}
	u.SetManagedFields(nil)
	u.SetAnnotations(nil)
	u.Object["spec"] = spec
	if status, ok := u.Object["status"].(map[string]any); ok {
		u.Object["status"] = trimStatus(status)
	}
	return true
}

// keep is a copy of the map v with only keys.
func keep(v any, keys ...string) map[string]any {
	m, _ := v.(map[string]any)
	out := map[string]any{}
	for _, key := range keys {
		if value, ok := m[key]; ok {
			out[key] = value
		}
	}
	return out
}

// trimStatus keeps of an Istio status what Accepted reads.
func trimStatus(status map[string]any) map[string]any {
	out := keep(status, "observedGeneration")
	conditions, _ := status["conditions"].([]any)
	var kept []any
	for _, c := range conditions {
		cond, ok := c.(map[string]any)
		if !ok || (cond["type"] != conditionReconciled && cond["type"] != conditionReady) {
			continue
		}
		trimmed := keep(cond, "type", "status", "observedGeneration")
		if cond["status"] != "True" {
			for key, v := range keep(cond, "reason", "message") {
				trimmed[key] = v
			}
		}
		kept = append(kept, trimmed)
	}
	if len(kept) > 0 {
		out["conditions"] = kept
	}
	return out
}
