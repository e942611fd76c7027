package restart_test

import (
	"context"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// routeVersion is the test route's resourceVersion, which changes on any write to it.
func routeVersion(g Gomega, ns string) string {
	route := &gatewayv1.HTTPRoute{}
	g.Expect(env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "web"}, route)).To(Succeed())
	return route.ResourceVersion
}
