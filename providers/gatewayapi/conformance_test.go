package gatewayapi_test

import (
	"os"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/conformance"
	"github.com/false-systems/kulta/providers/gatewayapi"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env))
}

func harness(t *testing.T, kind kultav1alpha1.RouteKind, unsupported ...conformance.Feature) conformance.Harness {
	e := testenv.Require(t, env)
	return conformance.Harness{
		Kind:   kind,
		Client: e.Client,
		NewRouter: func(c client.Client) providers.TrafficRouter {
			return &gatewayapi.Router{Client: c}
		},
		CreateNamespace: func(t *testing.T, prefix string) string { return e.CreateNamespace(t, prefix) },
		Unsupported:     unsupported,
	}
}

func TestConformanceHTTPRoute(t *testing.T) {
	conformance.Run(t, harness(t, kultav1alpha1.KindHTTPRoute))
}

// GRPCRoute has no Cookie header in gRPC metadata that Gateways agree on, so cookie matches are
// declared unsupported; SetHeaderRoute refuses them with a RouteError.
func TestConformanceGRPCRoute(t *testing.T) {
	conformance.Run(t, harness(t, kultav1alpha1.KindGRPCRoute, conformance.FeatureCookieMatch))
}
