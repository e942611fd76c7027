package gatewayapi_test

import (
	"errors"
	"flag"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/gatewayapi"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func load(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	return testutil.ReadUnstructured(t, filepath.Join("testdata", name+".in.yaml"))
}

func golden(t *testing.T, name string, route *unstructured.Unstructured) {
	t.Helper()
	got, err := yaml.Marshal(route.Object)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Golden(t, filepath.Join("testdata", name+".out.yaml"), got, *update, "go test ./providers/gatewayapi -update")
}

// web is the Rollout web's Services on port 80; many-rules.in.yaml has them on port 8080.
var (
	web     = gatewayapi.Backends{Namespace: "shop", Stable: "web-stable", Canary: "web-canary", Port: 80}
	web8080 = gatewayapi.Backends{Namespace: "shop", Stable: "web-stable", Canary: "web-canary", Port: 8080}
	greeter = gatewayapi.Backends{Namespace: "shop", Stable: "greeter-stable", Canary: "greeter-canary", Port: 50051}
)

// unnamed is web without rule names, as on an API server whose route CRDs prune them.
func unnamed(b gatewayapi.Backends) gatewayapi.Backends {
	b.NoRuleNames = true
	return b
}

func TestTranslationGolden(t *testing.T) {
	variantB := providers.HeaderRoute{
		Name:   "kulta-web-variant-b",
		Header: &kultav1alpha1.HeaderMatch{Name: "X-Variant", Value: "B", Type: kultav1alpha1.MatchExact},
		Cookie: &kultav1alpha1.CookieMatch{Name: "ab_variant", Value: "B"},
	}
	cases := []struct {
		golden, input string
		apply         func(*unstructured.Unstructured) (bool, error)
	}{
		{"single-rule-80-20", "single-rule", func(r *unstructured.Unstructured) (bool, error) {
			return gatewayapi.SetWeights(r, web, providers.Weights{Stable: 80, Canary: 20})
		}},
		{"many-rules-50-50", "many-rules", func(r *unstructured.Unstructured) (bool, error) {
			return gatewayapi.SetWeights(r, web8080, providers.Weights{Stable: 50, Canary: 50})
		}},
		{"extra-backend-0-100", "extra-backend", func(r *unstructured.Unstructured) (bool, error) {
			return gatewayapi.SetWeights(r, web, providers.Weights{Stable: 0, Canary: 100})
		}},
		{"named-rules-primary-only", "named-rules", func(r *unstructured.Unstructured) (bool, error) {
			b := web
			b.Rules = []string{"primary"}
			return gatewayapi.SetWeights(r, b, providers.Weights{Stable: 70, Canary: 30})
		}},
		{"future-fields-kept", "future-fields", func(r *unstructured.Unstructured) (bool, error) {
			return gatewayapi.SetWeights(r, web, providers.Weights{Stable: 90, Canary: 10})
		}},
		{"grpc-75-25", "grpc", func(r *unstructured.Unstructured) (bool, error) {
			return gatewayapi.SetWeights(r, greeter, providers.Weights{Stable: 75, Canary: 25})
		}},
		{"many-rules-header-route", "many-rules", func(r *unstructured.Unstructured) (bool, error) {
			return gatewayapi.SetHeaderRoute(r, web8080, variantB)
		}},
		{"many-rules-header-route-unnamed", "many-rules", func(r *unstructured.Unstructured) (bool, error) {
			return gatewayapi.SetHeaderRoute(r, unnamed(web8080), variantB)
		}},
		{"grpc-header-route", "grpc", func(r *unstructured.Unstructured) (bool, error) {
			return gatewayapi.SetHeaderRoute(r, greeter, providers.HeaderRoute{Name: "kulta-greeter-variant-b", Header: variantB.Header})
		}},
		{"grpc-header-route-unnamed", "grpc", func(r *unstructured.Unstructured) (bool, error) {
			return gatewayapi.SetHeaderRoute(r, unnamed(greeter), providers.HeaderRoute{Name: "kulta-greeter-variant-b", Header: variantB.Header})
		}},
		// The stable and canary Services on port 80 and again on 8080: only the refs at the
		// Rollout's port 80 are KULTA's.
		{"two-ports-80-20", "two-ports", func(r *unstructured.Unstructured) (bool, error) {
			return gatewayapi.SetWeights(r, web, providers.Weights{Stable: 80, Canary: 20})
		}},
		{"two-ports-header-route", "two-ports", func(r *unstructured.Unstructured) (bool, error) {
			return gatewayapi.SetHeaderRoute(r, web, variantB)
		}},
		{"two-rollouts-same-header", "two-rollouts", func(r *unstructured.Unstructured) (bool, error) {
			cart := gatewayapi.Backends{Namespace: "shop", Stable: "cart-stable", Canary: "cart-canary", Port: 80}
			search := gatewayapi.Backends{Namespace: "shop", Stable: "search-stable", Canary: "search-canary", Port: 80}
			a, err := gatewayapi.SetHeaderRoute(r, cart, providers.HeaderRoute{Name: "kulta-cart-variant-b", Header: &kultav1alpha1.HeaderMatch{Name: "X-Canary", Value: "cart"}})
			if err != nil {
				return false, err
			}
			b, err := gatewayapi.SetHeaderRoute(r, search, providers.HeaderRoute{Name: "kulta-search-variant-b", Header: &kultav1alpha1.HeaderMatch{Name: "X-Canary", Value: "search"}})
			return a && b, err
		}},
		// Two setHeaderRoute steps at once: every condition of a step in one match, the first
		// step's rules still first after the second is set.
		{"many-rules-step-header-routes", "many-rules", func(r *unstructured.Unstructured) (bool, error) {
			a, err := gatewayapi.SetHeaderRoute(r, web8080, testersRoute)
			if err != nil {
				return false, err
			}
			b, err := gatewayapi.SetHeaderRoute(r, web8080, betaRoute)
			return a && b, err
		}},
		// Where rule names are pruned, a step's rules are found again by their conditions: set,
		// then removed, leaving the route as it was (checked against the input below).
		{"many-rules-step-header-route-unnamed", "many-rules", func(r *unstructured.Unstructured) (bool, error) {
			return gatewayapi.SetHeaderRoute(r, unnamed(web8080), testersRoute)
		}},
		// A mirror of a quarter of every request and one of every request with a header, with
		// weights set after them, then a header route: the mirror rules copy the managed rule's
		// filters, matches and weights and add a RequestMirror (no percent at 100); the header
		// rule comes before them.
		{"many-rules-mirror-routes", "many-rules", func(r *unstructured.Unstructured) (bool, error) {
			for _, hr := range []providers.HeaderRoute{shadowRoute, apiMirrorRoute} {
				if _, err := gatewayapi.SetHeaderRoute(r, web8080, hr); err != nil {
					return false, err
				}
			}
			if _, err := gatewayapi.SetWeights(r, web8080, providers.Weights{Stable: 70, Canary: 30}); err != nil {
				return false, err
			}
			return gatewayapi.SetHeaderRoute(r, web8080, testersRoute)
		}},
		{"many-rules-mirror-route-unnamed", "many-rules", func(r *unstructured.Unstructured) (bool, error) {
			return gatewayapi.SetHeaderRoute(r, unnamed(web8080), apiMirrorRoute)
		}},
		{"header-route-removed", "header-present", func(r *unstructured.Unstructured) (bool, error) {
			return gatewayapi.RemoveHeaderRoute(r, web, providers.HeaderRoute{Name: "kulta-web-variant-b"})
		}},
		// Without rule names, KULTA's rules are found by content: web's header rule goes, the
		// look-alike rules for another header, another port and another backend stay.
		{"header-route-unnamed-removed", "header-present-unnamed", func(r *unstructured.Unstructured) (bool, error) {
			return gatewayapi.RemoveHeaderRoute(r, unnamed(web), providers.HeaderRoute{Name: "kulta-web-variant-b", Header: variantB.Header})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.golden, func(t *testing.T) {
			route := load(t, tc.input)
			original := route.DeepCopy()
			changed, err := tc.apply(route)
			if err != nil {
				t.Fatal(err)
			}
			if !changed {
				t.Fatal("translation reported no change")
			}
			if route.GetAnnotations()["team"] != original.GetAnnotations()["team"] {
				t.Error("annotations changed")
			}
			golden(t, tc.golden, route)
			// Applying the same translation again changes nothing: no write when nothing changes.
			again, err := tc.apply(route)
			if err != nil {
				t.Fatal(err)
			}
			if again {
				t.Error("second application reported a change")
			}
		})
	}
}

// TestHeaderRouteSurvivesRestart reads back a route that already carries the header rule, as
// after a controller restart: setting it again writes nothing.
func TestHeaderRouteSurvivesRestart(t *testing.T) {
	hr := providers.HeaderRoute{
		Name:   "kulta-web-variant-b",
		Header: &kultav1alpha1.HeaderMatch{Name: "X-Variant", Value: "B", Type: kultav1alpha1.MatchExact},
	}
	for input, b := range map[string]gatewayapi.Backends{"header-present": web, "header-present-unnamed": unnamed(web)} {
		route := load(t, input)
		changed, err := gatewayapi.SetHeaderRoute(route, b, hr)
		if err != nil {
			t.Fatal(err)
		}
		if changed {
			got, _ := yaml.Marshal(route.Object)
			t.Errorf("%s: header rule rewritten after restart:\n%s", input, got)
		}
	}
}

func TestRouteWithoutTheServicesIsNotUsable(t *testing.T) {
	route := load(t, "single-rule")
	other := gatewayapi.Backends{Namespace: "shop", Stable: "api-stable", Canary: "api-canary", Port: 80}
	before, _ := yaml.Marshal(route.Object)
	_, err := gatewayapi.SetWeights(route, other, providers.Weights{Stable: 50, Canary: 50})
	if !errors.Is(err, providers.ErrRouteNotUsable) {
		t.Fatalf("want ErrRouteNotUsable, got %v", err)
	}
	if !strings.Contains(err.Error(), "HTTPRoute shop/web") || !strings.Contains(err.Error(), `"api-stable"`) {
		t.Errorf("error must name the route and the Services: %v", err)
	}
	after, _ := yaml.Marshal(route.Object)
	if string(before) != string(after) {
		t.Error("a failed translation changed the route")
	}
	if _, err := gatewayapi.SetHeaderRoute(load(t, "grpc"), greeter,
		providers.HeaderRoute{Name: "kulta-x", Cookie: &kultav1alpha1.CookieMatch{Name: "c", Value: "v"}}); !errors.Is(err, providers.ErrRouteNotUsable) {
		t.Errorf("cookie match on a GRPCRoute: want ErrRouteNotUsable, got %v", err)
	}
}

func TestCurrentWeights(t *testing.T) {
	route := load(t, "many-rules")
	w, err := gatewayapi.CurrentWeights(route, web8080)
	if err != nil || w == nil || *w != (providers.Weights{Stable: 100, Canary: 0}) {
		t.Fatalf("CurrentWeights = %v, %v", w, err)
	}
	extra := load(t, "extra-backend")
	w, err = gatewayapi.CurrentWeights(extra, web)
	if err != nil || w == nil || *w != (providers.Weights{Stable: 90, Canary: 1}) {
		t.Fatalf("an absent weight is 1: CurrentWeights = %v, %v", w, err)
	}
	// The same Services at two ports: each port's backendRefs carry their own split.
	ports := load(t, "two-ports")
	for _, tc := range []struct {
		b    gatewayapi.Backends
		want providers.Weights
	}{{web, providers.Weights{Stable: 100}}, {web8080, providers.Weights{Stable: 50, Canary: 50}}} {
		w, err := gatewayapi.CurrentWeights(ports, tc.b)
		if err != nil || w == nil || *w != tc.want {
			t.Errorf("port %d: CurrentWeights = %v, %v; want %v", tc.b.Port, w, err, tc.want)
		}
	}
}

// TestBackendRefIdentity checks which backendRefs are the Rollout's: the Service's name,
// namespace, core kind and port must all match, and a rule KULTA would manage that names one of
// its Services twice is refused, naming the route, the rule and the Service.
func TestBackendRefIdentity(t *testing.T) {
	notUsable := func(t *testing.T, route *unstructured.Unstructured, b gatewayapi.Backends, reason string, parts ...string) {
		t.Helper()
		before := route.DeepCopy()
		for name, translate := range map[string]func() error{
			"SetWeights": func() error {
				_, err := gatewayapi.SetWeights(route, b, providers.Weights{Stable: 50, Canary: 50})
				return err
			},
			"SetHeaderRoute": func() error {
				_, err := gatewayapi.SetHeaderRoute(route, b, providers.HeaderRoute{Name: "kulta-web-variant-b", Header: &kultav1alpha1.HeaderMatch{Name: "X-Variant", Value: "B"}})
				return err
			},
			"CurrentWeights": func() error {
				_, err := gatewayapi.CurrentWeights(route, b)
				return err
			},
		} {
			err := translate()
			var routeErr *providers.RouteError
			if !errors.As(err, &routeErr) || routeErr.Reason != reason {
				t.Errorf("%s: want a RouteError %s, got %v", name, reason, err)
				continue
			}
			for _, part := range parts {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("%s: the error must name %q: %v", name, part, err)
				}
			}
		}
		if !equality.Semantic.DeepEqual(before.Object, route.Object) {
			t.Error("a failed translation changed the route")
		}
	}
	t.Run("ambiguous", func(t *testing.T) {
		notUsable(t, load(t, "ambiguous"), web, providers.ReasonAmbiguousBackendRef,
			"HTTPRoute shop/web", `rule 1 ("main")`, "Service shop/web-stable port 80")
	})
	t.Run("ambiguous rule not selected", func(t *testing.T) {
		b := web
		b.Rules = []string{"mirror"}
		notUsable(t, load(t, "ambiguous"), b, providers.ReasonRouteDoesNotReferenceServices, "HTTPRoute shop/web", "mirror", "port 80")
	})
	edits := map[string]func(ref map[string]any){
		"without port":      func(ref map[string]any) { delete(ref, "port") },
		"at another port":   func(ref map[string]any) { ref["port"] = int64(8080) },
		"another namespace": func(ref map[string]any) { ref["namespace"] = "other" },
		"another kind":      func(ref map[string]any) { ref["group"], ref["kind"] = "example.com", "Backend" },
	}
	for name, edit := range edits {
		t.Run("stable "+name, func(t *testing.T) {
			route := load(t, "single-rule")
			rules, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
			edit(rules[0].(map[string]any)["backendRefs"].([]any)[0].(map[string]any))
			if err := unstructured.SetNestedSlice(route.Object, rules, "spec", "rules"); err != nil {
				t.Fatal(err)
			}
			notUsable(t, route, web, providers.ReasonRouteDoesNotReferenceServices, "HTTPRoute shop/web", `"web-stable"`, "port 80")
		})
	}
	t.Run("rules by name without rule names", func(t *testing.T) {
		b := unnamed(web)
		b.Rules = []string{"primary"}
		notUsable(t, load(t, "named-rules"), b, providers.ReasonRuleNamesNotServed, "HTTPRoute shop/web", "primary")
	})
	t.Run("explicit namespace, group and kind", func(t *testing.T) {
		route := load(t, "single-rule")
		rules, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
		for _, ref := range rules[0].(map[string]any)["backendRefs"].([]any) {
			ref.(map[string]any)["namespace"], ref.(map[string]any)["group"], ref.(map[string]any)["kind"] = "shop", "", "Service"
		}
		if err := unstructured.SetNestedSlice(route.Object, rules, "spec", "rules"); err != nil {
			t.Fatal(err)
		}
		if w, err := gatewayapi.CurrentWeights(route, web); err != nil || w == nil || *w != (providers.Weights{Stable: 100}) {
			t.Errorf("CurrentWeights = %v, %v; want 100/0", w, err)
		}
	})
}

// testersRoute and betaRoute are the header routes of two setHeaderRoute steps of Rollout web.
var (
	testersRoute = providers.StepHeaderRoute(&kultav1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, &kultav1alpha1.SetHeaderRoute{
		Name: "testers", Match: []kultav1alpha1.HeaderRouteMatch{
			{HeaderName: "X-Canary", HeaderValue: &kultav1alpha1.StringMatch{Exact: ptr.To("yes")}},
			{HeaderName: "User-Agent", HeaderValue: &kultav1alpha1.StringMatch{Prefix: ptr.To("Mozilla/5.0")}},
		}})
	betaRoute = providers.StepHeaderRoute(&kultav1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, &kultav1alpha1.SetHeaderRoute{
		Name: "beta", Match: []kultav1alpha1.HeaderRouteMatch{{Cookie: &kultav1alpha1.CookieMatch{Name: "beta", Value: "1"}}}})
	shadowRoute = providers.StepMirrorRoute(&kultav1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, &kultav1alpha1.SetMirrorRoute{
		Name: "shadow", Percentage: ptr.To[int32](25)})
	apiMirrorRoute = providers.StepMirrorRoute(&kultav1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, &kultav1alpha1.SetMirrorRoute{
		Name: "api", Match: []kultav1alpha1.HeaderRouteMatch{{HeaderName: "X-Api", HeaderValue: &kultav1alpha1.StringMatch{Exact: ptr.To("v2")}}}})
)

// TestStepHeaderRouteRemovedByContent sets a setHeaderRoute step's rules where the API server
// keeps no rule names, then removes them by the same conditions: the route is as before. A rule
// that carries only some of the conditions is the user's, and stays.
func TestStepHeaderRouteRemovedByContent(t *testing.T) {
	route := load(t, "many-rules")
	original := route.DeepCopy()
	if _, err := gatewayapi.SetHeaderRoute(route, unnamed(web8080), testersRoute); err != nil {
		t.Fatal(err)
	}
	removed, err := gatewayapi.RemoveHeaderRoute(route, unnamed(web8080), testersRoute)
	if err != nil || !removed {
		t.Fatalf("RemoveHeaderRoute = %v, %v; want the rules removed", removed, err)
	}
	if !equality.Semantic.DeepEqual(route.Object, original.Object) {
		t.Errorf("the route differs from the original after set and remove:\n%v\nwant\n%v", route.Object, original.Object)
	}
	partial := testersRoute
	partial.All = partial.All[:1]
	if _, err := gatewayapi.SetHeaderRoute(route, unnamed(web8080), partial); err != nil {
		t.Fatal(err)
	}
	if removed, err := gatewayapi.RemoveHeaderRoute(route, unnamed(web8080), testersRoute); err != nil || removed {
		t.Errorf("RemoveHeaderRoute of the two-condition route took the one-condition rules: %v, %v", removed, err)
	}
}

func TestCookieRegex(t *testing.T) {
	re := providers.CookieRegex("ab_variant", "B")
	for header, want := range map[string]bool{
		"ab_variant=B":                  true,
		"session=1; ab_variant=B":       true,
		"ab_variant=B; theme=dark":      true,
		"x=1;ab_variant=B;y=2":          true,
		"ab_variant=BB":                 false,
		"not_ab_variant=B":              false,
		"ab_variant=A; other_variant=B": false,
		"session=ab_variant=B":          false,
	} {
		if got := regexpMatch(t, re, header); got != want {
			t.Errorf("%q against %q = %v, want %v", re, header, got, want)
		}
	}
}

func regexpMatch(t *testing.T, re, s string) bool {
	t.Helper()
	ok, err := regexp.MatchString(re, s)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}
