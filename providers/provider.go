package providers

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// Provider is everything the controller knows of one traffic provider: which Rollouts use it,
// the router that moves their traffic, the objects it reads (so a change to one reconciles the
// Rollouts that use it) and how those objects are trimmed in the cache. cmd/kulta-controller
// registers the providers that are enabled and whose CRDs the API server serves; the
// reconciler never names a provider.
type Provider struct {
	// Name is the trafficRouting field that selects the provider: gatewayAPI, istio, nginx.
	Name string
	// Uses reports whether a Rollout's trafficRouting asks for this provider.
	Uses func(tr *kultav1alpha1.TrafficRouting) bool
	// Router moves traffic for the Rollouts that use the provider.
	Router TrafficRouter
	// Watches are the objects the provider reads.
	Watches []Watch
	// Indexes are the cache's field indexes the provider's router lists its objects by. The
	// controller adds them to the manager's cache before it starts.
	Indexes []Index
	// Created are the kinds of object the provider's router creates for a Rollout (NGINX's
	// canary Ingresses), where it has any. A shard's replica caches the objects of a kind it
	// scopes only where they carry its shard's mark (package shard): those it creates get the
	// mark, and those a Rollout had before it came to the shard are marked the first time the
	// replica sees the Rollout, so that its cache, and the router's Indexes over it, hold every
	// one of the Rollout's.
	Created []Created
	// Trim, when set, trims a cached object of the provider's (see cache.Options.DefaultTransform)
	// and reports whether obj was one; objects of other kinds are left to the caller.
	Trim func(obj any) (any, bool)
}

// Watch is one kind of object a provider reads, and how those objects map to Rollouts: a
// Rollout that lists a key among RolloutKeys is reconciled when an object with that key among
// ObjectKeys changes.
type Watch struct {
	// Object is an empty object of the kind (typed, or unstructured with its GroupVersionKind).
	Object client.Object
	// RolloutKeys are the keys of the objects of this kind a Rollout uses. They are read from
	// its metadata and spec: the controller's Rollout index computes them, from a Rollout
	// whose status may be left empty.
	RolloutKeys func(ro *kultav1alpha1.Rollout) []string
	// ObjectKeys are the keys an object of this kind answers to.
	ObjectKeys func(obj client.Object) []string
}

// Index is a field index of the manager's cache over one kind of a provider's objects: a List
// of that kind from the cache with client.MatchingFields{Field: key} returns the objects for
// which Extract gives key, without reading the others. Adding it starts the kind's informer, so
// a provider is registered only where the API server serves its kinds (as for its Watches).
type Index struct {
	// Object is an empty object of the kind, as the provider's Watch of it gives it.
	Object client.Object
	// Field names the index. A name another index of the kind already has stops the
	// controller at start-up (controller-runtime refuses the conflict).
	Field string
	// Extract gives the keys an object is filed under; none leaves it out.
	Extract client.IndexerFunc
}

// Created is one kind of object a provider's router creates for Rollouts, and how to tell
// whose each is from its metadata alone (a shard's replica reads them metadata-only).
type Created struct {
	// Object is an empty object of the kind, as the provider's Watch of it gives it.
	Object client.Object
	// Labels select the router's objects among those of the kind.
	Labels map[string]string
	// Owner is the UID of the Rollout obj belongs to, "" for none.
	Owner func(obj metav1.Object) types.UID
}

// OwnObject, given to a Reader's Get, says that the object read is one the router creates
// itself (a Created kind), so that one missing from the cache does not exist: the router knows
// what it wrote and when (see package freshness). A reader that asks the API server for what its
// cache misses (a shard's, package shard) does not for such a Get; any other reader ignores it.
type OwnObject struct{}

// ApplyToGet leaves the options as they are: OwnObject only informs the reader.
func (OwnObject) ApplyToGet(*client.GetOptions) {}

// ObjectKey is the usual key of a watched object: "Kind/namespace/name".
func ObjectKey(kind, namespace, name string) string { return kind + "/" + namespace + "/" + name }

// Using returns the providers a Rollout's trafficRouting asks for, in registration order.
func Using(all []Provider, tr *kultav1alpha1.TrafficRouting) []Provider {
	if tr == nil {
		return nil
	}
	var out []Provider
	for _, p := range all {
		if p.Uses != nil && p.Uses(tr) {
			out = append(out, p)
		}
	}
	return out
}
