// Package shard narrows what one shard's replica caches to the objects of its own Rollouts.
//
// A replica started with --shard-key caches only the Rollouts labelled kulta.io/shard=KEY. The
// objects those Rollouts use (their ReplicaSets, Services, adopted Deployments and routes) carry
// no Rollout label a cache could select on, so without this package every replica would cache
// every one of them. Here each such object is marked for the shards that use it with the label
// shard.kulta.io/KEY (empty value), and a shard's cache selects on that label:
//
//   - the objects a shard creates carry the label from the start: ReplicaSets, and what a
//     traffic router creates through the shard's Client (NGINX's canary Ingresses); one that
//     already exists unmarked when the Client creates it is marked where it is;
//   - an object the cache does not hold is read from the API server by Get and, when it
//     exists, labelled (Client and Reader): one read and one write, once per object and shard.
//     A Get marked providers.OwnObject (a router reading an object it creates itself) is not:
//     such an object the cache misses does not exist;
//   - the ReplicaSets, and the objects a router creates, a Rollout had before it came to the
//     shard (created unsharded, or by another shard) are found by one uncached list of each kind
//     the first time the replica sees the Rollout, and labelled (AdoptReplicaSets,
//     AdoptCreated).
//
// An object several shards use carries one label per shard, and each of them caches it. A
// label left by a shard a Rollout has moved away from only makes that shard cache one object
// more.
package shard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/false-systems/kulta/providers"
)

// LabelPrefix starts the label that marks an object for a shard: shard.kulta.io/KEY.
const LabelPrefix = "shard.kulta.io/"

// Label is the label that marks an object for shard key.
func Label(key string) string { return LabelPrefix + key }

// requirement is "the object is marked for shard key".
func requirement(key string) (labels.Requirement, error) {
	req, err := labels.NewRequirement(Label(key), selection.Exists, nil)
	if err != nil {
		return labels.Requirement{}, fmt.Errorf("selecting objects of shard %q: %w", key, err)
	}
	return *req, nil
}

// Scope narrows what opts caches of each kind in objs to the objects marked for shard key,
// keeping the selector and other settings an entry already has, and adding an entry for a kind
// that has none.
func Scope(opts *cache.Options, key string, scheme *runtime.Scheme, objs ...client.Object) error {
	req, err := requirement(key)
	if err != nil {
		return err
	}
	if opts.ByObject == nil {
		opts.ByObject = map[client.Object]cache.ByObject{}
	}
	byKind := map[schema.GroupVersionKind]client.Object{}
	for obj := range opts.ByObject {
		gvk, err := apiutil.GVKForObject(obj, scheme)
		if err != nil {
			return fmt.Errorf("scoping the cache to shard %q: %w", key, err)
		}
		byKind[gvk] = obj
	}
	for _, obj := range objs {
		gvk, err := apiutil.GVKForObject(obj, scheme)
		if err != nil {
			return fmt.Errorf("scoping the cache to shard %q: %w", key, err)
		}
		entry := obj
		if existing, ok := byKind[gvk]; ok {
			entry = existing
		}
		by := opts.ByObject[entry]
		sel := by.Label
		if sel == nil {
			sel = labels.Everything()
		}
		by.Label = sel.Add(req)
		opts.ByObject[entry] = by
		byKind[gvk] = entry
	}
	return nil
}

// adopter reads what a shard's cache misses from the API server and marks it for the shard.
type adopter struct {
	live   client.Reader
	writer client.Writer
	scheme *runtime.Scheme
	key    string
	kinds  map[schema.GroupKind]bool
}

func newAdopter(live client.Reader, writer client.Writer, scheme *runtime.Scheme, key string, scoped []schema.GroupKind) adopter {
	kinds := map[schema.GroupKind]bool{}
	for _, gk := range scoped {
		kinds[gk] = true
	}
	return adopter{live: live, writer: writer, scheme: scheme, key: key, kinds: kinds}
}

// get answers a Get the cache answered with cacheErr: a NotFound for a scoped kind is asked
// again of the API server, and what it finds is marked for the shard, unless the Get is marked
// providers.OwnObject.
func (a adopter) get(ctx context.Context, nn types.NamespacedName, obj client.Object, cacheErr error, opts ...client.GetOption) error {
	if !apierrors.IsNotFound(cacheErr) || slices.ContainsFunc(opts, isOwnObject) {
		return cacheErr
	}
	gvk, err := apiutil.GVKForObject(obj, a.scheme)
	if err != nil || !a.kinds[gvk.GroupKind()] {
		return cacheErr
	}
	if err := a.live.Get(ctx, nn, obj, opts...); err != nil {
		// Wrapped with %w: a NotFound stays one for apierrors.IsNotFound.
		return fmt.Errorf("reading %s %s from the API server: %w", gvk.Kind, nn, err)
	}
	if _, marked := obj.GetLabels()[Label(a.key)]; marked {
		// Marked already: the cache has not caught up with the mark yet.
		return nil
	}
	if err := mark(ctx, a.writer, obj, a.key); err != nil {
		return fmt.Errorf("marking %s %s for shard %q: %w", gvk.Kind, nn, a.key, err)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Marked an object for this shard", "kind", gvk.Kind, "object", nn, "label", Label(a.key))
	return nil
}

// isOwnObject reports whether a Get option is providers.OwnObject (or a pointer to one).
func isOwnObject(opt client.GetOption) bool {
	switch opt.(type) {
	case providers.OwnObject, *providers.OwnObject:
		return true
	}
	return false
}

// scoped reports whether obj is of a kind the shard's cache is scoped for.
func (a adopter) scoped(obj client.Object) bool {
	gvk, err := apiutil.GVKForObject(obj, a.scheme)
	return err == nil && a.kinds[gvk.GroupKind()]
}

// mark adds the shard's label to obj with a merge patch of that label alone; obj becomes what
// the API server answers.
func mark(ctx context.Context, w client.Writer, obj client.Object, key string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{Label(key): ""}}})
	if err != nil {
		return fmt.Errorf("encoding the shard label: %w", err)
	}
	if err := w.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("patching label %s: %w", Label(key), err)
	}
	return nil
}

// Client is a shard's client: reads come from its scoped cache, and a Get of a scoped kind the
// cache does not hold goes to the API server and marks what it finds for the shard.
type Client struct {
	client.Client
	adopter adopter
}

// NewClient wraps c (reading a cache scoped with Scope to shard key) for the GroupKinds in
// scoped; live reads the API server.
func NewClient(c client.Client, live client.Reader, key string, scoped ...schema.GroupKind) *Client {
	return &Client{Client: c, adopter: newAdopter(live, c, c.Scheme(), key, scoped)}
}

// Get reads obj from the cache, and from the API server when the cache does not hold it.
func (c *Client) Get(ctx context.Context, nn types.NamespacedName, obj client.Object, opts ...client.GetOption) error {
	return c.adopter.get(ctx, nn, obj, c.Client.Get(ctx, nn, obj, opts...), opts...)
}

// Create creates obj, marked for the shard when it is of a scoped kind, so that the shard's
// cache holds it from the start (obj gets the label too). One of a scoped kind that already
// exists unmarked with obj's controller (made by another shard's replica still finishing a
// reconcile of a Rollout that moved) is marked where it is, so that the cache holds it from then
// on; the AlreadyExists is returned either way, and obj is not replaced by the one that exists.
func (c *Client) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	scoped := c.adopter.scoped(obj)
	if scoped {
		labels := obj.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[Label(c.adopter.key)] = ""
		obj.SetLabels(labels)
	}
	err := c.Client.Create(ctx, obj, opts...)
	if err == nil {
		return nil
	}
	// Wrapped with %w: an AlreadyExists stays one for apierrors.IsAlreadyExists.
	err = fmt.Errorf("shard %q: %w", c.adopter.key, err)
	if scoped && apierrors.IsAlreadyExists(err) {
		if markErr := c.markExisting(ctx, obj); markErr != nil {
			return errors.Join(err, markErr)
		}
	}
	return err
}

// markExisting marks for the shard the object of obj's kind and name on the API server when it
// is not marked yet and has obj's controller, reading and patching its metadata alone; one gone
// since is no error.
func (c *Client) markExisting(ctx context.Context, obj client.Object) error {
	want := metav1.GetControllerOfNoCopy(obj)
	if want == nil {
		return nil
	}
	gvk, err := apiutil.GVKForObject(obj, c.adopter.scheme)
	if err != nil {
		return fmt.Errorf("marking %s/%s for shard %q: %w", obj.GetNamespace(), obj.GetName(), c.adopter.key, err)
	}
	existing := &metav1.PartialObjectMetadata{}
	existing.SetGroupVersionKind(gvk)
	if err := c.adopter.live.Get(ctx, client.ObjectKeyFromObject(obj), existing); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("reading %s %s/%s: %w", gvk.Kind, obj.GetNamespace(), obj.GetName(), err))
	}
	if _, marked := existing.Labels[Label(c.adopter.key)]; marked {
		return nil
	}
	if ref := metav1.GetControllerOfNoCopy(existing); ref == nil || ref.UID != want.UID {
		return nil
	}
	if err := mark(ctx, c.Client, existing, c.adopter.key); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("marking %s %s/%s for shard %q: %w", gvk.Kind, obj.GetNamespace(), obj.GetName(), c.adopter.key, err)
	}
	return nil
}

// Reader is Client for a reader: a scoped cache, with writer to mark what it misses.
type Reader struct {
	client.Reader
	adopter adopter
}

// NewReader wraps r (a cache scoped with Scope to shard key) for the GroupKinds in scoped.
func NewReader(r client.Reader, live client.Reader, writer client.Client, key string, scoped ...schema.GroupKind) *Reader {
	return &Reader{Reader: r, adopter: newAdopter(live, writer, writer.Scheme(), key, scoped)}
}

// Get reads obj from the cache, and from the API server when the cache does not hold it.
func (r *Reader) Get(ctx context.Context, nn types.NamespacedName, obj client.Object, opts ...client.GetOption) error {
	return r.adopter.get(ctx, nn, obj, r.Reader.Get(ctx, nn, obj, opts...), opts...)
}

// AdoptReplicaSets marks for shard key the ReplicaSets in namespace that selector matches, that
// carry hashLabel and not yet the shard's label, and that owner controls or no one does (an
// orphan the reconciler would adopt, looked for only with a selector): the revisions a Rollout had before it came to the shard.
// It reads the API server (metadata only) and returns how many it marked.
func AdoptReplicaSets(ctx context.Context, live client.Reader, w client.Writer, key, namespace string, selector map[string]string, hashLabel string, owner types.UID) (int, error) {
	hashed, err := labels.NewRequirement(hashLabel, selection.Exists, nil)
	if err != nil {
		return 0, fmt.Errorf("selecting ReplicaSets by %s: %w", hashLabel, err)
	}
	sel := labels.SelectorFromSet(selector).Add(*hashed)
	return adoptUnmarked(ctx, live, w, key, namespace, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"), sel, func(rs *metav1.PartialObjectMetadata) bool {
		ref := metav1.GetControllerOfNoCopy(rs)
		return (ref == nil && len(selector) > 0) || (ref != nil && ref.UID == owner)
	})
}

// AdoptCreated marks for shard key the objects of created's kind in namespace that created's
// labels select, that do not carry the shard's label yet, and that belong to the Rollout with
// UID owner (created.Owner): those a traffic router made for the Rollout before it came to the
// shard. It reads the API server (metadata only) and returns how many it marked.
func AdoptCreated(ctx context.Context, live client.Reader, w client.Client, key, namespace string, created providers.Created, owner types.UID) (int, error) {
	gvk, err := apiutil.GVKForObject(created.Object, w.Scheme())
	if err != nil {
		return 0, fmt.Errorf("marking a router's objects for shard %q: %w", key, err)
	}
	return adoptUnmarked(ctx, live, w, key, namespace, gvk, labels.SelectorFromSet(created.Labels), func(obj *metav1.PartialObjectMetadata) bool {
		return created.Owner(obj) == owner
	})
}

// adoptUnmarked lists, from the API server and metadata only, the objects of kind gvk in
// namespace that sel selects and that do not carry shard key's label yet, and marks for the
// shard those not being deleted that belongs accepts. It returns how many it marked.
func adoptUnmarked(ctx context.Context, live client.Reader, w client.Writer, key, namespace string, gvk schema.GroupVersionKind, sel labels.Selector,
	belongs func(*metav1.PartialObjectMetadata) bool) (int, error) {
	unmarked, err := labels.NewRequirement(Label(key), selection.DoesNotExist, nil)
	if err != nil {
		return 0, fmt.Errorf("selecting %s not of shard %q: %w", gvk.Kind, key, err)
	}
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err := live.List(ctx, list, client.InNamespace(namespace), client.MatchingLabelsSelector{Selector: sel.Add(*unmarked)}); err != nil {
		return 0, fmt.Errorf("listing %s in %s not marked for shard %q: %w", gvk.Kind, namespace, key, err)
	}
	marked := 0
	for i := range list.Items {
		obj := &list.Items[i]
		if !obj.DeletionTimestamp.IsZero() || !belongs(obj) {
			continue
		}
		obj.SetGroupVersionKind(gvk)
		if err := mark(ctx, w, obj, key); client.IgnoreNotFound(err) != nil {
			return marked, fmt.Errorf("marking %s %s/%s for shard %q: %w", gvk.Kind, namespace, obj.Name, key, err)
		}
		marked++
	}
	return marked, nil
}
