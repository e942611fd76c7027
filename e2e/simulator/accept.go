package simulator

import (
	"context"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// accept reports every parentRef of route that names the simulated Gateway as Accepted at the
// route's generation, as the Gateway's controller would; status written by other controllers
// is kept. It writes only when the status says something else.
func (s *Simulator) accept(ctx context.Context, route *gatewayv1.HTTPRoute) error {
	want := AcceptedParents(route, s.opts.GatewayNamespace, s.opts.GatewayName)
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
// Gateway namespace/name, Accepted at the route's generation. Conditions already accepted at
// that generation keep their transition time.
func AcceptedParents(route *gatewayv1.HTTPRoute, namespace, name string) []gatewayv1.RouteParentStatus {
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
		meta.SetStatusCondition(&ps.Conditions, metav1.Condition{
			Type: string(gatewayv1.RouteConditionAccepted), Status: metav1.ConditionTrue,
			Reason: string(gatewayv1.RouteReasonAccepted), Message: "Accepted by the e2e Gateway simulator",
			ObservedGeneration: route.Generation,
		})
		out = append(out, ps)
	}
	return out
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
		c := meta.FindStatusCondition(have[i].Conditions, string(gatewayv1.RouteConditionAccepted))
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != generation {
			return false
		}
	}
	return true
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
