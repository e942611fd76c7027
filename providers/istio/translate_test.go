package istio_test

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/istio"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func load(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	return testutil.ReadUnstructured(t, filepath.Join("testdata", name+".in.yaml"))
}

// golden compares got with testdata/NAME.out.yaml, or rewrites the file under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testutil.Golden(t, filepath.Join("testdata", name+".out.yaml"), got, *update, "go test ./providers/istio -update")
}

func marshal(t *testing.T, obj *unstructured.Unstructured) []byte {
	t.Helper()
	data, err := yaml.Marshal(obj.Object)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// decodesAsIstio checks that obj is a valid object of Istio's own Go types.
func decodesAsIstio(t *testing.T, obj *unstructured.Unstructured) {
	t.Helper()
	data, err := obj.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var typed any = &istionetworkingv1.VirtualService{}
	if istio.IsDestinationRule(obj) {
		typed = &istionetworkingv1.DestinationRule{}
	}
	if err := json.Unmarshal(data, typed); err != nil {
		t.Errorf("the result is not a valid %s: %v", obj.GetKind(), err)
	}
}

// web is Rollout web's host-level split in namespace shop.
var web = istio.Backends{Namespace: "shop", Stable: "web-stable", Canary: "web-canary", HeaderRoute: "kulta-web-variant-b"}

// withRoutes is b managing the HTTP routes named.
func withRoutes(b istio.Backends, names ...string) istio.Backends {
	b.Routes = names
	return b
}

// bySubset is b split by the subsets stable and canary of host.
func bySubset(b istio.Backends, host string) istio.Backends {
	b.Subsets = &istio.Subsets{Host: host, Stable: "stable", Canary: "canary"}
	return b
}

var (
	variantBHeader = providers.HeaderRoute{
		Name:   "kulta-web-variant-b",
		Header: &kultav1alpha1.HeaderMatch{Name: "X-Variant", Value: "B", Type: kultav1alpha1.MatchExact},
	}
	variantBCookie = providers.HeaderRoute{
		Name:   "kulta-web-variant-b",
		Header: &kultav1alpha1.HeaderMatch{Name: "X-Variant", Value: "B|beta", Type: kultav1alpha1.MatchRegularExpression},
		Cookie: &kultav1alpha1.CookieMatch{Name: "ab_variant", Value: "B"},
	}
	webDR = kultav1alpha1.IstioDestinationRule{Name: "web", StableSubsetName: "stable", CanarySubsetName: "canary"}
)

func weights(b istio.Backends, stable, canary int32) func(*unstructured.Unstructured) (bool, error) {
	return func(vs *unstructured.Unstructured) (bool, error) {
		return istio.SetWeights(vs, b, providers.Weights{Stable: stable, Canary: canary})
	}
}

func headerRoute(b istio.Backends, hr providers.HeaderRoute) func(*unstructured.Unstructured) (bool, error) {
	return func(vs *unstructured.Unstructured) (bool, error) { return istio.SetHeaderRoute(vs, b, hr) }
}

var (
	stepRollout  = &kultav1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "web"}}
	shadowMirror = providers.StepMirrorRoute(stepRollout, &kultav1alpha1.SetMirrorRoute{Name: "shadow", Percentage: ptr.To[int32](25)})
	apiMirror    = providers.StepMirrorRoute(stepRollout, &kultav1alpha1.SetMirrorRoute{Name: "api", Match: []kultav1alpha1.HeaderRouteMatch{
		{HeaderName: "X-Api", HeaderValue: &kultav1alpha1.StringMatch{Exact: ptr.To("v2")}}}})
	testersRoute = providers.StepHeaderRoute(stepRollout, &kultav1alpha1.SetHeaderRoute{Name: "testers", Match: []kultav1alpha1.HeaderRouteMatch{
		{HeaderName: "X-Canary", HeaderValue: &kultav1alpha1.StringMatch{Exact: ptr.To("yes")}}}})
)

// stepRoutes is b knowing the canary step routes named as KULTA's.
func stepRoutes(b istio.Backends, names ...string) istio.Backends {
	for _, name := range names {
		b.StepRoutes = append(b.StepRoutes, providers.StepHeaderRouteName(stepRollout, name))
	}
	return b
}

// applyAll sets each of changes on vs in turn, header routes and weights, and reports whether
// the last changed it; setting them all again must change nothing.
func applyAll(vs *unstructured.Unstructured, b istio.Backends, changes ...any) (bool, error) {
	var last bool
	for pass := range 2 {
		for _, c := range changes {
			var changed bool
			var err error
			switch c := c.(type) {
			case providers.HeaderRoute:
				changed, err = istio.SetHeaderRoute(vs, b, c)
			case providers.Weights:
				changed, err = istio.SetWeights(vs, b, c)
			}
			if err != nil {
				return false, err
			}
			if pass == 1 && changed {
				return false, fmt.Errorf("setting %v again changed the VirtualService", c)
			}
			if pass == 0 {
				last = changed
			}
		}
	}
	return last, nil
}

func TestTranslationGolden(t *testing.T) {
	tls := web
	tls.TLSRoutes = []kultav1alpha1.IstioTLSRoute{{Port: 443, SNIHosts: []string{"web.example.com"}}}
	tcp := web
	tcp.TCPRoutes = []kultav1alpha1.IstioTCPRoute{{Port: 3000}}
	cases := []struct {
		golden, input string
		apply         func(*unstructured.Unstructured) (bool, error)
	}{
		{"host-level-80-20", "host-level", weights(withRoutes(web, "primary"), 80, 20)},
		{"subset-level-70-30", "subset-level", weights(bySubset(web, "web"), 70, 30)},
		{"subset-level-header-route", "subset-level", headerRoute(bySubset(web, "web.shop"), variantBHeader)},
		{"named-routes-50-50", "named-routes", weights(withRoutes(web, "primary", "mobile"), 50, 50)},
		{"named-routes-cookie-route", "named-routes", headerRoute(withRoutes(web, "primary", "mobile"), variantBCookie)},
		{"unnamed-single-90-10", "unnamed-single", weights(web, 90, 10)},
		{"tls-60-40", "tls", weights(tls, 60, 40)},
		{"tcp-25-75", "tcp", weights(tcp, 25, 75)},
		{"full-config-0-100", "full-config", weights(withRoutes(web, "primary"), 0, 100)},
		{"full-config-header-route", "full-config", headerRoute(withRoutes(web, "primary"), variantBHeader)},
		{"named-routes-step-header-route", "named-routes", headerRoute(withRoutes(web, "primary", "mobile"), providers.StepHeaderRoute(
			&kultav1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, &kultav1alpha1.SetHeaderRoute{Name: "testers", Match: []kultav1alpha1.HeaderRouteMatch{
				{HeaderName: "X-Canary", HeaderValue: &kultav1alpha1.StringMatch{Exact: ptr.To("yes")}},
				{HeaderName: "X-Client", HeaderValue: &kultav1alpha1.StringMatch{Prefix: ptr.To("app/2.")}},
				{Cookie: &kultav1alpha1.CookieMatch{Name: "beta", Value: "1"}},
			}}))},
		// Two at once: setting either again writes nothing, whatever their order.
		{"full-config-two-step-header-routes", "full-config", func(vs *unstructured.Unstructured) (bool, error) {
			b := withRoutes(web, "primary")
			ro := &kultav1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "web"}}
			a, err := istio.SetHeaderRoute(vs, b, providers.StepHeaderRoute(ro, &kultav1alpha1.SetHeaderRoute{Name: "testers", Match: []kultav1alpha1.HeaderRouteMatch{
				{HeaderName: "X-Canary", HeaderValue: &kultav1alpha1.StringMatch{Exact: ptr.To("yes")}}}}))
			if err != nil {
				return false, err
			}
			c, err := istio.SetHeaderRoute(vs, b, providers.StepHeaderRoute(ro, &kultav1alpha1.SetHeaderRoute{Name: "beta", Match: []kultav1alpha1.HeaderRouteMatch{
				{Cookie: &kultav1alpha1.CookieMatch{Name: "beta", Value: "1"}}}}))
			return a || c, err
		}},
		{"header-route-removed", "header-present", func(vs *unstructured.Unstructured) (bool, error) {
			return istio.RemoveHeaderRoute(vs, "kulta-web-variant-b")
		}},
		// The header route stays when the weights change, and the only route is still found.
		{"unnamed-single-header-then-weights", "unnamed-single", func(vs *unstructured.Unstructured) (bool, error) {
			added, err := istio.SetHeaderRoute(vs, web, variantBHeader)
			if err != nil {
				return false, err
			}
			weighted, err := istio.SetWeights(vs, web, providers.Weights{Stable: 50, Canary: 50})
			return added || weighted, err
		}},
		// Mirror routes on the only route of a Rollout that names none (the route is still found
		// beside them): one of a quarter of every request, one of every request with a header,
		// then weights, then a header route. Istio takes the first route that matches, so the
		// header route comes first, then the mirror with a condition, then the one without.
		{"unnamed-single-mirror-routes", "unnamed-single", func(vs *unstructured.Unstructured) (bool, error) {
			return applyAll(vs, stepRoutes(web, "shadow", "api", "testers"), shadowMirror, apiMirror, providers.Weights{Stable: 60, Canary: 40}, testersRoute)
		}},
		// The managed route mirrors with mirror and mirrorPercentage: the mirror route lists that
		// mirror and its own in mirrors, as Istio allows only one of the forms.
		{"full-config-mirror-route", "full-config", func(vs *unstructured.Unstructured) (bool, error) {
			return applyAll(vs, stepRoutes(withRoutes(web, "primary"), "shadow"), shadowMirror)
		}},
		{"destinationrule-labels", "destinationrule", func(dr *unstructured.Unstructured) (bool, error) {
			return istio.SetSubsetLabels(dr, webDR, istio.SubsetHashes{Stable: "7c6d5b4a3", Canary: "9f8e7d6c5"})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.golden, func(t *testing.T) {
			obj := load(t, tc.input)
			original := obj.DeepCopy()
			changed, err := tc.apply(obj)
			if err != nil {
				t.Fatal(err)
			}
			if !changed {
				t.Fatal("translation reported no change")
			}
			if !equality.Semantic.DeepEqual(obj.Object["metadata"], original.Object["metadata"]) {
				t.Error("metadata changed")
			}
			decodesAsIstio(t, obj)
			golden(t, tc.golden, marshal(t, obj))
			// Applying the same translation again changes nothing: no write when nothing changes.
			again, err := tc.apply(obj)
			if err != nil {
				t.Fatal(err)
			}
			if again {
				t.Error("second application reported a change")
			}
		})
	}
}

// TestTranslationErrorsGolden checks the RouteErrors of routes KULTA cannot use: their reasons
// and messages (golden), and that a failed translation changes nothing.
func TestTranslationErrorsGolden(t *testing.T) {
	tls := web
	tls.TLSRoutes = []kultav1alpha1.IstioTLSRoute{{Port: 8443, SNIHosts: []string{"web.example.com"}}}
	tcp := web
	tcp.TCPRoutes = []kultav1alpha1.IstioTCPRoute{{Port: 3000}}
	cases := []struct {
		golden, input string
		apply         func(*unstructured.Unstructured) (bool, error)
	}{
		{"error-route-missing", "named-routes", weights(withRoutes(web, "primary", "checkout"), 50, 50)},
		{"error-route-name-required", "named-routes", weights(web, 50, 50)},
		{"error-no-http-route", "tcp", weights(web, 50, 50)},
		{"error-tls-route-missing", "tls", weights(tls, 50, 50)},
		{"error-not-referenced", "errors", weights(withRoutes(web, "elsewhere"), 50, 50)},
		{"error-ambiguous", "errors", weights(withRoutes(web, "twice"), 50, 50)},
		{"error-other-destinations", "errors", weights(withRoutes(web, "third"), 50, 50)},
		{"error-subset-host", "subset-level", weights(bySubset(web, "web.other.svc.cluster.local"), 50, 50)},
		{"error-header-conflict", "errors", headerRoute(withRoutes(web, "conflict"), variantBHeader)},
		{"error-header-route-tcp-only", "tcp", headerRoute(tcp, variantBHeader)},
		{"error-subset-missing", "destinationrule", func(dr *unstructured.Unstructured) (bool, error) {
			ref := webDR
			ref.CanarySubsetName = "preview"
			return istio.SetSubsetLabels(dr, ref, istio.SubsetHashes{Stable: "a", Canary: "b"})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.golden, func(t *testing.T) {
			obj := load(t, tc.input)
			before := obj.DeepCopy()
			_, err := tc.apply(obj)
			var routeErr *providers.RouteError
			if !errors.As(err, &routeErr) || !errors.Is(err, providers.ErrRouteNotUsable) {
				t.Fatalf("want a RouteError, got %v", err)
			}
			if !equality.Semantic.DeepEqual(before.Object, obj.Object) {
				t.Error("a failed translation changed the object")
			}
			got, err := yaml.Marshal(map[string]string{"reason": routeErr.Reason, "message": routeErr.Message})
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.golden, got)
		})
	}
}

// TestOnlyManagedFieldsChange takes the VirtualService full of other configuration through a
// whole A/B life (weights, header route, new weights, header route removed, weights back):
// it ends exactly as it started, and at every point only the managed weights and KULTA's route
// differ from it.
func TestOnlyManagedFieldsChange(t *testing.T) {
	vs := load(t, "full-config")
	original := vs.DeepCopy()
	b := withRoutes(web, "primary")
	steps := []func(*unstructured.Unstructured) (bool, error){
		weights(b, 80, 20),
		headerRoute(b, variantBCookie),
		weights(b, 0, 100),
		func(vs *unstructured.Unstructured) (bool, error) {
			return istio.RemoveHeaderRoute(vs, variantBCookie.Name)
		},
		weights(b, 100, 0),
	}
	for i, step := range steps {
		if _, err := step(vs); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		// Undo what KULTA owns on a copy: it must then equal the original.
		undone := vs.DeepCopy()
		if _, err := istio.RemoveHeaderRoute(undone, variantBCookie.Name); err != nil {
			t.Fatal(err)
		}
		if _, err := istio.SetWeights(undone, b, providers.Weights{Stable: 100}); err != nil {
			t.Fatal(err)
		}
		if !equality.Semantic.DeepEqual(undone.Object, original.Object) {
			t.Fatalf("step %d changed more than the managed weights and header route:\n%s", i, marshal(t, vs))
		}
	}
	if !equality.Semantic.DeepEqual(vs.Object, original.Object) {
		t.Errorf("after the whole life the VirtualService is\n%s", marshal(t, vs))
	}
}

// TestHeaderRouteSurvivesRestart reads back a VirtualService that already carries the header
// routes, as after a controller restart: setting them again writes nothing, and removing them
// leaves the other Rollout's.
func TestHeaderRouteSurvivesRestart(t *testing.T) {
	vs := load(t, "header-present")
	b := withRoutes(web, "primary", "shop")
	changed, err := istio.SetHeaderRoute(vs, b, variantBHeader)
	if err != nil {
		t.Fatal(err)
	}
	if changed {
		t.Errorf("header routes rewritten after restart:\n%s", marshal(t, vs))
	}
	if _, err := istio.RemoveHeaderRoute(vs, variantBHeader.Name); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, item := range vs.Object["spec"].(map[string]any)["http"].([]any) {
		names = append(names, item.(map[string]any)["name"].(string))
	}
	if got := strings.Join(names, ","); got != "kulta-web-api-variant-b,api,shop,primary" {
		t.Errorf("routes after removal: %s", got)
	}
}

func TestCurrentWeights(t *testing.T) {
	for _, tc := range []struct {
		input string
		b     istio.Backends
		want  *providers.Weights
	}{
		{"host-level", withRoutes(web, "primary"), &providers.Weights{Stable: 100}},
		// An absent weight is 0, as in Istio.
		{"subset-level", bySubset(web, "web"), &providers.Weights{Stable: 100}},
		{"named-routes", withRoutes(web, "mobile", "primary"), &providers.Weights{Stable: 100}},
		// The routes of port 4000 and 3000 agree; the header routes of another Rollout are not
		// counted, and web's own are never managed routes.
		{"tcp", func() istio.Backends {
			b := web
			b.TCPRoutes = []kultav1alpha1.IstioTCPRoute{{}}
			return b
		}(), &providers.Weights{Stable: 100}},
		{"header-present", withRoutes(web, "primary", "shop"), &providers.Weights{Stable: 50, Canary: 50}},
	} {
		got, err := istio.CurrentWeights(load(t, tc.input), tc.b)
		if err != nil {
			t.Errorf("%s: %v", tc.input, err)
			continue
		}
		if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
			t.Errorf("%s: CurrentWeights = %v, want %v", tc.input, got, tc.want)
		}
	}
	// Routes that disagree: nil.
	vs := load(t, "named-routes")
	if _, err := istio.SetWeights(vs, withRoutes(web, "mobile"), providers.Weights{Stable: 50, Canary: 50}); err != nil {
		t.Fatal(err)
	}
	if got, err := istio.CurrentWeights(vs, withRoutes(web, "mobile", "primary")); err != nil || got != nil {
		t.Errorf("routes that disagree: CurrentWeights = %v, %v; want nil", got, err)
	}
}

// TestHostForms checks which destination hosts are the Rollout's Services: the short name and
// the namespace-qualified forms in the Rollout's namespace, in any case, and nothing else.
func TestHostForms(t *testing.T) {
	for host, want := range map[string]bool{
		"web-stable":                          true,
		"web-stable.shop":                     true,
		"web-stable.shop.svc":                 true,
		"web-stable.shop.svc.cluster.local":   true,
		"Web-Stable.Shop.svc.cluster.local":   true,
		"web-stable.other":                    false,
		"web-stable.other.svc.cluster.local":  false,
		"web-stable.shop.svc.cluster.example": false,
		"web-stable-2":                        false,
		"web-stable.example.com":              false,
	} {
		vs := load(t, "host-level")
		route := vs.Object["spec"].(map[string]any)["http"].([]any)[0].(map[string]any)
		route["route"].([]any)[0].(map[string]any)["destination"].(map[string]any)["host"] = host
		_, err := istio.CurrentWeights(vs, withRoutes(web, "primary"))
		if got := err == nil; got != want {
			t.Errorf("host %q: is the stable Service %v, want %v (%v)", host, got, want, err)
		}
	}
}

func TestSubsetLabelsProblem(t *testing.T) {
	dr := load(t, "destinationrule")
	hashes := istio.SubsetHashes{Stable: "7c6d5b4a3", Canary: "9f8e7d6c5"}
	problem, err := istio.SubsetLabelsProblem(dr, webDR, hashes)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(problem, `DestinationRule shop/web subset "stable"`) || !strings.Contains(problem, `want "7c6d5b4a3"`) {
		t.Errorf("problem %q must name the DestinationRule, the subset and the hash", problem)
	}
	if _, err := istio.SetSubsetLabels(dr, webDR, hashes); err != nil {
		t.Fatal(err)
	}
	if problem, err := istio.SubsetLabelsProblem(dr, webDR, hashes); err != nil || problem != "" {
		t.Errorf("after SetSubsetLabels: %q, %v", problem, err)
	}
	// An unknown hash leaves that subset as it is.
	if changed, err := istio.SetSubsetLabels(dr, webDR, istio.SubsetHashes{Canary: "9f8e7d6c5"}); err != nil || changed {
		t.Errorf("unknown stable hash: changed %v, %v", changed, err)
	}
}

func TestHashesOf(t *testing.T) {
	for _, tc := range []struct{ stable, current, wantStable, wantCanary string }{
		{"a", "b", "a", "b"},
		{"", "b", "b", "b"},
		{"a", "", "a", "a"},
		{"", "", "", ""},
	} {
		ro := &kultav1alpha1.Rollout{Status: kultav1alpha1.RolloutStatus{StablePodTemplateHash: tc.stable, CurrentPodTemplateHash: tc.current}}
		if got := istio.HashesOf(ro); got != (istio.SubsetHashes{Stable: tc.wantStable, Canary: tc.wantCanary}) {
			t.Errorf("stable %q current %q: %+v", tc.stable, tc.current, got)
		}
	}
}
