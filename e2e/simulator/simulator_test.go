package simulator

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	kultascheme "github.com/false-systems/kulta/internal/scheme"
)

// TestTickWithholdsTrafficFromRefsNotPermitted runs ticks over a route in namespace ns whose
// canary backend is a Service in namespace shared: until a ReferenceGrant in shared permits it,
// the route says ResolvedRefs=False and the canary receives nothing; then it receives its share.
func TestTickWithholdsTrafficFromRefsNotPermitted(t *testing.T) {
	scheme, err := kultascheme.New()
	if err != nil {
		t.Fatal(err)
	}
	route := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", Generation: 1},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{
				{Name: DefaultGatewayName, Namespace: ptr.To[gatewayv1.Namespace](DefaultGatewayNamespace)},
			}},
			Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{
				backendRef("web-stable", 50), crossNamespaceRef("shared", "web-canary", 50),
			}}},
		},
	}
	objects := []client.Object{route}
	for _, svc := range []ServiceKey{{Namespace: "ns", Name: "web-stable"}, {Namespace: "shared", Name: "web-canary"}} {
		objects = append(objects,
			&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: svc.Namespace, Name: svc.Name}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": svc.Name}}},
			readyPod(svc.Namespace, svc.Name+"-1", map[string]string{"app": svc.Name}))
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objects...).WithStatusSubresource(&gatewayv1.HTTPRoute{}).Build()
	ctx := context.Background()
	// One tick an hour: the loop never ticks on its own, the test ticks.
	s, err := Start(ctx, c, Options{Rate: 1, Tick: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	}()
	served := func(namespace, name string) float64 {
		return testutil.ToFloat64(s.requests.WithLabelValues(namespace, name, "200"))
	}
	resolvedRefs := func() *metav1.Condition {
		var got gatewayv1.HTTPRoute
		if err := c.Get(ctx, client.ObjectKeyFromObject(route), &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Status.Parents) != 1 {
			t.Fatalf("status.parents = %+v, want one entry", got.Status.Parents)
		}
		return meta.FindStatusCondition(got.Status.Parents[0].Conditions, string(gatewayv1.RouteConditionResolvedRefs))
	}

	if err := s.tick(ctx); err != nil {
		t.Fatal(err)
	}
	if c := resolvedRefs(); c == nil || c.Status != metav1.ConditionFalse || c.Reason != string(gatewayv1.RouteReasonRefNotPermitted) {
		t.Fatalf("without a ReferenceGrant ResolvedRefs = %+v, want False RefNotPermitted", c)
	}
	if got := served("ns", "web-stable"); got != 1800 {
		t.Errorf("web-stable served %v requests in an hour at 1/s and weight 50 of 100, want 1800", got)
	}
	if got := served("shared", "web-canary"); got != 0 {
		t.Errorf("web-canary, not permitted, served %v requests, want 0", got)
	}

	grant := &gatewayv1beta1.ReferenceGrant{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shared", Name: "from-ns"},
		Spec: gatewayv1beta1.ReferenceGrantSpec{
			From: []gatewayv1beta1.ReferenceGrantFrom{{Group: gatewayv1.GroupName, Kind: "HTTPRoute", Namespace: "ns"}},
			To:   []gatewayv1beta1.ReferenceGrantTo{{Group: "", Kind: "Service"}},
		},
	}
	if err := c.Create(ctx, grant); err != nil {
		t.Fatal(err)
	}
	if err := s.tick(ctx); err != nil {
		t.Fatal(err)
	}
	if c := resolvedRefs(); c == nil || c.Status != metav1.ConditionTrue {
		t.Fatalf("with a ReferenceGrant ResolvedRefs = %+v, want True", c)
	}
	if got := served("shared", "web-canary"); got != 1800 {
		t.Errorf("web-canary, permitted, served %v requests in the second hour, want 1800", got)
	}
}

func readyPod(namespace, name string, labels map[string]string) *corev1.Pod {
	p := pod(name, "good", true, labels)
	p.Namespace = namespace
	return &p
}
