// Package objects reads and changes the objects a traffic provider manages in the user's
// cluster (routes, VirtualServices, DestinationRules) as unstructured objects, so that a field
// this build does not know is never dropped.
//
// Reads come from an informer cache when its copy includes the provider's own last write
// (package freshness), else from the API server. A change is made to the copy read and sent as
// a JSON merge patch of only what changed, carrying the copy's resourceVersion: the API server
// refuses it with a conflict when the object changed since, and the change is then made again
// to a copy read from the API server. No read precedes a write when the cache is fresh. A cache
// may hold trimmed copies, provided the trim keeps whole every field a change touches (a merge
// patch replaces lists whole): what the trim dropped is the same before and after the change,
// so it is never written. A cache may also hold objects packed (Packed): a read from it gets
// the object unpacked.
package objects

import (
	"context"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/false-systems/kulta/internal/freshness"
	"github.com/false-systems/kulta/internal/metrics"
)

// Clients are where a Store reads and writes.
type Clients struct {
	// Client writes; it also reads when Reader is nil, and when APIReader is nil.
	Client client.Client
	// Reader, when set, is read first: an informer cache of unstructured objects.
	Reader client.Reader
	// APIReader reads from the API server when Reader's copy cannot be used.
	APIReader client.Reader
	// FieldManager records the writes in managedFields.
	FieldManager string
	// OnWrite, when set, is called after each write with the object and what was written.
	OnWrite func(obj types.NamespacedName, kind, what string)
}

// Store reads and changes objects through Clients. Its zero value needs Init before use; it is
// safe for concurrent use once initialised.
type Store struct {
	once    sync.Once
	clients Clients
	// written holds, per object, the resourceVersion of the store's last write to it.
	written freshness.Tracker
}

// Init sets the clients on first call and returns s; later calls keep the first clients, so a
// provider may call it on every use.
func (s *Store) Init(c Clients) *Store {
	s.once.Do(func() { s.clients = c })
	return s
}

// key identifies an object in the record of writes.
func key(gvk schema.GroupVersionKind, nn types.NamespacedName) string {
	return gvk.Kind + "/" + nn.Namespace + "/" + nn.Name
}

// Read reads the object gvk nn. It reads the cache first unless fromAPI is set, and the API
// server when there is no cache, when the cache has no copy or cannot answer, and when its copy
// is older than the store's last write to the object. cached reports where the copy came from.
// A missing object is the API server's NotFound error, wrapped.
func (s *Store) Read(ctx context.Context, gvk schema.GroupVersionKind, nn types.NamespacedName, fromAPI bool) (obj *unstructured.Unstructured, cached bool, err error) {
	if s.clients.Reader != nil && !fromAPI {
		obj := newObject(gvk)
		err := s.clients.Reader.Get(ctx, nn, obj)
		if err == nil && s.written.Fresh(key(gvk, nn), obj.GetResourceVersion()) {
			return obj, true, nil
		}
		// Missing from the cache may mean not yet seen, and the cache may not cover the
		// namespace: the API server decides.
		ctrl.LoggerFrom(ctx).V(5).Info("Reading from the API server", "kind", gvk.Kind, "object", nn, "cacheError", err)
	}
	obj = newObject(gvk)
	if err := s.apiReader().Get(ctx, nn, obj); err != nil {
		if apierrors.IsNotFound(err) {
			s.written.Forget(key(gvk, nn))
		}
		return nil, false, fmt.Errorf("getting %s %s: %w", gvk.Kind, nn, err)
	}
	return obj, false, nil
}

// Apply makes the change mutate describes to the object gvk nn and writes it when mutate
// reports a change, retrying on conflicts from a copy read from the API server. mutate may be
// called more than once and must decide from the object it is given alone. what says what is
// written, for errors and OnWrite.
func (s *Store) Apply(ctx context.Context, gvk schema.GroupVersionKind, nn types.NamespacedName, what string, mutate func(*unstructured.Unstructured) (bool, error)) error {
	fromAPI := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		obj, _, err := s.Read(ctx, gvk, nn, fromAPI)
		if err != nil {
			return err
		}
		before := obj.DeepCopy()
		changed, err := mutate(obj)
		if err != nil || !changed {
			return err
		}
		fromAPI = true
		return s.write(ctx, before, obj, what)
	})
	if err != nil {
		return fmt.Errorf("applying %s: %w", what, err)
	}
	return nil
}

// write patches obj from before to its current content, with before's resourceVersion as a
// precondition, counts the result, and remembers the version it produced.
func (s *Store) write(ctx context.Context, before, obj *unstructured.Unstructured, what string) error {
	patch := client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})
	if err := s.clients.Client.Patch(ctx, obj, patch, client.FieldOwner(s.clients.FieldManager)); err != nil {
		result := "error"
		if apierrors.IsConflict(err) {
			result = "conflict"
		}
		metrics.RouteWrites.WithLabelValues(obj.GetKind(), result).Inc()
		return fmt.Errorf("writing %s %s/%s for %s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), what, err)
	}
	metrics.RouteWrites.WithLabelValues(obj.GetKind(), "ok").Inc()
	nn := types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}
	s.written.Wrote(key(obj.GroupVersionKind(), nn), obj.GetResourceVersion())
	if s.clients.OnWrite != nil {
		s.clients.OnWrite(nn, obj.GetKind(), what)
	}
	return nil
}

func (s *Store) apiReader() client.Reader {
	if s.clients.APIReader != nil {
		return s.clients.APIReader
	}
	return s.clients.Client
}

// newObject is an empty object of gvk, ready to be read into.
func newObject(gvk schema.GroupVersionKind) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	return u
}
