package testenv

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// GatewayControllerName is the controller name the route-acceptor stand-in reports.
const GatewayControllerName = "kulta.io/test-gateway"

// AddRouteAcceptor registers a stand-in for a Gateway API implementation: envtest runs no
// Gateway controller, so nothing would ever accept a route. For every HTTPRoute and GRPCRoute
// it reports each parentRef as Accepted at the route's current generation, unless reject says
// otherwise for that route.
func AddRouteAcceptor(mgr ctrl.Manager, reject func(client.Object) bool) error {
	for _, obj := range []client.Object{&gatewayv1.HTTPRoute{}, &gatewayv1.GRPCRoute{}} {
		a := &acceptor{client: mgr.GetClient(), reject: reject, newObj: obj}
		name := fmt.Sprintf("test-route-acceptor-%T", obj)
		if err := ctrl.NewControllerManagedBy(mgr).For(obj).Named(sanitize(name)).Complete(a); err != nil {
			return fmt.Errorf("registering the route acceptor stand-in: %w", err)
		}
	}
	return nil
}

func sanitize(s string) string {
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			out = append(out, r)
		} else if r >= 'A' && r <= 'Z' {
			out = append(out, r-'A'+'a')
		}
	}
	return string(out)
}

type acceptor struct {
	client client.Client
	reject func(client.Object) bool
	newObj client.Object
}

func (a *acceptor) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	obj := a.newObj.DeepCopyObject().(client.Object)
	if err := a.client.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	accepted := a.reject == nil || !a.reject(obj)
	var parentRefs []gatewayv1.ParentReference
	var status *gatewayv1.RouteStatus
	switch route := obj.(type) {
	case *gatewayv1.HTTPRoute:
		parentRefs, status = route.Spec.ParentRefs, &route.Status.RouteStatus
	case *gatewayv1.GRPCRoute:
		parentRefs, status = route.Spec.ParentRefs, &route.Status.RouteStatus
	}
	if upToDate(status, len(parentRefs), obj.GetGeneration(), accepted) {
		return ctrl.Result{}, nil
	}
	before := obj.DeepCopyObject().(client.Object)
	status.Parents = status.Parents[:0]
	for _, ref := range parentRefs {
		ps := gatewayv1.RouteParentStatus{ParentRef: ref, ControllerName: GatewayControllerName}
		cond := metav1.Condition{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", ObservedGeneration: obj.GetGeneration(), LastTransitionTime: metav1.Now()}
		if !accepted {
			cond.Status, cond.Reason = metav1.ConditionFalse, "NotAllowedByListeners"
		}
		meta.SetStatusCondition(&ps.Conditions, cond)
		status.Parents = append(status.Parents, ps)
	}
	if err := a.client.Status().Patch(ctx, obj, client.MergeFrom(before)); err != nil {
		return ctrl.Result{}, fmt.Errorf("patching route status: %w", err)
	}
	return ctrl.Result{}, nil
}

func upToDate(status *gatewayv1.RouteStatus, parents int, generation int64, accepted bool) bool {
	if len(status.Parents) != parents {
		return false
	}
	want := metav1.ConditionTrue
	if !accepted {
		want = metav1.ConditionFalse
	}
	for _, ps := range status.Parents {
		c := meta.FindStatusCondition(ps.Conditions, "Accepted")
		if c == nil || c.Status != want || c.ObservedGeneration != generation {
			return false
		}
	}
	return true
}
