package nginx_test

import (
	"reflect"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/nginx"
)

// withNGINX routes the Rollout's strategy through the named stable Ingresses.
func withNGINX(ingresses ...string) testutil.RolloutOption {
	return func(ro *kultav1alpha1.Rollout) {
		n := &kultav1alpha1.NGINXRouting{StableIngresses: ingresses}
		if len(ingresses) == 1 {
			n = &kultav1alpha1.NGINXRouting{StableIngress: ingresses[0]}
		}
		tr := &kultav1alpha1.TrafficRouting{NGINX: n}
		switch s := ro.Spec.Strategy; {
		case s.Canary != nil:
			s.Canary.TrafficRouting = tr
		case s.BlueGreen != nil:
			s.BlueGreen.TrafficRouting = tr
		case s.ABTesting != nil:
			s.ABTesting.TrafficRouting = tr
		}
	}
}

// TestProviderWatches checks the registration: the provider is used for trafficRouting.nginx,
// and both the stable Ingresses a Rollout names and the canary Ingresses KULTA derives from
// them map back to it, in its namespace only.
func TestProviderWatches(t *testing.T) {
	p := nginx.NewProvider(nil)
	if p.Name != "nginx" || p.Router != nil {
		t.Errorf("Name %q, Router %v; want nginx and no router", p.Name, p.Router)
	}
	ro := testutil.Rollout("shop", "web", withNGINX("public", "internal"))
	if !p.Uses(ro.Spec.Strategy.TrafficRouting()) || p.Uses(testutil.Rollout("shop", "web", testutil.WithHTTPRoute("web")).Spec.Strategy.TrafficRouting()) || p.Uses(nil) {
		t.Error("Uses must be true exactly for trafficRouting.nginx")
	}
	if len(p.Watches) != 1 {
		t.Fatalf("%d watches, want one for Ingresses", len(p.Watches))
	}
	w := p.Watches[0]
	if _, ok := w.Object.(*networkingv1.Ingress); !ok {
		t.Errorf("watches %T, want *networkingv1.Ingress", w.Object)
	}
	keys := w.RolloutKeys(ro)
	for _, name := range []string{"public", "internal", "web-public-canary", "web-internal-canary"} {
		obj := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name}}
		objKeys := w.ObjectKeys(obj)
		if !slices.ContainsFunc(objKeys, func(k string) bool { return slices.Contains(keys, k) }) {
			t.Errorf("Ingress shop/%s (keys %v) does not map to Rollout web (keys %v)", name, objKeys, keys)
		}
		obj.Namespace = "other"
		if slices.ContainsFunc(w.ObjectKeys(obj), func(k string) bool { return slices.Contains(keys, k) }) {
			t.Errorf("Ingress other/%s maps to Rollout shop/web", name)
		}
	}
	if got := w.RolloutKeys(testutil.Rollout("shop", "web")); len(got) != 0 {
		t.Errorf("a Rollout without trafficRouting reads %v", got)
	}
	bg := testutil.Rollout("shop", "web", testutil.WithBlueGreen(), withNGINX("public"))
	if got, want := nginx.IngressKeys(bg), []string{providers.ObjectKey("Ingress", "shop", "public"), providers.ObjectKey("Ingress", "shop", "web-public-canary")}; !reflect.DeepEqual(got, want) {
		t.Errorf("IngressKeys = %v, want %v", got, want)
	}
}

// TestCanaryIngressIndex checks the index the provider declares: over Ingresses, filing a canary
// Ingress under the UID of the Rollout that controls it, and leaving out every other Ingress (a
// stable one, one whose label was removed, one a Deployment controls, one a Rollout only owns).
func TestCanaryIngressIndex(t *testing.T) {
	p := nginx.NewProvider(nil)
	if len(p.Indexes) != 1 || p.Indexes[0].Field != nginx.CanaryIngressIndex {
		t.Fatalf("indexes %+v, want CanaryIngressIndex alone", p.Indexes)
	}
	if _, ok := p.Indexes[0].Object.(*networkingv1.Ingress); !ok {
		t.Errorf("the index is over %T, want *networkingv1.Ingress", p.Indexes[0].Object)
	}
	canary := map[string]string{nginx.CanaryIngressLabel: "true"}
	ref := func(apiVersion, kind string, controller bool) []metav1.OwnerReference {
		return []metav1.OwnerReference{{APIVersion: apiVersion, Kind: kind, Name: "web", UID: "uid-web", Controller: ptr.To(controller)}}
	}
	rollout := kultav1alpha1.GroupVersion.String()
	for _, tc := range []struct {
		name   string
		labels map[string]string
		owners []metav1.OwnerReference
		want   []string
	}{
		{"canary Ingress of a Rollout", canary, ref(rollout, "Rollout", true), []string{"uid-web"}},
		{"canary Ingress of a Rollout of another version", canary, ref("kulta.io/v1", "Rollout", true), []string{"uid-web"}},
		{"label removed", nil, ref(rollout, "Rollout", true), nil},
		{"label not true", map[string]string{nginx.CanaryIngressLabel: "false"}, ref(rollout, "Rollout", true), nil},
		{"controlled by a Deployment", canary, ref("apps/v1", "Deployment", true), nil},
		{"owned, not controlled", canary, ref(rollout, "Rollout", false), nil},
		{"a stable Ingress", nil, nil, nil},
	} {
		ing := &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-public-canary", Labels: tc.labels, OwnerReferences: tc.owners}}
		if got := p.Indexes[0].Extract(ing); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: filed under %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestTrimIngress(t *testing.T) {
	p := nginx.NewProvider(nil)
	if _, ok := p.Trim(&appsv1.ReplicaSet{}); ok {
		t.Error("Trim took a ReplicaSet for an Ingress")
	}
	stable := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"app": "web"}, Annotations: map[string]string{
			corev1.LastAppliedConfigAnnotation:                  "{}",
			nginx.IngressClassAnnotation:                        "nginx",
			"nginx.ingress.kubernetes.io/canary":                "true",
			"nginx.ingress.kubernetes.io/configuration-snippet": "more_set_headers x;",
		}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec:   networkingv1.IngressSpec{IngressClassName: ptr.To("nginx")},
		Status: networkingv1.IngressStatus{LoadBalancer: networkingv1.IngressLoadBalancerStatus{Ingress: []networkingv1.IngressLoadBalancerIngress{{IP: "10.0.0.1"}}}},
	}
	canary := stable.DeepCopy()
	canary.Labels[nginx.CanaryIngressLabel] = "true"

	out, ok := p.Trim(stable)
	trimmed := out.(*networkingv1.Ingress)
	if !ok || trimmed.ManagedFields != nil || len(trimmed.Status.LoadBalancer.Ingress) != 0 || trimmed.Spec.IngressClassName == nil || trimmed.Labels["app"] != "web" {
		t.Errorf("stable Ingress trimmed to %+v", trimmed)
	}
	if want := map[string]string{nginx.IngressClassAnnotation: "nginx", "nginx.ingress.kubernetes.io/canary": "true"}; !reflect.DeepEqual(trimmed.Annotations, want) {
		t.Errorf("stable Ingress annotations %v, want %v", trimmed.Annotations, want)
	}
	nginx.TrimIngress(canary)
	if len(canary.Annotations) != 3 || canary.Annotations[corev1.LastAppliedConfigAnnotation] != "" {
		t.Errorf("canary Ingress annotations %v, want all but kubectl's copy", canary.Annotations)
	}
	again := trimmed.DeepCopy()
	nginx.TrimIngress(again)
	if !reflect.DeepEqual(again, trimmed) {
		t.Error("trimming twice changed the Ingress")
	}
}
