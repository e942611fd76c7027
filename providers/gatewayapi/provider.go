package gatewayapi

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/internal/objects"
)

// ProviderName is the trafficRouting field that selects this provider.
const ProviderName = "gatewayAPI"

// The chart grants these when providers.gatewayAPI.enabled is set:
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes;grpcroutes,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=referencegrants,verbs=get;list;watch

// NewProvider registers the Gateway API provider: r moves the traffic (it may be nil until the
// manager exists, and set on the returned value then); the route kinds caps says are served
// are watched, with ReferenceGrants; cached routes are trimmed with TrimRoute and packed.
func NewProvider(r *Router, caps Capabilities) providers.Provider {
	p := providers.Provider{
		Name:   ProviderName,
		Uses:   func(tr *kultav1alpha1.TrafficRouting) bool { return tr != nil && tr.GatewayAPI != nil },
		Router: r,
		Trim: objects.CacheTrim(isRouteKind, func(u *unstructured.Unstructured) bool {
			if !IsRoute(u) {
				return false
			}
			TrimRoute(u)
			return true
		}),
	}
	if r == nil {
		p.Router = nil
	}
	for _, kind := range caps.Kinds() {
		p.Watches = append(p.Watches, providers.Watch{
			Object: RouteObject(kind),
			RolloutKeys: func(ro *kultav1alpha1.Rollout) []string {
				var keys []string
				for _, ref := range RouteRefs(ro) {
					if string(ref.Kind) == kind {
						keys = append(keys, providers.ObjectKey(kind, ref.Namespace, ref.Name))
					}
				}
				return keys
			},
			ObjectKeys: func(obj client.Object) []string {
				return []string{providers.ObjectKey(kind, obj.GetNamespace(), obj.GetName())}
			},
		})
	}
	if len(p.Watches) > 0 {
		// A route in another namespace is usable only under a ReferenceGrant there: a change to
		// one reconciles the Rollouts with routes in its namespace.
		p.Watches = append(p.Watches, providers.Watch{
			Object: &gatewayv1beta1.ReferenceGrant{},
			RolloutKeys: func(ro *kultav1alpha1.Rollout) []string {
				var keys []string
				for _, ref := range RouteRefs(ro) {
					if ref.Namespace != ro.Namespace {
						keys = append(keys, "ReferenceGrant/"+ref.Namespace)
					}
				}
				return keys
			},
			ObjectKeys: func(obj client.Object) []string { return []string{"ReferenceGrant/" + obj.GetNamespace()} },
		})
	}
	return p
}

// RouteObject is an empty Gateway API route of the given kind (HTTPRoute, GRPCRoute), as an
// unstructured object: what the route watches and the router's cache reads share.
func RouteObject(kind string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(schema.GroupVersionKind{Group: Group, Version: "v1", Kind: kind})
	return u
}
