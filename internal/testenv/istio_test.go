package testenv

import (
	"context"
	"os"
	"strings"
	"testing"

	apinetworkingv1 "istio.io/api/networking/v1"
	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestIstioCRDFile finds the Istio CRDs of the required istio.io/api module: one file holding
// the VirtualService and DestinationRule CRDs, served at networking.istio.io/v1.
func TestIstioCRDFile(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	file, err := IstioCRDFile(root)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name: virtualservices.networking.istio.io", "name: destinationrules.networking.istio.io"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("%s lacks %q", file, want)
		}
	}
}

// TestInstallIstio starts an API server, installs Istio's CRDs into it as a Main setup would,
// and writes a typed VirtualService and DestinationRule, which read back as unstructured
// objects at networking.istio.io/v1.
func TestInstallIstio(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an API server")
	}
	env, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	ctx := context.Background()
	if err := InstallIstio(ctx, env); err != nil {
		t.Fatal(err)
	}
	ns := env.CreateNamespace(t, "istio")
	vs := &istionetworkingv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: apinetworkingv1.VirtualService{
			Hosts: []string{"web"},
			Http: []*apinetworkingv1.HTTPRoute{{Name: "primary", Route: []*apinetworkingv1.HTTPRouteDestination{
				{Destination: &apinetworkingv1.Destination{Host: "web-stable"}, Weight: 100},
				{Destination: &apinetworkingv1.Destination{Host: "web-canary"}},
			}}},
		},
	}
	dr := &istionetworkingv1.DestinationRule{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: apinetworkingv1.DestinationRule{Host: "web", Subsets: []*apinetworkingv1.Subset{
			{Name: "stable", Labels: map[string]string{"app": "web"}},
		}},
	}
	for _, obj := range []client.Object{vs, dr} {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatalf("creating %T: %v", obj, err)
		}
	}
	stored := &unstructured.Unstructured{}
	stored.SetGroupVersionKind(schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"})
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(vs), stored); err != nil {
		t.Fatal(err)
	}
	routes, _, _ := unstructured.NestedSlice(stored.Object, "spec", "http")
	if len(routes) != 1 || routes[0].(map[string]any)["name"] != "primary" {
		t.Errorf("stored http routes %v, want the one named primary", routes)
	}
	typed := &istionetworkingv1.DestinationRule{}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(dr), typed); err != nil {
		t.Fatal(err)
	}
	if len(typed.Spec.Subsets) != 1 || typed.Spec.Subsets[0].Labels["app"] != "web" {
		t.Errorf("stored subsets %v", typed.Spec.Subsets)
	}
}
