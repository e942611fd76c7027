package testenv

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// GatewayControllerName is the controller name the route-acceptor stand-in reports.
const GatewayControllerName = "kulta.io/test-gateway"

// RouteVerdict is what the route-acceptor stand-in does with one route.
type RouteVerdict int

const (
	// RouteAccepted: each parentRef Accepted at the route's generation.
	RouteAccepted RouteVerdict = iota
	// RouteRefused: each parentRef Accepted=False (NotAllowedByListeners).
	RouteRefused
	// RouteIgnored: the status is left as it is, as by a Gateway controller that is down.
	RouteIgnored
	// RouteAcceptedLate: accepted as RouteAccepted is, but only LateAcceptance after the
	// stand-in first saw the route's generation, as by a Gateway controller that takes a moment
	// to program its data plane.
	RouteAcceptedLate
)

// LateAcceptance is how long the stand-in takes to accept a route judged RouteAcceptedLate.
const LateAcceptance = 300 * time.Millisecond

// AddRouteAcceptor registers a stand-in for a Gateway API implementation: envtest runs no
// Gateway controller, so nothing would ever accept a route. For every HTTPRoute and GRPCRoute
// (of the kinds the API server serves at v1) it reports each parentRef as Accepted, with its
// references resolved (ResolvedRefs), at the route's current generation, unless judge says
// otherwise for that route (nil accepts every route); it does not check the references.
func AddRouteAcceptor(mgr ctrl.Manager, judge func(client.Object) RouteVerdict) error {
	for _, obj := range []client.Object{&gatewayv1.HTTPRoute{}, &gatewayv1.GRPCRoute{}} {
		served, err := servedAtV1(mgr, obj)
		if err != nil {
			return err
		}
		if !served {
			continue
		}
		a := &acceptor{client: mgr.GetClient(), judge: judge, newObj: obj, seen: map[types.NamespacedName]seenGeneration{}}
		name := fmt.Sprintf("test-route-acceptor-%T", obj)
		if err := ctrl.NewControllerManagedBy(mgr).For(obj).Named(sanitize(name)).Complete(a); err != nil {
			return fmt.Errorf("registering the route acceptor stand-in: %w", err)
		}
	}
	return nil
}

// servedAtV1 reports whether the API server serves obj's kind, as older Gateway API releases
// do not serve GRPCRoute at v1.
func servedAtV1(mgr ctrl.Manager, obj client.Object) (bool, error) {
	gvk, err := apiutil.GVKForObject(obj, mgr.GetScheme())
	if err != nil {
		return false, fmt.Errorf("the route acceptor stand-in's kind: %w", err)
	}
	_, err = mgr.GetRESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	switch {
	case err == nil:
		return true, nil
	case meta.IsNoMatchError(err):
		return false, nil
	}
	return false, fmt.Errorf("looking up %s: %w", gvk, err)
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
	judge  func(client.Object) RouteVerdict
	newObj client.Object
	// seen notes when each route's generation was first seen, for RouteAcceptedLate.
	mu   sync.Mutex
	seen map[types.NamespacedName]seenGeneration
}

type seenGeneration struct {
	generation int64
	at         time.Time
}

// wait is how long a route judged RouteAcceptedLate still waits for its acceptance.
func (a *acceptor) wait(key types.NamespacedName, generation int64) time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.seen[key]
	if !ok || s.generation != generation {
		s = seenGeneration{generation: generation, at: time.Now()}
		a.seen[key] = s
	}
	return LateAcceptance - time.Since(s.at)
}

func (a *acceptor) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	obj := a.newObj.DeepCopyObject().(client.Object)
	if err := a.client.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	verdict := RouteAccepted
	if a.judge != nil {
		verdict = a.judge(obj)
	}
	if verdict == RouteIgnored {
		return ctrl.Result{}, nil
	}
	if verdict == RouteAcceptedLate {
		if wait := a.wait(req.NamespacedName, obj.GetGeneration()); wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, nil
		}
		verdict = RouteAccepted
	}
	accepted := verdict == RouteAccepted
	var parentRefs []gatewayv1.ParentReference
	var status *gatewayv1.RouteStatus
	switch route := obj.(type) {
	case *gatewayv1.HTTPRoute:
		parentRefs, status = route.Spec.ParentRefs, &route.Status.RouteStatus
	case *gatewayv1.GRPCRoute:
		parentRefs, status = route.Spec.ParentRefs, &route.Status.RouteStatus
	}
	log := ctrl.LoggerFrom(ctx).V(1)
	if upToDate(status, len(parentRefs), obj.GetGeneration(), accepted) {
		log.Info("Route status already up to date", "generation", obj.GetGeneration(), "resourceVersion", obj.GetResourceVersion())
		return ctrl.Result{}, nil
	}
	before := obj.DeepCopyObject().(client.Object)
	status.Parents = status.Parents[:0]
	for _, ref := range parentRefs {
		ps := gatewayv1.RouteParentStatus{ParentRef: ref, ControllerName: GatewayControllerName}
		cond := metav1.Condition{Type: string(gatewayv1.RouteConditionAccepted), Status: metav1.ConditionTrue,
			Reason: string(gatewayv1.RouteReasonAccepted), ObservedGeneration: obj.GetGeneration(), LastTransitionTime: metav1.Now()}
		if !accepted {
			cond.Status, cond.Reason = metav1.ConditionFalse, string(gatewayv1.RouteReasonNotAllowedByListeners)
		}
		meta.SetStatusCondition(&ps.Conditions, cond)
		meta.SetStatusCondition(&ps.Conditions, metav1.Condition{Type: string(gatewayv1.RouteConditionResolvedRefs), Status: metav1.ConditionTrue,
			Reason: string(gatewayv1.RouteReasonResolvedRefs), ObservedGeneration: obj.GetGeneration(), LastTransitionTime: metav1.Now()})
		status.Parents = append(status.Parents, ps)
	}
	if err := a.client.Status().Patch(ctx, obj, client.MergeFrom(before)); err != nil {
		return ctrl.Result{}, fmt.Errorf("patching route status: %w", err)
	}
	log.Info("Route status written", "generation", obj.GetGeneration(), "accepted", accepted, "resourceVersion", obj.GetResourceVersion())
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
		c := meta.FindStatusCondition(ps.Conditions, string(gatewayv1.RouteConditionAccepted))
		if c == nil || c.Status != want || c.ObservedGeneration != generation {
			return false
		}
		r := meta.FindStatusCondition(ps.Conditions, string(gatewayv1.RouteConditionResolvedRefs))
		if r == nil || r.Status != metav1.ConditionTrue || r.ObservedGeneration != generation {
			return false
		}
	}
	return true
}
