package rollout

import (
	"context"
	"fmt"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/revision"
)

const (
	indexServices = "kulta.io/services"
	indexRoutes   = "kulta.io/httproutes"
	// maxCollisions bounds the search for a free pod-template hash.
	maxCollisions = 8
)

func serviceNamesOf(obj client.Object) []string {
	ro, ok := obj.(*kultav1alpha1.Rollout)
	if !ok {
		return nil
	}
	var names []string
	for _, n := range []string{serviceRolesStable(ro), serviceRolesNew(ro)} {
		if n != "" {
			names = append(names, n)
		}
	}
	return names
}

func serviceRolesStable(ro *kultav1alpha1.Rollout) string { s, _ := serviceRoles(ro); return s }
func serviceRolesNew(ro *kultav1alpha1.Rollout) string    { _, n := serviceRoles(ro); return n }

func routeNamesOf(obj client.Object) []string {
	ro, ok := obj.(*kultav1alpha1.Rollout)
	if !ok {
		return nil
	}
	if tr := trafficRouting(ro); tr != nil && tr.GatewayAPI != nil {
		return []string{tr.GatewayAPI.HTTPRoute}
	}
	return nil
}

// rolloutsNaming maps a Service or route to the Rollouts in its namespace that name it.
func (r *Reconciler) rolloutsNaming(index string) func(context.Context, client.Object) []reconcile.Request {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		var list kultav1alpha1.RolloutList
		if err := r.List(ctx, &list, client.InNamespace(obj.GetNamespace()), client.MatchingFields{index: obj.GetName()}); err != nil {
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, ro := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ro.Namespace, Name: ro.Name}})
		}
		return reqs
	}
}

// observe gathers what the planner needs: the current revision's hash, the Rollout's
// ReplicaSets (adopting orphans that carry its labels), and any problem the user must fix.
func (r *Reconciler) observe(ctx context.Context, ro *kultav1alpha1.Rollout) (Observation, error) {
	obs := Observation{Rollout: ro, Now: r.Clock.Now(), Revisions: map[string]*Revision{}}
	if prob := specProblem(ro); prob != nil {
		obs.Problem = prob
		return obs, nil
	}
	rsList, err := r.ownedReplicaSets(ctx, ro)
	if err != nil {
		return obs, err
	}
	hash, prob, err := r.currentHash(ro, rsList)
	if err != nil {
		return obs, err
	}
	obs.Hash, obs.Problem = hash, prob
	for i := range rsList {
		rs := &rsList[i]
		h := rs.Labels[kultav1alpha1.PodTemplateHashLabel]
		if h == "" {
			continue
		}
		rev := &Revision{
			Hash: h, Name: rs.Name,
			Replicas:  ptr.Deref(rs.Spec.Replicas, 0),
			Pods:      rs.Status.Replicas,
			Ready:     rs.Status.ReadyReplicas,
			Available: rs.Status.AvailableReplicas,
		}
		if rs.Status.ObservedGeneration < rs.Generation {
			// The ReplicaSet controller has not seen the latest scale yet: its counts are stale.
			rev.Ready = min(rev.Ready, rev.Replicas)
		}
		rev.Number, _ = strconv.ParseInt(rs.Annotations[revision.RevisionAnnotation], 10, 64)
		if at, err := time.Parse(time.RFC3339, rs.Annotations[revision.ScaleDownAtAnnotation]); err == nil {
			rev.ScaleDownAt = &at
		}
		obs.Revisions[h] = rev
	}
	if obs.Problem == nil {
		obs.Problem, err = r.missingReferences(ctx, ro)
	}
	return obs, err
}

// specProblem finds mistakes the CRD's validation cannot express.
func specProblem(ro *kultav1alpha1.Rollout) *Problem {
	sel, err := metav1.LabelSelectorAsSelector(ro.Spec.Selector.AsMeta())
	if err != nil {
		return &Problem{Reason: "InvalidSpec", Message: fmt.Sprintf("spec.selector: %v", err)}
	}
	if sel.Empty() {
		return &Problem{Reason: "InvalidSpec", Message: "spec.selector: must select something; an empty selector matches every Pod"}
	}
	if !sel.Matches(labels.Set(ro.Spec.Template.Metadata.Labels)) {
		return &Problem{Reason: "InvalidSpec", Message: fmt.Sprintf("spec.selector %q does not match spec.template.metadata.labels", sel.String())}
	}
	if ro.Spec.Strategy.Simple != nil {
		surge, unavailable, err := surgeAndUnavailable(&ro.Spec, ptr.Deref(ro.Spec.Replicas, 1))
		if err != nil {
			return &Problem{Reason: "InvalidSpec", Message: err.Error()}
		}
		if surge == 0 && unavailable == 0 && ptr.Deref(ro.Spec.Replicas, 1) > 0 {
			return &Problem{Reason: "InvalidSpec", Message: "spec.maxSurge and spec.maxUnavailable both resolve to 0: a rolling update could never start"}
		}
	}
	return nil
}

// ownedReplicaSets lists the ReplicaSets the Rollout controls, adopting orphans that match its
// selector and carry a pod-template hash.
func (r *Reconciler) ownedReplicaSets(ctx context.Context, ro *kultav1alpha1.Rollout) ([]appsv1.ReplicaSet, error) {
	var list appsv1.ReplicaSetList
	if err := r.List(ctx, &list, client.InNamespace(ro.Namespace), client.MatchingLabels(ro.Spec.Selector.MatchLabels)); err != nil {
		return nil, fmt.Errorf("listing ReplicaSets of Rollout %s/%s: %w", ro.Namespace, ro.Name, err)
	}
	var owned []appsv1.ReplicaSet
	for i := range list.Items {
		rs := &list.Items[i]
		ref := metav1.GetControllerOf(rs)
		switch {
		case ref != nil && ref.UID == ro.UID:
			owned = append(owned, *rs)
		case ref == nil && rs.Labels[kultav1alpha1.PodTemplateHashLabel] != "" && rs.DeletionTimestamp.IsZero():
			before := rs.DeepCopy()
			rs.OwnerReferences = append(rs.OwnerReferences, *metav1.NewControllerRef(ro, kultav1alpha1.GroupVersion.WithKind("Rollout")))
			if err := r.Patch(ctx, rs, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
				return nil, fmt.Errorf("adopting ReplicaSet %s/%s: %w", rs.Namespace, rs.Name, err)
			}
			owned = append(owned, *rs)
		}
	}
	return owned, nil
}

// currentHash hashes spec.template, moving past hashes whose ReplicaSet was built from another
// template (a collision) by raising status.collisionCount.
func (r *Reconciler) currentHash(ro *kultav1alpha1.Rollout, owned []appsv1.ReplicaSet) (string, *Problem, error) {
	digest, err := revision.Digest(&ro.Spec.Template)
	if err != nil {
		return "", nil, fmt.Errorf("rollout %s/%s: %w", ro.Namespace, ro.Name, err)
	}
	byName := map[string]*appsv1.ReplicaSet{}
	for i := range owned {
		byName[owned[i].Name] = &owned[i]
	}
	for range maxCollisions {
		count := ptr.Deref(ro.Status.CollisionCount, 0)
		hash, err := revision.Hash(&ro.Spec.Template, count)
		if err != nil {
			return "", nil, fmt.Errorf("rollout %s/%s: %w", ro.Namespace, ro.Name, err)
		}
		rs := byName[revision.Name(ro.Name, hash)]
		if rs == nil || rs.Annotations[revision.DigestAnnotation] == digest || rs.Annotations[revision.DigestAnnotation] == "" {
			return hash, nil, nil
		}
		ro.Status.CollisionCount = ptr.To(count + 1)
	}
	return "", &Problem{Reason: "HashCollision", Message: fmt.Sprintf("no free pod-template hash after %d collisions", maxCollisions)}, nil
}

// missingReferences reports the first Service or HTTPRoute the strategy names that does not
// exist.
func (r *Reconciler) missingReferences(ctx context.Context, ro *kultav1alpha1.Rollout) (*Problem, error) {
	for _, name := range serviceNamesOf(ro) {
		var svc corev1.Service
		err := r.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: name}, &svc)
		if apierrors.IsNotFound(err) {
			return &Problem{Reason: "ServiceNotFound", Message: fmt.Sprintf("Service %q (named in spec.strategy.%s) not found in namespace %s", name, strategyName(ro), ro.Namespace)}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("getting Service %s/%s: %w", ro.Namespace, name, err)
		}
	}
	for _, name := range routeNamesOf(ro) {
		var route gatewayv1.HTTPRoute
		err := r.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: name}, &route)
		if apierrors.IsNotFound(err) {
			return &Problem{Reason: "HTTPRouteNotFound", Message: fmt.Sprintf("HTTPRoute %q (named in spec.strategy.%s.trafficRouting.gatewayAPI.httpRoute) not found in namespace %s", name, strategyName(ro), ro.Namespace)}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("getting HTTPRoute %s/%s: %w", ro.Namespace, name, err)
		}
	}
	return nil, nil
}
