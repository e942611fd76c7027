package gatewayapi_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/gatewayapi"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func load(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name+".in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	route := &unstructured.Unstructured{}
	if err := route.UnmarshalJSON(js); err != nil {
		t.Fatal(err)
	}
	return route
}

func golden(t *testing.T, name string, route *unstructured.Unstructured) {
	t.Helper()
	got, err := yaml.Marshal(route.Object)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", name+".out.yaml")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs (run `go test ./providers/gatewayapi -update` and review):\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

var web = gatewayapi.Backends{Namespace: "shop", Stable: "web-stable", Canary: "web-canary"}

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
			return gatewayapi.SetWeights(r, web, providers.Weights{Stable: 50, Canary: 50})
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
			b := gatewayapi.Backends{Namespace: "shop", Stable: "greeter-stable", Canary: "greeter-canary"}
			return gatewayapi.SetWeights(r, b, providers.Weights{Stable: 75, Canary: 25})
		}},
		{"many-rules-header-route", "many-rules", func(r *unstructured.Unstructured) (bool, error) {
			return gatewayapi.SetHeaderRoute(r, web, variantB)
		}},
		{"grpc-header-route", "grpc", func(r *unstructured.Unstructured) (bool, error) {
			b := gatewayapi.Backends{Namespace: "shop", Stable: "greeter-stable", Canary: "greeter-canary"}
			return gatewayapi.SetHeaderRoute(r, b, providers.HeaderRoute{Name: "kulta-greeter-variant-b", Header: variantB.Header})
		}},
		{"two-rollouts-same-header", "two-rollouts", func(r *unstructured.Unstructured) (bool, error) {
			cart := gatewayapi.Backends{Namespace: "shop", Stable: "cart-stable", Canary: "cart-canary"}
			search := gatewayapi.Backends{Namespace: "shop", Stable: "search-stable", Canary: "search-canary"}
			a, err := gatewayapi.SetHeaderRoute(r, cart, providers.HeaderRoute{Name: "kulta-cart-variant-b", Header: &kultav1alpha1.HeaderMatch{Name: "X-Canary", Value: "cart"}})
			if err != nil {
				return false, err
			}
			b, err := gatewayapi.SetHeaderRoute(r, search, providers.HeaderRoute{Name: "kulta-search-variant-b", Header: &kultav1alpha1.HeaderMatch{Name: "X-Canary", Value: "search"}})
			return a && b, err
		}},
		{"header-route-removed", "header-present", func(r *unstructured.Unstructured) (bool, error) {
			return gatewayapi.RemoveHeaderRoute(r, "kulta-web-variant-b")
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
	route := load(t, "header-present")
	changed, err := gatewayapi.SetHeaderRoute(route, web, providers.HeaderRoute{
		Name:   "kulta-web-variant-b",
		Header: &kultav1alpha1.HeaderMatch{Name: "X-Variant", Value: "B", Type: kultav1alpha1.MatchExact},
	})
	if err != nil {
		t.Fatal(err)
	}
	if changed {
		got, _ := yaml.Marshal(route.Object)
		t.Errorf("header rule rewritten after restart:\n%s", got)
	}
}

func TestRouteWithoutTheServicesIsNotUsable(t *testing.T) {
	route := load(t, "single-rule")
	other := gatewayapi.Backends{Namespace: "shop", Stable: "api-stable", Canary: "api-canary"}
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
	if _, err := gatewayapi.SetHeaderRoute(load(t, "grpc"), gatewayapi.Backends{Namespace: "shop", Stable: "greeter-stable", Canary: "greeter-canary"},
		providers.HeaderRoute{Name: "kulta-x", Cookie: &kultav1alpha1.CookieMatch{Name: "c", Value: "v"}}); !errors.Is(err, providers.ErrRouteNotUsable) {
		t.Errorf("cookie match on a GRPCRoute: want ErrRouteNotUsable, got %v", err)
	}
}

func TestCurrentWeights(t *testing.T) {
	route := load(t, "many-rules")
	w, err := gatewayapi.CurrentWeights(route, web)
	if err != nil || w == nil || *w != (providers.Weights{Stable: 100, Canary: 0}) {
		t.Fatalf("CurrentWeights = %v, %v", w, err)
	}
	extra := load(t, "extra-backend")
	w, err = gatewayapi.CurrentWeights(extra, web)
	if err != nil || w == nil || *w != (providers.Weights{Stable: 90, Canary: 1}) {
		t.Fatalf("an absent weight is 1: CurrentWeights = %v, %v", w, err)
	}
}

func TestCookieRegex(t *testing.T) {
	re := gatewayapi.CookieRegex("ab_variant", "B")
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
