package rollout

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/revision"
)

// CacheOptions are the informer cache settings the reconciler is built for. What KULTA never
// reads is dropped before it is stored, since the cache holds every object it watches for as
// long as the controller runs:
//   - managedFields, from every object;
//   - from ReplicaSets, the pod template and selector, the copy of the Rollout template kept
//     in an annotation, and status conditions. KULTA reads a ReplicaSet's labels, revision,
//     digest and scale-down annotations, owner, replicas and status counts; it creates
//     ReplicaSets from the Rollout, and writes them with patches that name only the fields
//     they change, so nothing dropped here is ever written back.
//
// Only ReplicaSets carrying KULTA's pod-template-hash label are cached: the ones it created,
// and the only ones it adopts. A cluster's Deployments' ReplicaSets are not held.
func CacheOptions() (cache.Options, error) {
	hashed, err := labels.NewRequirement(kultav1alpha1.PodTemplateHashLabel, selection.Exists, nil)
	if err != nil {
		return cache.Options{}, fmt.Errorf("selecting ReplicaSets by %s: %w", kultav1alpha1.PodTemplateHashLabel, err)
	}
	return cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&appsv1.ReplicaSet{}: {Label: labels.NewSelector().Add(*hashed), Transform: trimReplicaSet},
		},
	}, nil
}

// trimReplicaSet drops from a cached ReplicaSet what the reconciler never reads.
func trimReplicaSet(obj any) (any, error) {
	rs, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		// A tombstone of a deleted object carries what was cached, already trimmed.
		if _, tomb := obj.(toolscache.DeletedFinalStateUnknown); tomb {
			return obj, nil
		}
		return nil, fmt.Errorf("trimming a cached ReplicaSet: got %T", obj)
	}
	rs.ManagedFields = nil
	rs.Spec.Template = corev1.PodTemplateSpec{}
	rs.Spec.Selector = nil
	rs.Status.Conditions = nil
	delete(rs.Annotations, revision.TemplateAnnotation)
	return rs, nil
}
