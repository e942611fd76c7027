package providers_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
)

// recorder is a TrafficRouter that records its calls and answers what it is told.
type recorder struct {
	calls    []string
	verify   providers.Verification
	err      error
	cleanErr error
}

func (r *recorder) SetWeights(_ context.Context, _ *kultav1alpha1.Rollout, w providers.Weights) error {
	r.calls = append(r.calls, "weights")
	return r.err
}

func (r *recorder) SetHeaderRoute(_ context.Context, _ *kultav1alpha1.Rollout, hr providers.HeaderRoute) error {
	r.calls = append(r.calls, "header "+hr.Name)
	return r.err
}

func (r *recorder) RemoveHeaderRoute(_ context.Context, _ *kultav1alpha1.Rollout, name string) error {
	r.calls = append(r.calls, "remove "+name)
	return r.err
}

func (r *recorder) Verify(context.Context, *kultav1alpha1.Rollout) (providers.Verification, error) {
	r.calls = append(r.calls, "verify")
	return r.verify, r.err
}

func (r *recorder) Cleanup(context.Context, *kultav1alpha1.Rollout) error {
	r.calls = append(r.calls, "cleanup")
	return r.cleanErr
}

func provider(name string, r *recorder, uses func(*kultav1alpha1.TrafficRouting) bool) providers.Provider {
	return providers.Provider{Name: name, Uses: uses, Router: r}
}

// twoProviders is a Rollout routed by Gateway API and Istio at once, and the two providers.
func twoProviders() (*kultav1alpha1.Rollout, *recorder, *recorder, providers.TrafficRouter) {
	ro := testutil.Rollout("shop", "web", testutil.WithHTTPRoute("web"))
	ro.Spec.Strategy.Canary.TrafficRouting.Istio = &kultav1alpha1.IstioRouting{VirtualService: &kultav1alpha1.IstioVirtualService{Name: "web"}}
	gw, istio := &recorder{}, &recorder{}
	router := providers.Compose([]providers.Provider{
		provider("gatewayAPI", gw, func(tr *kultav1alpha1.TrafficRouting) bool { return tr.GatewayAPI != nil }),
		provider("istio", istio, func(tr *kultav1alpha1.TrafficRouting) bool { return tr.Istio != nil }),
		provider("nginx", &recorder{}, func(tr *kultav1alpha1.TrafficRouting) bool { return tr.NGINX != nil }),
	})
	return ro, gw, istio, router
}

func TestComposeAppliesEveryStepToEveryProvider(t *testing.T) {
	ro, gw, istio, router := twoProviders()
	ctx := context.Background()
	if err := router.SetWeights(ctx, ro, providers.Weights{Stable: 80, Canary: 20}); err != nil {
		t.Fatal(err)
	}
	if err := router.SetHeaderRoute(ctx, ro, providers.HeaderRoute{Name: "kulta-web-variant-b"}); err != nil {
		t.Fatal(err)
	}
	if err := router.RemoveHeaderRoute(ctx, ro, "kulta-web-variant-b"); err != nil {
		t.Fatal(err)
	}
	want := "weights,header kulta-web-variant-b,remove kulta-web-variant-b"
	for name, r := range map[string]*recorder{"gatewayAPI": gw, "istio": istio} {
		if got := strings.Join(r.calls, ","); got != want {
			t.Errorf("%s got %s, want %s", name, got, want)
		}
	}
}

func TestComposeVerifiesOnlyWhenAllAgree(t *testing.T) {
	ctx := context.Background()
	w := &providers.Weights{Stable: 80, Canary: 20}
	cases := map[string]struct {
		gw, istio    providers.Verification
		weights      *providers.Weights
		accepted     bool
		messageParts []string
	}{
		"both carry the step": {
			gw: providers.Verification{Weights: w, Accepted: true}, istio: providers.Verification{Weights: w, Accepted: true},
			weights: w, accepted: true,
		},
		"istio behind": {
			gw: providers.Verification{Weights: w, Accepted: true}, istio: providers.Verification{Weights: &providers.Weights{Stable: 100}, Accepted: true},
			accepted: true,
		},
		"istio has no weights": {
			gw: providers.Verification{Weights: w, Accepted: true}, istio: providers.Verification{Accepted: true},
			accepted: true,
		},
		"gateway not accepted": {
			gw:      providers.Verification{Weights: w, Message: "HTTPRoute shop/web is not yet accepted"},
			istio:   providers.Verification{Weights: w, Accepted: true},
			weights: w, messageParts: []string{"gatewayAPI: HTTPRoute shop/web is not yet accepted"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ro, gw, istio, router := twoProviders()
			gw.verify, istio.verify = tc.gw, tc.istio
			v, err := router.Verify(ctx, ro)
			if err != nil {
				t.Fatal(err)
			}
			if (v.Weights == nil) != (tc.weights == nil) || (v.Weights != nil && *v.Weights != *tc.weights) {
				t.Errorf("weights %v, want %v", v.Weights, tc.weights)
			}
			if v.Accepted != tc.accepted {
				t.Errorf("accepted %v, want %v", v.Accepted, tc.accepted)
			}
			for _, part := range tc.messageParts {
				if !strings.Contains(v.Message, part) {
					t.Errorf("message %q does not contain %q", v.Message, part)
				}
			}
		})
	}
}

func TestComposeNamesTheFailingProvider(t *testing.T) {
	ro, _, istio, router := twoProviders()
	istio.err = errors.New("connection refused")
	err := router.SetWeights(context.Background(), ro, providers.Weights{Stable: 50, Canary: 50})
	if err == nil || !strings.HasPrefix(err.Error(), "istio: ") {
		t.Fatalf("error %v, want one naming the istio provider", err)
	}
}

// TestComposeTakesCanaryTrafficAwayEverywhere: when one provider fails, a step that gives the
// canary traffic stops there, but weights that give it none and header route removals still
// reach every other provider, so that a rollback leaves no provider serving the canary.
func TestComposeTakesCanaryTrafficAwayEverywhere(t *testing.T) {
	ctx := context.Background()
	ro, gw, istio, router := twoProviders()
	gw.err = errors.New("connection refused")
	if err := router.SetWeights(ctx, ro, providers.Weights{Stable: 50, Canary: 50}); err == nil || !strings.HasPrefix(err.Error(), "gatewayAPI: ") {
		t.Fatalf("error %v, want one naming the gatewayAPI provider", err)
	}
	if len(istio.calls) != 0 {
		t.Fatalf("istio was called %v after gatewayAPI failed a step towards the canary, want no call", istio.calls)
	}
	for _, call := range []func() error{
		func() error { return router.SetWeights(ctx, ro, providers.Weights{Stable: 100}) },
		func() error { return router.RemoveHeaderRoute(ctx, ro, "kulta-web") },
	} {
		if err := call(); err == nil || !strings.Contains(err.Error(), "gatewayAPI: connection refused") {
			t.Fatalf("error %v, want gatewayAPI's failure reported", err)
		}
	}
	if got := strings.Join(istio.calls, ","); got != "weights,remove kulta-web" {
		t.Errorf("istio calls %q, want the rollback's weights and the removal despite gatewayAPI failing", got)
	}
	istio.err = errors.New("timeout")
	err := router.SetWeights(ctx, ro, providers.Weights{Stable: 100})
	if err == nil || !strings.Contains(err.Error(), "gatewayAPI: connection refused") || !strings.Contains(err.Error(), "istio: timeout") {
		t.Errorf("error %v, want both providers' failures", err)
	}
}

func TestComposeStallsOnAProviderNotRunning(t *testing.T) {
	ro := testutil.Rollout("shop", "web", testutil.WithHTTPRoute("web"))
	ro.Spec.Strategy.Canary.TrafficRouting.NGINX = &kultav1alpha1.NGINXRouting{StableIngress: "web"}
	gw := &recorder{}
	router := providers.Compose([]providers.Provider{
		provider("gatewayAPI", gw, func(tr *kultav1alpha1.TrafficRouting) bool { return tr.GatewayAPI != nil }),
	})
	_, err := router.Verify(context.Background(), ro)
	var routeErr *providers.RouteError
	if !errors.As(err, &routeErr) || routeErr.Reason != providers.ReasonProviderNotEnabled || !strings.Contains(routeErr.Message, "trafficRouting.nginx") {
		t.Fatalf("error %v, want a %s RouteError naming trafficRouting.nginx", err, providers.ReasonProviderNotEnabled)
	}
	if len(gw.calls) != 0 {
		t.Errorf("gateway called %v before the Rollout's providers were all known", gw.calls)
	}
	if err := router.Cleanup(context.Background(), ro); err != nil {
		t.Errorf("cleanup: %v; the running providers are cleaned up", err)
	}
	if strings.Join(gw.calls, ",") != "cleanup" {
		t.Errorf("gateway calls %v, want a cleanup", gw.calls)
	}
}

func TestComposeCleansUpEveryProvider(t *testing.T) {
	ro, gw, istio, router := twoProviders()
	gw.cleanErr = &providers.RouteError{Reason: "HTTPRouteNotFound", Message: "HTTPRoute shop/web not found"}
	err := router.Cleanup(context.Background(), ro)
	if !errors.Is(err, providers.ErrRouteNotUsable) {
		t.Fatalf("cleanup error %v, want one that only says a route is not usable", err)
	}
	if strings.Join(istio.calls, ",") != "cleanup" {
		t.Errorf("istio calls %v, want a cleanup even though gatewayAPI's failed", istio.calls)
	}
	istio.cleanErr = errors.New("timeout")
	if err := router.Cleanup(context.Background(), ro); err == nil || errors.Is(err, providers.ErrRouteNotUsable) || !strings.Contains(err.Error(), "istio: timeout") {
		t.Fatalf("cleanup error %v, want istio's real failure alone", err)
	}
}
