package nginx_test

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/yaml"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/nginx"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenInput is a testdata/*.in.yaml file: a Rollout and the stable Ingress it names.
type goldenInput struct {
	Rollout kultav1alpha1.Rollout `json:"rollout"`
	Ingress networkingv1.Ingress  `json:"ingress"`
}

func load(t *testing.T, name string) goldenInput {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name+".in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var in goldenInput
	if err := yaml.UnmarshalStrict(data, &in); err != nil {
		t.Fatalf("%s.in.yaml: %v", name, err)
	}
	return in
}

// goldenOutput is what a *.out.yaml file holds: the canary Ingress, without the fields a new
// object has empty, or the RouteError.
func goldenOutput(t *testing.T, ing *networkingv1.Ingress, err error) []byte {
	t.Helper()
	var out any
	if err != nil {
		var routeErr *providers.RouteError
		if !errors.As(err, &routeErr) || !errors.Is(err, providers.ErrRouteNotUsable) {
			t.Fatalf("want a *providers.RouteError, got %T: %v", err, err)
		}
		out = map[string]any{"error": map[string]any{"reason": routeErr.Reason, "message": routeErr.Message}}
	} else {
		js, err := json.Marshal(ing)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(js, &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "status")
		delete(m["metadata"].(map[string]any), "creationTimestamp")
		out = m
	}
	got, err := yaml.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testutil.Golden(t, filepath.Join("testdata", name+".out.yaml"), got, *update, "go test ./providers/nginx -run TestTranslationGolden -update")
}

// Header routes of the A/B Rollout web.
var (
	headerExact = providers.HeaderRoute{Name: "kulta-web-variant-b",
		Header: &kultav1alpha1.HeaderMatch{Name: "X-Variant", Value: "B", Type: kultav1alpha1.MatchExact}}
	headerRegex = providers.HeaderRoute{Name: "kulta-web-variant-b",
		Header: &kultav1alpha1.HeaderMatch{Name: "X-Variant", Value: "B|C", Type: kultav1alpha1.MatchRegularExpression}}
	cookieAlways = providers.HeaderRoute{Name: "kulta-web-variant-b",
		Cookie: &kultav1alpha1.CookieMatch{Name: "ab_variant", Value: "always"}}
	cookieB = providers.HeaderRoute{Name: "kulta-web-variant-b",
		Cookie: &kultav1alpha1.CookieMatch{Name: "ab_variant", Value: "B"}}
	headerAndCookie = providers.HeaderRoute{Name: "kulta-web-variant-b", Header: headerExact.Header, Cookie: cookieAlways.Cookie}
	headerEmpty     = providers.HeaderRoute{Name: "kulta-web-variant-b",
		Header: &kultav1alpha1.HeaderMatch{Name: "X-Variant", Value: ""}}
)

// TestTranslationGolden builds the canary Ingress of each testdata input for a state and
// compares it, or the RouteError, with the golden file. A canary Ingress built is up to date
// with itself (no second write) and reads back as the state it was built for.
func TestTranslationGolden(t *testing.T) {
	weight := func(w int32) nginx.State { return nginx.State{CanaryWeight: w} }
	route := func(w int32, hr providers.HeaderRoute) nginx.State {
		return nginx.State{CanaryWeight: w, HeaderRoute: &hr}
	}
	cases := []struct {
		golden, input string
		state         nginx.State
	}{
		{"single-path-20", "single-path", weight(20)},
		{"single-path-50", "single-path", weight(50)},
		{"single-path-100", "single-path", weight(100)},
		{"ab-header-exact", "ab-header", route(0, headerExact)},
		{"ab-header-regex", "ab-header", route(0, headerRegex)},
		{"ab-cookie-always", "ab-header", route(0, cookieAlways)},
		{"ab-header-and-cookie", "ab-header", route(0, headerAndCookie)},
		{"ab-cookie-other-value", "ab-header", route(0, cookieB)},
		{"ab-header-empty-value", "ab-header", route(0, headerEmpty)},
		{"many-hosts-30", "many-hosts", weight(30)},
		{"default-backend-only-10", "default-backend-only", weight(10)},
		{"default-backend-10", "default-backend", weight(10)},
		{"legacy-class-60", "legacy-class", weight(60)},
		{"noisy-stable-25", "noisy-stable", weight(25)},
		{"custom-annotations-40", "custom-annotations", weight(40)},
		{"custom-annotations-header-route", "custom-annotations", route(40, headerRegex)},
		{"blue-green-100", "blue-green", weight(100)},
		{"no-stable-backend", "no-stable-backend", weight(20)},
		{"stable-is-canary", "stable-is-canary", weight(20)},
		{"long-names", "long-names", weight(20)},
	}
	for _, tc := range cases {
		t.Run(tc.golden, func(t *testing.T) {
			in := load(t, tc.input)
			stableBefore := in.Ingress.DeepCopy()
			ing, err := nginx.CanaryIngress(&in.Rollout, &in.Ingress, tc.state)
			golden(t, tc.golden, goldenOutput(t, ing, err))
			if !equality.Semantic.DeepEqual(stableBefore, &in.Ingress) {
				t.Error("the translation changed the stable Ingress")
			}
			if err != nil {
				return
			}
			prefix := nginx.AnnotationPrefix(&in.Rollout)
			if _, differ := nginx.Merge(ing, ing, prefix); len(differ) > 0 {
				t.Errorf("a canary Ingress is not up to date with itself: %v", differ)
			}
			if got := nginx.StateOf(ing, prefix); !reflect.DeepEqual(got, tc.state) {
				t.Errorf("StateOf = %+v, want %+v", got, tc.state)
			}
			want := providers.Weights{Stable: 100 - tc.state.CanaryWeight, Canary: tc.state.CanaryWeight}
			if w := nginx.WeightsOf(ing, prefix); w == nil || *w != want {
				t.Errorf("WeightsOf = %v, want %v", w, want)
			}
		})
	}
}

func TestWeightsOf(t *testing.T) {
	canary := func(annotations ...string) *networkingv1.Ingress {
		ing := &networkingv1.Ingress{}
		ing.Annotations = map[string]string{}
		for i := 0; i+1 < len(annotations); i += 2 {
			ing.Annotations["nginx.ingress.kubernetes.io/"+annotations[i]] = annotations[i+1]
		}
		return ing
	}
	for name, tc := range map[string]struct {
		ing  *networkingv1.Ingress
		want *providers.Weights
	}{
		"no canary Ingress":       {nil, &providers.Weights{Stable: 100}},
		"weight":                  {canary("canary", "true", "canary-weight", "20"), &providers.Weights{Stable: 80, Canary: 20}},
		"weight missing":          {canary("canary", "true"), &providers.Weights{Stable: 100}},
		"weight of 1000":          {canary("canary", "true", "canary-weight", "250", "canary-weight-total", "1000"), &providers.Weights{Stable: 75, Canary: 25}},
		"no whole percentage":     {canary("canary", "true", "canary-weight", "333", "canary-weight-total", "1000"), nil},
		"weight over the total":   {canary("canary", "true", "canary-weight", "150"), &providers.Weights{Canary: 100}},
		"not a number":            {canary("canary", "true", "canary-weight", "twenty"), nil},
		"not marked as a canary":  {canary("canary-weight", "20"), nil},
		"canary marked as false":  {canary("canary", "false", "canary-weight", "20"), nil},
		"total not a number":      {canary("canary", "true", "canary-weight", "20", "canary-weight-total", "x"), nil},
		"total of zero":           {canary("canary", "true", "canary-weight", "0", "canary-weight-total", "0"), nil},
		"another prefix's weight": {&networkingv1.Ingress{}, nil},
	} {
		got := nginx.WeightsOf(tc.ing, nginx.DefaultAnnotationPrefix)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: WeightsOf = %v, want %v", name, got, tc.want)
		}
	}
}

// TestMergeKeepsOthers checks what of a canary Ingress KULTA owns: a write replaces the spec
// and its own annotations (removing those it no longer writes, under any prefix it wrote them
// with) and keeps other tools' labels, annotations and ownerReferences.
func TestMergeKeepsOthers(t *testing.T) {
	in := load(t, "custom-annotations")
	old, err := nginx.CanaryIngress(&in.Rollout, &in.Ingress, nginx.State{CanaryWeight: 40, HeaderRoute: &headerRegex})
	if err != nil {
		t.Fatal(err)
	}
	current := old.DeepCopy()
	current.Labels["edited-by"] = "someone-else"
	current.Annotations["monitoring.example.com/dashboard"] = "web"
	current.Annotations["nginx.ingress.kubernetes.io/canary-by-cookie"] = "hand-made"
	current.Spec.TLS = []networkingv1.IngressTLS{{Hosts: []string{"shop.example.com"}, SecretName: "shop-tls"}}
	current.OwnerReferences = append(current.OwnerReferences, *old.OwnerReferences[0].DeepCopy())
	current.OwnerReferences[1].UID, current.OwnerReferences[1].Controller = "other", nil

	// The Rollout drops its custom prefix, a canaryIngressAnnotation and the header route.
	ro := in.Rollout.DeepCopy()
	ro.Spec.Strategy.Canary.TrafficRouting.NGINX.AnnotationPrefix = ""
	delete(ro.Spec.Strategy.Canary.TrafficRouting.NGINX.CanaryIngressAnnotations, "metrics.example.com/scrape")
	desired, err := nginx.CanaryIngress(ro, &in.Ingress, nginx.State{CanaryWeight: 50})
	if err != nil {
		t.Fatal(err)
	}
	merged, differ := nginx.Merge(current, desired, nginx.AnnotationPrefix(ro))
	if want := []string{"spec.tls", "metadata.annotations"}; !reflect.DeepEqual(differ, want) {
		t.Errorf("differ = %v, want %v", differ, want)
	}
	for k, v := range desired.Annotations {
		if merged.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, merged.Annotations[k], v)
		}
	}
	for _, gone := range []string{
		"custom.nginx.example.com/canary", "custom.nginx.example.com/canary-by-header-pattern",
		"metrics.example.com/scrape", nginx.HeaderRouteAnnotation, "nginx.ingress.kubernetes.io/canary-by-cookie",
	} {
		if v, ok := merged.Annotations[gone]; ok {
			t.Errorf("annotation %s = %q survived; KULTA no longer writes it", gone, v)
		}
	}
	if merged.Annotations["monitoring.example.com/dashboard"] != "web" || merged.Labels["edited-by"] != "someone-else" {
		t.Errorf("another tool's annotation or label was dropped: %v %v", merged.Annotations, merged.Labels)
	}
	if len(merged.OwnerReferences) != 2 || len(merged.Spec.TLS) != 0 {
		t.Errorf("ownerReferences %v, tls %v; want both owners and no TLS", merged.OwnerReferences, merged.Spec.TLS)
	}
	if _, again := nginx.Merge(merged, desired, nginx.AnnotationPrefix(ro)); len(again) > 0 {
		t.Errorf("merging twice changes %v", again)
	}
	if !equality.Semantic.DeepEqual(current.Annotations["custom.nginx.example.com/canary"], "true") {
		t.Error("Merge changed its input")
	}
}

func TestCanaryIngressNeedsAStoredRollout(t *testing.T) {
	in := load(t, "single-path")
	in.Rollout.UID = ""
	if _, err := nginx.CanaryIngress(&in.Rollout, &in.Ingress, nginx.State{CanaryWeight: 10}); err == nil || errors.Is(err, providers.ErrRouteNotUsable) {
		t.Errorf("a Rollout without a UID: got %v, want an error that is not a RouteError", err)
	}
}
