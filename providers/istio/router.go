package istio

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/internal/objects"
)

var _ providers.TrafficRouter = (*Router)(nil)

const (
	// Group is Istio's networking group.
	Group = "networking.istio.io"
	// Version is the version KULTA reads and writes, served since Istio 1.22.
	Version = "v1"
	// KindVirtualService and KindDestinationRule are the kinds the Router reads and writes.
	KindVirtualService  = "VirtualService"
	KindDestinationRule = "DestinationRule"
	// FieldManager is the field manager KULTA's writes are recorded under, which GitOps tools
	// can be told to leave alone (docs/gitops.md).
	FieldManager = "kulta"
)

// Router moves traffic on Istio VirtualServices, and points a DestinationRule's two subsets at
// the stable and canary revisions for subset-level splits. Objects are handled as unstructured
// and patched with their resourceVersion as a precondition, so a write never drops a field this
// build does not know and never overwrites someone else's newer change.
//
// With a Reader (the manager's cache), objects are read from it rather than from the API
// server, except while the cached copy is older than the router's own last write to that object
// (a plan made from it would repeat or undo that write) and when the cache does not hold it.
// The cache may hold objects trimmed by Trim. A change is made to the cached copy when it
// includes the router's own last write, and sent as a patch of only what changed, with the
// copy's resourceVersion as a precondition (package providers/internal/objects): no read
// precedes a write, no field the trim dropped is written, and an object changed meanwhile is
// read again from the API server.
type Router struct {
	// Client writes VirtualServices and DestinationRules; it also reads them when Reader is nil.
	Client client.Client
	// Reader, when set, is where objects are read first: an informer cache holding unstructured
	// VirtualServices and DestinationRules (the provider's watches start those informers).
	Reader client.Reader
	// APIReader reads objects from the API server when Reader's copy cannot be used; Client is
	// used when it is nil.
	APIReader client.Reader
	// OnWrite, when set, is called after each write with the object and what was written.
	OnWrite func(obj types.NamespacedName, kind string, what string)

	// store reads and writes the objects through the clients above.
	store objects.Store
}

// objectRef names one object the Router reads: a VirtualService or DestinationRule in the
// Rollout's namespace.
type objectRef struct {
	kind, namespace, name string
}

func (o objectRef) key() types.NamespacedName {
	return types.NamespacedName{Namespace: o.namespace, Name: o.name}
}

func (o objectRef) String() string { return providers.ObjectKey(o.kind, o.namespace, o.name) }

// routingOf is ro's istio block, or nil.
func routingOf(ro *kultav1alpha1.Rollout) *kultav1alpha1.IstioRouting {
	tr := ro.Spec.Strategy.TrafficRouting()
	if tr == nil {
		return nil
	}
	return tr.Istio
}

// VirtualServices lists the names of the VirtualServices ro uses, in its namespace.
func VirtualServices(ro *kultav1alpha1.Rollout) []string {
	var names []string
	for _, vs := range routingOf(ro).Services() {
		names = append(names, vs.Name)
	}
	return names
}

func virtualServiceRef(ro *kultav1alpha1.Rollout, name string) objectRef {
	return objectRef{kind: KindVirtualService, namespace: ro.Namespace, name: name}
}

// destinationRuleRef is ro's DestinationRule, if it names one.
func destinationRuleRef(ro *kultav1alpha1.Rollout) (objectRef, *kultav1alpha1.IstioDestinationRule) {
	istio := routingOf(ro)
	if istio == nil || istio.DestinationRule == nil {
		return objectRef{}, nil
	}
	return objectRef{kind: KindDestinationRule, namespace: ro.Namespace, name: istio.DestinationRule.Name}, istio.DestinationRule
}

// backendsOf is what of the VirtualService vs belongs to ro; host is the DestinationRule's
// spec.host for a subset-level split.
func backendsOf(ro *kultav1alpha1.Rollout, vs kultav1alpha1.IstioVirtualService, host string) Backends {
	b := Backends{
		Namespace:   ro.Namespace,
		Routes:      vs.Routes,
		TLSRoutes:   vs.TLSRoutes,
		TCPRoutes:   vs.TCPRoutes,
		HeaderRoute: providers.HeaderRouteName(ro),
		StepRoutes:  providers.HeaderRouteNames(ro)[1:],
	}
	services := ro.Spec.Strategy.Services()
	b.Stable, b.Canary = services.Stable, services.Canary
	if _, dr := destinationRuleRef(ro); dr != nil {
		b.Subsets = &Subsets{Host: host, Stable: dr.StableSubsetName, Canary: dr.CanarySubsetName}
	}
	return b
}

// SetWeights sets the split on every VirtualService of the Rollout. With a DestinationRule it
// also points the two subsets at the revisions (see SetSubsetLabels), in the order that keeps
// users safe: when the canary's weight rises, the subsets first, so no request reaches a
// subset before it selects the Pods meant to serve it; otherwise the weights first, so traffic
// leaves a subset before the subset is pointed elsewhere.
func (r *Router) SetWeights(ctx context.Context, ro *kultav1alpha1.Rollout, w providers.Weights) error {
	what := fmt.Sprintf("weights %d/%d", w.Stable, w.Canary)
	setWeights := func(host string) error {
		return r.eachVirtualService(ctx, ro, host, what, func(vs *unstructured.Unstructured, b Backends) (bool, error) {
			return SetWeights(vs, b, w)
		})
	}
	ref, dr := destinationRuleRef(ro)
	if dr == nil {
		return setWeights("")
	}
	current, err := r.read(ctx, ref)
	if err != nil {
		return err
	}
	rising, err := r.canaryRises(ctx, ro, Host(current), w)
	if err != nil {
		return err
	}
	if !rising {
		if err := setWeights(Host(current)); err != nil {
			return err
		}
	}
	host, err := r.syncSubsets(ctx, ro)
	if err != nil || !rising {
		return err
	}
	return setWeights(host)
}

// canaryRises reports whether w gives the canary more than some VirtualService of ro gives it
// now (or than the routes of one that disagree give it at most).
func (r *Router) canaryRises(ctx context.Context, ro *kultav1alpha1.Rollout, host string, w providers.Weights) (bool, error) {
	for _, ref := range routingOf(ro).Services() {
		vs, err := r.read(ctx, virtualServiceRef(ro, ref.Name))
		if err != nil {
			return false, err
		}
		current, err := CurrentWeights(vs, backendsOf(ro, ref, host))
		if err != nil {
			return false, err
		}
		if current == nil || current.Canary < w.Canary {
			return true, nil
		}
	}
	return false, nil
}

// syncSubsets points the subsets of ro's DestinationRule at the revisions ro's status names,
// and returns the DestinationRule's host. Without a DestinationRule it does nothing.
func (r *Router) syncSubsets(ctx context.Context, ro *kultav1alpha1.Rollout) (string, error) {
	ref, dr := destinationRuleRef(ro)
	if dr == nil {
		return "", nil
	}
	hashes := HashesOf(ro)
	var host string
	what := fmt.Sprintf("subset labels %s/%s", hashes.Stable, hashes.Canary)
	err := r.apply(ctx, ref, what, func(u *unstructured.Unstructured) (bool, error) {
		host = Host(u)
		return SetSubsetLabels(u, *dr, hashes)
	})
	return host, err
}

// SetHeaderRoute adds or updates the header routes of hr on every VirtualService of the
// Rollout, after pointing the DestinationRule's subsets at the revisions, if there is one.
func (r *Router) SetHeaderRoute(ctx context.Context, ro *kultav1alpha1.Rollout, hr providers.HeaderRoute) error {
	host, err := r.syncSubsets(ctx, ro)
	if err != nil {
		return err
	}
	return r.eachVirtualService(ctx, ro, host, "header route "+hr.Name, func(vs *unstructured.Unstructured, b Backends) (bool, error) {
		return SetHeaderRoute(vs, b, hr)
	})
}

// RemoveHeaderRoute removes the header routes named name (see RemoveHeaderRoute) from every
// VirtualService of the Rollout.
func (r *Router) RemoveHeaderRoute(ctx context.Context, ro *kultav1alpha1.Rollout, name string) error {
	for _, ref := range routingOf(ro).Services() {
		err := r.apply(ctx, virtualServiceRef(ro, ref.Name), "removal of header route "+name, func(vs *unstructured.Unstructured) (bool, error) {
			return RemoveHeaderRoute(vs, name)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Cleanup sends all traffic of the managed routes to stable and removes the Rollout's header
// routes, exactly those SetHeaderRoute writes for providers.HeaderRouteNames, from every
// VirtualService of the Rollout. Another Rollout's routes stay, whatever their names share.
//
// The DestinationRule's subsets keep the pod-template-hash labels KULTA gave them: they select
// Pods that exist (the stable subset the stable revision, which serves all traffic now), and
// removing the label would make each subset select every revision's Pods at once. A user who
// replaces the Rollout points the subsets at the new workload.
//
// A Rollout must stay deletable whatever became of its objects, so a VirtualService that is gone
// is skipped, and one whose managed routes cannot be weighted (a RouteError, or the
// DestinationRule whose host they name is gone) keeps its weights while its header routes are
// still removed; each is logged.
func (r *Router) Cleanup(ctx context.Context, ro *kultav1alpha1.Rollout) error {
	log := ctrl.LoggerFrom(ctx)
	// noHost is why the managed routes of a subset-level split cannot be found, if they cannot.
	var host string
	var noHost *providers.RouteError
	if ref, dr := destinationRuleRef(ro); dr != nil {
		u, err := r.read(ctx, ref)
		switch {
		case errors.As(err, &noHost):
		case err != nil:
			return err
		default:
			host = Host(u)
		}
	}
	names := providers.HeaderRouteNames(ro)
	for _, vs := range routingOf(ro).Services() {
		ref := virtualServiceRef(ro, vs.Name)
		b := backendsOf(ro, vs, host)
		// unweighted is why the managed routes could not be set to stable, if they could not.
		var unweighted *providers.RouteError
		err := r.apply(ctx, ref, "clean-up", func(u *unstructured.Unstructured) (bool, error) {
			unweighted = noHost
			weighted := false
			if noHost == nil {
				var err error
				weighted, err = SetWeights(u, b, providers.Weights{Stable: 100})
				if errors.As(err, &unweighted) {
					weighted, err = false, nil
				}
				if err != nil {
					return false, err
				}
			}
			changed := weighted
			for _, name := range names {
				removed, err := RemoveHeaderRoute(u, name)
				if err != nil {
					return false, err
				}
				changed = changed || removed
			}
			return changed, nil
		})
		var routeErr *providers.RouteError
		switch {
		case errors.As(err, &routeErr) && routeErr.Reason == ReasonVirtualServiceNotFound:
			log.Info("Skipping clean-up of a VirtualService that is gone", "virtualService", ref.key())
		case err != nil:
			return err
		case unweighted != nil:
			log.Info("Left the VirtualService's weights as they are on clean-up", "virtualService", ref.key(), "reason", unweighted.Reason, "message", unweighted.Message)
		}
	}
	return nil
}

// Verify reads every VirtualService (and the DestinationRule): it reports the weights their
// managed routes all carry (nil when they differ), and whether Istio has not refused their
// current generations (see Accepted) and the DestinationRule's subsets select the revisions
// ro's status names; the message names the first object that falls short. An object that is
// missing, or a route that cannot be split, is a *providers.RouteError.
func (r *Router) Verify(ctx context.Context, ro *kultav1alpha1.Rollout) (providers.Verification, error) {
	v := providers.Verification{Accepted: true}
	notAccepted := func(msg string) {
		if v.Accepted {
			v.Accepted, v.Message = false, msg
		}
	}
	var host string
	if ref, dr := destinationRuleRef(ro); dr != nil {
		u, err := r.read(ctx, ref)
		if err != nil {
			return providers.Verification{}, err
		}
		host = Host(u)
		problem, err := SubsetLabelsProblem(u, *dr, HashesOf(ro))
		if err != nil {
			return providers.Verification{}, err
		}
		if problem != "" {
			notAccepted(problem)
		}
		if ok, msg := Accepted(u); !ok {
			notAccepted(msg)
		}
	}
	var common *providers.Weights
	for i, vs := range routingOf(ro).Services() {
		u, err := r.read(ctx, virtualServiceRef(ro, vs.Name))
		if err != nil {
			return providers.Verification{}, err
		}
		w, err := CurrentWeights(u, backendsOf(ro, vs, host))
		if err != nil {
			return providers.Verification{}, err
		}
		if i == 0 {
			common = w
		} else if w == nil || common == nil || *w != *common {
			common = nil
		}
		if ok, msg := Accepted(u); !ok {
			notAccepted(msg)
		}
	}
	v.Weights = common
	return v, nil
}

// eachVirtualService applies mutate to every VirtualService of ro (see apply), stopping at the
// first error; host is the DestinationRule's for a subset-level split.
func (r *Router) eachVirtualService(ctx context.Context, ro *kultav1alpha1.Rollout, host, what string, mutate func(*unstructured.Unstructured, Backends) (bool, error)) error {
	for _, vs := range routingOf(ro).Services() {
		b := backendsOf(ro, vs, host)
		err := r.apply(ctx, virtualServiceRef(ro, vs.Name), what, func(u *unstructured.Unstructured) (bool, error) {
			return mutate(u, b)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// objects is the router's Store over its clients.
func (r *Router) objects() *objects.Store {
	return r.store.Init(objects.Clients{Client: r.Client, Reader: r.Reader, APIReader: r.APIReader, FieldManager: FieldManager, OnWrite: r.OnWrite})
}

// apply changes the object ref with mutate and writes it when it changed (objects.Store.Apply):
// from a fresh cached copy as a patch with the copy's resourceVersion as a precondition, and
// again from the API server's copy after a conflict.
func (r *Router) apply(ctx context.Context, ref objectRef, what string, mutate func(*unstructured.Unstructured) (bool, error)) error {
	return notFound(ref, r.objects().Apply(ctx, gvkOf(ref.kind), ref.key(), what, mutate))
}

// read reads one object, from the cache when its copy can be used (objects.Store.Read). A
// missing object is a RouteError KIND+"NotFound".
func (r *Router) read(ctx context.Context, ref objectRef) (*unstructured.Unstructured, error) {
	obj, _, err := r.objects().Read(ctx, gvkOf(ref.kind), ref.key(), false)
	if err != nil {
		return nil, notFound(ref, err)
	}
	return obj, nil
}

// notFound turns a NotFound error about ref into the RouteError KIND+"NotFound"; other errors,
// and nil, are returned as they are.
func notFound(ref objectRef, err error) error {
	if !apierrors.IsNotFound(err) {
		return err
	}
	return routeError(ref.kind+"NotFound", "%s %q not found in namespace %s", ref.kind, ref.name, ref.namespace)
}

// gvkOf is the group, version and kind of a VirtualService or DestinationRule.
func gvkOf(kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: Group, Version: Version, Kind: kind}
}

// newObject is an empty VirtualService or DestinationRule, ready to be read into.
func newObject(kind string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(schema.GroupVersionKind{Group: Group, Version: Version, Kind: kind})
	return u
}
