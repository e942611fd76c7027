package simulator

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
)

// accept reports every parentRef of route that names the simulated Gateway as Accepted at the
// route's generation, with ResolvedRefs saying whether all its backendRefs may be used, as the
// Gateway's controller would; status written by other controllers is kept. It writes only when
// the status says something else.
func (s *Simulator) accept(ctx context.Context, route *gatewayv1.HTTPRoute, notPermitted []ServiceKey) error {
	want := AcceptedParents(route, s.opts.GatewayNamespace, s.opts.GatewayName, notPermitted)
	if parentsUpToDate(route.Status.Parents, want, route.Generation) {
		return nil
	}
	before := route.DeepCopy()
	route.Status.Parents = want
	if err := s.client.Status().Patch(ctx, route, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("accepting HTTPRoute %s/%s: %w", route.Namespace, route.Name, err)
	}
	return nil
}

// AcceptedParents is the status.parents the simulator wants for route: the entries of other
// controllers as they are, then one entry under ControllerName for each parentRef naming the
// Gateway namespace/name, Accepted at the route's generation, and ResolvedRefs True, or False
// with reason RefNotPermitted naming the backends of notPermitted (see NotPermitted), as the
// Gateway API spec asks. Conditions that already say so keep their transition time.
func AcceptedParents(route *gatewayv1.HTTPRoute, namespace, name string, notPermitted []ServiceKey) []gatewayv1.RouteParentStatus {
	var out []gatewayv1.RouteParentStatus
	var ours []gatewayv1.RouteParentStatus
	for _, ps := range route.Status.Parents {
		if ps.ControllerName == ControllerName {
			ours = append(ours, ps)
		} else {
			out = append(out, ps)
		}
	}
	for _, ref := range route.Spec.ParentRefs {
		if !Attached(ref, route.Namespace, namespace, name) {
			continue
		}
		ps := gatewayv1.RouteParentStatus{ParentRef: ref, ControllerName: ControllerName}
		for _, old := range ours {
			if parentRefEqual(old.ParentRef, ref) {
				// A copy: SetStatusCondition below must not change the route's own status.
				ps.Conditions = slices.Clone(old.Conditions)
			}
		}
		for _, c := range wantedConditions(route.Generation, notPermitted) {
			meta.SetStatusCondition(&ps.Conditions, c)
		}
		out = append(out, ps)
	}
	return out
}

// wantedConditions are the conditions the simulator reports for each parent of a route at
// generation whose backendRefs to notPermitted may not be used.
func wantedConditions(generation int64, notPermitted []ServiceKey) []metav1.Condition {
	accepted := metav1.Condition{
		Type: string(gatewayv1.RouteConditionAccepted), Status: metav1.ConditionTrue,
		Reason: string(gatewayv1.RouteReasonAccepted), Message: "Accepted by the e2e Gateway simulator",
		ObservedGeneration: generation,
	}
	resolved := metav1.Condition{
		Type: string(gatewayv1.RouteConditionResolvedRefs), Status: metav1.ConditionTrue,
		Reason: string(gatewayv1.RouteReasonResolvedRefs), Message: "All backendRefs resolved",
		ObservedGeneration: generation,
	}
	if len(notPermitted) > 0 {
		names := make([]string, len(notPermitted))
		for i, key := range notPermitted {
			names[i] = key.Namespace + "/" + key.Name
		}
		resolved.Status, resolved.Reason = metav1.ConditionFalse, string(gatewayv1.RouteReasonRefNotPermitted)
		resolved.Message = "No ReferenceGrant allows backendRefs to Service " + strings.Join(names, ", ")
	}
	return []metav1.Condition{accepted, resolved}
}

// parentsUpToDate reports whether have already says what want says at generation.
func parentsUpToDate(have, want []gatewayv1.RouteParentStatus, generation int64) bool {
	if len(have) != len(want) {
		return false
	}
	for i := range want {
		if have[i].ControllerName != want[i].ControllerName || !parentRefEqual(have[i].ParentRef, want[i].ParentRef) {
			return false
		}
		if want[i].ControllerName != ControllerName {
			continue
		}
		for _, w := range want[i].Conditions {
			c := meta.FindStatusCondition(have[i].Conditions, w.Type)
			if c == nil || c.Status != w.Status || c.Reason != w.Reason || c.Message != w.Message || c.ObservedGeneration != generation {
				return false
			}
		}
	}
	return true
}

// NotPermitted returns the Services that backendRefs of route refer to in another namespace
// when no ReferenceGrant of grants in that namespace lets HTTPRoutes from the route's namespace
// refer to them, each once, in the order of the rules. Requests to such a backend never reach
// it: the Gateway answers them itself.
func NotPermitted(route *gatewayv1.HTTPRoute, grants []gatewayv1beta1.ReferenceGrant) []ServiceKey {
	var out []ServiceKey
	for _, rule := range route.Spec.Rules {
		for _, ref := range rule.BackendRefs {
			key, ok := serviceKey(route.Namespace, ref.BackendObjectReference)
			if !ok || key.Namespace == route.Namespace || slices.Contains(out, key) || granted(route.Namespace, key, grants) {
				continue
			}
			out = append(out, key)
		}
	}
	return out
}

// granted reports whether a ReferenceGrant in the Service's namespace lets HTTPRoutes from
// routeNamespace refer to it.
func granted(routeNamespace string, svc ServiceKey, grants []gatewayv1beta1.ReferenceGrant) bool {
	for _, g := range grants {
		if g.Namespace != svc.Namespace {
			continue
		}
		from := slices.ContainsFunc(g.Spec.From, func(f gatewayv1beta1.ReferenceGrantFrom) bool {
			return f.Group == gatewayv1.GroupName && f.Kind == "HTTPRoute" && string(f.Namespace) == routeNamespace
		})
		to := slices.ContainsFunc(g.Spec.To, func(t gatewayv1beta1.ReferenceGrantTo) bool {
			return t.Group == "" && t.Kind == "Service" && (t.Name == nil || string(*t.Name) == svc.Name)
		})
		if from && to {
			return true
		}
	}
	return false
}

// crossNamespace reports whether any backendRef of route refers to a Service in another
// namespace, so that ReferenceGrants decide whether it may.
func crossNamespace(route *gatewayv1.HTTPRoute) bool {
	for _, rule := range route.Spec.Rules {
		for _, ref := range rule.BackendRefs {
			if key, ok := serviceKey(route.Namespace, ref.BackendObjectReference); ok && key.Namespace != route.Namespace {
				return true
			}
		}
	}
	return false
}

// parentRefEqual compares two parent references field by field.
func parentRefEqual(a, b gatewayv1.ParentReference) bool {
	return ptrEqual(a.Group, b.Group) && ptrEqual(a.Kind, b.Kind) && ptrEqual(a.Namespace, b.Namespace) &&
		a.Name == b.Name && ptrEqual(a.SectionName, b.SectionName) && ptrEqual(a.Port, b.Port)
}

// ptrEqual reports whether two optional values are both absent or equal.
func ptrEqual[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
