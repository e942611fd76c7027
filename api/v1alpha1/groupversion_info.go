// Package v1alpha1 holds the kulta.io/v1alpha1 API: the Rollout kind, its strategies, analysis
// settings and status.
//
// The JSON field names are a contract inherited from KULTA's first (Rust) controller: manifests
// written for it must apply and behave unchanged. Fields may be added here; none may be renamed
// or removed. This package holds types, validation markers and small pure helpers on those types
// (duration and decimal parsing); it must not import controller or client code.
//
// +kubebuilder:object:generate=true
// +groupName=kulta.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "kulta.io", Version: "v1alpha1"}

	schemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds this package's kinds to a runtime.Scheme.
	AddToScheme = schemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Rollout{}, &RolloutList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
