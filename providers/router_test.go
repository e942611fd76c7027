package providers_test

import (
	"strings"
	"testing"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
)

// TestManagedHeaderRoute checks the header route each strategy asks for: A/B testing's variant
// B match under a name no other Rollout's rules start with, and none for the other strategies.
func TestManagedHeaderRoute(t *testing.T) {
	cookie := &kultav1alpha1.CookieMatch{Name: "ab", Value: "B"}
	web := testutil.Rollout("shop", "web", testutil.WithABTesting(func(ab *kultav1alpha1.ABTestingStrategy) { ab.VariantBMatch.Cookie = cookie }))
	hr, ok := providers.ManagedHeaderRoute(web)
	if !ok || hr.Name != "kulta-web-variant-b" || hr.Header != web.Spec.Strategy.ABTesting.VariantBMatch.Header || hr.Cookie != cookie {
		t.Errorf("ManagedHeaderRoute(web) = %+v, %v; want kulta-web-variant-b with web's header and cookie", hr, ok)
	}
	if got := providers.HeaderRouteName(web); got != hr.Name {
		t.Errorf("HeaderRouteName(web) = %q, want %q", got, hr.Name)
	}
	webAPI := testutil.Rollout("shop", "web-api", testutil.WithABTesting())
	if name := providers.HeaderRouteName(webAPI); strings.HasPrefix(name, providers.HeaderRouteName(web)) {
		t.Errorf("web-api's header route %q starts with web's %q", name, providers.HeaderRouteName(web))
	}
	for name, ro := range map[string]*kultav1alpha1.Rollout{
		"canary":     testutil.Rollout("shop", "web"),
		"blue-green": testutil.Rollout("shop", "web", testutil.WithBlueGreen()),
		"no match":   testutil.Rollout("shop", "web", testutil.WithABTesting(func(ab *kultav1alpha1.ABTestingStrategy) { ab.VariantBMatch = kultav1alpha1.ABMatch{} })),
	} {
		if hr, ok := providers.ManagedHeaderRoute(ro); ok {
			t.Errorf("%s: ManagedHeaderRoute = %+v, want none", name, hr)
		}
	}
}
