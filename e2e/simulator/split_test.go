package simulator

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
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

// A mirror rule without conditions, as KULTA writes it, comes before its managed rule with the
// same matches: it takes the managed rule's requests, split by the same weights, and copies its
// percent of them to the canary; the managed rule takes nothing. A mirror rule with a header
// condition takes the header rate and copies all of it without a percent.
func TestRouteMirrorRates(t *testing.T) {
	all := []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To("/")}}}
	mirror := func(percent *int32) []gatewayv1.HTTPRouteFilter {
		return []gatewayv1.HTTPRouteFilter{{Type: gatewayv1.HTTPRouteFilterRequestMirror, RequestMirror: &gatewayv1.HTTPRequestMirrorFilter{
			BackendRef: gatewayv1.BackendObjectReference{Name: "web-canary", Port: ptr.To[gatewayv1.PortNumber](80)}, Percent: percent}}}
	}
	split := []gatewayv1.HTTPBackendRef{backendRef("web-stable", 80), backendRef("web-canary", 20)}
	route := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"},
		Spec: gatewayv1.HTTPRouteSpec{Rules: []gatewayv1.HTTPRouteRule{
			{Matches: []gatewayv1.HTTPRouteMatch{{Path: all[0].Path, Headers: []gatewayv1.HTTPHeaderMatch{{Name: "X-Api", Value: "v2"}}}}, Filters: mirror(nil), BackendRefs: split},
			{Matches: all, Filters: mirror(ptr.To[int32](25)), BackendRefs: split},
			{Matches: all, BackendRefs: split},
		}},
	}
	stable, canary := ServiceKey{Namespace: "ns", Name: "web-stable"}, ServiceKey{Namespace: "ns", Name: "web-canary"}
	got := RouteRates(route, 100, 10)
	if math.Abs(got[stable]-88) > 1e-9 || math.Abs(got[canary]-22) > 1e-9 || len(got) != 2 {
		t.Errorf("RouteRates = %v, want web-stable 88 and web-canary 22 (the managed rule shadowed by its mirror rule)", got)
	}
	mirrored := RouteMirrorRates(route, 100, 10)
	if math.Abs(mirrored[canary]-35) > 1e-9 || len(mirrored) != 1 {
		t.Errorf("RouteMirrorRates = %v, want web-canary 35: a quarter of 100 and all of 10", mirrored)
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
	parents := AcceptedParents(route, "default", "kulta-gateway", nil)
	if len(parents) != 2 || parents[0].ControllerName != other.ControllerName || parents[1].ControllerName != ControllerName {
		t.Fatalf("AcceptedParents = %+v, want the other controller's entry and one of ours", parents)
	}
	for _, conditionType := range []gatewayv1.RouteConditionType{gatewayv1.RouteConditionAccepted, gatewayv1.RouteConditionResolvedRefs} {
		c := meta.FindStatusCondition(parents[1].Conditions, string(conditionType))
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != 3 {
			t.Fatalf("our entry's %s = %+v, want True at generation 3", conditionType, c)
		}
	}
	if !parentsUpToDate(parents, AcceptedParents(route, "default", "kulta-gateway", nil), 3) {
		t.Fatal("the wanted status is not up to date with itself")
	}
	route.Status.Parents = parents
	route.Generation = 4
	again := AcceptedParents(route, "default", "kulta-gateway", nil)
	if parentsUpToDate(route.Status.Parents, again, 4) {
		t.Fatal("status accepted at generation 3 is up to date at generation 4")
	}
}

// TestReferenceGrantsDecideResolvedRefs checks that a backendRef into another namespace is
// permitted only by a ReferenceGrant there that lets HTTPRoutes from the route's namespace refer
// to the Service, and that the status then says ResolvedRefs=False with RefNotPermitted.
func TestReferenceGrantsDecideResolvedRefs(t *testing.T) {
	route := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", Generation: 2},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{
				{Name: "kulta-gateway", Namespace: ptr.To[gatewayv1.Namespace]("default")},
			}},
			Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{
				backendRef("web-stable", 90), crossNamespaceRef("shared", "web-canary", 10), crossNamespaceRef("shared", "web-canary", 0),
			}}},
		},
	}
	grant := func(name, fromNamespace string, to *string) gatewayv1beta1.ReferenceGrant {
		return gatewayv1beta1.ReferenceGrant{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shared", Name: name},
			Spec: gatewayv1beta1.ReferenceGrantSpec{
				From: []gatewayv1beta1.ReferenceGrantFrom{{Group: gatewayv1.GroupName, Kind: "HTTPRoute", Namespace: gatewayv1.Namespace(fromNamespace)}},
				To:   []gatewayv1beta1.ReferenceGrantTo{{Group: "", Kind: "Service", Name: (*gatewayv1.ObjectName)(to)}},
			},
		}
	}
	canary := ServiceKey{Namespace: "shared", Name: "web-canary"}
	cases := []struct {
		name   string
		grants []gatewayv1beta1.ReferenceGrant
		want   []ServiceKey
	}{
		{"no grant", nil, []ServiceKey{canary}},
		{"grant for another namespace", []gatewayv1beta1.ReferenceGrant{grant("other", "elsewhere", nil)}, []ServiceKey{canary}},
		{"grant for another Service", []gatewayv1beta1.ReferenceGrant{grant("other", "ns", ptr.To("api"))}, []ServiceKey{canary}},
		{"grant for the Service", []gatewayv1beta1.ReferenceGrant{grant("web", "ns", ptr.To("web-canary"))}, nil},
		{"grant for every Service", []gatewayv1beta1.ReferenceGrant{grant("all", "ns", nil)}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := NotPermitted(route, tc.grants)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("NotPermitted = %v, want %v", got, tc.want)
			}
			parents := AcceptedParents(route, "default", "kulta-gateway", got)
			accepted := meta.FindStatusCondition(parents[0].Conditions, string(gatewayv1.RouteConditionAccepted))
			resolved := meta.FindStatusCondition(parents[0].Conditions, string(gatewayv1.RouteConditionResolvedRefs))
			if accepted == nil || accepted.Status != metav1.ConditionTrue {
				t.Errorf("Accepted = %+v, want True: a route with a reference not permitted is still accepted", accepted)
			}
			wantStatus, wantReason := metav1.ConditionTrue, string(gatewayv1.RouteReasonResolvedRefs)
			if len(tc.want) > 0 {
				wantStatus, wantReason = metav1.ConditionFalse, string(gatewayv1.RouteReasonRefNotPermitted)
			}
			if resolved == nil || resolved.Status != wantStatus || resolved.Reason != wantReason || resolved.ObservedGeneration != 2 {
				t.Fatalf("ResolvedRefs = %+v, want %s %s at generation 2", resolved, wantStatus, wantReason)
			}
			if len(tc.want) > 0 && !strings.Contains(resolved.Message, "shared/web-canary") {
				t.Errorf("ResolvedRefs message %q does not name the Service", resolved.Message)
			}
		})
	}
	// A grant that appears turns ResolvedRefs True at the next tick.
	route.Status.Parents = AcceptedParents(route, "default", "kulta-gateway", []ServiceKey{canary})
	if parentsUpToDate(route.Status.Parents, AcceptedParents(route, "default", "kulta-gateway", nil), 2) {
		t.Error("status saying RefNotPermitted is up to date once the reference is permitted")
	}
}

func crossNamespaceRef(namespace, name string, weight int32) gatewayv1.HTTPBackendRef {
	ref := backendRef(name, weight)
	ref.Namespace = ptr.To(gatewayv1.Namespace(namespace))
	return ref
}
