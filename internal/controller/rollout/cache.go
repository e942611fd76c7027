package rollout

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/revision"
	"github.com/false-systems/kulta/providers"
)

// CacheOptions are the informer cache settings the reconciler is built for. What KULTA never
// reads is dropped before it is stored, since the cache holds every object it watches for as
// long as the controller runs:
//   - managedFields, from every object;
//   - from ReplicaSets, the pod template and selector, the copy of the Rollout template kept
//     in an annotation, and status conditions. KULTA reads a ReplicaSet's labels, revision,
//     digest and scale-down annotations, owner, replicas and status counts; it creates
//     ReplicaSets from the Rollout, and writes them with patches that name only the fields
//     they change, so nothing dropped here is ever written back. What is left is held packed
//     (packedReplicaSet), without the room a ReplicaSet keeps for its Pod template: old
//     revisions stay cached up to revisionHistoryLimit;
//   - from Services, all but their metadata (without annotations but KULTA's own) and selector: KULTA checks
//     a Service exists and patches its selector, with the resourceVersion as precondition.
//     What is left is held packed (packedService), without the room a Service keeps for the
//     rest of its spec and status;
//   - from Deployments, annotations but KULTA's own, the strategy and status conditions:
//     KULTA adopts a Deployment's template and selector and patches its replicas;
//   - from Rollouts, the last-applied-configuration annotation `kubectl apply` keeps, a second
//     copy of the spec; KULTA writes Rollouts only with patches of what it changes. What is
//     left is held packed (packedRollout): its metadata as packedMeta, its spec and status as JSON,
//     about three fifths of the typed Rollout's size (BenchmarkCachedRollout);
//   - from HTTPRoutes and GRPCRoutes, what gatewayapi.TrimRoute drops: annotations, hostnames
//     and the parents' conditions but for Accepted and ResolvedRefs (their status, generation,
//     and reason and message when not True). What is left is held packed, its metadata typed
//     and the rest as JSON, about a sixth of an unstructured object's size; a read from the
//     cache unpacks it. The router decides from the cached copy and writes a patch of what it
//     changed, with the copy's resourceVersion as a precondition. Istio's objects are trimmed
//     and packed the same way by their provider.
//
// Only ReplicaSets carrying KULTA's pod-template-hash label are cached: the ones it created,
// and the only ones it adopts. A cluster's Deployments' ReplicaSets are not held.
func CacheOptions(ps ...providers.Provider) (cache.Options, error) {
	hashed, err := labels.NewRequirement(kultav1alpha1.PodTemplateHashLabel, selection.Exists, nil)
	if err != nil {
		return cache.Options{}, fmt.Errorf("selecting ReplicaSets by %s: %w", kultav1alpha1.PodTemplateHashLabel, err)
	}
	return cache.Options{
		DefaultTransform: trimDefault(ps),
		ByObject: map[client.Object]cache.ByObject{
			&appsv1.ReplicaSet{}:     {Label: labels.NewSelector().Add(*hashed), Transform: packReplicaSet},
			&corev1.Service{}:        {Transform: packService},
			&appsv1.Deployment{}:     {Transform: trimDeployment},
			&kultav1alpha1.Rollout{}: {Transform: packRollout},
		},
	}, nil
}

// SelectRollouts narrows the Rollouts opts (from CacheOptions) caches, and so the Rollouts the
// reconciler sees, to those selector matches: a shard's share. The objects those Rollouts use
// are narrowed apart, by package shard and only for a shard key (the reconciler's ShardKey),
// since they carry no label a selector of Rollouts could match. A nil or empty selector leaves
// opts as they are.
func SelectRollouts(opts *cache.Options, selector labels.Selector) error {
	if selector == nil || selector.Empty() {
		return nil
	}
	for obj, by := range opts.ByObject {
		if _, ok := obj.(*kultav1alpha1.Rollout); ok {
			by.Label = selector
			opts.ByObject[obj] = by
			return nil
		}
	}
	return fmt.Errorf("the cache options have no entry for Rollouts to select from")
}

// The trims run on each object the informers receive (never on tombstones), and keep what
// they are given when run twice.

// trimDefault drops managedFields from every object, and lets each provider trim its own
// objects. Those are trimmed here rather than by object, since a provider's kinds are watched
// only where the API server serves them.
func trimDefault(ps []providers.Provider) toolscache.TransformFunc {
	return func(obj any) (any, error) {
		for _, p := range ps {
			if p.Trim == nil {
				continue
			}
			if trimmed, ok := p.Trim(obj); ok {
				return trimmed, nil
			}
		}
		return stripManagedFields(obj)
	}
}

var stripManagedFields = cache.TransformStripManagedFields()

// trimmer builds a cache transform for objects of type T: it drops managedFields, then lets
// trim drop the rest. Another type is an error naming kind.
func trimmer[T client.Object](kind string, trim func(T)) toolscache.TransformFunc {
	return func(obj any) (any, error) {
		o, ok := obj.(T)
		if !ok {
			return nil, fmt.Errorf("trimming a cached %s: got %T", kind, obj)
		}
		o.SetManagedFields(nil)
		trim(o)
		return o, nil
	}
}

// trimReplicaSet drops from a cached ReplicaSet what the reconciler never reads.
var trimReplicaSet = trimmer("ReplicaSet", func(rs *appsv1.ReplicaSet) {
	rs.Spec.Template = corev1.PodTemplateSpec{}
	rs.Spec.Selector = nil
	rs.Status.Conditions = nil
	delete(rs.Annotations, revision.TemplateAnnotation)
})

// packReplicaSet is the cache's transform of ReplicaSets: trimReplicaSet, then packed. A
// ReplicaSet packed already is kept as it is.
func packReplicaSet(obj any) (any, error) {
	if p, ok := obj.(*packedReplicaSet); ok {
		return p, nil
	}
	trimmed, err := trimReplicaSet(obj)
	if err != nil {
		return nil, err
	}
	rs := trimmed.(*appsv1.ReplicaSet)
	return &packedReplicaSet{TypeMeta: rs.TypeMeta, packedMeta: packMeta(rs.ObjectMeta), replicas: rs.Spec.Replicas,
		minReadySeconds: rs.Spec.MinReadySeconds, status: rs.Status}, nil
}

// packedReplicaSet is how the cache holds a ReplicaSet: what trimReplicaSet keeps of it, in a
// struct of its own. A ReplicaSet's struct keeps room for its Pod template (824 of its 1,168
// bytes) even when the template is dropped, and a Rollout keeps up to revisionHistoryLimit
// old revisions cached.
//
// A cache reader hands out a deep copy of what the cache holds (DeepCopyObject), and the copy
// of a packedReplicaSet is the ReplicaSet it holds: reads asking for an *appsv1.ReplicaSet get
// one, as trimReplicaSet left it. Event handlers and predicates read only its metadata, which
// it holds as packedMeta.
type packedReplicaSet struct {
	metav1.TypeMeta
	packedMeta
	replicas        *int32
	minReadySeconds int32
	status          appsv1.ReplicaSetStatus
}

// DeepCopyObject returns the ReplicaSet p holds (see packedReplicaSet).
func (p *packedReplicaSet) DeepCopyObject() runtime.Object {
	rs := &appsv1.ReplicaSet{TypeMeta: p.TypeMeta}
	p.unpackInto(&rs.ObjectMeta)
	if p.replicas != nil {
		rs.Spec.Replicas = ptr.To(*p.replicas)
	}
	rs.Spec.MinReadySeconds = p.minReadySeconds
	p.status.DeepCopyInto(&rs.Status)
	return rs
}

// trimService drops from a cached Service all but what the reconciler reads: its metadata,
// without annotations but KULTA's record of the user's selector, and its selector.
var trimService = trimmer("Service", func(svc *corev1.Service) {
	original, recorded := svc.Annotations[kultav1alpha1.OriginalSelectorAnnotation]
	svc.Annotations = nil
	if recorded {
		svc.Annotations = map[string]string{kultav1alpha1.OriginalSelectorAnnotation: original}
	}
	svc.Spec = corev1.ServiceSpec{Selector: svc.Spec.Selector}
	svc.Status = corev1.ServiceStatus{}
})

// packService is the cache's transform of Services: trimService, then packed. A Service
// packed already is kept as it is.
func packService(obj any) (any, error) {
	if p, ok := obj.(*packedService); ok {
		return p, nil
	}
	trimmed, err := trimService(obj)
	if err != nil {
		return nil, err
	}
	svc := trimmed.(*corev1.Service)
	return &packedService{TypeMeta: svc.TypeMeta, packedMeta: packMeta(svc.ObjectMeta), selector: pairsOf(svc.Spec.Selector)}, nil
}

// packedService is how the cache holds a Service: what trimService keeps of it, its metadata
// and selector, in a struct of its own. A Service's struct keeps room for every field of its
// spec and status although the trim leaves them empty (BenchmarkCachedService: 0.7 KiB
// packed against 1.9 KiB), and every Rollout names two Services.
//
// Its copy (DeepCopyObject), which a cache read hands out, is the trimmed *corev1.Service.
// Event handlers read only its metadata. Its metadata is held as packedMeta, and its
// selector as pairs too.
type packedService struct {
	metav1.TypeMeta
	packedMeta
	selector pairs
}

// DeepCopyObject returns the Service p holds (see packedService).
func (p *packedService) DeepCopyObject() runtime.Object {
	svc := &corev1.Service{TypeMeta: p.TypeMeta}
	p.unpackInto(&svc.ObjectMeta)
	svc.Spec.Selector = p.selector.toMap()
	return svc
}

// trimDeployment drops from a cached Deployment what the reconciler never reads: annotations
// but KULTA's record of its replica count, the strategy, and status conditions. Its Pod
// template and selector are what a Rollout adopting it runs; KULTA writes Deployments only with
// patches of their replicas and that annotation.
var trimDeployment = trimmer("Deployment", func(d *appsv1.Deployment) {
	adopted, recorded := d.Annotations[kultav1alpha1.AdoptedReplicasAnnotation]
	d.Annotations = nil
	if recorded {
		d.Annotations = map[string]string{kultav1alpha1.AdoptedReplicasAnnotation: adopted}
	}
	d.Spec.Strategy = appsv1.DeploymentStrategy{}
	d.Status.Conditions = nil
})

// trimRollout drops from a cached Rollout the copy of its spec that `kubectl apply` keeps.
var trimRollout = trimmer("Rollout", func(ro *kultav1alpha1.Rollout) {
	delete(ro.Annotations, corev1.LastAppliedConfigAnnotation)
})

// packRollout is the cache's transform of Rollouts: trimRollout, then packed. A Rollout packed
// already is kept as it is; one that cannot be packed is cached trimmed, unpacked, which only
// costs memory.
func packRollout(obj any) (any, error) {
	if p, ok := obj.(*packedRollout); ok {
		return p, nil
	}
	trimmed, err := trimRollout(obj)
	if err != nil {
		return nil, err
	}
	ro := trimmed.(*kultav1alpha1.Rollout)
	spec, err := json.Marshal(&ro.Spec)
	if err != nil {
		return ro, nil
	}
	status, err := json.Marshal(&ro.Status)
	if err != nil {
		return ro, nil
	}
	return &packedRollout{TypeMeta: ro.TypeMeta, packedMeta: packMeta(ro.ObjectMeta), spec: spec, status: status}, nil
}

// packedRollout is how the cache holds a Rollout: its metadata (packedMeta), which is what informers,
// selectors, predicates and event handlers read, and its spec and status as the JSON they
// stand for. A typed Rollout takes half as much again: every Pod template, step, condition and
// decision is a struct with room for all its fields.
//
// A cache reader hands out a deep copy of what the cache holds (DeepCopyObject), and the copy
// of a packedRollout is the Rollout unpacked: reads asking for a *kultav1alpha1.Rollout get
// it whole, as trimRollout left it. The Rollout index reads its spec (rolloutOf).
type packedRollout struct {
	metav1.TypeMeta
	packedMeta
	spec, status []byte
}

// unpack returns the Rollout p holds; without status, its status is left empty.
func (p *packedRollout) unpack(status bool) (*kultav1alpha1.Rollout, error) {
	ro := &kultav1alpha1.Rollout{TypeMeta: p.TypeMeta}
	p.unpackInto(&ro.ObjectMeta)
	if err := json.Unmarshal(p.spec, &ro.Spec); err != nil {
		return nil, fmt.Errorf("unpacking the spec of Rollout %s/%s from the cache: %w", p.Namespace, p.Name, err)
	}
	if status {
		if err := json.Unmarshal(p.status, &ro.Status); err != nil {
			return nil, fmt.Errorf("unpacking the status of Rollout %s/%s from the cache: %w", p.Namespace, p.Name, err)
		}
	}
	return ro, nil
}

// DeepCopyObject returns the Rollout p holds, unpacked (see packedRollout). Unpacking reads
// JSON that packRollout wrote from the same types and cannot fail; were it to, the copy is a
// packedRollout, which a cache reader refuses to hand out as a *kultav1alpha1.Rollout: the
// read fails with the types named, and nothing is decided or written from a partial Rollout.
func (p *packedRollout) DeepCopyObject() runtime.Object {
	ro, err := p.unpack(true)
	if err != nil {
		return &packedRollout{TypeMeta: p.TypeMeta, packedMeta: p.deepCopy(), spec: p.spec, status: p.status}
	}
	return ro
}

// rolloutOf returns the metadata and spec of a Rollout as the cache holds it, for the field
// indexes; its status may be left out. A packed Rollout that cannot be unpacked gives false:
// it is not indexed, and the Rollout's own reconcile, whose read of it fails, reports why.
func rolloutOf(obj client.Object) (*kultav1alpha1.Rollout, bool) {
	switch o := obj.(type) {
	case *kultav1alpha1.Rollout:
		return o, true
	case *packedRollout:
		ro, err := o.unpack(false)
		return ro, err == nil
	default:
		return nil, false
	}
}

// packedMeta is an object's metadata as the cache holds it: typed, which is what informers,
// selectors, predicates and event handlers read, but with its labels and annotations as pairs
// rather than maps. A Go map of a few entries takes about 250 bytes besides its strings, and
// the cache holds three to thirteen objects per Rollout (its old revisions stay, scaled to zero,
// up to revisionHistoryLimit). GetLabels and GetAnnotations build the maps when asked; the
// embedded ObjectMeta's own are always nil.
type packedMeta struct {
	metav1.ObjectMeta
	labels, annotations pairs
}

// packMeta is meta packed.
func packMeta(meta metav1.ObjectMeta) packedMeta {
	p := packedMeta{ObjectMeta: meta}
	p.SetLabels(meta.Labels)
	p.SetAnnotations(meta.Annotations)
	return p
}

// GetLabels builds the map of p's labels; changing it does not change p.
func (p *packedMeta) GetLabels() map[string]string { return p.labels.toMap() }

// SetLabels keeps labels as p's labels.
func (p *packedMeta) SetLabels(labels map[string]string) {
	p.labels, p.Labels = pairsOf(labels), nil
}

// GetAnnotations builds the map of p's annotations; changing it does not change p.
func (p *packedMeta) GetAnnotations() map[string]string { return p.annotations.toMap() }

// SetAnnotations keeps annotations as p's annotations.
func (p *packedMeta) SetAnnotations(annotations map[string]string) {
	p.annotations, p.Annotations = pairsOf(annotations), nil
}

// GetObjectMeta is p, whose labels and annotations the embedded ObjectMeta does not hold.
func (p *packedMeta) GetObjectMeta() metav1.Object { return p }

// deepCopy is a copy of p of its own. Pairs are never changed in place (SetLabels and
// SetAnnotations replace them), so the copy shares them.
func (p *packedMeta) deepCopy() packedMeta {
	out := packedMeta{labels: p.labels, annotations: p.annotations}
	p.DeepCopyInto(&out.ObjectMeta)
	return out
}

// unpackInto writes a deep copy of the metadata p holds to out.
func (p *packedMeta) unpackInto(out *metav1.ObjectMeta) {
	p.DeepCopyInto(out)
	out.Labels, out.Annotations = p.labels.toMap(), p.annotations.toMap()
}

// pairs holds a string map as keys and values in turn, sorted by key: a few strings take a
// slice of their headers, where a map takes room for eight entries and its own header. Keys
// KULTA writes itself are held as its constants, so that each cached object does not keep a
// copy of them.
type pairs []string

// pairsOf is m as pairs; nil for an empty or nil map.
func pairsOf(m map[string]string) pairs {
	if len(m) == 0 {
		return nil
	}
	keys := slices.Sorted(maps.Keys(m))
	out := make(pairs, 0, 2*len(keys))
	for _, k := range keys {
		v := m[k]
		if known, ok := ownKeys[k]; ok {
			k = known
		}
		out = append(out, k, v)
	}
	return out
}

// toMap is ps as a map of its own; nil when ps is empty, as the map was.
func (ps pairs) toMap() map[string]string {
	if len(ps) == 0 {
		return nil
	}
	m := make(map[string]string, len(ps)/2)
	for i := 0; i+1 < len(ps); i += 2 {
		m[ps[i]] = ps[i+1]
	}
	return m
}

// ownKeys are the label, annotation and selector keys KULTA writes on the objects it caches.
var ownKeys = func() map[string]string {
	keys := map[string]string{}
	for _, k := range []string{kultav1alpha1.PodTemplateHashLabel, revision.DigestAnnotation, revision.RevisionAnnotation,
		revision.ScaleDownAtAnnotation, revision.PodMetadataAnnotation, kultav1alpha1.OriginalSelectorAnnotation,
		kultav1alpha1.ShardLabel} {
		keys[k] = k
	}
	return keys
}()
