package nginx

import (
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/providers"
)

// Reasons of the RouteErrors this provider returns, besides providers.ReasonUnsupportedMatch.
const (
	// ReasonIngressNotFound: a stable Ingress the Rollout names does not exist.
	ReasonIngressNotFound = "IngressNotFound"
	// ReasonIngressDoesNotReferenceServices: no path of a stable Ingress, nor its default
	// backend, sends traffic to the stable Service at the strategy's port.
	ReasonIngressDoesNotReferenceServices = "IngressDoesNotReferenceServices"
	// ReasonStableIngressIsCanary: a stable Ingress is itself marked as an ingress-nginx canary.
	ReasonStableIngressIsCanary = "StableIngressIsCanary"
	// ReasonCanaryIngressNameTooLong: <rollout>-<stableIngress>-canary is longer than an object
	// name may be.
	ReasonCanaryIngressNameTooLong = "CanaryIngressNameTooLong"
	// ReasonCanaryIngressNameTaken: an Ingress KULTA does not own for this Rollout already has
	// the canary Ingress's name.
	ReasonCanaryIngressNameTaken = "CanaryIngressNameTaken"
	// ReasonOneHeaderRoutePerIngress: a canary Ingress already carries another header route, and
	// ingress-nginx has room for one.
	ReasonOneHeaderRoutePerIngress = "OneHeaderRoutePerIngress"
)

const (
	// DefaultAnnotationPrefix is ingress-nginx's annotation prefix unless its
	// --annotations-prefix flag says otherwise.
	DefaultAnnotationPrefix = "nginx.ingress.kubernetes.io"
	// maxNameLength is the longest object name the API server accepts for an Ingress.
	maxNameLength = 253
)

// services are the strategy's two Services and port: canary (stableService, canaryService),
// blue-green (activeService, previewService) or A/B testing (variantAService, variantBService).
type services struct {
	// Stable and Canary are the Service names.
	Stable, Canary string
	// Port is the strategy's port. An Ingress backend is the stable one when it names the stable
	// Service at this port number, or by a port name: ingress-nginx resolves names on the
	// Service, which KULTA does not read, and the canary Service is expected to name its ports
	// as the stable one does.
	Port int32
	// field is the strategy's field path, such as spec.strategy.canary, for messages.
	field string
}

// servicesOf returns the strategy's Services and port.
func servicesOf(ro *kultav1alpha1.Rollout) services {
	s := ro.Spec.Strategy.Services()
	return services{Stable: s.Stable, Canary: s.Canary, Port: s.Port, field: s.Field}
}

// isStable reports whether b sends traffic to the stable Service at the strategy's port.
func (s services) isStable(b *networkingv1.IngressBackend) bool {
	if b == nil || b.Service == nil || b.Service.Name != s.Stable {
		return false
	}
	return b.Service.Port.Name != "" || b.Service.Port.Number == s.Port
}

// toCanary is a copy of the stable backend b pointed at the canary Service, at the same port.
func (s services) toCanary(b networkingv1.IngressBackend) *networkingv1.IngressBackend {
	out := b.DeepCopy()
	out.Service.Name = s.Canary
	return out
}

// routing returns the Rollout's nginx block, or nil.
func routing(ro *kultav1alpha1.Rollout) *kultav1alpha1.NGINXRouting {
	tr := ro.Spec.Strategy.TrafficRouting()
	if tr == nil {
		return nil
	}
	return tr.NGINX
}

// AnnotationPrefix is the Rollout's ingress-nginx annotation prefix.
func AnnotationPrefix(ro *kultav1alpha1.Rollout) string {
	if n := routing(ro); n != nil && n.AnnotationPrefix != "" {
		return n.AnnotationPrefix
	}
	return DefaultAnnotationPrefix
}

// StableIngresses lists the stable Ingresses the Rollout names, in its namespace.
func StableIngresses(ro *kultav1alpha1.Rollout) []string {
	return routing(ro).Ingresses()
}

// CanaryIngressName is the name of the canary Ingress KULTA derives for Rollout rollout from
// its stable Ingress stableIngress, as Argo Rollouts names it.
func CanaryIngressName(rollout, stableIngress string) string {
	return rollout + "-" + stableIngress + "-canary"
}

// State is what a canary Ingress carries for its Rollout.
type State struct {
	// CanaryWeight is the canary Service's share of the requests no header route took, 0 to 100.
	CanaryWeight int32
	// HeaderRoute is the managed header route that sends matching requests to the canary
	// Service; nil when there is none.
	HeaderRoute *providers.HeaderRoute
}

// Needed reports whether a canary Ingress must exist to carry s: the canary has weight, or a
// header route is set. Otherwise the stable Ingress alone routes everything to stable.
func (s State) Needed() bool { return s.CanaryWeight > 0 || s.HeaderRoute != nil }

// CanaryIngress returns the canary Ingress that carries s for ro beside the stable Ingress
// stable: named CanaryIngressName, in stable's namespace, controlled by ro, labelled
// CanaryIngressLabel, with the annotations annotationsFor says and this spec:
//
//   - ingressClassName as stable's (its kubernetes.io/ingress.class annotation is copied too), so
//     that the same ingress-nginx serves both;
//   - every path whose backend is the stable Service (see services.isStable), on the same host,
//     path and pathType, with the canary Service at the same port: ingress-nginx merges a canary
//     Ingress's path into the non-canary one with the same host, path and pathType. Paths to any
//     other backend are left out, or ingress-nginx would split that backend's traffic to the
//     canary Service too; a host none of whose paths is the stable Service's is left out whole;
//   - the default backend, when stable's is the stable Service and stable has no rules: such an
//     Ingress configures ingress-nginx's catch-all server, which a canary's default backend
//     merges into. When stable has rules, its default backend serves their hosts' unmatched
//     paths and no canary can split that: ingress-nginx merges a canary's default backend into
//     the catch-all server only, and a canary path that matches no location makes it drop the
//     canary's upstream altogether, so KULTA adds neither. Host rules without paths are left out
//     for the same reason;
//   - no TLS: ingress-nginx takes TLS (and every other server setting) from the non-canary
//     Ingress and ignores a canary Ingress's.
//
// It fails with a *providers.RouteError when stable sends nothing to the stable Service, is
// itself a canary, when the name is too long, or when s's header route cannot be expressed.
func CanaryIngress(ro *kultav1alpha1.Rollout, stable *networkingv1.Ingress, s State) (*networkingv1.Ingress, error) {
	if ro.UID == "" {
		return nil, fmt.Errorf("rollout %s/%s has no UID: canary Ingresses are built only for a Rollout read from the API server", ro.Namespace, ro.Name)
	}
	prefix := AnnotationPrefix(ro)
	if stable.Annotations[prefix+"/"+annotationCanary] == "true" {
		return nil, &providers.RouteError{Reason: ReasonStableIngressIsCanary, Message: fmt.Sprintf(
			"Ingress %s/%s is annotated %s/%s: \"true\", so ingress-nginx takes it for a canary; name the Ingress that routes to the stable Service instead",
			stable.Namespace, stable.Name, prefix, annotationCanary)}
	}
	svc := servicesOf(ro)
	spec, ok := canarySpec(stable, svc)
	if !ok {
		return nil, &providers.RouteError{Reason: ReasonIngressDoesNotReferenceServices, Message: fmt.Sprintf(
			"Ingress %s/%s has no path and no default backend that sends traffic to Service %q at port %d (%s.port), so there is nothing for a canary Ingress to split",
			stable.Namespace, stable.Name, svc.Stable, svc.Port, svc.field)}
	}
	name := CanaryIngressName(ro.Name, stable.Name)
	if len(name) > maxNameLength {
		return nil, &providers.RouteError{Reason: ReasonCanaryIngressNameTooLong, Message: fmt.Sprintf(
			"the canary Ingress for Rollout %s and Ingress %s would be named %q, %d characters, longer than the %d an Ingress name may have; shorten the Rollout's or the Ingress's name",
			ro.Name, stable.Name, name, len(name), maxNameLength)}
	}
	annotations, err := annotationsFor(ro, stable, s)
	if err != nil {
		return nil, err
	}
	return &networkingv1.Ingress{
		TypeMeta: metav1.TypeMeta{APIVersion: networkingv1.SchemeGroupVersion.String(), Kind: "Ingress"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace:       stable.Namespace,
			Name:            name,
			Labels:          map[string]string{CanaryIngressLabel: "true"},
			Annotations:     annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ro, kultav1alpha1.GroupVersion.WithKind("Rollout"))},
		},
		Spec: spec,
	}, nil
}

// canarySpec is the canary Ingress's spec (see CanaryIngress), and whether anything of stable
// sends traffic to the stable Service.
func canarySpec(stable *networkingv1.Ingress, svc services) (networkingv1.IngressSpec, bool) {
	spec := networkingv1.IngressSpec{IngressClassName: stable.Spec.IngressClassName}
	if len(stable.Spec.Rules) == 0 && svc.isStable(stable.Spec.DefaultBackend) {
		spec.DefaultBackend = svc.toCanary(*stable.Spec.DefaultBackend)
	}
	for _, rule := range stable.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		var paths []networkingv1.HTTPIngressPath
		for _, p := range rule.HTTP.Paths {
			if !svc.isStable(&p.Backend) {
				continue
			}
			path := *p.DeepCopy()
			path.Backend = *svc.toCanary(p.Backend)
			paths = append(paths, path)
		}
		if len(paths) > 0 {
			spec.Rules = append(spec.Rules, networkingv1.IngressRule{
				Host:             rule.Host,
				IngressRuleValue: networkingv1.IngressRuleValue{HTTP: &networkingv1.HTTPIngressRuleValue{Paths: paths}},
			})
		}
	}
	if spec.IngressClassName != nil {
		spec.IngressClassName = ptr.To(*spec.IngressClassName)
	}
	return spec, spec.DefaultBackend != nil || len(spec.Rules) > 0
}

// controlledBy reports whether ro is obj's controller: the same Rollout, not an older one of
// the same name.
func controlledBy(obj metav1.Object, ro *kultav1alpha1.Rollout) bool {
	ref := metav1.GetControllerOfNoCopy(obj)
	return ref != nil && ref.UID == ro.UID && isRolloutRef(ref)
}

// isRolloutRef reports whether ref names a Rollout, at any version of KULTA's API.
func isRolloutRef(ref *metav1.OwnerReference) bool {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	return err == nil && ref.Kind == "Rollout" && gv.Group == kultav1alpha1.GroupVersion.Group
}
