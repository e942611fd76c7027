package main

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	apinetworkingv1 "istio.io/api/networking/v1"
	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	kultascheme "github.com/false-systems/kulta/internal/scheme"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
)

// demoScheme knows the kinds of every provider, as the demo cluster's client does.
func demoScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	scheme, err := kultascheme.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := istionetworkingv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return scheme
}

// demoRollout is the demo's Rollout web with the Services web-stable and web-canary, routed by
// routing.
func demoRollout(routing kultav1alpha1.TrafficRouting) *kultav1alpha1.Rollout {
	return &kultav1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: kultav1alpha1.RolloutSpec{Strategy: kultav1alpha1.RolloutStrategy{Canary: &kultav1alpha1.CanaryStrategy{
			StableService: "web-stable", CanaryService: "web-canary", TrafficRouting: &routing,
		}}},
	}
}

// TestObserverRecordsWeightsFromBeforeTheChange checks that a phase's weight history starts at
// the weights the route had before the update, even when the controller moved the route before
// the observer's next look: the demo's summary once showed "80/20 -> 50/50 -> 100/0" for a
// canary that started at 100/0.
func TestObserverRecordsWeightsFromBeforeTheChange(t *testing.T) {
	ctx := context.Background()
	ro := demoRollout(kultav1alpha1.TrafficRouting{GatewayAPI: &kultav1alpha1.GatewayAPIRouting{HTTPRoute: "web"}})
	route := rollouttest.Route("default", "web", "web-stable", "web-canary")
	c := fake.NewClientBuilder().WithScheme(demoScheme(t)).WithObjects(ro, route).Build()
	traffic, err := httpRouteSplitOf(ro)
	if err != nil {
		t.Fatal(err)
	}
	o := &observer{client: c, out: newConsole(&bytes.Buffer{}), rollout: client.ObjectKeyFromObject(ro), traffic: traffic}

	before, err := o.look(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if before.weights != "100/0" {
		t.Fatalf("route starts at %s, want 100/0", before.weights)
	}
	o.resetWeights(before)
	for _, w := range [][2]int32{{80, 20}, {80, 20}, {50, 50}, {100, 0}} {
		setWeights(t, c, client.ObjectKeyFromObject(route), w[0], w[1])
		if _, err := o.look(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"100/0", "80/20", "50/50", "100/0"}; !slices.Equal(o.weights, want) {
		t.Errorf("recorded weights %v, want %v", o.weights, want)
	}
}

// setWeights writes stable/canary weights into the route's first rule, as the controller would.
func setWeights(t *testing.T, c client.Client, key client.ObjectKey, stable, canary int32) {
	t.Helper()
	route := &gatewayv1.HTTPRoute{}
	if err := c.Get(context.Background(), key, route); err != nil {
		t.Fatal(err)
	}
	refs := route.Spec.Rules[0].BackendRefs
	refs[0].Weight, refs[1].Weight = ptr.To(stable), ptr.To(canary)
	if err := c.Update(context.Background(), route); err != nil {
		t.Fatal(err)
	}
}

// splitCase is one state of a provider's objects and the split the observer must read from it.
type splitCase struct {
	name    string
	objs    []client.Object
	want    string
	wantErr string
}

// checkSplits reads each case's objects with the reader the provider makes of ro.
func checkSplits(t *testing.T, p trafficProvider, ro *kultav1alpha1.Rollout, cases []splitCase) {
	t.Helper()
	traffic, err := p.split(ro)
	if err != nil {
		t.Fatalf("%s provider: %v", p.name, err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(demoScheme(t)).WithObjects(tc.objs...).Build()
			got, err := traffic.read(context.Background(), c)
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("%s: split %q, error %v, want an error saying %q", traffic, got, err, tc.wantErr)
			case tc.wantErr == "" && err != nil:
				t.Errorf("%s: unexpected error: %v", traffic, err)
			case tc.wantErr == "" && got != tc.want:
				t.Errorf("%s: split %q, want %q", traffic, got, tc.want)
			}
		})
	}
}

func TestHTTPRouteSplit(t *testing.T) {
	ro := demoRollout(kultav1alpha1.TrafficRouting{GatewayAPI: &kultav1alpha1.GatewayAPIRouting{HTTPRoute: "web"}})
	weighted := rollouttest.Route("default", "web", "web-stable", "web-canary")
	refs := weighted.Spec.Rules[0].BackendRefs
	refs[0].Weight, refs[1].Weight = ptr.To[int32](80), ptr.To[int32](20)
	checkSplits(t, mustProvider(t, providerGatewayAPI), ro, []splitCase{
		{name: "as created", objs: []client.Object{rollouttest.Route("default", "web", "web-stable", "web-canary")}, want: "100/0"},
		{name: "weighted", objs: []client.Object{weighted}, want: "80/20"},
		{name: "other Services", objs: []client.Object{rollouttest.Route("default", "web", "a", "b")}, want: noSplit},
		{name: "no route", wantErr: "reading HTTPRoute default/web"},
	})
}

// virtualService is the demo's VirtualService: a header route KULTA does not manage, then the
// route primary with the two destinations at stable and canary.
func virtualService(stableHost string, stable, canary int32) *istionetworkingv1.VirtualService {
	dest := func(host string, weight int32) *apinetworkingv1.HTTPRouteDestination {
		return &apinetworkingv1.HTTPRouteDestination{
			Destination: &apinetworkingv1.Destination{Host: host, Port: &apinetworkingv1.PortSelector{Number: 80}},
			Weight:      weight,
		}
	}
	return &istionetworkingv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: apinetworkingv1.VirtualService{
			Hosts: []string{"web"},
			Http: []*apinetworkingv1.HTTPRoute{{
				Name:  "debug",
				Match: []*apinetworkingv1.HTTPMatchRequest{{Headers: map[string]*apinetworkingv1.StringMatch{"x-debug": {MatchType: &apinetworkingv1.StringMatch_Exact{Exact: "1"}}}}},
				Route: []*apinetworkingv1.HTTPRouteDestination{dest("web-canary", 0)},
			}, {
				Name:  "primary",
				Route: []*apinetworkingv1.HTTPRouteDestination{dest(stableHost, stable), dest("web-canary", canary)},
			}},
		},
	}
}

func TestVirtualServiceSplit(t *testing.T) {
	ro := demoRollout(kultav1alpha1.TrafficRouting{Istio: &kultav1alpha1.IstioRouting{
		VirtualService: &kultav1alpha1.IstioVirtualService{Name: "web", Routes: []string{"primary"}},
	}})
	wrongRoute := virtualService("web-stable", 100, 0)
	wrongRoute.Spec.Http[1].Name = "other"
	checkSplits(t, mustProvider(t, providerIstio), ro, []splitCase{
		{name: "as created", objs: []client.Object{virtualService("web-stable", 100, 0)}, want: "100/0"},
		{name: "weighted", objs: []client.Object{virtualService("web-stable", 50, 50)}, want: "50/50"},
		{name: "host with namespace", objs: []client.Object{virtualService("web-stable.default.svc.cluster.local", 80, 20)}, want: "80/20"},
		{name: "other Service", objs: []client.Object{virtualService("web-old", 80, 20)}, want: noSplit},
		{name: "no route primary", objs: []client.Object{wrongRoute}, wantErr: "has no HTTP route primary"},
		{name: "no VirtualService", wantErr: "reading VirtualService default/web, route primary"},
	})
}

// canaryIngress is KULTA's canary Ingress of the Ingress web with the annotations.
func canaryIngress(annotations map[string]string) *networkingv1.Ingress {
	return &networkingv1.Ingress{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web-web-canary", Annotations: annotations}}
}

func TestCanaryIngressSplit(t *testing.T) {
	ro := demoRollout(kultav1alpha1.TrafficRouting{NGINX: &kultav1alpha1.NGINXRouting{StableIngress: "web"}})
	const prefix = "nginx.ingress.kubernetes.io/"
	checkSplits(t, mustProvider(t, providerNGINX), ro, []splitCase{
		{name: "no canary Ingress", want: "100/0"},
		{name: "weighted", objs: []client.Object{canaryIngress(map[string]string{prefix + "canary": "true", prefix + "canary-weight": "20"})}, want: "80/20"},
		{name: "weight of a total", objs: []client.Object{canaryIngress(map[string]string{
			prefix + "canary": "true", prefix + "canary-weight": "1", prefix + "canary-weight-total": "2"})}, want: "50/50"},
		{name: "no weight", objs: []client.Object{canaryIngress(map[string]string{prefix + "canary": "true"})}, want: "100/0"},
		{name: "weight not a number", objs: []client.Object{canaryIngress(map[string]string{prefix + "canary": "true", prefix + "canary-weight": "half"})},
			wantErr: "annotation " + prefix + "canary-weight"},
		{name: "not a canary", objs: []client.Object{canaryIngress(nil)}, wantErr: "is not a canary Ingress"},
	})

	custom := demoRollout(kultav1alpha1.TrafficRouting{NGINX: &kultav1alpha1.NGINXRouting{StableIngress: "web", AnnotationPrefix: "custom.example"}})
	checkSplits(t, mustProvider(t, providerNGINX), custom, []splitCase{
		{name: "annotation prefix", objs: []client.Object{canaryIngress(map[string]string{"custom.example/canary": "true", "custom.example/canary-weight": "50"})}, want: "50/50"},
	})
}

// TestProvidersRefuseOtherRouting: each provider's reader wants the Rollout routed through it.
func TestProvidersRefuseOtherRouting(t *testing.T) {
	viaIstio := demoRollout(kultav1alpha1.TrafficRouting{Istio: &kultav1alpha1.IstioRouting{
		VirtualService: &kultav1alpha1.IstioVirtualService{Name: "web"},
	}})
	for _, name := range []string{providerGatewayAPI, providerNGINX} {
		if _, err := mustProvider(t, name).split(viaIstio); err == nil || !strings.Contains(err.Error(), "is not routed through") {
			t.Errorf("%s provider on a Rollout routed by Istio: error %v, want one saying it is not routed through it", name, err)
		}
	}
	if _, err := mustProvider(t, providerIstio).split(&kultav1alpha1.Rollout{}); err == nil || !strings.Contains(err.Error(), "not a canary with trafficRouting") {
		t.Errorf("istio provider on a Rollout without a canary: error %v", err)
	}
}

// TestDemoManifestsFitTheirProvider reads each provider's manifest: it has one Rollout, routed
// through the provider, and the object the provider routes with.
func TestDemoManifestsFitTheirProvider(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	wantKind := map[string]string{providerGatewayAPI: "HTTPRoute", providerIstio: "VirtualService", providerNGINX: "Ingress"}
	for _, p := range trafficProviders {
		t.Run(p.name, func(t *testing.T) {
			objs, err := testutil.DecodeManifests(filepath.Join(root, p.manifest))
			if err != nil {
				t.Fatal(err)
			}
			var rollouts []*kultav1alpha1.Rollout
			kinds := map[string]int{}
			for _, obj := range objs {
				kinds[obj.GetKind()]++
				if obj.GetKind() != "Rollout" {
					continue
				}
				ro := &kultav1alpha1.Rollout{}
				if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(obj.Object, ro, true); err != nil {
					t.Fatalf("decoding the Rollout of %s: %v", p.manifest, err)
				}
				rollouts = append(rollouts, ro)
			}
			if len(rollouts) != 1 {
				t.Fatalf("%s has %d Rollouts, want 1", p.manifest, len(rollouts))
			}
			if kinds[wantKind[p.name]] != 1 || kinds["Service"] != 2 {
				t.Errorf("%s has %v, want one %s and two Services", p.manifest, kinds, wantKind[p.name])
			}
			if _, err := p.split(rollouts[0]); err != nil {
				t.Errorf("the Rollout of %s: %v", p.manifest, err)
			}
		})
	}
}

// mustProvider is the provider called name.
func mustProvider(t *testing.T, name string) trafficProvider {
	t.Helper()
	p, err := lookupProvider(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
