package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/metrics"
	"github.com/false-systems/kulta/internal/revision"
	"github.com/false-systems/kulta/internal/shard"
	"github.com/false-systems/kulta/providers"
)

// act applies a plan in the order that keeps users safe: new Pods first, then Service pins and
// traffic, then scale-downs and deletions.
func (r *Reconciler) act(ctx context.Context, ro *kultav1alpha1.Rollout, obs Observation, plan Plan) error {
	if obs.Problem != nil {
		return nil
	}
	if err := r.scale(ctx, ro, obs, plan, true); err != nil {
		return err
	}
	if err := r.scaleWorkload(ctx, ro, obs, plan, true); err != nil {
		return err
	}
	if drifted(obs, plan) {
		metrics.TrafficDriftCorrections.WithLabelValues(ro.Namespace, ro.Name).Inc()
		r.Recorder.Eventf(ro, nil, corev1.EventTypeWarning, "TrafficDriftCorrected", "Reconcile",
			"Routes carried weights %d/%d that KULTA did not set; restoring %d/%d",
			obs.Traffic.Weights.Stable, obs.Traffic.Weights.Canary, plan.Weights.Stable, plan.Weights.Canary)
	}
	// Traffic leaves a Service before the Service is pointed elsewhere, and reaches one only
	// after it points at the Pods meant to serve it: no weight ever rests on a Service whose
	// new selector has no ready endpoints yet.
	if routeFirst(ro, obs, plan) {
		if err := r.route(ctx, ro, plan); err != nil {
			return err
		}
		return r.finish(ctx, ro, obs, plan, r.pinServices(ctx, ro, plan.Services))
	}
	if err := r.pinServices(ctx, ro, plan.Services); err != nil {
		return err
	}
	return r.finish(ctx, ro, obs, plan, r.route(ctx, ro, plan))
}

// routeFirst reports whether the plan takes traffic away from the canary-side Service (less
// weight, or the header rule removed): then the routes move before any Service is repinned.
// A plan that points every role Service at one revision (a promotion, a rollback) pins them
// first: from then on every request reaches that revision whatever the routes say, whereas
// moving the routes first would send the users of a promoted canary back to the old stable
// Pods until the stable Service is repinned.
func routeFirst(ro *kultav1alpha1.Rollout, obs Observation, plan Plan) bool {
	if oneRevision(ro, plan.Services) != "" {
		return false
	}
	if len(plan.RemoveHeaderRoutes) > 0 {
		return true
	}
	return plan.Weights != nil && obs.Traffic != nil && obs.Traffic.Weights != nil && plan.Weights.Canary < obs.Traffic.Weights.Canary
}

// finish runs the second half of act, once the Services and routes were written (err says
// whether that worked): scale-downs and deletions (the scale-down
// times go with the status write).
func (r *Reconciler) finish(ctx context.Context, ro *kultav1alpha1.Rollout, obs Observation, plan Plan, err error) error {
	if err != nil {
		return err
	}
	if err := r.scale(ctx, ro, obs, plan, false); err != nil {
		return err
	}
	if err := r.scaleWorkload(ctx, ro, obs, plan, false); err != nil {
		return err
	}
	if err := r.movePodMetadata(ctx, ro, obs, plan); err != nil {
		return err
	}
	for _, hash := range plan.Delete {
		rs := &appsv1.ReplicaSet{}
		rs.Namespace, rs.Name = ro.Namespace, obs.Revisions[hash].Name
		if err := r.Delete(ctx, rs, client.PropagationPolicy("Background")); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting old ReplicaSet %s/%s: %w", rs.Namespace, rs.Name, err)
		}
	}
	return nil
}

// scaleWorkload applies the plan's scale of the adopted Deployment, recording the count it had
// before KULTA first scaled it: only an increase when up is true, only a decrease otherwise.
// A decrease comes after the Services were pinned, so the Deployment's Pods stop serving before
// they go.
func (r *Reconciler) scaleWorkload(ctx context.Context, ro *kultav1alpha1.Rollout, obs Observation, plan Plan, up bool) error {
	want, w := plan.Workload, obs.Workload
	if want == nil || w == nil || (want.Replicas > w.Replicas) != up {
		return nil
	}
	patch := map[string]any{"spec": map[string]any{"replicas": want.Replicas}}
	if w.Adopted == nil {
		patch["metadata"] = map[string]any{"annotations": map[string]string{kultav1alpha1.AdoptedReplicasAnnotation: strconv.Itoa(int(want.Adopted))}}
	}
	if err := r.mergePatch(ctx, &appsv1.Deployment{}, ro.Namespace, w.Name, patch); err != nil {
		return fmt.Errorf("scaling Deployment %s/%s (spec.workloadRef) to %d: %w", ro.Namespace, w.Name, want.Replicas, err)
	}
	return nil
}

// scale creates the current revision's ReplicaSet when missing and applies the planned scales:
// only increases when up is true, only decreases otherwise.
func (r *Reconciler) scale(ctx context.Context, ro *kultav1alpha1.Rollout, obs Observation, plan Plan, up bool) error {
	hashes := make([]string, 0, len(plan.Replicas))
	for h := range plan.Replicas {
		hashes = append(hashes, h)
	}
	sort.Strings(hashes)
	for _, hash := range hashes {
		want := plan.Replicas[hash]
		rev := obs.Revisions[hash]
		if rev == nil {
			if !up || hash != obs.Hash {
				continue
			}
			if err := r.createRevision(ctx, ro, obs, plan.NewRole, want); err != nil {
				return err
			}
			continue
		}
		// spec.minReadySeconds follows the Rollout's, as a Deployment's ReplicaSets do; it is
		// written with the first scale-up, or on its own.
		minReady := up && rev.MinReadySeconds != ro.Spec.MinReadySeconds
		scaled := (up && want > rev.Replicas) || (!up && want < rev.Replicas)
		if !scaled && !minReady {
			continue
		}
		fields := map[string]int32{}
		if scaled {
			fields["replicas"] = want
		}
		if minReady {
			fields["minReadySeconds"] = ro.Spec.MinReadySeconds
		}
		if err := r.mergePatch(ctx, &appsv1.ReplicaSet{}, ro.Namespace, rev.Name, map[string]any{"spec": fields}); err != nil {
			return fmt.Errorf("scaling ReplicaSet %s/%s to %d: %w", ro.Namespace, rev.Name, want, err)
		}
	}
	return nil
}

func (r *Reconciler) createRevision(ctx context.Context, ro *kultav1alpha1.Rollout, obs Observation, role revision.Role, replicas int32) error {
	digest, err := revision.Digest(&ro.Spec.Template)
	if err != nil {
		return fmt.Errorf("rollout %s/%s: %w", ro.Namespace, ro.Name, err)
	}
	var number int64
	for _, rev := range obs.Revisions {
		number = max(number, rev.Number)
	}
	rs, err := revision.Build(ro, obs.Hash, digest, role, replicas, number+1, ro.Status.StablePodTemplateHash)
	if err != nil {
		return fmt.Errorf("rollout %s/%s: %w", ro.Namespace, ro.Name, err)
	}
	if r.ShardKey != "" {
		// The shard's cache holds only the ReplicaSets marked for it.
		rs.Labels[shard.Label(r.ShardKey)] = ""
	}
	if err := r.Create(ctx, rs); err != nil {
		return fmt.Errorf("creating ReplicaSet %s/%s: %w", rs.Namespace, rs.Name, err)
	}
	return nil
}

// pinServices points each Service at one revision: its selector keeps the user's keys, loses
// rollouts.kulta.io/type (a promoted canary's Pods keep the value they were created with) and
// gains the revision's pod-template hash.
func (r *Reconciler) pinServices(ctx context.Context, ro *kultav1alpha1.Rollout, pins map[string]string) error {
	names := make([]string, 0, len(pins))
	for n := range pins {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		svc := &corev1.Service{}
		if err := r.Get(ctx, types.NamespacedName{Namespace: ro.Namespace, Name: name}, svc); err != nil {
			return fmt.Errorf("getting Service %s/%s: %w", ro.Namespace, name, err)
		}
		want := maps.Clone(svc.Spec.Selector)
		if want == nil {
			want = map[string]string{}
		}
		delete(want, kultav1alpha1.RolloutTypeLabel)
		want[kultav1alpha1.PodTemplateHashLabel] = pins[name]
		_, recorded := svc.Annotations[kultav1alpha1.OriginalSelectorAnnotation]
		if maps.Equal(want, svc.Spec.Selector) && recorded {
			continue
		}
		before := svc.DeepCopy()
		if !recorded {
			// Kept so that deleting the Rollout can give the user's selector back.
			original, err := originalSelector(svc)
			if err != nil {
				return err
			}
			raw, err := json.Marshal(original)
			if err != nil {
				return fmt.Errorf("recording the selector of Service %s/%s: %w", ro.Namespace, name, err)
			}
			if svc.Annotations == nil {
				svc.Annotations = map[string]string{}
			}
			svc.Annotations[kultav1alpha1.OriginalSelectorAnnotation] = string(raw)
		}
		svc.Spec.Selector = want
		if err := r.Patch(ctx, svc, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return fmt.Errorf("pinning Service %s/%s to revision %s: %w", ro.Namespace, name, pins[name], err)
		}
	}
	return nil
}

// drifted reports whether the routes carry weights that neither KULTA's last plan nor this
// one chose: someone else (a GitOps sync, a kubectl edit) changed them.
func drifted(obs Observation, plan Plan) bool {
	if obs.Traffic == nil || obs.Traffic.Weights == nil || plan.Weights == nil || *obs.Traffic.Weights == *plan.Weights {
		return false
	}
	before, after := obs.Rollout.Status, plan.Status
	if before.CurrentPodTemplateHash != after.CurrentPodTemplateHash ||
		before.StablePodTemplateHash != after.StablePodTemplateHash ||
		!ptr.Equal(before.CurrentStepIndex, after.CurrentStepIndex) ||
		!ptr.Equal(before.CurrentWeight, after.CurrentWeight) {
		return false
	}
	// While a canary step's Pods start, the routes keep the previous step's weight; moving
	// on from it once they are ready is the step itself, not a correction.
	if c := obs.Rollout.Spec.Strategy.Canary; c != nil && before.CurrentStepIndex != nil {
		held := min(previousWeight(c.Steps, *before.CurrentStepIndex), ptr.Deref(before.CurrentWeight, 0))
		if *obs.Traffic.Weights == (providers.Weights{Stable: 100 - held, Canary: held}) {
			return false
		}
	}
	return true
}

// route applies the plan's traffic through the TrafficRouter. The routers see the Rollout with
// the plan's status, so that what they derive from it (the revisions' hashes a provider labels
// its subsets with) is the plan's, not the last reconcile's.
func (r *Reconciler) route(ctx context.Context, ro *kultav1alpha1.Rollout, plan Plan) error {
	if trafficRouting(ro) == nil {
		return nil
	}
	ro = ro.DeepCopy()
	ro.Status = plan.Status
	router := r.router()
	for _, hr := range plan.HeaderRoutes {
		if err := router.SetHeaderRoute(ctx, ro, hr); err != nil {
			return fmt.Errorf("setting header route %s: %w", hr.Name, err)
		}
	}
	if plan.Weights != nil {
		if err := router.SetWeights(ctx, ro, *plan.Weights); err != nil {
			return fmt.Errorf("setting weights %d/%d: %w", plan.Weights.Stable, plan.Weights.Canary, err)
		}
	}
	for _, name := range plan.RemoveHeaderRoutes {
		if err := router.RemoveHeaderRoute(ctx, ro, name); err != nil {
			return fmt.Errorf("removing header route %s: %w", name, err)
		}
	}
	return nil
}

// movePodMetadata gives the stable revision's Pods spec.stableMetadata and the new revision's
// spec.canaryMetadata where they carry another role's (a promotion) or an older version of
// theirs: first on the ReplicaSet's Pod template, for the Pods it creates from then on, then on
// each of its running Pods, by patches that touch only those keys, so no Pod restarts. Other
// revisions (on their way to zero) keep what they have.
func (r *Reconciler) movePodMetadata(ctx context.Context, ro *kultav1alpha1.Rollout, obs Observation, plan Plan) error {
	roles := map[string]revision.Role{}
	stable := plan.Status.StablePodTemplateHash
	switch stable {
	case "":
		// No revision is stable yet (the first one is starting): the current one keeps the
		// role it was created with.
		roles[obs.Hash] = plan.NewRole
	case obs.Hash:
		roles[stable] = revision.RoleStable
	default:
		roles[stable] = revision.RoleStable
		roles[obs.Hash] = revision.RoleCanary
	}
	hashes := make([]string, 0, len(roles))
	for h := range roles {
		hashes = append(hashes, h)
	}
	sort.Strings(hashes)
	for _, hash := range hashes {
		rev := obs.Revisions[hash]
		want, ok := revision.MetadataFor(ro, roles[hash])
		if rev == nil || (!ok && rev.PodMetadata == "") {
			continue
		}
		encoded, err := want.Encode()
		if err != nil {
			return fmt.Errorf("rollout %s/%s: %w", ro.Namespace, ro.Name, err)
		}
		if !ok {
			// Neither field is set any more: take off what the Pods carry.
			want, encoded = revision.Metadata{}, ""
		}
		if encoded == rev.PodMetadata {
			continue
		}
		from := revision.AppliedMetadata(map[string]string{revision.PodMetadataAnnotation: rev.PodMetadata})
		own, err := r.revisionTemplate(ctx, ro.Namespace, rev.Name)
		if err != nil {
			return err
		}
		labels, annotations := revision.MetadataChange(own, from, want)
		// The Pod template first, so the Pods the ReplicaSet creates from now on carry the new
		// metadata; then the running Pods; then the record, last, so that a failure before it
		// is retried in full by the next reconcile.
		template := map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{"labels": labels, "annotations": annotations}}}}
		if err := r.mergePatch(ctx, &appsv1.ReplicaSet{}, ro.Namespace, rev.Name, template); err != nil {
			return fmt.Errorf("moving %s Pod metadata onto ReplicaSet %s/%s: %w", roles[hash], ro.Namespace, rev.Name, err)
		}
		if err := r.relabelPods(ctx, ro.Namespace, hash, rev.Name, map[string]any{"metadata": map[string]any{"labels": labels, "annotations": annotations}}); err != nil {
			return fmt.Errorf("moving %s Pod metadata onto the Pods of ReplicaSet %s/%s: %w", roles[hash], ro.Namespace, rev.Name, err)
		}
		record := any(encoded)
		if encoded == "" {
			record = nil
		}
		done := map[string]any{"metadata": map[string]any{"annotations": map[string]any{revision.PodMetadataAnnotation: record}}}
		if err := r.mergePatch(ctx, &appsv1.ReplicaSet{}, ro.Namespace, rev.Name, done); err != nil {
			return fmt.Errorf("recording %s Pod metadata on ReplicaSet %s/%s: %w", roles[hash], ro.Namespace, rev.Name, err)
		}
	}
	return nil
}

// revisionTemplate is the metadata of the Rollout template ReplicaSet name was built from (its
// revision.TemplateAnnotation, which the cache drops, so it is read from the API server): the
// values a key of role metadata goes back to when the role no longer sets it.
func (r *Reconciler) revisionTemplate(ctx context.Context, namespace, name string) (kultav1alpha1.PodTemplateMetadata, error) {
	rs := &appsv1.ReplicaSet{}
	if err := r.live().Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, rs); err != nil {
		return kultav1alpha1.PodTemplateMetadata{}, fmt.Errorf("reading ReplicaSet %s/%s: %w", namespace, name, err)
	}
	var template kultav1alpha1.PodTemplate
	if raw := rs.Annotations[revision.TemplateAnnotation]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &template); err != nil {
			return kultav1alpha1.PodTemplateMetadata{}, fmt.Errorf("reading annotation %s of ReplicaSet %s/%s: %w", revision.TemplateAnnotation, namespace, name, err)
		}
	}
	return template.Metadata, nil
}

// relabelPods applies patch to every Pod that ReplicaSet owner (of revision hash) controls,
// read from the API server (KULTA caches no Pods). A Pod gone meanwhile is no error.
func (r *Reconciler) relabelPods(ctx context.Context, namespace, hash, owner string, patch map[string]any) error {
	var pods corev1.PodList
	if err := r.live().List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabels{kultav1alpha1.PodTemplateHashLabel: hash}); err != nil {
		return fmt.Errorf("listing Pods: %w", err)
	}
	for i := range pods.Items {
		pod := &pods.Items[i]
		ref := metav1.GetControllerOf(pod)
		if !pod.DeletionTimestamp.IsZero() || ref == nil || ref.Kind != "ReplicaSet" || ref.Name != owner {
			continue
		}
		if err := r.mergePatch(ctx, &corev1.Pod{}, namespace, pod.Name, patch); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	return nil
}

// live reads from the API server, past the cache: for what the cache drops or never holds.
func (r *Reconciler) live() client.Reader {
	if r.APIReader == nil {
		return r.Client
	}
	return r.APIReader
}

// mergePatch sends patch as a JSON merge patch to the object of obj's kind named namespace/name.
func (r *Reconciler) mergePatch(ctx context.Context, obj client.Object, namespace, name string, patch map[string]any) error {
	body, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("encoding patch: %w", err)
	}
	obj.SetNamespace(namespace)
	obj.SetName(name)
	if err := r.Patch(ctx, obj, client.RawPatch(types.MergePatchType, body)); err != nil {
		return fmt.Errorf("patching %s: %w", name, err)
	}
	return nil
}
