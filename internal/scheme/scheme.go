// Package scheme builds the runtime.Scheme with every kind KULTA reads or writes: the core
// Kubernetes kinds, KULTA's own, and Gateway API's.
package scheme

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// New returns a scheme with the kinds KULTA works with.
func New() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme,
		kultav1alpha1.AddToScheme,
		gatewayv1.Install,
		gatewayv1beta1.Install,
	} {
		if err := add(s); err != nil {
			return nil, fmt.Errorf("building scheme: %w", err)
		}
	}
	return s, nil
}
