package nginx

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/freshness"
	"github.com/false-systems/kulta/internal/metrics"
	"github.com/false-systems/kulta/providers"
)

var _ providers.TrafficRouter = (*Router)(nil)

// FieldManager is the field manager KULTA's canary Ingress writes are recorded under.
const FieldManager = "kulta"

// Router moves traffic with ingress-nginx canary Ingresses. For each stable Ingress a Rollout
// names it keeps one canary Ingress (see CanaryIngress) carrying the canary's weight and the
// managed header route, and deletes it when neither is left; it never writes a stable Ingress.
//
// Writes are optimistic: a canary Ingress is created, updated from a copy read from the API
// server with its resourceVersion, or deleted with its UID and resourceVersion as
// preconditions, and a conflict is retried from a fresh read.
//
// With a Reader (the manager's cache, whose Ingress informer the provider's Watch starts),
// Ingresses are read from it. A stable Ingress missing from it is looked up on the API server.
// A canary Ingress the cache does not hold is taken as absent (the steady state) unless the
// router wrote it and the cache has not caught up; a cached copy older than the router's last
// write to it, or one it has deleted, is not used. A change is always made to a copy read from
// the API server, since the cached one may be trimmed (see Trim) or stale.
type Router struct {
	// Client writes canary Ingresses; it also reads Ingresses when Reader is nil.
	Client client.Client
	// Reader, when set, is where Ingresses are read first: an informer cache holding typed
	// networking.k8s.io/v1 Ingresses, indexed by CanaryIngressIndex (NewProvider declares the
	// index, and the controller adds it to the manager's cache).
	Reader client.Reader
	// APIReader reads from the API server when Reader's copy cannot be used; Client is used
	// when it is nil.
	APIReader client.Reader
	// OnWrite, when set, is called after each canary Ingress write with the Ingress and what
	// was written.
	OnWrite func(ingress types.NamespacedName, what string)

	// written holds, per canary Ingress, the resourceVersion of the router's last write to it.
	written freshness.Tracker
	// deleted holds, per canary Ingress, the UID of the copy the router last deleted, until the
	// cache no longer holds it.
	deleted sync.Map
}

// SetWeights sets the canary's weight on the canary Ingress of every stable Ingress of the
// Rollout, creating it when the canary gets weight, and deleting it when the canary has none
// and no header route is set.
func (r *Router) SetWeights(ctx context.Context, ro *kultav1alpha1.Rollout, w providers.Weights) error {
	if w.Canary < 0 || w.Stable < 0 || w.Stable+w.Canary != weightTotal {
		return fmt.Errorf("weights %d/%d for Rollout %s/%s do not add up to %d", w.Stable, w.Canary, ro.Namespace, ro.Name, weightTotal)
	}
	return r.each(ctx, ro, fmt.Sprintf("weights %d/%d", w.Stable, w.Canary), func(s State) (State, error) {
		s.CanaryWeight = w.Canary
		return s, nil
	})
}

// SetHeaderRoute puts hr on the canary Ingress of every stable Ingress of the Rollout, creating
// it if need be. ingress-nginx has room for one header route per canary Ingress: one named
// otherwise already there is a RouteError OneHeaderRoutePerIngress.
func (r *Router) SetHeaderRoute(ctx context.Context, ro *kultav1alpha1.Rollout, hr providers.HeaderRoute) error {
	if hr.Mirror != nil {
		// ingress-nginx's mirror-target copies every request of an Ingress, with no share and no
		// condition, and would copy the canary Ingress's own requests, not the stable ones.
		return &providers.RouteError{Reason: providers.ReasonUnsupportedMatch, Message: fmt.Sprintf(
			"Rollout %s/%s: mirror route %s cannot be written for ingress-nginx, which has no way to copy a share of a route's requests to the canary; mirror routes need Gateway API or Istio",
			ro.Namespace, ro.Name, hr.Name)}
	}
	return r.each(ctx, ro, "header route "+hr.Name, func(s State) (State, error) {
		if s.HeaderRoute != nil && s.HeaderRoute.Name != hr.Name {
			return s, &providers.RouteError{Reason: ReasonOneHeaderRoutePerIngress, Message: fmt.Sprintf(
				"the canary Ingresses of Rollout %s/%s carry header route %s, and ingress-nginx has room for one; remove it before setting %s",
				ro.Namespace, ro.Name, s.HeaderRoute.Name, hr.Name)}
		}
		s.HeaderRoute = &hr
		return s, nil
	})
}

// RemoveHeaderRoute removes the header route named name from the Rollout's canary Ingresses, if
// they carry it, deleting those where the canary has no weight.
func (r *Router) RemoveHeaderRoute(ctx context.Context, ro *kultav1alpha1.Rollout, name string) error {
	return r.each(ctx, ro, "removal of header route "+name, func(s State) (State, error) {
		if s.HeaderRoute != nil && s.HeaderRoute.Name == name {
			s.HeaderRoute = nil
		}
		return s, nil
	})
}

// Verify reads every stable Ingress and its canary Ingress. The weights are the split all of
// them make (nil when they differ); without a canary Ingress a stable Ingress sends everything
// to stable.
//
// ingress-nginx reports no per-generation acceptance: status.loadBalancer.ingress only says a
// controller serves an Ingress, is refreshed on a timer rather than per change, and stays empty
// under --update-status=false. So Accepted means the canary Ingresses are in the API server as
// KULTA would write them now, which ingress-nginx acts on as soon as its informer sees them. A
// canary Ingress that no longer mirrors its stable Ingress (the user changed hosts, paths or
// the class) or the Rollout (changed annotations) is reported not accepted, naming what
// differs, until the next SetWeights rewrites it; so is one left from a stable Ingress the
// Rollout no longer names, until it is deleted. A stable Ingress that is missing or does not
// send traffic to the stable Service, or a canary Ingress name taken by another object, is a
// *providers.RouteError.
func (r *Router) Verify(ctx context.Context, ro *kultav1alpha1.Rollout) (providers.Verification, error) {
	if err := requireUID(ro); err != nil {
		return providers.Verification{}, err
	}
	prefix := AnnotationPrefix(ro)
	v := providers.Verification{Accepted: true}
	notAccepted := func(msg string) {
		if v.Accepted {
			v.Accepted, v.Message = false, msg
		}
	}
	names := StableIngresses(ro)
	for i, name := range names {
		key := canaryKey(ro, name)
		canary, _, err := r.readCanary(ctx, ro, key, false)
		if err != nil {
			return providers.Verification{}, err
		}
		stable, err := r.readStable(ctx, ro, name)
		if err != nil {
			return providers.Verification{}, err
		}
		desired, err := CanaryIngress(ro, stable, StateOf(canary, prefix))
		if err != nil {
			return providers.Verification{}, err
		}
		w := WeightsOf(canary, prefix)
		if i == 0 {
			v.Weights = w
		} else if w == nil || v.Weights == nil || *w != *v.Weights {
			v.Weights = nil
		}
		if canary == nil {
			continue
		}
		if _, differ := Merge(canary, desired, prefix); len(differ) > 0 {
			notAccepted(fmt.Sprintf("canary Ingress %s does not match Ingress %s/%s and Rollout %s yet (%s differ); KULTA rewrites it on its next step",
				key, stable.Namespace, stable.Name, ro.Name, strings.Join(differ, ", ")))
		}
	}
	orphans, err := r.orphans(ctx, ro, names)
	if err != nil {
		return providers.Verification{}, err
	}
	for _, o := range orphans {
		notAccepted(fmt.Sprintf("canary Ingress %s/%s is left from Ingress %s, which Rollout %s no longer names; KULTA deletes it on its next step",
			o.Namespace, o.Name, o.Annotations[StableIngressAnnotation], ro.Name))
	}
	return v, nil
}

// Cleanup deletes every canary Ingress of the Rollout, leaving the stable Ingresses, which
// KULTA never changed, to route everything to stable. It finds them by CanaryIngressLabel and
// by name, on the API server, and deletes only those the Rollout controls; one already gone is
// no error, and a stable Ingress that is gone does not matter.
func (r *Router) Cleanup(ctx context.Context, ro *kultav1alpha1.Rollout) error {
	if err := requireUID(ro); err != nil {
		return err
	}
	owned, err := r.canaryIngresses(ctx, ro, true)
	if err != nil {
		return err
	}
	seen := map[types.NamespacedName]bool{}
	for i := range owned {
		seen[client.ObjectKeyFromObject(&owned[i])] = true
	}
	// A canary Ingress whose label someone removed is still found by its name.
	for _, name := range StableIngresses(ro) {
		key := canaryKey(ro, name)
		if seen[key] {
			continue
		}
		ing := &networkingv1.Ingress{}
		switch err := r.apiReader().Get(ctx, key, ing); {
		case apierrors.IsNotFound(err):
		case err != nil:
			return fmt.Errorf("getting canary Ingress %s: %w", key, err)
		case controlledBy(ing, ro):
			owned = append(owned, *ing)
		}
	}
	for i := range owned {
		if err := r.delete(ctx, &owned[i], false, "clean-up"); err != nil {
			return err
		}
	}
	return nil
}

// each applies mutate to the state of the canary Ingress of every stable Ingress of ro (see
// apply), stopping at the first error, then deletes the canary Ingresses left from stable
// Ingresses ro no longer names.
func (r *Router) each(ctx context.Context, ro *kultav1alpha1.Rollout, what string, mutate func(State) (State, error)) error {
	if err := requireUID(ro); err != nil {
		return err
	}
	names := StableIngresses(ro)
	for _, name := range names {
		if err := r.apply(ctx, ro, name, what, mutate); err != nil {
			return err
		}
	}
	orphans, err := r.orphans(ctx, ro, names)
	if err != nil {
		return err
	}
	for i := range orphans {
		if err := r.delete(ctx, &orphans[i], false, "removal of a canary Ingress whose stable Ingress the Rollout no longer names"); err != nil {
			return err
		}
	}
	return nil
}

// apply brings the canary Ingress of stable Ingress name to the state mutate makes of its
// current one, retrying on conflicts. The first read may come from the cache (when its copy
// includes the router's own last write); a change is decided from that copy and written as a
// patch of only what changed, with the copy's resourceVersion as a precondition (a deletion
// too), so no read precedes a write. After a conflict the canary Ingress is read again from the
// API server.
func (r *Router) apply(ctx context.Context, ro *kultav1alpha1.Rollout, name, what string, mutate func(State) (State, error)) error {
	key := canaryKey(ro, name)
	prefix := AnnotationPrefix(ro)
	// desiredFor is the canary Ingress to have given the current one; nil when none is needed.
	desiredFor := func(canary *networkingv1.Ingress) (*networkingv1.Ingress, error) {
		want, err := mutate(StateOf(canary, prefix))
		if err != nil || !want.Needed() {
			return nil, err
		}
		stable, err := r.readStable(ctx, ro, name)
		if err != nil {
			return nil, err
		}
		return CanaryIngress(ro, stable, want)
	}
	fromAPI := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		canary, _, err := r.readCanary(ctx, ro, key, fromAPI)
		if err != nil {
			return err
		}
		desired, err := desiredFor(canary)
		if err != nil || upToDate(canary, desired, prefix) {
			return err
		}
		fromAPI = true
		switch {
		case desired == nil:
			return r.delete(ctx, canary, true, what)
		case canary == nil:
			return r.create(ctx, desired, what)
		}
		merged, _ := Merge(canary, desired, prefix)
		return r.patch(ctx, canary, merged, what)
	})
	if err != nil {
		return fmt.Errorf("applying %s: %w", what, err)
	}
	return nil
}

// upToDate reports whether the canary Ingress current needs no write to become desired (nil:
// none wanted).
func upToDate(current, desired *networkingv1.Ingress, prefix string) bool {
	if current == nil || desired == nil {
		return current == nil && desired == nil
	}
	_, differ := Merge(current, desired, prefix)
	return len(differ) == 0
}

// create creates the canary Ingress ing. One that already exists (a cache behind the API
// server) is reported as a conflict, so that apply reads it from the API server and patches it.
func (r *Router) create(ctx context.Context, ing *networkingv1.Ingress, what string) error {
	err := r.Client.Create(ctx, ing, client.FieldOwner(FieldManager))
	r.count(err)
	if apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating canary Ingress %s/%s for %s: %w", ing.Namespace, ing.Name, what,
			apierrors.NewConflict(networkingv1.Resource("ingresses"), ing.Name, err))
	}
	if err != nil {
		return fmt.Errorf("creating canary Ingress %s/%s for %s: %w", ing.Namespace, ing.Name, what, err)
	}
	key := client.ObjectKeyFromObject(ing)
	r.deleted.Delete(key)
	r.wrote(ctx, key, ing.ResourceVersion, "Created canary Ingress", what)
	return nil
}

// patch writes what differs between the canary Ingress as read (before) and ing, with before's
// resourceVersion as a precondition. The copy read may be trimmed (TrimIngress keeps a canary
// Ingress's spec, labels and annotations, which is all Merge changes): what the trim dropped is
// the same in both, so it is never written.
func (r *Router) patch(ctx context.Context, before, ing *networkingv1.Ingress, what string) error {
	err := r.Client.Patch(ctx, ing, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}), client.FieldOwner(FieldManager))
	r.count(err)
	if err != nil {
		return fmt.Errorf("updating canary Ingress %s/%s for %s: %w", ing.Namespace, ing.Name, what, err)
	}
	r.wrote(ctx, client.ObjectKeyFromObject(ing), ing.ResourceVersion, "Updated canary Ingress", what)
	return nil
}

// delete deletes the canary Ingress ing if it still is the copy the router read (same UID and,
// when exact is set, resourceVersion); one already gone is no error.
func (r *Router) delete(ctx context.Context, ing *networkingv1.Ingress, exact bool, what string) error {
	pre := client.Preconditions{UID: &ing.UID}
	if exact {
		pre.ResourceVersion = &ing.ResourceVersion
	}
	err := r.Client.Delete(ctx, ing, pre)
	if apierrors.IsNotFound(err) {
		err = nil
	}
	r.count(err)
	if err != nil {
		return fmt.Errorf("deleting canary Ingress %s/%s for %s: %w", ing.Namespace, ing.Name, what, err)
	}
	key := client.ObjectKeyFromObject(ing)
	r.written.Forget(key)
	r.deleted.Store(key, ing.UID)
	r.wrote(ctx, key, "", "Deleted canary Ingress", what)
	return nil
}

// count counts a canary Ingress write by its result.
func (r *Router) count(err error) {
	result := "ok"
	switch {
	case apierrors.IsConflict(err), apierrors.IsAlreadyExists(err):
		result = "conflict"
	case err != nil:
		result = "error"
	}
	metrics.RouteWrites.WithLabelValues("Ingress", result).Inc()
}

// wrote records a successful write: the version it produced, a log line, OnWrite.
func (r *Router) wrote(ctx context.Context, key types.NamespacedName, resourceVersion, msg, what string) {
	if resourceVersion != "" {
		r.written.Wrote(key, resourceVersion)
	}
	ctrl.LoggerFrom(ctx).V(1).Info(msg, "ingress", key, "what", what)
	if r.OnWrite != nil {
		r.OnWrite(key, what)
	}
}

// readCanary reads the canary Ingress key of ro: nil when there is none, and whether the copy
// came from the Reader. One that ro does not control is a RouteError CanaryIngressNameTaken.
// It reads from the API server when fromAPI is set, when there is no Reader, and when the
// Reader's answer cannot be trusted (see Router).
func (r *Router) readCanary(ctx context.Context, ro *kultav1alpha1.Rollout, key types.NamespacedName, fromAPI bool) (*networkingv1.Ingress, bool, error) {
	if r.Reader != nil && !fromAPI {
		ing := &networkingv1.Ingress{}
		// A canary Ingress is the router's own: one the cache misses does not exist, unless the
		// router wrote it and the cache has not caught up (r.written).
		err := r.Reader.Get(ctx, key, ing, providers.OwnObject{})
		deletedUID, wasDeleted := r.deleted.Load(key)
		switch {
		case err == nil && wasDeleted && deletedUID == ing.UID:
			return nil, true, nil
		case err == nil && r.written.Fresh(key, ing.ResourceVersion):
			r.deleted.Delete(key)
			if err := checkOwner(ing, ro); err != nil {
				return nil, true, err
			}
			return ing, true, nil
		case apierrors.IsNotFound(err) && r.written.Fresh(key, ""):
			r.deleted.Delete(key)
			return nil, true, nil
		}
		ctrl.LoggerFrom(ctx).V(5).Info("Reading canary Ingress from the API server", "ingress", key, "cacheError", err)
	}
	ing := &networkingv1.Ingress{}
	if err := r.apiReader().Get(ctx, key, ing); err != nil {
		if apierrors.IsNotFound(err) {
			r.written.Forget(key)
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("getting canary Ingress %s: %w", key, err)
	}
	if err := checkOwner(ing, ro); err != nil {
		return nil, false, err
	}
	return ing, false, nil
}

// checkOwner fails unless ro controls the Ingress ing that has its canary Ingress's name. One
// controlled by an earlier Rollout of the same name is waited for: the garbage collector
// deletes it.
func checkOwner(ing *networkingv1.Ingress, ro *kultav1alpha1.Rollout) error {
	if controlledBy(ing, ro) {
		return nil
	}
	if ref := metav1.GetControllerOfNoCopy(ing); ref != nil && isRolloutRef(ref) && ref.Name == ro.Name {
		return fmt.Errorf("canary Ingress %s/%s belongs to an earlier Rollout %s (UID %s); waiting for the garbage collector to delete it", ing.Namespace, ing.Name, ro.Name, ref.UID)
	}
	return &providers.RouteError{Reason: ReasonCanaryIngressNameTaken, Message: fmt.Sprintf(
		"Ingress %s/%s exists and is not Rollout %s's canary Ingress, so KULTA cannot use the name for it; rename or delete that Ingress, or rename the Rollout",
		ing.Namespace, ing.Name, ro.Name)}
}

// readStable reads the stable Ingress name of ro, from the Reader when it holds it, else from
// the API server. One that is missing is a RouteError IngressNotFound.
func (r *Router) readStable(ctx context.Context, ro *kultav1alpha1.Rollout, name string) (*networkingv1.Ingress, error) {
	key := types.NamespacedName{Namespace: ro.Namespace, Name: name}
	if r.Reader != nil {
		ing := &networkingv1.Ingress{}
		err := r.Reader.Get(ctx, key, ing)
		if err == nil {
			return ing, nil
		}
		// Missing from the cache may mean not yet seen: the API server decides.
		ctrl.LoggerFrom(ctx).V(5).Info("Reading stable Ingress from the API server", "ingress", key, "cacheError", err)
	}
	ing := &networkingv1.Ingress{}
	if err := r.apiReader().Get(ctx, key, ing); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &providers.RouteError{Reason: ReasonIngressNotFound, Message: fmt.Sprintf(
				"Ingress %q not found in namespace %s (%s.trafficRouting.nginx)", name, ro.Namespace, servicesOf(ro).field)}
		}
		return nil, fmt.Errorf("getting Ingress %s: %w", key, err)
	}
	return ing, nil
}

// canaryIngresses lists the canary Ingresses ro controls. From the cache (Reader) they are read
// through CanaryIngressIndex, so a reconcile reads its own Rollout's few and not every canary
// Ingress of its namespace; from the API server (fromAPI), or without a cache, they are listed by
// CanaryIngressLabel in ro's namespace.
func (r *Router) canaryIngresses(ctx context.Context, ro *kultav1alpha1.Rollout, fromAPI bool) ([]networkingv1.Ingress, error) {
	var reader client.Reader = r.Client
	var by client.ListOption = client.MatchingLabels{CanaryIngressLabel: "true"}
	switch {
	case fromAPI:
		reader = r.apiReader()
	case r.Reader != nil:
		reader, by = r.Reader, client.MatchingFields{CanaryIngressIndex: string(ro.UID)}
	}
	var list networkingv1.IngressList
	if err := reader.List(ctx, &list, client.InNamespace(ro.Namespace), by); err != nil {
		return nil, fmt.Errorf("listing the canary Ingresses of Rollout %s/%s: %w", ro.Namespace, ro.Name, err)
	}
	var out []networkingv1.Ingress
	for _, ing := range list.Items {
		if !controlledBy(&ing, ro) {
			continue
		}
		if uid, ok := r.deleted.Load(client.ObjectKeyFromObject(&ing)); ok && uid == ing.UID {
			continue
		}
		out = append(out, ing)
	}
	return out, nil
}

// orphans are the canary Ingresses ro controls that are not those of the stable Ingresses names.
func (r *Router) orphans(ctx context.Context, ro *kultav1alpha1.Rollout, names []string) ([]networkingv1.Ingress, error) {
	owned, err := r.canaryIngresses(ctx, ro, false)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, name := range names {
		want[CanaryIngressName(ro.Name, name)] = true
	}
	var out []networkingv1.Ingress
	for _, ing := range owned {
		if !want[ing.Name] {
			out = append(out, ing)
		}
	}
	return out, nil
}

func (r *Router) apiReader() client.Reader {
	if r.APIReader != nil {
		return r.APIReader
	}
	return r.Client
}

// canaryKey is the key of the canary Ingress of ro's stable Ingress name.
func canaryKey(ro *kultav1alpha1.Rollout, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ro.Namespace, Name: CanaryIngressName(ro.Name, name)}
}

// requireUID fails for a Rollout not read from the API server: a canary Ingress's controller
// reference needs its UID.
func requireUID(ro *kultav1alpha1.Rollout) error {
	if ro.UID == "" {
		return errors.New("rollout " + ro.Namespace + "/" + ro.Name + " has no UID: the nginx router needs a Rollout read from the API server")
	}
	return nil
}
