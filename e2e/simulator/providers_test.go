package simulator

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	apinetworkingv1 "istio.io/api/networking/v1"
	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	kultascheme "github.com/false-systems/kulta/internal/scheme"
)

// expectRates compares rates with want to 1e-9.
func expectRates(t *testing.T, what string, got, want map[Target]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || math.Abs(g-v) > 1e-9 {
			t.Fatalf("%s = %v, want %v", what, got, want)
		}
	}
}

func svcTarget(namespace, name string) Target {
	return Target{ServiceKey: ServiceKey{Namespace: namespace, Name: name}}
}

func destination(host, subset string, weight int32) *apinetworkingv1.HTTPRouteDestination {
	return &apinetworkingv1.HTTPRouteDestination{Destination: &apinetworkingv1.Destination{Host: host, Subset: subset}, Weight: weight}
}

func uriPrefix(prefix string) []*apinetworkingv1.HTTPMatchRequest {
	return []*apinetworkingv1.HTTPMatchRequest{{Uri: &apinetworkingv1.StringMatch{MatchType: &apinetworkingv1.StringMatch_Prefix{Prefix: prefix}}}}
}

// Mirrors copy their percentage of a route's rate (all of it without one), in both of Istio's
// forms, to their destinations; a shadowed route's mirror copies nothing.
func TestVirtualServiceMirrorRates(t *testing.T) {
	vs := &istionetworkingv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"},
		Spec: apinetworkingv1.VirtualService{Hosts: []string{"web"}, Http: []*apinetworkingv1.HTTPRoute{
			{Name: "kulta-web.api", Match: []*apinetworkingv1.HTTPMatchRequest{{Headers: map[string]*apinetworkingv1.StringMatch{
				"x-api": {MatchType: &apinetworkingv1.StringMatch_Exact{Exact: "v2"}}}}},
				Route:   []*apinetworkingv1.HTTPRouteDestination{destination("web-stable", "", 100)},
				Mirrors: []*apinetworkingv1.HTTPMirrorPolicy{{Destination: &apinetworkingv1.Destination{Host: "web-canary"}}}},
			{Name: "kulta-web.shadow", Route: []*apinetworkingv1.HTTPRouteDestination{destination("web-stable", "", 100)},
				Mirror: &apinetworkingv1.Destination{Host: "web-canary"}, MirrorPercentage: &apinetworkingv1.Percent{Value: 20}},
			{Route: []*apinetworkingv1.HTTPRouteDestination{destination("web-stable", "", 100)},
				Mirrors: []*apinetworkingv1.HTTPMirrorPolicy{{Destination: &apinetworkingv1.Destination{Host: "web-canary"}}}},
		}},
	}
	expectRates(t, "VirtualServiceMirrorRates", VirtualServiceMirrorRates(vs, nil, 100, 10), map[Target]float64{svcTarget("ns", "web-canary"): 10 + 20})
}

func TestVirtualServiceRates(t *testing.T) {
	headerMatch := []*apinetworkingv1.HTTPMatchRequest{{Headers: map[string]*apinetworkingv1.StringMatch{
		"x-canary": {MatchType: &apinetworkingv1.StringMatch_Exact{Exact: "yes"}},
	}}}
	drs := []*istionetworkingv1.DestinationRule{{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"},
		Spec: apinetworkingv1.DestinationRule{Host: "web.ns.svc.cluster.local", Subsets: []*apinetworkingv1.Subset{
			{Name: "stable", Labels: map[string]string{"hash": "a"}},
			{Name: "canary", Labels: map[string]string{"hash": "b"}},
		}},
	}, {
		// Another namespace's rule for a Service of the same name defines nothing here.
		ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "web"},
		Spec:       apinetworkingv1.DestinationRule{Host: "web", Subsets: []*apinetworkingv1.Subset{{Name: "extra", Labels: map[string]string{"hash": "c"}}}},
	}}
	tests := []struct {
		name string
		http []*apinetworkingv1.HTTPRoute
		want map[Target]float64
	}{{
		name: "host-level weights across namespaces and suffixes",
		http: []*apinetworkingv1.HTTPRoute{{Route: []*apinetworkingv1.HTTPRouteDestination{
			destination("web-stable", "", 70), destination("web-canary.ns.svc.cluster.local", "", 20), destination("api.other.svc.cluster.local", "", 10),
		}}},
		want: map[Target]float64{svcTarget("ns", "web-stable"): 70, svcTarget("ns", "web-canary"): 20, svcTarget("other", "api"): 10},
	}, {
		name: "one destination takes everything whatever its weight",
		http: []*apinetworkingv1.HTTPRoute{{Route: []*apinetworkingv1.HTTPRouteDestination{destination("web", "", 0)}}},
		want: map[Target]float64{svcTarget("ns", "web"): 100},
	}, {
		name: "a destination at weight 0 among several gets nothing; hosts outside the cluster are left out",
		http: []*apinetworkingv1.HTTPRoute{{Match: uriPrefix("/a"), Route: []*apinetworkingv1.HTTPRouteDestination{
			destination("web-stable", "", 100), destination("web-canary", "", 0),
		}}, {Match: uriPrefix("/b"), Route: []*apinetworkingv1.HTTPRouteDestination{destination("example.com", "", 100)}},
			{Match: uriPrefix("/c"), Route: []*apinetworkingv1.HTTPRouteDestination{destination("api.other", "", 100)}}},
		want: map[Target]float64{svcTarget("ns", "web-stable"): 100.0 / 3},
	}, {
		name: "a route with the matches of an earlier one takes nothing: Istio takes the first that matches",
		http: []*apinetworkingv1.HTTPRoute{
			{Name: "kulta-web.shadow", Route: []*apinetworkingv1.HTTPRouteDestination{destination("web-stable", "", 60), destination("web-canary", "", 40)},
				Mirrors: []*apinetworkingv1.HTTPMirrorPolicy{{Destination: &apinetworkingv1.Destination{Host: "web-canary"}, Percentage: &apinetworkingv1.Percent{Value: 25}}}},
			{Route: []*apinetworkingv1.HTTPRouteDestination{destination("web-stable", "", 60), destination("web-canary", "", 40)}},
		},
		want: map[Target]float64{svcTarget("ns", "web-stable"): 60, svcTarget("ns", "web-canary"): 40},
	}, {
		name: "header routes get the header rate, plain routes share the rate",
		http: []*apinetworkingv1.HTTPRoute{
			{Name: "kulta-canary", Match: headerMatch, Route: []*apinetworkingv1.HTTPRouteDestination{destination("web-canary", "", 100)}},
			{Match: []*apinetworkingv1.HTTPMatchRequest{{Uri: &apinetworkingv1.StringMatch{MatchType: &apinetworkingv1.StringMatch_Prefix{Prefix: "/api"}}}},
				Route: []*apinetworkingv1.HTTPRouteDestination{destination("web-stable", "", 100)}},
			{Route: []*apinetworkingv1.HTTPRouteDestination{destination("web-stable", "", 50), destination("web-canary", "", 50)}},
		},
		want: map[Target]float64{svcTarget("ns", "web-canary"): 10 + 25, svcTarget("ns", "web-stable"): 50 + 25},
	}, {
		name: "subsets take their labels from the namespace's DestinationRule; unknown subsets reach nothing",
		http: []*apinetworkingv1.HTTPRoute{{Route: []*apinetworkingv1.HTTPRouteDestination{
			destination("web", "stable", 60), destination("web", "canary", 30), destination("web", "extra", 10),
		}}},
		want: map[Target]float64{
			{ServiceKey: ServiceKey{Namespace: "ns", Name: "web"}, Subset: "hash=a"}:      60,
			{ServiceKey: ServiceKey{Namespace: "ns", Name: "web"}, Subset: "hash=b"}:      30,
			{ServiceKey: ServiceKey{Namespace: "ns", Name: "web"}, Subset: unknownSubset}: 10,
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs := &istionetworkingv1.VirtualService{
				ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"},
				Spec:       apinetworkingv1.VirtualService{Hosts: []string{"web"}, Http: tt.http},
			}
			expectRates(t, "VirtualServiceRates", VirtualServiceRates(vs, drs, 100, 10), tt.want)
		})
	}
}

func ingress(name, class string, annotations map[string]string, host, path, service string) networkingv1.Ingress {
	ing := networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Annotations: annotations},
		Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{{Host: host, IngressRuleValue: networkingv1.IngressRuleValue{
			HTTP: &networkingv1.HTTPIngressRuleValue{Paths: []networkingv1.HTTPIngressPath{{
				Path: path, PathType: ptr.To(networkingv1.PathTypePrefix),
				Backend: networkingv1.IngressBackend{Service: &networkingv1.IngressServiceBackend{Name: service, Port: networkingv1.ServiceBackendPort{Number: 80}}},
			}}},
		}}}},
	}
	if class != "" {
		ing.Spec.IngressClassName = ptr.To(class)
	}
	return ing
}

func TestIngressRates(t *testing.T) {
	const p = DefaultAnnotationPrefix
	canary := func(annotations map[string]string) map[string]string {
		out := map[string]string{p + "/canary": "true"}
		for k, v := range annotations {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name      string
		ingresses []networkingv1.Ingress
		want      map[Target]float64
	}{{
		name:      "no canary: all to the stable backend",
		ingresses: []networkingv1.Ingress{ingress("web", "nginx", nil, "web.example", "/", "web-stable")},
		want:      map[Target]float64{svcTarget("ns", "web-stable"): 100},
	}, {
		name: "canary-weight of the default total",
		ingresses: []networkingv1.Ingress{
			ingress("web", "nginx", nil, "web.example", "/", "web-stable"),
			ingress("web-canary", "nginx", canary(map[string]string{p + "/canary-weight": "30"}), "web.example", "/", "web-canary"),
		},
		want: map[Target]float64{svcTarget("ns", "web-stable"): 70, svcTarget("ns", "web-canary"): 30},
	}, {
		name: "canary-weight of canary-weight-total, class by the older annotation",
		ingresses: []networkingv1.Ingress{
			ingress("web", "", map[string]string{ingressClassAnnotation: "nginx"}, "web.example", "/", "web-stable"),
			ingress("web-canary", "", canary(map[string]string{ingressClassAnnotation: "nginx", p + "/canary-weight": "1", p + "/canary-weight-total": "4"}), "web.example", "/", "web-canary"),
		},
		want: map[Target]float64{svcTarget("ns", "web-stable"): 75, svcTarget("ns", "web-canary"): 25},
	}, {
		name: "header requests reach the canary on top of its weight",
		ingresses: []networkingv1.Ingress{
			ingress("web", "nginx", nil, "web.example", "/", "web-stable"),
			ingress("web-canary", "nginx", canary(map[string]string{p + "/canary-weight": "0", p + "/canary-by-header": "X-Variant", p + "/canary-by-header-value": "B"}), "web.example", "/", "web-canary"),
		},
		want: map[Target]float64{svcTarget("ns", "web-stable"): 100, svcTarget("ns", "web-canary"): 10},
	}, {
		name: "a canary of another host, another class or another prefix takes nothing",
		ingresses: []networkingv1.Ingress{
			ingress("web", "nginx", nil, "web.example", "/", "web-stable"),
			ingress("other-host", "nginx", canary(map[string]string{p + "/canary-weight": "50"}), "api.example", "/", "web-canary"),
			ingress("other-class", "traefik", canary(map[string]string{p + "/canary-weight": "50"}), "web.example", "/", "web-canary"),
			ingress("other-prefix", "nginx", map[string]string{"custom.io/canary": "true", "custom.io/canary-weight": "50"}, "web.example", "/", "web-canary"),
		},
		// other-prefix is no canary to ingress-nginx: it is a second Ingress of its own.
		want: map[Target]float64{svcTarget("ns", "web-stable"): 100, svcTarget("ns", "web-canary"): 100},
	}, {
		name: "paths of one Ingress share its rate",
		ingresses: func() []networkingv1.Ingress {
			ing := ingress("web", "nginx", nil, "web.example", "/", "web-stable")
			ing.Spec.Rules = append(ing.Spec.Rules, ingress("x", "", nil, "web.example", "/admin", "admin").Spec.Rules...)
			return []networkingv1.Ingress{ing, ingress("web-canary", "nginx", canary(map[string]string{p + "/canary-weight": "100"}), "web.example", "/", "web-canary")}
		}(),
		want: map[Target]float64{svcTarget("ns", "web-canary"): 50, svcTarget("ns", "admin"): 50},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expectRates(t, "IngressRates", IngressRates(tt.ingresses, DefaultIngressClass, p, 100, 10), tt.want)
		})
	}
}

// TestTickPlaysVirtualServicesAndIngresses runs a tick over a VirtualService splitting between
// two DestinationRule subsets of one Service and an Ingress with a canary, and counts the
// requests each Service answered.
func TestTickPlaysVirtualServicesAndIngresses(t *testing.T) {
	scheme, err := kultascheme.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := istionetworkingv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	objects := []client.Object{
		&istionetworkingv1.VirtualService{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "mesh"},
			Spec: apinetworkingv1.VirtualService{Hosts: []string{"mesh"}, Http: []*apinetworkingv1.HTTPRoute{{Route: []*apinetworkingv1.HTTPRouteDestination{
				destination("mesh", "stable", 75), destination("mesh", "canary", 25),
			}}}},
		},
		&istionetworkingv1.DestinationRule{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "mesh"},
			Spec: apinetworkingv1.DestinationRule{Host: "mesh", Subsets: []*apinetworkingv1.Subset{
				{Name: "stable", Labels: map[string]string{"rev": "a"}}, {Name: "canary", Labels: map[string]string{"rev": "b"}},
			}},
		},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "mesh"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "mesh"}}},
		// The canary subset's Pod fails every request: only the canary's quarter fails.
		readyPodWithImage("ns", "mesh-a", "good", map[string]string{"app": "mesh", "rev": "a"}),
		readyPodWithImage("ns", "mesh-b", "broken", map[string]string{"app": "mesh", "rev": "b"}),
		ptr.To(ingress("web", "nginx", nil, "web.example", "/", "web-stable")),
		ptr.To(ingress("web-canary", "nginx", map[string]string{DefaultAnnotationPrefix + "/canary": "true", DefaultAnnotationPrefix + "/canary-weight": "40"}, "web.example", "/", "web-canary")),
	}
	for _, name := range []string{"web-stable", "web-canary"} {
		objects = append(objects,
			&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}}},
			readyPod("ns", name+"-1", map[string]string{"app": name}))
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objects...).Build()
	ctx := context.Background()
	s, err := Start(ctx, c, Options{Rate: 1, Tick: time.Hour, Behaviour: map[string]Behaviour{"broken": {ErrorRatio: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	}()
	if err := s.tick(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		service, code string
		want          float64
	}{
		{"mesh", "200", 2700}, {"mesh", "500", 900},
		{"web-stable", "200", 2160}, {"web-canary", "200", 1440}, {"web-canary", "500", 0},
	} {
		if got := testutil.ToFloat64(s.requests.WithLabelValues("ns", c.service, c.code)); got != c.want {
			t.Errorf("%s answered %v requests with %s in an hour at 1/s, want %v", c.service, got, c.code, c.want)
		}
	}
}

func readyPodWithImage(namespace, name, image string, labels map[string]string) *corev1.Pod {
	p := pod(name, image, true, labels)
	p.Namespace = namespace
	return &p
}
