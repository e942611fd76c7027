package istio_test

import (
	"context"
	"os"
	"sync/atomic"
	"testing"

	"github.com/go-logr/logr/testr"
	apinetworkingv1 "istio.io/api/networking/v1"
	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/istio"
)

// env is one API server with KULTA's, Gateway API's and Istio's CRDs for the package's tests.
var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env, testenv.InstallIstio))
}

func testContext(t *testing.T) context.Context {
	return ctrl.LoggerInto(context.Background(), testr.New(t))
}

// Builders of Istio's own typed objects for the tests that run on the API server.

// vsOption changes a VirtualService under construction.
type vsOption func(*istionetworkingv1.VirtualService)

// newVirtualService is a VirtualService for host NAME in namespace ns with the HTTP routes
// routes, changed by opts.
func newVirtualService(ns, name string, routes []*apinetworkingv1.HTTPRoute, opts ...vsOption) *istionetworkingv1.VirtualService {
	vs := &istionetworkingv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       apinetworkingv1.VirtualService{Hosts: []string{name}, Http: routes},
	}
	for _, opt := range opts {
		opt(vs)
	}
	return vs
}

// withAnnotation sets an annotation on the VirtualService.
func withAnnotation(key, value string) vsOption {
	return func(vs *istionetworkingv1.VirtualService) {
		vs.Annotations = map[string]string{key: value}
	}
}

// httpRoute is an HTTP route named name to dests.
func httpRoute(name string, dests ...*apinetworkingv1.HTTPRouteDestination) *apinetworkingv1.HTTPRoute {
	return &apinetworkingv1.HTTPRoute{Name: name, Route: dests}
}

// to is a destination at host with weight (0 is stored as no weight, as Istio's types do).
func to(host string, weight int32) *apinetworkingv1.HTTPRouteDestination {
	return &apinetworkingv1.HTTPRouteDestination{Destination: &apinetworkingv1.Destination{Host: host}, Weight: weight}
}

// toSubset is a destination at subset of host with weight.
func toSubset(host, subset string, weight int32) *apinetworkingv1.HTTPRouteDestination {
	d := to(host, weight)
	d.Destination.Subset = subset
	return d
}

// newDestinationRule is a DestinationRule for host with subsets selecting app=host.
func newDestinationRule(ns, name, host string, subsets ...string) *istionetworkingv1.DestinationRule {
	dr := &istionetworkingv1.DestinationRule{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       apinetworkingv1.DestinationRule{Host: host},
	}
	for _, s := range subsets {
		dr.Spec.Subsets = append(dr.Spec.Subsets, &apinetworkingv1.Subset{Name: s, Labels: map[string]string{"app": host}})
	}
	return dr
}

// withIstio routes the Rollout's strategy through the VirtualService vs, managing its HTTP
// routes named routes, changed by mutate.
func withIstio(vs string, routes []string, mutate ...func(*kultav1alpha1.IstioRouting)) testutil.RolloutOption {
	return func(ro *kultav1alpha1.Rollout) {
		istioRouting := &kultav1alpha1.IstioRouting{VirtualService: &kultav1alpha1.IstioVirtualService{Name: vs, Routes: routes}}
		for _, m := range mutate {
			m(istioRouting)
		}
		tr := &kultav1alpha1.TrafficRouting{Istio: istioRouting}
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

// bySubsets splits by the subsets stable and canary of the DestinationRule name.
func bySubsets(name string) func(*kultav1alpha1.IstioRouting) {
	return func(i *kultav1alpha1.IstioRouting) {
		i.DestinationRule = &kultav1alpha1.IstioDestinationRule{Name: name, StableSubsetName: "stable", CanarySubsetName: "canary"}
	}
}

// withHashes sets the pod-template hashes in the Rollout's status.
func withHashes(stable, current string) testutil.RolloutOption {
	return func(ro *kultav1alpha1.Rollout) {
		ro.Status.StablePodTemplateHash, ro.Status.CurrentPodTemplateHash = stable, current
	}
}

// countingClient counts the writes that reach the client it wraps.
type countingClient struct {
	client.Client
	updates atomic.Int32
}

func (c *countingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	c.updates.Add(1)
	return c.Client.Update(ctx, obj, opts...)
}

func (c *countingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	c.updates.Add(1)
	return c.Client.Patch(ctx, obj, patch, opts...)
}

// writes returns how many writes were made since the last call.
func (c *countingClient) writes() int32 { return c.updates.Swap(0) }

// stored reads the object of kind from the API server.
func stored(t testing.TB, c client.Reader, kind, ns, name string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	obj.SetAPIVersion(istio.Group + "/" + istio.Version)
	obj.SetKind(kind)
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		t.Fatalf("reading %s %s/%s: %v", kind, ns, name, err)
	}
	return obj
}

// httpRoutes are the stored VirtualService's HTTP routes.
func httpRoutes(t *testing.T, c client.Reader, ns, name string) []any {
	t.Helper()
	routes, _, _ := unstructured.NestedSlice(stored(t, c, istio.KindVirtualService, ns, name).Object, "spec", "http")
	return routes
}

// weight is a stored destination's weight; one without a weight has weight 0, as Istio says.
func weight(item any) int32 {
	v, ok := item.(map[string]any)["weight"]
	if !ok {
		return 0
	}
	return int32(v.(int64))
}

func routeNames(routes []any) []string {
	var names []string
	for _, item := range routes {
		name, _ := item.(map[string]any)["name"].(string)
		names = append(names, name)
	}
	return names
}

func verifyWeights(t *testing.T, r providers.TrafficRouter, ro *kultav1alpha1.Rollout, want providers.Weights) providers.Verification {
	t.Helper()
	v, err := r.Verify(context.Background(), ro)
	if err != nil {
		t.Fatalf("Verify %s: %v", ro.Name, err)
	}
	if v.Weights == nil || *v.Weights != want {
		t.Errorf("Verify %s: weights %v, want %v", ro.Name, v.Weights, want)
	}
	return v
}
