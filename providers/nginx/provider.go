package nginx

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/providers"
)

// ProviderName is the trafficRouting field that selects this provider.
const ProviderName = "nginx"

// ingressKind is the kind of the objects the provider reads and writes.
const ingressKind = "Ingress"

// The chart grants these when providers.nginx.enabled is set:
// +kubebuilder:rbac:groups=networking.k8s.io,resources=ingresses,verbs=get;list;watch;create;patch;delete

// NewProvider registers the NGINX provider: r moves the traffic (it may be nil until the
// manager exists, and set on the returned value then). It watches networking.k8s.io/v1
// Ingresses, which every API server serves: a Rollout answers to the keys of its stable
// Ingresses and of their canary Ingresses (IngressKeys), so a change to a stable Ingress, and
// a canary Ingress changed or deleted by someone else or an object taking its name, reconcile
// it. Cached Ingresses are trimmed with Trim, and indexed by CanaryIngressIndex, which the
// router lists a Rollout's canary Ingresses by. The canary Ingresses are the objects it creates
// (labelled CanaryIngressLabel, belonging to the Rollout that controls them: CanaryIngressRollout).
func NewProvider(r *Router) providers.Provider {
	p := providers.Provider{
		Name:   ProviderName,
		Uses:   func(tr *kultav1alpha1.TrafficRouting) bool { return tr != nil && tr.NGINX != nil },
		Router: r,
		Watches: []providers.Watch{{
			Object:      &networkingv1.Ingress{},
			RolloutKeys: IngressKeys,
			ObjectKeys: func(obj client.Object) []string {
				return []string{providers.ObjectKey(ingressKind, obj.GetNamespace(), obj.GetName())}
			},
		}},
		Indexes: []providers.Index{{
			Object:  &networkingv1.Ingress{},
			Field:   CanaryIngressIndex,
			Extract: CanaryIngressOwner,
		}},
		Created: []providers.Created{{
			Object: &networkingv1.Ingress{},
			Labels: map[string]string{CanaryIngressLabel: "true"},
			Owner:  CanaryIngressRollout,
		}},
		Trim: func(obj any) (any, bool) {
			ing, ok := obj.(*networkingv1.Ingress)
			if !ok {
				return obj, false
			}
			TrimIngress(ing)
			return ing, true
		},
	}
	if r == nil {
		p.Router = nil
	}
	return p
}

// CanaryIngressIndex is the cache's index of canary Ingresses by the UID of the Rollout that
// controls them (CanaryIngressOwner). Reading a Rollout's canary Ingresses through it costs what
// the Rollout has, however many other Rollouts share its namespace.
const CanaryIngressIndex = "kulta.io/nginx-canary-ingress-of"

// CanaryIngressOwner is the key of obj, an Ingress, in CanaryIngressIndex: the UID of its
// controlling Rollout when it is a canary Ingress (CanaryIngressLabel "true"); any other
// Ingress is left out of the index.
func CanaryIngressOwner(obj client.Object) []string {
	if uid := CanaryIngressRollout(obj); uid != "" {
		return []string{string(uid)}
	}
	return nil
}

// CanaryIngressRollout is the UID of the Rollout that controls obj when obj is a canary Ingress
// (CanaryIngressLabel "true"), "" otherwise. It reads only obj's metadata.
func CanaryIngressRollout(obj metav1.Object) types.UID {
	if obj.GetLabels()[CanaryIngressLabel] != "true" {
		return ""
	}
	ref := metav1.GetControllerOfNoCopy(obj)
	if ref == nil || !isRolloutRef(ref) {
		return ""
	}
	return ref.UID
}

// IngressKeys are the keys (providers.ObjectKey) of the Ingresses a Rollout reads: its stable
// Ingresses, and the canary Ingresses KULTA derives from them.
func IngressKeys(ro *kultav1alpha1.Rollout) []string {
	var keys []string
	for _, name := range StableIngresses(ro) {
		keys = append(keys,
			providers.ObjectKey(ingressKind, ro.Namespace, name),
			providers.ObjectKey(ingressKind, ro.Namespace, CanaryIngressName(ro.Name, name)))
	}
	return keys
}

// TrimIngress drops from an Ingress what the router never reads, for an informer cache that
// holds every Ingress of the cluster for as long as the controller runs. It keeps the metadata
// without managedFields and the spec whole. Of the annotations it keeps, on a canary Ingress
// (CanaryIngressLabel), all but kubectl's last-applied copy; on any other Ingress only
// kubernetes.io/ingress.class and those ending in /canary (the router copies the one and
// refuses a stable Ingress marked as a canary by the others). It drops the status. Running it
// twice keeps what the first run kept.
//
// A trimmed Ingress must never be written back whole: the Router patches only what it changes
// in a canary Ingress's spec, labels and annotations, which the trim keeps, and never writes any
// other Ingress.
func TrimIngress(ing *networkingv1.Ingress) {
	ing.ManagedFields = nil
	ing.Status = networkingv1.IngressStatus{}
	if len(ing.Annotations) == 0 {
		return
	}
	canary := ing.Labels[CanaryIngressLabel] == "true"
	kept := map[string]string{}
	for k, v := range ing.Annotations {
		switch {
		case k == corev1.LastAppliedConfigAnnotation:
		case canary, k == IngressClassAnnotation, strings.HasSuffix(k, "/"+annotationCanary):
			kept[k] = v
		}
	}
	if len(kept) == 0 {
		kept = nil
	}
	ing.Annotations = kept
}
