package istio

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/internal/objects"
)

// ProviderName is the trafficRouting field that selects this provider.
const ProviderName = "istio"

// The chart grants these when providers.istio.enabled is set:
// +kubebuilder:rbac:groups=networking.istio.io,resources=virtualservices;destinationrules,verbs=get;list;watch;patch

// NewProvider registers the Istio provider: r moves the traffic (it may be nil until the
// manager exists, and set on the returned value then). It watches VirtualServices and
// DestinationRules, keyed "VirtualService/NAMESPACE/NAME" and "DestinationRule/NAMESPACE/NAME",
// so a change to one reconciles the Rollouts that name it; cached objects are trimmed with Trim
// and packed (objects.Packed).
func NewProvider(r *Router) providers.Provider {
	p := providers.Provider{
		Name: ProviderName,
		Uses: func(tr *kultav1alpha1.TrafficRouting) bool { return tr != nil && tr.Istio != nil },
		Trim: objects.CacheTrim(isCached, Trim),
		Watches: []providers.Watch{
			{
				Object: VirtualServiceObject(),
				RolloutKeys: func(ro *kultav1alpha1.Rollout) []string {
					var keys []string
					for _, name := range VirtualServices(ro) {
						keys = append(keys, providers.ObjectKey(KindVirtualService, ro.Namespace, name))
					}
					return keys
				},
				ObjectKeys: objectKeys(KindVirtualService),
			},
			{
				Object: DestinationRuleObject(),
				RolloutKeys: func(ro *kultav1alpha1.Rollout) []string {
					if ref, dr := destinationRuleRef(ro); dr != nil {
						return []string{ref.String()}
					}
					return nil
				},
				ObjectKeys: objectKeys(KindDestinationRule),
			},
		},
	}
	// A nil *Router in the interface would not compare equal to nil.
	if r != nil {
		p.Router = r
	}
	return p
}

func objectKeys(kind string) func(client.Object) []string {
	return func(obj client.Object) []string {
		return []string{providers.ObjectKey(kind, obj.GetNamespace(), obj.GetName())}
	}
}

// VirtualServiceObject is an empty VirtualService as an unstructured object: what the watch and
// the router's cache reads share.
func VirtualServiceObject() *unstructured.Unstructured { return newObject(KindVirtualService) }

// DestinationRuleObject is an empty DestinationRule as an unstructured object.
func DestinationRuleObject() *unstructured.Unstructured { return newObject(KindDestinationRule) }

// Served reports whether the API server serves both VirtualService and DestinationRule at
// networking.istio.io/v1 (Istio 1.22 or later), according to mapper: the provider can be
// registered only then.
func Served(mapper meta.RESTMapper) (bool, error) {
	for _, kind := range []string{KindVirtualService, KindDestinationRule} {
		_, err := mapper.RESTMapping(schema.GroupKind{Group: Group, Kind: kind}, Version)
		switch {
		case meta.IsNoMatchError(err):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("looking up %s.%s/%s: %w", kind, Group, Version, err)
		}
	}
	return true, nil
}
