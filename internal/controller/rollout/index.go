package rollout

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// indexKind says what an indexKey names.
type indexKind uint8

const (
	// byService: namespace/name of a Service the Rollout names (its stable or canary Service).
	byService indexKind = iota + 1
	// byWorkload: namespace/name of the Deployment the Rollout adopts (spec.workloadRef).
	byWorkload
	// byProviderKey: the key of an object one of the Rollout's traffic providers reads
	// (providers.Watch.RolloutKeys), which names its kind, namespace and name.
	byProviderKey
)

// indexKey is one entry of the Rollout index: an object some Rollouts name.
type indexKey struct {
	kind indexKind
	key  string
}

// rolloutIndex lists, for each object the watches map back to Rollouts (Services, adopted
// Deployments, the providers' routes), the Rollouts that name it. It is fed by an event handler
// of the Rollout informer, so it works on a cluster-wide and on a multi-namespace cache alike.
//
// It replaces three controller-runtime field indexes, which keep every value twice (namespaced
// and cluster-wide), each as a set of object keys, and whose lookups copy and unpack every
// Rollout listed; a lookup here gives names only, and each Rollout's spec is decoded once per
// event rather than once per index.
//
// The index may lag the informer's store by one event: a Service changed at that moment maps
// to the Rollouts named before. No change is missed by it, as the Rollout's own event queues
// the Rollout too.
type rolloutIndex struct {
	// keysOf gives the keys a Rollout is listed under; nil or empty when it is listed nowhere.
	keysOf func(client.Object) []indexKey

	mu sync.RWMutex
	// rollouts lists the Rollouts under each key, each once.
	rollouts map[indexKey][]types.NamespacedName
	// keys holds the keys each listed Rollout is under, to leave them when it changes.
	keys map[types.NamespacedName][]indexKey
}

func newRolloutIndex(keysOf func(client.Object) []indexKey) *rolloutIndex {
	return &rolloutIndex{
		keysOf:   keysOf,
		rollouts: map[indexKey][]types.NamespacedName{},
		keys:     map[types.NamespacedName][]indexKey{},
	}
}

// indexKeysOf gives the keys of the Rollout in obj (typed or packed as the cache holds it): its
// Services, its adopted Deployment and its providers' objects. A packed Rollout that cannot be
// unpacked has none; its own reconcile's failing read reports why.
func (r *Reconciler) indexKeysOf(obj client.Object) []indexKey {
	ro, ok := rolloutOf(obj)
	if !ok {
		return nil
	}
	var keys []indexKey
	add := func(kind indexKind, key string) {
		k := indexKey{kind: kind, key: key}
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	for _, name := range serviceNamesOf(ro) {
		add(byService, ro.Namespace+"/"+name)
	}
	for _, name := range workloadNameOf(ro) {
		add(byWorkload, ro.Namespace+"/"+name)
	}
	for _, key := range r.providerKeysOf(ro) {
		add(byProviderKey, key)
	}
	return keys
}

// watch feeds the index from the Rollout informer of c.
func (x *rolloutIndex) watch(ctx context.Context, c cache.Informers) error {
	inf, err := c.GetInformer(ctx, &kultav1alpha1.Rollout{})
	if err != nil {
		return fmt.Errorf("getting the Rollout informer to index: %w", err)
	}
	log := ctrl.LoggerFrom(ctx).WithName("rollout-index")
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    x.set,
		UpdateFunc: func(_, obj any) { x.set(obj) },
		DeleteFunc: func(obj any) {
			if err := x.remove(obj); err != nil {
				log.Error(err, "Rollout left listed in the index")
			}
		},
	}); err != nil {
		return fmt.Errorf("indexing Rollouts: %w", err)
	}
	return nil
}

// set lists the Rollout in obj under its keys now, and under no other.
func (x *rolloutIndex) set(obj any) {
	o, ok := obj.(client.Object)
	if !ok {
		return
	}
	x.replace(types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}, x.keysOf(o))
}

// remove unlists a deleted Rollout, also when the informer missed the deletion and gives only
// its key and last known state.
func (x *rolloutIndex) remove(obj any) error {
	var name types.NamespacedName
	switch o := obj.(type) {
	case client.Object:
		name = types.NamespacedName{Namespace: o.GetNamespace(), Name: o.GetName()}
	case toolscache.DeletedFinalStateUnknown:
		ns, n, err := toolscache.SplitMetaNamespaceKey(o.Key)
		if err != nil {
			return fmt.Errorf("a deleted Rollout's key %q: %w", o.Key, err)
		}
		name = types.NamespacedName{Namespace: ns, Name: n}
	default:
		return fmt.Errorf("a deleted Rollout given as %T", obj)
	}
	x.replace(name, nil)
	return nil
}

func (x *rolloutIndex) replace(name types.NamespacedName, keys []indexKey) {
	x.mu.Lock()
	defer x.mu.Unlock()
	old := x.keys[name]
	for _, k := range old {
		if slices.Contains(keys, k) {
			continue
		}
		listed := x.rollouts[k]
		if i := slices.Index(listed, name); i >= 0 {
			listed = slices.Delete(listed, i, i+1)
		}
		if len(listed) == 0 {
			delete(x.rollouts, k)
		} else {
			x.rollouts[k] = listed
		}
	}
	for _, k := range keys {
		if !slices.Contains(old, k) {
			x.rollouts[k] = append(x.rollouts[k], name)
		}
	}
	if len(keys) == 0 {
		delete(x.keys, name)
	} else {
		x.keys[name] = slices.Clip(keys)
	}
}

// lookup gives the Rollouts listed under any of keys, each once.
func (x *rolloutIndex) lookup(kind indexKind, keys ...string) []types.NamespacedName {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if len(keys) == 1 {
		return slices.Clone(x.rollouts[indexKey{kind: kind, key: keys[0]}])
	}
	var names []types.NamespacedName
	seen := map[types.NamespacedName]bool{}
	for _, key := range keys {
		for _, name := range x.rollouts[indexKey{kind: kind, key: key}] {
			if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
	}
	return names
}
