package simulator

import (
	"strconv"

	networkingv1 "k8s.io/api/networking/v1"
)

// The ingress-nginx conventions the simulator plays.
const (
	// DefaultIngressClass is the class of the Ingresses the simulated ingress-nginx serves.
	DefaultIngressClass = "nginx"
	// DefaultAnnotationPrefix is ingress-nginx's annotation prefix unless its
	// --annotations-prefix says otherwise.
	DefaultAnnotationPrefix = "nginx.ingress.kubernetes.io"
	// ingressClassAnnotation is the class annotation older Ingresses carry instead of
	// spec.ingressClassName.
	ingressClassAnnotation = "kubernetes.io/ingress.class"
)

// IngressRates returns the request rate each backend Service receives through the Ingresses of
// class in ingresses, as ingress-nginx routes them. Each Ingress that is not a canary receives
// rate requests per second, divided evenly among its paths (its default backend counts as one
// path when it has no rules). A canary Ingress (annotation PREFIX/canary "true") of the same
// class with a path of the same host and path takes part of that path's traffic, in
// ingress-nginx's order of precedence:
//   - requests that carry the header or cookie its canary-by-header (with -value or -pattern) or
//     canary-by-cookie annotation asks for, headerRate per second for each such canary, all go
//     to it;
//   - of the other requests, canary-weight out of canary-weight-total (default 100) go to it.
//
// When several canaries claim one path, ingress-nginx uses one; the simulator uses the first
// in the order of ingresses. Backends that are not Services are left out.
func IngressRates(ingresses []networkingv1.Ingress, class, prefix string, rate, headerRate float64) map[Target]float64 {
	out := map[Target]float64{}
	var mains, canaries []*networkingv1.Ingress
	for i := range ingresses {
		ing := &ingresses[i]
		if ingressClass(ing) != class {
			continue
		}
		if ing.Annotations[prefix+"/canary"] == "true" {
			canaries = append(canaries, ing)
		} else {
			mains = append(mains, ing)
		}
	}
	for _, main := range mains {
		paths := ingressPaths(main)
		for _, p := range paths {
			plain := rate / float64(len(paths))
			canary, canaryBackend := canaryFor(canaries, p)
			if canary != nil {
				if headerRouted(canary, prefix) {
					addBackend(out, canary.Namespace, canaryBackend, headerRate)
				}
				toCanary := plain * canaryShare(canary, prefix)
				addBackend(out, canary.Namespace, canaryBackend, toCanary)
				plain -= toCanary
			}
			addBackend(out, main.Namespace, p.backend, plain)
		}
	}
	return out
}

// ingressPath is one host and path of an Ingress and its backend.
type ingressPath struct {
	host, path string
	// defaultBackend marks the Ingress's spec.defaultBackend, which has no host or path.
	defaultBackend bool
	backend        *networkingv1.IngressBackend
}

// ingressPaths lists ing's hosts and paths, or its default backend when it has no rules.
func ingressPaths(ing *networkingv1.Ingress) []ingressPath {
	var out []ingressPath
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for i := range rule.HTTP.Paths {
			p := &rule.HTTP.Paths[i]
			out = append(out, ingressPath{host: rule.Host, path: p.Path, backend: &p.Backend})
		}
	}
	if len(out) == 0 && ing.Spec.DefaultBackend != nil {
		out = append(out, ingressPath{defaultBackend: true, backend: ing.Spec.DefaultBackend})
	}
	return out
}

// canaryFor is the first canary Ingress that serves the host and path of p, and its backend
// there.
func canaryFor(canaries []*networkingv1.Ingress, p ingressPath) (*networkingv1.Ingress, *networkingv1.IngressBackend) {
	for _, c := range canaries {
		for _, cp := range ingressPaths(c) {
			if cp.defaultBackend == p.defaultBackend && cp.host == p.host && cp.path == p.path {
				return c, cp.backend
			}
		}
	}
	return nil, nil
}

// headerRouted reports whether the canary takes requests by a header or a cookie.
func headerRouted(canary *networkingv1.Ingress, prefix string) bool {
	return canary.Annotations[prefix+"/canary-by-header"] != "" || canary.Annotations[prefix+"/canary-by-cookie"] != ""
}

// canaryShare is the canary's canary-weight out of its canary-weight-total, from 0 to 1;
// values that are not numbers count as ingress-nginx's defaults (weight 0, total 100).
func canaryShare(canary *networkingv1.Ingress, prefix string) float64 {
	weight, err := strconv.Atoi(canary.Annotations[prefix+"/canary-weight"])
	if err != nil || weight < 0 {
		return 0
	}
	total := 100
	if t, err := strconv.Atoi(canary.Annotations[prefix+"/canary-weight-total"]); err == nil && t > 0 {
		total = t
	}
	return min(1, float64(weight)/float64(total))
}

// ingressClass is ing's spec.ingressClassName, or its kubernetes.io/ingress.class annotation.
func ingressClass(ing *networkingv1.Ingress) string {
	if ing.Spec.IngressClassName != nil {
		return *ing.Spec.IngressClassName
	}
	return ing.Annotations[ingressClassAnnotation]
}

// addBackend adds rate to the Service backend names in namespace, when it is a Service and
// rate is positive.
func addBackend(out map[Target]float64, namespace string, backend *networkingv1.IngressBackend, rate float64) {
	if backend == nil || backend.Service == nil || rate <= 0 {
		return
	}
	out[Target{ServiceKey: ServiceKey{Namespace: namespace, Name: backend.Service.Name}}] += rate
}
