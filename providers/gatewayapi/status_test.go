package gatewayapi_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/false-systems/kulta/providers/gatewayapi"
)

// condition is one status condition of a route's parent.
type condition struct {
	kind, status, reason, message string
	generation                    int64
}

func (c condition) object() map[string]any {
	out := map[string]any{"type": c.kind, "status": c.status, "observedGeneration": c.generation,
		"lastTransitionTime": "2026-11-26T04:00:00Z"}
	if c.reason != "" {
		out["reason"] = c.reason
	}
	if c.message != "" {
		out["message"] = c.message
	}
	return out
}

// parentStatus is the status a parent, Gateway shop/NAME, reports.
type parentStatus struct {
	name       string
	conditions []condition
}

// statusRoute is HTTPRoute shop/web at generation 4 with one parentRef per name in parents,
// and the given status.
func statusRoute(parents []string, statuses ...parentStatus) *unstructured.Unstructured {
	route := &unstructured.Unstructured{Object: map[string]any{}}
	route.SetAPIVersion(gatewayapi.Group + "/v1")
	route.SetKind("HTTPRoute")
	route.SetNamespace("shop")
	route.SetName("web")
	route.SetGeneration(4)
	var refs []any
	for _, name := range parents {
		refs = append(refs, map[string]any{"name": name})
	}
	var parentStatuses []any
	for _, ps := range statuses {
		var conditions []any
		for _, c := range ps.conditions {
			conditions = append(conditions, c.object())
		}
		parentStatuses = append(parentStatuses, map[string]any{
			"parentRef":      map[string]any{"group": gatewayapi.Group, "kind": "Gateway", "name": ps.name},
			"controllerName": "example.net/gateway",
			"conditions":     conditions,
		})
	}
	route.Object["spec"] = map[string]any{"parentRefs": refs}
	route.Object["status"] = map[string]any{"parents": parentStatuses}
	return route
}

// TestAcceptedGatesOnResolvedRefs checks that a route counts as routed only when each parent
// accepted its generation and did not report ResolvedRefs=False for it, and that the message
// names the route, the parent and the parent's reason. Each case is also decided from the
// route as the cache trims it.
func TestAcceptedGatesOnResolvedRefs(t *testing.T) {
	accepted := condition{kind: "Accepted", status: "True", reason: "Accepted", generation: 4}
	resolved := condition{kind: "ResolvedRefs", status: "True", reason: "ResolvedRefs", generation: 4}
	notPermitted := condition{kind: "ResolvedRefs", status: "False", reason: "RefNotPermitted",
		message: "backendRef web-canary in namespace other is not permitted by any ReferenceGrant", generation: 4}
	cases := []struct {
		name  string
		route *unstructured.Unstructured
		want  bool
		// pending: not routed only because a parent has not processed the generation yet.
		pending bool
		message []string
		// notInMessage must not appear in the message.
		notInMessage string
	}{
		{name: "accepted and resolved", want: true,
			route: statusRoute([]string{"public"}, parentStatus{"public", []condition{accepted, resolved}})},
		{name: "ResolvedRefs absent", want: true,
			route: statusRoute([]string{"public"}, parentStatus{"public", []condition{accepted}})},
		{name: "ResolvedRefs False of an older generation", want: true,
			route: statusRoute([]string{"public"}, parentStatus{"public", []condition{accepted, withGeneration(notPermitted, 3)}})},
		{name: "ResolvedRefs False", want: false,
			route: statusRoute([]string{"public"}, parentStatus{"public", []condition{accepted, notPermitted}}),
			message: []string{"HTTPRoute shop/web generation 4 is not routed", "Gateway shop/public", "ResolvedRefs=False",
				"RefNotPermitted: backendRef web-canary in namespace other is not permitted"}},
		{name: "BackendNotFound without message", want: false,
			route: statusRoute([]string{"public"}, parentStatus{"public", []condition{accepted,
				{kind: "ResolvedRefs", status: "False", reason: "BackendNotFound", generation: 4}}}),
			message: []string{"HTTPRoute shop/web", "Gateway shop/public", "ResolvedRefs=False (BackendNotFound)"}},
		{name: "one of two parents cannot resolve", want: false,
			route: statusRoute([]string{"public", "internal"},
				parentStatus{"public", []condition{accepted, resolved}}, parentStatus{"internal", []condition{notPermitted, accepted}}),
			message:      []string{"parent Gateway shop/internal reports ResolvedRefs=False (RefNotPermitted"},
			notInMessage: "Gateway shop/public"},
		{name: "two entries for one parent, one routes it", want: true,
			route: statusRoute([]string{"public"},
				parentStatus{"public", []condition{accepted, notPermitted}}, parentStatus{"public", []condition{accepted, resolved}})},
		{name: "Accepted False", want: false,
			route: statusRoute([]string{"public"}, parentStatus{"public", []condition{
				{kind: "Accepted", status: "False", reason: "NotAllowedByListeners", message: "no listener allows routes from shop", generation: 4}}}),
			message: []string{"HTTPRoute shop/web", "Gateway shop/public", "Accepted=False (NotAllowedByListeners: no listener allows routes from shop)"}},
		{name: "accepted at an older generation", want: false, pending: true,
			route:   statusRoute([]string{"public"}, parentStatus{"public", []condition{withGeneration(accepted, 3), notPermitted}}),
			message: []string{"HTTPRoute shop/web generation 4 is not yet accepted by parent Gateway shop/public"}},
		{name: "no status from the parent", want: false, pending: true,
			route:   statusRoute([]string{"public"}),
			message: []string{"not yet accepted by parent Gateway shop/public"}},
		{name: "no parentRefs", want: false,
			route:   statusRoute(nil),
			message: []string{"HTTPRoute shop/web has no parentRefs"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ok, msg := gatewayapi.Accepted(tc.route)
			if ok != tc.want {
				t.Fatalf("Accepted = %v (%q), want %v", ok, msg, tc.want)
			}
			if ok2, pending, msg2 := gatewayapi.Acceptance(tc.route); ok2 != ok || msg2 != msg || pending != tc.pending {
				t.Errorf("Acceptance = %v, pending %v, %q; want %v, pending %v, %q", ok2, pending, msg2, ok, tc.pending, msg)
			}
			if ok && msg != "" {
				t.Errorf("an accepted route has a message: %q", msg)
			}
			for _, part := range tc.message {
				if !strings.Contains(msg, part) {
					t.Errorf("message %q lacks %q", msg, part)
				}
			}
			if tc.notInMessage != "" && strings.Contains(msg, tc.notInMessage) {
				t.Errorf("message %q names %s, which routes the route", msg, tc.notInMessage)
			}
			trimmed := tc.route.DeepCopy()
			gatewayapi.TrimRoute(trimmed)
			if okTrimmed, msgTrimmed := gatewayapi.Accepted(trimmed); okTrimmed != ok || msgTrimmed != msg {
				t.Errorf("from the trimmed route: %v (%q), want %v (%q)", okTrimmed, msgTrimmed, ok, msg)
			}
		})
	}
}

func withGeneration(c condition, generation int64) condition {
	c.generation = generation
	return c
}

// TestMeshRouteAcceptance checks GAMMA routes, whose parentRefs name a Service (Istio ambient,
// Linkerd, Cilium): acceptance is read from the status the mesh writes for that Service.
func TestMeshRouteAcceptance(t *testing.T) {
	route := &unstructured.Unstructured{Object: map[string]any{}}
	route.SetAPIVersion(gatewayapi.Group + "/v1")
	route.SetKind("HTTPRoute")
	route.SetNamespace("shop")
	route.SetName("web-mesh")
	route.SetGeneration(2)
	route.Object["spec"] = map[string]any{"parentRefs": []any{
		map[string]any{"group": "", "kind": "Service", "name": "web", "port": int64(80)},
	}}
	ok, message := gatewayapi.Accepted(route)
	if ok || !strings.Contains(message, "Service shop/web") {
		t.Fatalf("before the mesh wrote status: accepted %v, %q; want not accepted, naming Service shop/web", ok, message)
	}
	meshStatus := func(status string, generation int64) {
		route.Object["status"] = map[string]any{"parents": []any{map[string]any{
			"parentRef":      map[string]any{"group": "", "kind": "Service", "name": "web", "port": int64(80)},
			"controllerName": "linkerd.io/gateway-controller",
			"conditions": []any{
				condition{kind: "Accepted", status: status, reason: "Accepted", generation: generation}.object(),
				condition{kind: "ResolvedRefs", status: "True", reason: "ResolvedRefs", generation: generation}.object(),
			},
		}}}
	}
	meshStatus("True", 1)
	if ok, _ := gatewayapi.Accepted(route); ok {
		t.Error("accepted on the mesh's status for an older generation")
	}
	meshStatus("True", 2)
	if ok, message := gatewayapi.Accepted(route); !ok {
		t.Errorf("not accepted with the mesh's Accepted=True for generation 2: %s", message)
	}
	meshStatus("False", 2)
	if ok, message := gatewayapi.Accepted(route); ok || !strings.Contains(message, "Service shop/web") {
		t.Errorf("accepted %v, %q; want refused, naming the Service", ok, message)
	}
}
