package rollout

import (
	"context"
	"errors"
	"fmt"
	"sort"
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

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/revision"
	"github.com/false-systems/kulta/providers"
)

const (
	// maxCollisions bounds the search for a free pod-template hash.
	maxCollisions = 8
)

func serviceNamesOf(obj client.Object) []string {
	ro, ok := rolloutOf(obj)
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

// workloadNameOf indexes a Rollout by the Deployment its spec.workloadRef names.
func workloadNameOf(obj client.Object) []string {
	ro, ok := rolloutOf(obj)
	if !ok || ro.Spec.WorkloadRef == nil {
		return nil
	}
	return []string{ro.Spec.WorkloadRef.Name}
}

func serviceRolesStable(ro *kultav1alpha1.Rollout) string { s, _ := serviceRoles(ro); return s }
func serviceRolesNew(ro *kultav1alpha1.Rollout) string    { _, n := serviceRoles(ro); return n }

// providerKeysOf indexes a Rollout by the keys of the objects its traffic providers read.
func (r *Reconciler) providerKeysOf(obj client.Object) []string {
	ro, ok := rolloutOf(obj)
	if !ok {
		return nil
	}
	var keys []string
	for _, p := range providers.Using(r.Providers, trafficRouting(ro)) {
		for _, w := range p.Watches {
			keys = append(keys, w.RolloutKeys(ro)...)
		}
	}
	return keys
}

// rolloutsReading maps an object a provider watches to the Rollouts, in any namespace, that
// read it.
func (r *Reconciler) rolloutsReading(w providers.Watch) func(context.Context, client.Object) []reconcile.Request {
	return func(_ context.Context, obj client.Object) []reconcile.Request {
		return requests(r.index.lookup(byProviderKey, w.ObjectKeys(obj)...))
	}
}

// rolloutsNaming maps a Service or a Deployment to the Rollouts in its namespace that name it
// (as kind says).
func (r *Reconciler) rolloutsNaming(kind indexKind) func(context.Context, client.Object) []reconcile.Request {
	return func(_ context.Context, obj client.Object) []reconcile.Request {
		return requests(r.index.lookup(kind, obj.GetNamespace()+"/"+obj.GetName()))
	}
}

func requests(names []types.NamespacedName) []reconcile.Request {
	reqs := make([]reconcile.Request, len(names))
	for i, name := range names {
		reqs[i] = reconcile.Request{NamespacedName: name}
	}
	return reqs
}

// observe gathers what the planner needs: the current revision's hash, the Rollout's
// ReplicaSets (adopting orphans that carry its labels), and any problem the user must fix.
func (r *Reconciler) observe(ctx context.Context, ro *kultav1alpha1.Rollout) (Observation, error) {
	obs := Observation{Rollout: ro, Now: r.Clock.Now(), Revisions: map[string]*Revision{}}
	workload, prob, err := r.resolveWorkload(ctx, ro)
	if err != nil {
		return obs, err
	}
	obs.Workload = workload
	if prob != nil {
		obs.Problem = prob
		return obs, nil
	}
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
		rev.MinReadySeconds = rs.Spec.MinReadySeconds
		rev.PodMetadata = rs.Annotations[revision.PodMetadataAnnotation]
		if rs.Status.ObservedGeneration < rs.Generation {
			// The ReplicaSet controller has not seen the latest scale yet: its counts are stale.
			rev.Ready = min(rev.Ready, rev.Replicas)
			rev.Available = min(rev.Available, rev.Replicas)
		}
		rev.Number, _ = strconv.ParseInt(rs.Annotations[revision.RevisionAnnotation], 10, 64)
		rev.ScaleDownAt = scaleDownTime(&ro.Status, h)
		if at, err := time.Parse(time.RFC3339, rs.Annotations[revision.ScaleDownAtAnnotation]); err == nil && rev.ScaleDownAt == nil {
			rev.ScaleDownAt = &at // marked by an earlier version of KULTA
		}
		obs.Revisions[h] = rev
	}
	if obs.Problem == nil {
		obs.Problem, err = r.missingReferences(ctx, ro)
	}
	if obs.Problem == nil && err == nil {
		obs.Traffic, obs.Problem, err = r.verifyTraffic(ctx, ro)
	}
	return obs, err
}

// resolveWorkload reads the Deployment spec.workloadRef names and gives ro, for the rest of this
// reconcile, the Deployment's Pod template and, when spec.selector is not set, its selector: the
// revision hash, the ReplicaSets and the status then follow the Deployment. ro is the
// reconcile's own copy, and every write of a Rollout is a patch of the fields it changes (its
// status, its annotations, its finalizer), so the resolved template is never written back.
func (r *Reconciler) resolveWorkload(ctx context.Context, ro *kultav1alpha1.Rollout) (*Workload, *Problem, error) {
	ref := ro.Spec.WorkloadRef
	if ref == nil {
		return nil, nil, nil
	}
	var d appsv1.Deployment
	if err := r.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: ref.Name}, &d); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &Problem{Reason: "WorkloadNotFound", Message: fmt.Sprintf("Deployment %q (spec.workloadRef.name) not found in namespace %s", ref.Name, ro.Namespace)}, nil
		}
		return nil, nil, fmt.Errorf("getting Deployment %s/%s: %w", ro.Namespace, ref.Name, err)
	}
	if d.Spec.Selector == nil {
		return nil, &Problem{Reason: "InvalidWorkload", Message: fmt.Sprintf("Deployment %s/%s (spec.workloadRef.name) has no selector", d.Namespace, d.Name)}, nil
	}
	ro.Spec.Template = kultav1alpha1.PodTemplate{
		Metadata: kultav1alpha1.PodTemplateMetadata{Labels: d.Spec.Template.Labels, Annotations: d.Spec.Template.Annotations},
		Spec:     d.Spec.Template.Spec,
	}
	if ro.Spec.Selector == nil {
		ro.Spec.Selector = &kultav1alpha1.LabelSelector{MatchLabels: d.Spec.Selector.MatchLabels, MatchExpressions: d.Spec.Selector.MatchExpressions}
	}
	w := &Workload{Name: d.Name, Replicas: ptr.Deref(d.Spec.Replicas, 1), Available: d.Status.AvailableReplicas}
	if d.Status.ObservedGeneration < d.Generation {
		// The Deployment controller has not seen the latest scale yet.
		w.Available = min(w.Available, w.Replicas)
	}
	adopted, err := adoptedReplicas(&d)
	if err != nil {
		return nil, &Problem{Reason: "InvalidWorkload", Message: err.Error()}, nil
	}
	w.Adopted = adopted
	return w, nil, nil
}

// adoptedReplicas is the replica count d had before KULTA first scaled it down
// (kultav1alpha1.AdoptedReplicasAnnotation), nil when KULTA never has; an annotation that is no
// count is an error naming it.
func adoptedReplicas(d *appsv1.Deployment) (*int32, error) {
	raw, ok := d.Annotations[kultav1alpha1.AdoptedReplicasAnnotation]
	if !ok {
		return nil, nil
	}
	n, err := strconv.ParseInt(raw, 10, 32)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("deployment %s/%s: annotation %s is %q, not a replica count", d.Namespace, d.Name, kultav1alpha1.AdoptedReplicasAnnotation, raw)
	}
	return ptr.To(int32(n)), nil
}

// verifyTraffic reads what the routes carry. A route the user must fix is a Problem.
func (r *Reconciler) verifyTraffic(ctx context.Context, ro *kultav1alpha1.Rollout) (*providers.Verification, *Problem, error) {
	if trafficRouting(ro) == nil {
		return nil, nil, nil
	}
	v, err := r.router().Verify(ctx, ro)
	var notUsable *providers.RouteError
	switch {
	case errors.As(err, &notUsable):
		return nil, &Problem{Reason: notUsable.Reason, Message: notUsable.Message}, nil
	case errors.Is(err, providers.ErrRouteNotUsable):
		return nil, &Problem{Reason: "RouteNotUsable", Message: err.Error()}, nil
	case err != nil:
		return nil, nil, fmt.Errorf("reading the routes of Rollout %s/%s: %w", ro.Namespace, ro.Name, err)
	}
	return &v, nil, nil
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
		if ref := ro.Spec.WorkloadRef; ref != nil {
			return &Problem{Reason: "InvalidSpec", Message: fmt.Sprintf("spec.selector %q does not match the Pod template labels of Deployment %q (spec.workloadRef.name)", sel.String(), ref.Name)}
		}
		return &Problem{Reason: "InvalidSpec", Message: fmt.Sprintf("spec.selector %q does not match spec.template.metadata.labels", sel.String())}
	}
	// The API server checks these against spec.selector; with workloadRef and no
	// spec.selector, the selector is the Deployment's, known only here.
	for _, md := range []struct {
		field    string
		metadata *kultav1alpha1.PodMetadata
	}{{"canaryMetadata", ro.Spec.CanaryMetadata}, {"stableMetadata", ro.Spec.StableMetadata}} {
		if md.metadata == nil {
			continue
		}
		for _, key := range sortedKeys(md.metadata.Labels) {
			if selects(ro.Spec.Selector, key) {
				return &Problem{Reason: "InvalidSpec", Message: fmt.Sprintf("spec.%s.labels must not set %q: the Rollout's selector selects on it", md.field, key)}
			}
		}
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
// selector and carry a pod-template hash. Both lists are read through replicaSetControllerIndex:
// a Rollout's reconcile reads its own few ReplicaSets (and the orphans), not every one of its
// namespace, which with a thousand Rollouts and their old revisions in one namespace would be
// tens of thousands each time.
func (r *Reconciler) ownedReplicaSets(ctx context.Context, ro *kultav1alpha1.Rollout) ([]appsv1.ReplicaSet, error) {
	selector := client.MatchingLabels(ro.Spec.Selector.MatchLabels)
	var controlled, orphans appsv1.ReplicaSetList
	if err := r.List(ctx, &controlled, client.InNamespace(ro.Namespace), selector,
		client.MatchingFields{replicaSetControllerIndex: string(ro.UID)}); err != nil {
		return nil, fmt.Errorf("listing ReplicaSets of Rollout %s/%s: %w", ro.Namespace, ro.Name, err)
	}
	if err := r.List(ctx, &orphans, client.InNamespace(ro.Namespace), selector,
		client.MatchingFields{replicaSetControllerIndex: orphaned}); err != nil {
		return nil, fmt.Errorf("listing ReplicaSets without a controller for Rollout %s/%s: %w", ro.Namespace, ro.Name, err)
	}
	owned := controlled.Items
	for i := range orphans.Items {
		rs := &orphans.Items[i]
		if rs.Labels[kultav1alpha1.PodTemplateHashLabel] == "" || !rs.DeletionTimestamp.IsZero() {
			continue
		}
		before := rs.DeepCopy()
		rs.OwnerReferences = append(rs.OwnerReferences, *metav1.NewControllerRef(ro, kultav1alpha1.GroupVersion.WithKind("Rollout")))
		if err := r.Patch(ctx, rs, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return nil, fmt.Errorf("adopting ReplicaSet %s/%s: %w", rs.Namespace, rs.Name, err)
		}
		owned = append(owned, *rs)
	}
	return owned, nil
}

// replicaSetControllerIndex is the cache's index of ReplicaSets by their controller's UID
// (controllerUID), which SetupWithManager adds.
const replicaSetControllerIndex = "kulta.io/controller-uid"

// orphaned is the key replicaSetControllerIndex files ReplicaSets without a controller under,
// which no UID is.
const orphaned = "<orphaned>"

// controllerUID is the key of obj, a ReplicaSet, in replicaSetControllerIndex: its controller's
// UID, or orphaned.
func controllerUID(obj client.Object) []string {
	if ref := metav1.GetControllerOfNoCopy(obj); ref != nil {
		return []string{string(ref.UID)}
	}
	return []string{orphaned}
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

// missingReferences reports the first Service the strategy names that does not exist. Routes
// are checked by the TrafficRouter (verifyTraffic).
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
	return nil, nil
}

// selects reports whether sel has a requirement on label key.
func selects(sel *kultav1alpha1.LabelSelector, key string) bool {
	if _, ok := sel.MatchLabels[key]; ok {
		return true
	}
	for _, e := range sel.MatchExpressions {
		if e.Key == key {
			return true
		}
	}
	return false
}

// sortedKeys returns m's keys in order, so that the first problem found is always the same.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// scaleDownTime is when revision hash is to be scaled to zero, as status.scaleDowns records it,
// or nil.
func scaleDownTime(st *kultav1alpha1.RolloutStatus, hash string) *time.Time {
	for _, sd := range st.ScaleDowns {
		if sd.PodTemplateHash == hash {
			return ptr.To(sd.At.Time)
		}
	}
	return nil
}
