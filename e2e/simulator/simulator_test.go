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
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
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

// TestUnservedCountsRequestsNoPodAnswers sends half of a route's traffic to a Service with no
// ready Pod and the other half to one that does not exist: both halves are Unserved, and none
// reaches http_requests_total; once both Services have a ready Pod, nothing more is Unserved.
func TestUnservedCountsRequestsNoPodAnswers(t *testing.T) {
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
				backendRef("web-stable", 50), backendRef("web-canary", 50),
			}}},
		},
	}
	notReady := pod("web-stable-1", "good", false, map[string]string{"app": "web-stable"})
	notReady.Namespace = "ns"
	stable := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-stable"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web-stable"}}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(route, stable, &notReady).WithStatusSubresource(&gatewayv1.HTTPRoute{}).Build()
	ctx := context.Background()
	s, err := Start(ctx, c, Options{Rate: 1, Tick: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	}()
	if err := s.tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.Unserved("ns"); got != 3600 {
		t.Errorf("Unserved = %v after an hour at 1/s with no Pod to answer, want 3600", got)
	}
	if got := s.Unserved("other"); got != 0 {
		t.Errorf("Unserved in another namespace = %v, want 0", got)
	}
	if got := testutil.ToFloat64(s.requests.WithLabelValues("ns", "web-stable", "200")) + testutil.ToFloat64(s.requests.WithLabelValues("ns", "web-stable", "500")); got != 0 {
		t.Errorf("http_requests_total of web-stable = %v with no ready Pod, want 0", got)
	}

	if err := c.Delete(ctx, &notReady); err != nil {
		t.Fatal(err)
	}
	canary := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-canary"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web-canary"}}}
	for _, obj := range []client.Object{canary, readyPod("ns", "web-stable-2", map[string]string{"app": "web-stable"}), readyPod("ns", "web-canary-1", map[string]string{"app": "web-canary"})} {
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.tick(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.Unserved("ns"); got != 3600 {
		t.Errorf("Unserved = %v after a second hour with a ready Pod behind each Service, want it still 3600", got)
	}
}

// TestSettleWaitsForATickBegunAfterIt holds the simulator's ticks in their first read. Settle,
// called while the first tick reads, returns neither while it does nor when it ends, but once
// the second tick, begun after the call, has ended; after Stop it returns an error.
func TestSettleWaitsForATickBegunAfterIt(t *testing.T) {
	scheme, err := kultascheme.New()
	if err != nil {
		t.Fatal(err)
	}
	reads, release := make(chan struct{}), make(chan struct{})
	c := fake.NewClientBuilder().WithScheme(scheme).WithInterceptorFuncs(interceptor.Funcs{
		List: func(ctx context.Context, cl client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if _, routes := list.(*gatewayv1.HTTPRouteList); routes {
				reads <- struct{}{}
				<-release
			}
			return cl.List(ctx, list, opts...)
		},
	}).Build()
	ctx := t.Context()
	s, err := Start(ctx, c, Options{Tick: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	<-reads // the first tick reads the routes
	settled := make(chan error, 1)
	go func() { settled <- s.Settle(ctx) }()
	notYet := func(when string) {
		t.Helper()
		select {
		case err := <-settled:
			t.Fatalf("Settle returned (%v) %s", err, when)
		case <-time.After(200 * time.Millisecond):
		}
	}
	notYet("while the tick under way at the call was reading")
	release <- struct{}{}
	<-reads // the second tick reads the routes: the first has ended
	notYet("when the tick under way at the call ended")
	release <- struct{}{}
	select {
	case err := <-settled:
		if err != nil {
			t.Fatalf("Settle after the second tick: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Settle did not return once a tick begun after the call had ended")
	}

	go func() {
		for range reads {
			release <- struct{}{}
		}
	}()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	close(reads)
	if err := s.Settle(ctx); err == nil {
		t.Error("Settle on a stopped simulator returned nil, want an error")
	}
}
