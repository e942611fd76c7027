package nginx

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/providers"
)

// Labels and annotations on the canary Ingresses KULTA writes.
const (
	// CanaryIngressLabel, "true", marks an Ingress KULTA created as a Rollout's canary Ingress;
	// its controller ownerReference says which Rollout's.
	CanaryIngressLabel = "rollouts.kulta.io/canary-ingress"
	// StableIngressAnnotation names the stable Ingress a canary Ingress was derived from.
	StableIngressAnnotation = "kulta.io/stable-ingress"
	// HeaderRouteAnnotation holds the managed header route a canary Ingress carries, as JSON
	// ({"name", "header", "cookie"}), so that a weight change keeps it exactly.
	HeaderRouteAnnotation = "kulta.io/header-route"
	// ManagedAnnotationsAnnotation lists, comma-separated, the annotations outside kulta.io/ that
	// KULTA wrote on a canary Ingress, so that one it no longer writes (a key removed from
	// canaryIngressAnnotations, a changed annotationPrefix) is removed.
	ManagedAnnotationsAnnotation = "kulta.io/managed-annotations"
	// IngressClassAnnotation is the class annotation that predates spec.ingressClassName, which
	// ingress-nginx still honours; a stable Ingress's is copied to its canary Ingress.
	IngressClassAnnotation = "kubernetes.io/ingress.class"
	// kultaAnnotationPrefix starts the annotations KULTA keeps its own records in.
	kultaAnnotationPrefix = "kulta.io/"
)

// ingress-nginx's canary annotations, without their prefix.
const (
	annotationCanary               = "canary"
	annotationCanaryWeight         = "canary-weight"
	annotationCanaryWeightTotal    = "canary-weight-total"
	annotationCanaryByHeader       = "canary-by-header"
	annotationCanaryByHeaderValue  = "canary-by-header-value"
	annotationCanaryByHeaderRegexp = "canary-by-header-pattern"
	annotationCanaryByCookie       = "canary-by-cookie"
	// weightTotal is the canary-weight-total KULTA writes, so that canary-weight is a percentage
	// whatever additionalIngressAnnotations say.
	weightTotal = 100
	// cookieAlways is the only cookie value ingress-nginx's canary-by-cookie routes to the canary.
	cookieAlways = "always"
)

// headerRouteKeys are the annotations a managed header route owns: while one is set, these come
// from it alone, not from additionalIngressAnnotations.
var headerRouteKeys = []string{annotationCanaryByHeader, annotationCanaryByHeaderValue, annotationCanaryByHeaderRegexp, annotationCanaryByCookie}

// annotationsFor is the canary Ingress's annotations, each layer overriding the ones before:
//
//  1. stable's kubernetes.io/ingress.class, if any. No other annotation of the stable Ingress is
//     copied: ingress-nginx takes a canary's server and location settings from the non-canary
//     Ingress and ignores them on the canary (as Argo Rollouts, KULTA copies only the class).
//     The few it reads per upstream on a canary (load-balance, upstream-hash-by) can be set
//     through additionalIngressAnnotations;
//  2. additionalIngressAnnotations, each key under the annotation prefix (unless already);
//  3. canaryIngressAnnotations, as they are (Argo Rollouts' precedence);
//  4. KULTA's routing: canary "true", canary-weight, canary-weight-total 100 and, when s has a
//     header route, its canary-by-* annotations, which then replace any from the layers above;
//  5. KULTA's records: StableIngressAnnotation, HeaderRouteAnnotation,
//     ManagedAnnotationsAnnotation.
func annotationsFor(ro *kultav1alpha1.Rollout, stable *networkingv1.Ingress, s State) (map[string]string, error) {
	prefix := AnnotationPrefix(ro)
	out := map[string]string{}
	if class, ok := stable.Annotations[IngressClassAnnotation]; ok {
		out[IngressClassAnnotation] = class
	}
	if n := routing(ro); n != nil {
		for k, v := range n.AdditionalIngressAnnotations {
			if !strings.HasPrefix(k, prefix+"/") {
				k = prefix + "/" + k
			}
			out[k] = v
		}
		for k, v := range n.CanaryIngressAnnotations {
			out[k] = v
		}
	}
	out[prefix+"/"+annotationCanary] = "true"
	out[prefix+"/"+annotationCanaryWeight] = strconv.Itoa(int(s.CanaryWeight))
	out[prefix+"/"+annotationCanaryWeightTotal] = strconv.Itoa(weightTotal)
	for k := range out {
		if strings.HasPrefix(k, kultaAnnotationPrefix) {
			delete(out, k) // KULTA's records are its own, whatever the Rollout's annotations say.
		}
	}
	if s.HeaderRoute != nil {
		byHeader, err := headerRouteAnnotations(ro, *s.HeaderRoute)
		if err != nil {
			return nil, err
		}
		for _, k := range headerRouteKeys {
			delete(out, prefix+"/"+k)
		}
		for k, v := range byHeader {
			out[prefix+"/"+k] = v
		}
		record, err := json.Marshal(storedHeaderRoute{Name: s.HeaderRoute.Name, Header: s.HeaderRoute.Header, Cookie: s.HeaderRoute.Cookie, All: s.HeaderRoute.All})
		if err != nil {
			return nil, fmt.Errorf("recording header route %s: %w", s.HeaderRoute.Name, err)
		}
		out[HeaderRouteAnnotation] = string(record)
	}
	managed := make([]string, 0, len(out))
	for k := range out {
		if !strings.HasPrefix(k, kultaAnnotationPrefix) {
			managed = append(managed, k)
		}
	}
	slices.Sort(managed)
	out[StableIngressAnnotation] = stable.Name
	out[ManagedAnnotationsAnnotation] = strings.Join(managed, ",")
	return out, nil
}

// storedHeaderRoute is a header route as HeaderRouteAnnotation records it.
type storedHeaderRoute struct {
	Name   string                     `json:"name"`
	Header *kultav1alpha1.HeaderMatch `json:"header,omitempty"`
	Cookie *kultav1alpha1.CookieMatch `json:"cookie,omitempty"`
	// All holds a setHeaderRoute step's conditions (one, for ingress-nginx).
	All []kultav1alpha1.HeaderMatch `json:"all,omitempty"`
}

// headerRouteAnnotations are the canary-by-* annotations (without prefix) that send hr's
// requests to the canary Service. ingress-nginx checks the header first, then the cookie, then
// the weight; a request whose header does not match falls through to the cookie, so a request
// that matches either goes to the canary, as HeaderRoute asks.
//
//   - an Exact header is canary-by-header and canary-by-header-value;
//   - a RegularExpression header is canary-by-header and canary-by-header-pattern, anchored as
//     ^(?:value)$: ingress-nginx matches the PCRE pattern anywhere in the value, while Gateway
//     API implementations (Envoy, and so KULTA's other providers) match the whole value;
//   - a cookie is canary-by-cookie, which sends a request to the canary only when the cookie's
//     value is "always" (and away from it when "never"): a cookie match with another value
//     cannot be expressed and is a RouteError UnsupportedMatch naming the Rollout's field.
//
// An Exact header with an empty value cannot be expressed either: ingress-nginx ignores an
// empty canary-by-header-value and then routes on the values "always" and "never".
//
// A setHeaderRoute step's conditions (HeaderRoute.All) must be one: ingress-nginx matches one
// header per canary Ingress. That one is taken as the header above; a cookie condition there is
// a regular expression on the Cookie header, which canary-by-header-pattern matches like any
// other.
func headerRouteAnnotations(ro *kultav1alpha1.Rollout, hr providers.HeaderRoute) (map[string]string, error) {
	switch {
	case len(hr.All) > 1:
		return nil, &providers.RouteError{Reason: providers.ReasonUnsupportedMatch, Message: fmt.Sprintf(
			"Rollout %s/%s: setHeaderRoute %s has %d match conditions, and ingress-nginx's canary Ingress matches one header; keep one condition",
			ro.Namespace, ro.Name, hr.Name, len(hr.All))}
	case len(hr.All) == 1:
		hr = providers.HeaderRoute{Name: hr.Name, Header: &hr.All[0]}
	}
	if hr.Header == nil && hr.Cookie == nil {
		return nil, fmt.Errorf("header route %s matches neither a header nor a cookie", hr.Name)
	}
	out := map[string]string{}
	if h := hr.Header; h != nil {
		out[annotationCanaryByHeader] = h.Name
		switch h.Type {
		case kultav1alpha1.MatchRegularExpression:
			out[annotationCanaryByHeaderRegexp] = "^(?:" + h.Value + ")$"
		case kultav1alpha1.MatchExact, "":
			if h.Value == "" {
				return nil, unsupportedMatch(ro, "header.value", fmt.Sprintf(
					"is empty, and ingress-nginx ignores an empty %s, routing header %s on the values %q and \"never\" instead; match a non-empty value",
					annotationCanaryByHeaderValue, h.Name, cookieAlways))
			}
			out[annotationCanaryByHeaderValue] = h.Value
		default:
			return nil, unsupportedMatch(ro, "header.type", fmt.Sprintf("is %q, which KULTA does not know", h.Type))
		}
	}
	if c := hr.Cookie; c != nil {
		if c.Value != cookieAlways {
			return nil, unsupportedMatch(ro, "cookie.value", fmt.Sprintf(
				"is %q, but ingress-nginx's %s sends a request to the canary only when cookie %s is %q; set the value to %q or match a header",
				c.Value, annotationCanaryByCookie, c.Name, cookieAlways, cookieAlways))
		}
		out[annotationCanaryByCookie] = c.Name
	}
	return out, nil
}

// unsupportedMatch is the RouteError for a part of the Rollout's match ingress-nginx cannot
// express, naming its field.
func unsupportedMatch(ro *kultav1alpha1.Rollout, part, what string) error {
	field := "the header route's " + part
	if ro.Spec.Strategy.ABTesting != nil {
		field = "spec.strategy.abTesting.variantBMatch." + part
	}
	return &providers.RouteError{Reason: providers.ReasonUnsupportedMatch, Message: fmt.Sprintf(
		"Rollout %s/%s: %s %s", ro.Namespace, ro.Name, field, what)}
}

// StateOf reads the state a canary Ingress carries: its canary-weight under prefix (0 when
// missing or not a number, as ingress-nginx takes it) and the header route KULTA recorded on
// it. A nil canary Ingress carries the zero State.
func StateOf(canary *networkingv1.Ingress, prefix string) State {
	if canary == nil {
		return State{}
	}
	var s State
	if w, err := strconv.ParseInt(canary.Annotations[prefix+"/"+annotationCanaryWeight], 10, 32); err == nil && w >= 0 && w <= weightTotal {
		s.CanaryWeight = int32(w)
	}
	if record, ok := canary.Annotations[HeaderRouteAnnotation]; ok {
		var hr storedHeaderRoute
		if err := json.Unmarshal([]byte(record), &hr); err == nil && hr.Name != "" {
			s.HeaderRoute = &providers.HeaderRoute{Name: hr.Name, Header: hr.Header, Cookie: hr.Cookie, All: hr.All}
		}
	}
	return s
}

// WeightsOf is the split ingress-nginx makes with canary beside its stable Ingress: all on
// stable when there is no canary Ingress, else canary-weight out of canary-weight-total (100
// when unset). It is nil when ingress-nginx would not take canary for a canary Ingress or the
// share is not a whole percentage.
func WeightsOf(canary *networkingv1.Ingress, prefix string) *providers.Weights {
	if canary == nil {
		return &providers.Weights{Stable: weightTotal}
	}
	a := canary.Annotations
	if a[prefix+"/"+annotationCanary] != "true" {
		return nil
	}
	weight, total := int64(0), int64(weightTotal)
	if v, ok := a[prefix+"/"+annotationCanaryWeight]; ok {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return nil
		}
		weight = n
	}
	if v, ok := a[prefix+"/"+annotationCanaryWeightTotal]; ok {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n <= 0 {
			return nil
		}
		total = n
	}
	weight = min(max(weight, 0), total)
	if weight*weightTotal%total != 0 {
		return nil
	}
	canaryShare := int32(weight * weightTotal / total)
	return &providers.Weights{Stable: weightTotal - canaryShare, Canary: canaryShare}
}

// Merge returns current with desired's KULTA-owned parts applied, and names the parts that
// differed (none: current is up to date). KULTA owns of a canary Ingress:
//
//   - the whole spec;
//   - its labels' keys that desired sets; other labels are left as they are;
//   - the annotations under kulta.io/ and under ingress-nginx's prefix (any other there would
//     change the routing), and those its ManagedAnnotationsAnnotation recorded; annotations of
//     other tools are left as they are;
//   - its controller ownerReference; other ownerReferences are left as they are.
//
// Both are read, neither is changed.
func Merge(current, desired *networkingv1.Ingress, prefix string) (*networkingv1.Ingress, []string) {
	out := current.DeepCopy()
	var differ []string
	if !equality.Semantic.DeepEqual(out.Spec.IngressClassName, desired.Spec.IngressClassName) {
		differ = append(differ, "spec.ingressClassName")
	}
	if !equality.Semantic.DeepEqual(out.Spec.DefaultBackend, desired.Spec.DefaultBackend) {
		differ = append(differ, "spec.defaultBackend")
	}
	if !equality.Semantic.DeepEqual(out.Spec.Rules, desired.Spec.Rules) {
		differ = append(differ, "spec.rules")
	}
	if len(out.Spec.TLS) > 0 {
		differ = append(differ, "spec.tls")
	}
	if len(differ) > 0 {
		out.Spec = *desired.Spec.DeepCopy()
	}
	for k, v := range desired.Labels {
		if current.Labels[k] != v {
			if out.Labels == nil {
				out.Labels = map[string]string{}
			}
			out.Labels[k] = v
			differ = appendOnce(differ, "metadata.labels")
		}
	}
	if annotations, changed := mergeAnnotations(current.Annotations, desired.Annotations, prefix); changed {
		out.Annotations = annotations
		differ = append(differ, "metadata.annotations")
	}
	if refs, changed := mergeController(current.OwnerReferences, desired.OwnerReferences); changed {
		out.OwnerReferences = refs
		differ = append(differ, "metadata.ownerReferences")
	}
	return out, differ
}

// mergeAnnotations applies desired to current's annotations: KULTA's (see Merge) not in
// desired are removed, desired's are set.
func mergeAnnotations(current, desired map[string]string, prefix string) (map[string]string, bool) {
	recorded := map[string]bool{}
	for _, k := range strings.Split(current[ManagedAnnotationsAnnotation], ",") {
		recorded[k] = k != ""
	}
	out := make(map[string]string, len(desired))
	changed := false
	for k, v := range current {
		owned := strings.HasPrefix(k, kultaAnnotationPrefix) || strings.HasPrefix(k, prefix+"/") || recorded[k]
		if _, wanted := desired[k]; owned && !wanted {
			changed = true
			continue
		}
		out[k] = v
	}
	for k, v := range desired {
		if cur, ok := out[k]; !ok || cur != v {
			out[k] = v
			changed = true
		}
	}
	return out, changed
}

// mergeController puts desired's controller reference among current's ownerReferences,
// replacing any reference to the same owner.
func mergeController(current, desired []metav1.OwnerReference) ([]metav1.OwnerReference, bool) {
	var want *metav1.OwnerReference
	for i := range desired {
		if c := desired[i].Controller; c != nil && *c {
			want = &desired[i]
		}
	}
	if want == nil {
		return current, false
	}
	out := make([]metav1.OwnerReference, 0, len(current)+1)
	found := false
	for _, ref := range current {
		if ref.UID != want.UID {
			out = append(out, ref)
			continue
		}
		found = true
		if !equality.Semantic.DeepEqual(ref, *want) {
			out = append(out, *want)
			continue
		}
		out = append(out, ref)
	}
	if !found {
		return append(out, *want), true
	}
	return out, !equality.Semantic.DeepEqual(out, current)
}

func appendOnce(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
