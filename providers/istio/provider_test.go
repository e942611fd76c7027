package istio_test

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers/istio"
)

// TestNewProvider checks the registration: which Rollouts use the provider, and that a change to
// a VirtualService or DestinationRule maps to the Rollouts that name it, and to no other.
func TestNewProvider(t *testing.T) {
	p := istio.NewProvider(nil)
	if p.Name != "istio" || p.Router != nil {
		t.Errorf("name %q, router %v; want istio and no router", p.Name, p.Router)
	}
	subsets := testutil.Rollout("shop", "web", withIstio("web", nil, func(i *kultav1alpha1.IstioRouting) {
		i.VirtualServices = []kultav1alpha1.IstioVirtualService{*i.VirtualService, {Name: "web-internal"}}
		i.VirtualService = nil
	}, bySubsets("web-dr")))
	gateway := testutil.Rollout("shop", "api", testutil.WithHTTPRoute("api"))
	if !p.Uses(subsets.Spec.Strategy.TrafficRouting()) || p.Uses(gateway.Spec.Strategy.TrafficRouting()) || p.Uses(nil) {
		t.Error("Uses must hold exactly for Rollouts with trafficRouting.istio")
	}
	want := map[string][]string{
		istio.KindVirtualService:  {"VirtualService/shop/web", "VirtualService/shop/web-internal"},
		istio.KindDestinationRule: {"DestinationRule/shop/web-dr"},
	}
	if len(p.Watches) != 2 {
		t.Fatalf("%d watches, want VirtualServices and DestinationRules", len(p.Watches))
	}
	for _, w := range p.Watches {
		kind := w.Object.GetObjectKind().GroupVersionKind().Kind
		if got := w.RolloutKeys(subsets); !slices.Equal(got, want[kind]) {
			t.Errorf("%s: Rollout keys %v, want %v", kind, got, want[kind])
		}
		if got := w.RolloutKeys(gateway); len(got) != 0 {
			t.Errorf("%s: keys %v for a Rollout without istio", kind, got)
		}
		obj := w.Object.DeepCopyObject().(*unstructured.Unstructured)
		obj.SetNamespace("shop")
		obj.SetName(want[kind][0][len(kind+"/shop/"):])
		if got := w.ObjectKeys(obj); !slices.Equal(got, want[kind][:1]) {
			t.Errorf("%s: object keys %v, want %v", kind, got, want[kind][:1])
		}
	}
	if keys := p.Watches[1].RolloutKeys(testutil.Rollout("shop", "host", withIstio("web", nil))); len(keys) != 0 {
		t.Errorf("a host-level split watches DestinationRules %v", keys)
	}
	// The trim takes Istio's objects and leaves other kinds to the caller.
	if _, ok := p.Trim(istio.VirtualServiceObject()); !ok {
		t.Error("Trim refused a VirtualService")
	}
	if _, ok := p.Trim(&unstructured.Unstructured{}); ok {
		t.Error("Trim took an object of another kind")
	}
	if r := istio.NewProvider(&istio.Router{}).Router; r == nil {
		t.Error("the router given is not registered")
	}
}

// TestServed asks a real API server with Istio's CRDs, and a mapper that knows nothing.
func TestServed(t *testing.T) {
	e := testenv.Require(t, env)
	httpClient, err := rest.HTTPClientFor(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(e.Config, httpClient)
	if err != nil {
		t.Fatal(err)
	}
	if served, err := istio.Served(mapper); err != nil || !served {
		t.Errorf("Served with Istio's CRDs installed: %v, %v", served, err)
	}
	empty := meta.NewDefaultRESTMapper([]schema.GroupVersion{{Group: istio.Group, Version: istio.Version}})
	if served, err := istio.Served(empty); err != nil || served {
		t.Errorf("Served without Istio's CRDs: %v, %v", served, err)
	}
}
