package gatewayapi

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
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/internal/objects"
)

var _ providers.TrafficRouter = (*Router)(nil)

const (
	// Group is the Gateway API group.
	Group = "gateway.networking.k8s.io"
	// FieldManager is the field manager KULTA's route writes are recorded under, which GitOps
	// tools can be told to leave alone (docs/gitops.md).
	FieldManager = "kulta"
)

// Router moves traffic on Gateway API routes. Routes are handled as unstructured objects and
// patched with their resourceVersion as a precondition, so a write never drops a field this
// build does not know and never overwrites someone else's newer change.
//
// With a Reader (the manager's cache), routes are read from it rather than from the API server,
// except while the cached copy is older than the router's own last write to that route (a plan
// made from it would repeat or undo that write) and when the cache does not hold the route.
// The cache may hold routes trimmed by TrimRoute, and packed (the provider's trim does both).
// A change is made to the cached copy when it includes the router's own last write, and sent
// as a patch of only what changed, with the copy's resourceVersion as a precondition (see
// apply): no read precedes a write, no field the trim dropped is written, and a route changed
// meanwhile is read again from the API server.
type Router struct {
	// Client writes routes; it also reads them when Reader is nil, and reads ReferenceGrants
	// (from the cache, as the manager's client does for typed objects).
	Client client.Client
	// Reader, when set, is where routes are read first: an informer cache holding unstructured
	// HTTPRoutes and GRPCRoutes (the reconciler's route watches start those informers).
	Reader client.Reader
	// APIReader reads routes from the API server when Reader's copy cannot be used; Client is
	// used when it is nil.
	APIReader client.Reader
	// OnWrite, when set, is called after each route write with the route and what was written.
	OnWrite func(route types.NamespacedName, kind string, what string)
	// Capabilities are what the API server's Gateway API CRDs offer, as Detect found them: a
	// route of a kind not served is a RouteError, and without rule names KULTA's header rules
	// are found by their content. Nil means the newest Gateway API: every kind served, rule
	// names kept.
	Capabilities *Capabilities

	// store reads and writes the routes through the clients above.
	store objects.Store
}

// backendsOf returns the strategy's Services and port as route backends.
func backendsOf(ro *kultav1alpha1.Rollout) Backends {
	s := ro.Spec.Strategy.Services()
	return Backends{Namespace: ro.Namespace, Stable: s.Stable, Canary: s.Canary, Port: s.Port}
}

// backends is what of the route ref belongs to ro.
func (r *Router) backends(ro *kultav1alpha1.Rollout, ref kultav1alpha1.RouteReference) Backends {
	b := backendsOf(ro)
	b.Rules = ref.Rules
	b.NoRuleNames = r.Capabilities != nil && !r.Capabilities.RuleNames
	b.NoMirrorPercent = r.Capabilities != nil && !r.Capabilities.MirrorPercent
	return b
}

// headerRouteToRemove is the header route named name, with the match ro's spec gives it (see
// providers.KnownHeaderRoute), so that its rules are found where the API server keeps no rule
// names.
func headerRouteToRemove(ro *kultav1alpha1.Rollout, name string) providers.HeaderRoute {
	hr, _ := providers.KnownHeaderRoute(ro, name)
	return hr
}

// RouteRefs lists the routes a Rollout names.
func RouteRefs(ro *kultav1alpha1.Rollout) []kultav1alpha1.RouteReference {
	tr := ro.Spec.Strategy.TrafficRouting()
	if tr == nil {
		return nil
	}
	return tr.GatewayAPI.RouteRefs(ro.Namespace)
}

// SetWeights sets the split on every route of the Rollout.
func (r *Router) SetWeights(ctx context.Context, ro *kultav1alpha1.Rollout, w providers.Weights) error {
	return r.eachRoute(ctx, ro, fmt.Sprintf("weights %d/%d", w.Stable, w.Canary), func(route *unstructured.Unstructured, b Backends) (bool, error) {
		return SetWeights(route, b, w)
	})
}

// SetHeaderRoute adds or updates the header rules of hr on every route of the Rollout.
func (r *Router) SetHeaderRoute(ctx context.Context, ro *kultav1alpha1.Rollout, hr providers.HeaderRoute) error {
	return r.eachRoute(ctx, ro, "header route "+hr.Name, func(route *unstructured.Unstructured, b Backends) (bool, error) {
		return SetHeaderRoute(route, b, hr)
	})
}

// RemoveHeaderRoute removes the header rules named name from every route of the Rollout; where
// the API server keeps no rule names, those of the Rollout's header route are found by content.
func (r *Router) RemoveHeaderRoute(ctx context.Context, ro *kultav1alpha1.Rollout, name string) error {
	hr := headerRouteToRemove(ro, name)
	return r.eachRoute(ctx, ro, "removal of header route "+name, func(route *unstructured.Unstructured, b Backends) (bool, error) {
		return RemoveHeaderRoute(route, b, hr)
	})
}

// Cleanup sends all traffic of the managed rules to stable and removes the Rollout's header
// rules, exactly those of providers.HeaderRouteNames (or found by their content where the API
// server keeps no rule names), from every route of the Rollout. Another Rollout's rules stay,
// whatever their names share.
//
// A Rollout must stay deletable whatever became of its routes, so a route that is gone, whose
// kind is no longer served, or that the Rollout may no longer use (its ReferenceGrant was
// removed) is skipped, and a route whose managed rules cannot be weighted (a RouteError) keeps
// its weights while its header rules are still removed; each is logged.
func (r *Router) Cleanup(ctx context.Context, ro *kultav1alpha1.Rollout) error {
	log := ctrl.LoggerFrom(ctx)
	var headerRoutes []providers.HeaderRoute
	for _, name := range providers.HeaderRouteNames(ro) {
		headerRoutes = append(headerRoutes, headerRouteToRemove(ro, name))
	}
	for _, ref := range RouteRefs(ro) {
		route := types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}
		// unweighted is why the managed rules could not be set to stable, if they could not.
		var unweighted *providers.RouteError
		err := r.apply(ctx, ro, ref, "clean-up", func(u *unstructured.Unstructured, b Backends) (bool, error) {
			weighted, err := SetWeights(u, b, providers.Weights{Stable: 100})
			unweighted = nil
			if errors.As(err, &unweighted) {
				weighted, err = false, nil
			}
			if err != nil {
				return false, err
			}
			changed := weighted
			for _, hr := range headerRoutes {
				removed, err := RemoveHeaderRoute(u, b, hr)
				if err != nil {
					return false, err
				}
				changed = changed || removed
			}
			return changed, nil
		})
		var routeErr *providers.RouteError
		switch {
		case errors.As(err, &routeErr) && skippableOnCleanup(ref, routeErr):
			log.Info("Skipping clean-up of a route the Rollout cannot change", "kind", ref.Kind, "route", route, "reason", routeErr.Reason, "message", routeErr.Message)
		case err != nil:
			return err
		case unweighted != nil:
			log.Info("Left the route's weights as they are on clean-up", "kind", ref.Kind, "route", route, "reason", unweighted.Reason, "message", unweighted.Message)
		}
	}
	return nil
}

// skippableOnCleanup reports whether a route that cannot be read for clean-up holds nothing
// KULTA may change: it is gone, its kind is not served, or the Rollout may not use it.
func skippableOnCleanup(ref kultav1alpha1.RouteReference, err *providers.RouteError) bool {
	switch err.Reason {
	case string(ref.Kind) + "NotFound", providers.ReasonRouteKindNotServed, providers.ReasonRouteNotPermitted:
		return true
	}
	return false
}

// Verify reads every route: it reports the weights they all carry (nil when they differ) and
// whether every parent accepted each route's current generation and resolved its references,
// or only waits for that (Pending: no parent refused a route). A route that is missing, may not be used, or does not reference the Services is a
// *providers.RouteError.
func (r *Router) Verify(ctx context.Context, ro *kultav1alpha1.Rollout) (providers.Verification, error) {
	v := providers.Verification{Accepted: true, Pending: true}
	var common *providers.Weights
	for i, ref := range RouteRefs(ro) {
		route, err := r.get(ctx, ro, ref)
		if err != nil {
			return providers.Verification{}, err
		}
		w, err := CurrentWeights(route, r.backends(ro, ref))
		if err != nil {
			return providers.Verification{}, err
		}
		if i == 0 {
			common = w
		} else if w == nil || common == nil || *w != *common {
			common = nil
		}
		ok, pending, msg := Acceptance(route)
		if !ok && v.Accepted {
			v.Accepted, v.Message = false, msg
		}
		if !ok && !pending {
			v.Pending = false
		}
	}
	v.Weights = common
	v.Pending = v.Pending && !v.Accepted
	return v, nil
}

// eachRoute applies mutate to every route of ro (see apply), stopping at the first error.
func (r *Router) eachRoute(ctx context.Context, ro *kultav1alpha1.Rollout, what string, mutate func(*unstructured.Unstructured, Backends) (bool, error)) error {
	for _, ref := range RouteRefs(ro) {
		if err := r.apply(ctx, ro, ref, what, mutate); err != nil {
			return err
		}
	}
	return nil
}

// objects is the router's Store over its clients.
func (r *Router) objects() *objects.Store {
	return r.store.Init(objects.Clients{Client: r.Client, Reader: r.Reader, APIReader: r.APIReader, FieldManager: FieldManager, OnWrite: r.OnWrite})
}

// apply changes the route ref with mutate and writes it when it changed (objects.Store.Apply):
// from a fresh cached copy as a patch with the copy's resourceVersion as a precondition, and
// again from the API server's copy after a conflict.
func (r *Router) apply(ctx context.Context, ro *kultav1alpha1.Rollout, ref kultav1alpha1.RouteReference, what string, mutate func(*unstructured.Unstructured, Backends) (bool, error)) error {
	if err := r.usable(ctx, ro, ref); err != nil {
		return err
	}
	b := r.backends(ro, ref)
	err := r.objects().Apply(ctx, routeGVK(string(ref.Kind)), refKey(ref), what, func(u *unstructured.Unstructured) (bool, error) {
		return mutate(u, b)
	})
	return routeNotFound(ref, err)
}

// get reads one route for Verify, from the cache when its copy can be used (see
// objects.Store.Read).
func (r *Router) get(ctx context.Context, ro *kultav1alpha1.Rollout, ref kultav1alpha1.RouteReference) (*unstructured.Unstructured, error) {
	if err := r.usable(ctx, ro, ref); err != nil {
		return nil, err
	}
	route, _, err := r.objects().Read(ctx, routeGVK(string(ref.Kind)), refKey(ref), false)
	if err != nil {
		return nil, routeNotFound(ref, err)
	}
	return route, nil
}

// usable checks that the API server serves the route's kind and that the Rollout may use the
// route, as RouteErrors.
func (r *Router) usable(ctx context.Context, ro *kultav1alpha1.Rollout, ref kultav1alpha1.RouteReference) error {
	if r.Capabilities != nil && !r.Capabilities.Serves(ref.Kind) {
		return &providers.RouteError{Reason: providers.ReasonRouteKindNotServed, Message: fmt.Sprintf(
			"%s %s/%s: the API server does not serve %s at %s/v1; install the Gateway API standard CRDs (%s) and restart kulta-controller",
			ref.Kind, ref.Namespace, ref.Name, ref.Kind, Group, minimumVersionOf(ref.Kind))}
	}
	if ref.Namespace == ro.Namespace {
		return nil
	}
	allowed, err := r.granted(ctx, ro, ref)
	if err != nil {
		return err
	}
	if !allowed {
		return &providers.RouteError{Reason: providers.ReasonRouteNotPermitted, Message: fmt.Sprintf(
			"%s %s/%s is in another namespace and no ReferenceGrant there allows Rollouts from namespace %s to use it",
			ref.Kind, ref.Namespace, ref.Name, ro.Namespace)}
	}
	return nil
}

// routeNotFound turns a NotFound error about the route ref into the RouteError KIND+"NotFound";
// other errors, and nil, are returned as they are.
func routeNotFound(ref kultav1alpha1.RouteReference, err error) error {
	if !apierrors.IsNotFound(err) {
		return err
	}
	return &providers.RouteError{Reason: string(ref.Kind) + "NotFound", Message: fmt.Sprintf("%s %q not found in namespace %s", ref.Kind, ref.Name, ref.Namespace)}
}

// refKey is the route's namespace and name.
func refKey(ref kultav1alpha1.RouteReference) types.NamespacedName {
	return types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}
}

// routeGVK is the group, version and kind of a route kind.
func routeGVK(kind string) schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: Group, Version: "v1", Kind: kind}
}

// granted reports whether a ReferenceGrant in the route's namespace lets Rollouts from ro's
// namespace refer to the route.
func (r *Router) granted(ctx context.Context, ro *kultav1alpha1.Rollout, ref kultav1alpha1.RouteReference) (bool, error) {
	var grants gatewayv1beta1.ReferenceGrantList
	if err := r.Client.List(ctx, &grants, client.InNamespace(ref.Namespace)); err != nil {
		return false, fmt.Errorf("listing ReferenceGrants in %s: %w", ref.Namespace, err)
	}
	for _, g := range grants.Items {
		fromOK := false
		for _, f := range g.Spec.From {
			if string(f.Group) == kultav1alpha1.GroupVersion.Group && f.Kind == "Rollout" && string(f.Namespace) == ro.Namespace {
				fromOK = true
			}
		}
		if !fromOK {
			continue
		}
		for _, t := range g.Spec.To {
			if string(t.Group) == Group && string(t.Kind) == string(ref.Kind) && (t.Name == nil || string(*t.Name) == ref.Name) {
				return true, nil
			}
		}
	}
	return false, nil
}
