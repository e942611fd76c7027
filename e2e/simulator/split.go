package simulator

import (
	"math"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Behaviour is how the Pods of one container image answer requests.
type Behaviour struct {
	// ErrorRatio is the share of requests answered with a 5xx status, from 0 to 1.
	ErrorRatio float64
	// Latency is how long every request takes.
	Latency time.Duration
}

// DefaultBehaviour is the behaviour of an image that Options.Behaviour does not name: no errors
// and 10 ms per request.
var DefaultBehaviour = Behaviour{Latency: 10 * time.Millisecond}

// SplitByWeight divides rate (requests per second) among backends in proportion to their
// weights, as a Gateway does. A nil weight counts as 1, the Gateway API default; negative
// weights count as 0. When all weights are 0 no backend receives anything.
func SplitByWeight(rate float64, weights []*int32) []float64 {
	out := make([]float64, len(weights))
	var total float64
	for _, w := range weights {
		total += weightOf(w)
	}
	if total == 0 || rate <= 0 {
		return out
	}
	for i, w := range weights {
		out[i] = rate * weightOf(w) / total
	}
	return out
}

// weightOf is a backendRef's weight as a number, defaulted as Gateway API says.
func weightOf(w *int32) float64 {
	if w == nil {
		return 1
	}
	return math.Max(0, float64(*w))
}

// ReadyPodsBehind returns the Pods of pods that svc selects (same namespace, selector matching
// their labels) and that are Ready and not being deleted. A Service without a selector selects
// none.
func ReadyPodsBehind(svc *corev1.Service, pods []corev1.Pod) []corev1.Pod {
	if len(svc.Spec.Selector) == 0 {
		return nil
	}
	selector := labels.SelectorFromSet(svc.Spec.Selector)
	var out []corev1.Pod
	for i := range pods {
		pod := &pods[i]
		if pod.Namespace != svc.Namespace || pod.DeletionTimestamp != nil || !podReady(pod) {
			continue
		}
		if selector.Matches(labels.Set(pod.Labels)) {
			out = append(out, *pod)
		}
	}
	return out
}

// podReady reports whether the Pod's Ready condition is True.
func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// BehaviourOf is how a Service backed by pods answers: requests are spread evenly over the
// Pods, each of which behaves as table says for the image of its first container
// (DefaultBehaviour for images the table does not name), so the result is the Pods' average.
// ok is false when pods is empty: nothing answers.
func BehaviourOf(pods []corev1.Pod, table map[string]Behaviour) (b Behaviour, ok bool) {
	if len(pods) == 0 {
		return Behaviour{}, false
	}
	var ratio float64
	var latency time.Duration
	for i := range pods {
		pb := DefaultBehaviour
		if len(pods[i].Spec.Containers) > 0 {
			if found, named := table[pods[i].Spec.Containers[0].Image]; named {
				pb = found
			}
		}
		ratio += pb.ErrorRatio
		latency += pb.Latency
	}
	n := len(pods)
	return Behaviour{ErrorRatio: ratio / float64(n), Latency: latency / time.Duration(n)}, true
}

// Attached reports whether ref names the Gateway namespace/name; routeNamespace is the
// namespace of the route holding ref, which an empty ref namespace means.
func Attached(ref gatewayv1.ParentReference, routeNamespace, namespace, name string) bool {
	if ref.Group != nil && *ref.Group != gatewayv1.GroupName {
		return false
	}
	if ref.Kind != nil && *ref.Kind != "Gateway" {
		return false
	}
	ns := routeNamespace
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	return ns == namespace && string(ref.Name) == name
}

// HeaderRule reports whether a rule only takes requests carrying particular headers, such as
// the kulta-* rules KULTA adds for header-based canary routing.
func HeaderRule(rule gatewayv1.HTTPRouteRule) bool {
	if len(rule.Matches) == 0 {
		return false
	}
	for _, m := range rule.Matches {
		if len(m.Headers) == 0 {
			return false
		}
	}
	return true
}

// Target is a backend the simulated data planes send requests to: the ready Pods behind a
// Service, or only those of them that also match the label selector Subset (an Istio
// DestinationRule subset). Requests to a target are recorded under its Service's name.
type Target struct {
	ServiceKey
	// Subset is a label selector in labels.Set.String form, or "" for all the Service's Pods.
	Subset string
}

// ServiceKey names a backend Service.
type ServiceKey struct {
	// Namespace is the Service's namespace.
	Namespace string
	// Name is the Service's name.
	Name string
}

// RouteRates returns the request rate each backend Service of route receives: rate requests per
// second are divided evenly among the rules that match without headers, headerRate goes to each
// header rule (HeaderRule), and each rule's share is split by weight (SplitByWeight). A rule
// without headers whose matches an earlier rule already has takes nothing: Gateway API gives a
// tie to the rule listed first, as KULTA's mirror rules without conditions rely on. Backends
// that are not core Services are skipped.
func RouteRates(route *gatewayv1.HTTPRoute, rate, headerRate float64) map[ServiceKey]float64 {
	out := map[ServiceKey]float64{}
	rates := ruleRates(route, rate, headerRate)
	for i, rule := range route.Spec.Rules {
		weights := make([]*int32, len(rule.BackendRefs))
		for j, ref := range rule.BackendRefs {
			weights[j] = ref.Weight
		}
		for j, share := range SplitByWeight(rates[i], weights) {
			if key, ok := serviceKey(route.Namespace, rule.BackendRefs[j].BackendObjectReference); ok {
				out[key] += share
			}
		}
	}
	return out
}

// RouteMirrorRates returns the rate of the copies each Service receives from route's
// RequestMirror filters: a rule's rate (as RouteRates divides it) times the filter's percent or
// fraction, all of it without either. The copies' answers go nowhere: a data plane drops them.
func RouteMirrorRates(route *gatewayv1.HTTPRoute, rate, headerRate float64) map[ServiceKey]float64 {
	out := map[ServiceKey]float64{}
	rates := ruleRates(route, rate, headerRate)
	for i, rule := range route.Spec.Rules {
		for _, f := range rule.Filters {
			m := f.RequestMirror
			if f.Type != gatewayv1.HTTPRouteFilterRequestMirror || m == nil {
				continue
			}
			share := 1.0
			switch {
			case m.Percent != nil:
				share = float64(*m.Percent) / 100
			case m.Fraction != nil && ptr.Deref(m.Fraction.Denominator, 100) > 0:
				share = float64(m.Fraction.Numerator) / float64(ptr.Deref(m.Fraction.Denominator, 100))
			}
			if key, ok := serviceKey(route.Namespace, m.BackendRef); ok && rates[i] > 0 {
				out[key] += rates[i] * share
			}
		}
	}
	return out
}

// ruleRates is the request rate each rule of route takes: headerRate for a header rule, an even
// share of rate for each other rule, none for a rule whose matches an earlier rule without
// headers already has.
func ruleRates(route *gatewayv1.HTTPRoute, rate, headerRate float64) []float64 {
	out := make([]float64, len(route.Spec.Rules))
	var seen [][]gatewayv1.HTTPRouteMatch
	var plain []int
	for i, rule := range route.Spec.Rules {
		if HeaderRule(rule) {
			out[i] = headerRate
			continue
		}
		matches := defaultedMatches(rule.Matches)
		if slices.ContainsFunc(seen, func(m []gatewayv1.HTTPRouteMatch) bool { return equality.Semantic.DeepEqual(m, matches) }) {
			continue
		}
		seen = append(seen, matches)
		plain = append(plain, i)
	}
	for _, i := range plain {
		out[i] = rate / float64(len(plain))
	}
	return out
}

// defaultedMatches is a rule's matches as the API server defaults them: none is one match of
// every path.
func defaultedMatches(matches []gatewayv1.HTTPRouteMatch) []gatewayv1.HTTPRouteMatch {
	if len(matches) > 0 {
		return matches
	}
	return []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To("/")}}}
}

// serviceKey is the Service a backendRef of a route in routeNamespace names; ok is false when
// the backend is not a core Service.
func serviceKey(routeNamespace string, ref gatewayv1.BackendObjectReference) (ServiceKey, bool) {
	if (ref.Group != nil && *ref.Group != "") || (ref.Kind != nil && *ref.Kind != "Service") {
		return ServiceKey{}, false
	}
	key := ServiceKey{Namespace: routeNamespace, Name: string(ref.Name)}
	if ref.Namespace != nil {
		key.Namespace = string(*ref.Namespace)
	}
	return key, true
}
