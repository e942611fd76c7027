package simulator

import (
	"math"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func TestSplitByWeight(t *testing.T) {
	cases := []struct {
		name    string
		weights []*int32
		want    []float64
	}{
		{"canary at 20", []*int32{ptr.To[int32](80), ptr.To[int32](20)}, []float64{80, 20}},
		{"all stable", []*int32{ptr.To[int32](100), ptr.To[int32](0)}, []float64{100, 0}},
		{"unset weights count as 1", []*int32{nil, nil}, []float64{50, 50}},
		{"weights need not sum to 100", []*int32{ptr.To[int32](1), ptr.To[int32](3)}, []float64{25, 75}},
		{"all zero sends nothing", []*int32{ptr.To[int32](0), ptr.To[int32](0)}, []float64{0, 0}},
		{"negative counts as zero", []*int32{ptr.To[int32](-5), ptr.To[int32](5)}, []float64{0, 100}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := SplitByWeight(100, tc.weights)
			for i := range tc.want {
				if math.Abs(got[i]-tc.want[i]) > 1e-9 {
					t.Fatalf("SplitByWeight(100, ...) = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func pod(name, image string, ready bool, lbls map[string]string) corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: lbls},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
		Status:     corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
}

func TestBehaviourFollowsTheImagesBehindTheService(t *testing.T) {
	table := map[string]Behaviour{"bad": {ErrorRatio: 0.1, Latency: 30 * time.Millisecond}}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web-canary"},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "web", "hash": "b"}},
	}
	pods := []corev1.Pod{
		pod("a-1", "good", true, map[string]string{"app": "web", "hash": "a"}),
		pod("b-1", "bad", true, map[string]string{"app": "web", "hash": "b"}),
		pod("b-2", "good", true, map[string]string{"app": "web", "hash": "b"}),
		pod("b-3", "bad", false, map[string]string{"app": "web", "hash": "b"}),
	}
	behind := ReadyPodsBehind(svc, pods)
	if len(behind) != 2 {
		t.Fatalf("ReadyPodsBehind = %d Pods, want the 2 ready ones of hash b", len(behind))
	}
	got, ok := BehaviourOf(behind, table)
	want := Behaviour{ErrorRatio: 0.05, Latency: 20 * time.Millisecond}
	if !ok || math.Abs(got.ErrorRatio-want.ErrorRatio) > 1e-9 || got.Latency != want.Latency {
		t.Fatalf("BehaviourOf = %+v, %v; want %+v, true", got, ok, want)
	}
	if got, ok := BehaviourOf(behind[1:], nil); !ok || got != DefaultBehaviour {
		t.Fatalf("an unnamed image behaves as %+v, want DefaultBehaviour %+v", got, DefaultBehaviour)
	}
	if _, ok := BehaviourOf(nil, table); ok {
		t.Fatal("a Service without ready Pods answers, want it not to")
	}
	if len(ReadyPodsBehind(&corev1.Service{ObjectMeta: svc.ObjectMeta}, pods)) != 0 {
		t.Fatal("a Service without a selector has Pods behind it")
	}
}

func TestRouteRates(t *testing.T) {
	route := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"},
		Spec: gatewayv1.HTTPRouteSpec{Rules: []gatewayv1.HTTPRouteRule{
			{BackendRefs: []gatewayv1.HTTPBackendRef{backendRef("web-stable", 80), backendRef("web-canary", 20)}},
			{
				Name:        ptr.To[gatewayv1.SectionName]("kulta-canary-header"),
				Matches:     []gatewayv1.HTTPRouteMatch{{Headers: []gatewayv1.HTTPHeaderMatch{{Name: "X-Canary", Value: "true"}}}},
				BackendRefs: []gatewayv1.HTTPBackendRef{backendRef("web-canary", 100)},
			},
		}},
	}
	got := RouteRates(route, 100, 10)
	want := map[ServiceKey]float64{{Namespace: "ns", Name: "web-stable"}: 80, {Namespace: "ns", Name: "web-canary"}: 30}
	if len(got) != len(want) {
		t.Fatalf("RouteRates = %v, want %v", got, want)
	}
	for k, v := range want {
		if math.Abs(got[k]-v) > 1e-9 {
			t.Fatalf("RouteRates = %v, want %v", got, want)
		}
	}
}

func backendRef(name string, weight int32) gatewayv1.HTTPBackendRef {
	return gatewayv1.HTTPBackendRef{BackendRef: gatewayv1.BackendRef{
		BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(name), Port: ptr.To[gatewayv1.PortNumber](80)},
		Weight:                 ptr.To(weight),
	}}
}

func TestAttachedAndAccepted(t *testing.T) {
	other := gatewayv1.RouteParentStatus{ParentRef: gatewayv1.ParentReference{Name: "elsewhere"}, ControllerName: "example.com/other"}
	route := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", Generation: 3},
		Spec: gatewayv1.HTTPRouteSpec{CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{
			{Name: "kulta-gateway", Namespace: ptr.To[gatewayv1.Namespace]("default")},
			{Name: "kulta-gateway"},
			{Name: "elsewhere"},
		}}},
		Status: gatewayv1.HTTPRouteStatus{RouteStatus: gatewayv1.RouteStatus{Parents: []gatewayv1.RouteParentStatus{other}}},
	}
	if !Attached(route.Spec.ParentRefs[0], "ns", "default", "kulta-gateway") {
		t.Fatal("a parentRef naming default/kulta-gateway is not attached")
	}
	if Attached(route.Spec.ParentRefs[1], "ns", "default", "kulta-gateway") {
		t.Fatal("a parentRef without namespace names the route's own namespace, not default")
	}
	parents := AcceptedParents(route, "default", "kulta-gateway")
	if len(parents) != 2 || parents[0].ControllerName != other.ControllerName || parents[1].ControllerName != ControllerName {
		t.Fatalf("AcceptedParents = %+v, want the other controller's entry and one of ours", parents)
	}
	if c := parents[1].Conditions; len(c) != 1 || c[0].Status != metav1.ConditionTrue || c[0].ObservedGeneration != 3 {
		t.Fatalf("our entry's conditions = %+v, want Accepted=True at generation 3", c)
	}
	if !parentsUpToDate(parents, AcceptedParents(route, "default", "kulta-gateway"), 3) {
		t.Fatal("the wanted status is not up to date with itself")
	}
	route.Status.Parents = parents
	route.Generation = 4
	again := AcceptedParents(route, "default", "kulta-gateway")
	if parentsUpToDate(route.Status.Parents, again, 4) {
		t.Fatal("status accepted at generation 3 is up to date at generation 4")
	}
}
