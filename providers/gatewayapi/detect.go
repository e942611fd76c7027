package gatewayapi

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// MinimumVersion is the oldest Gateway API release whose standard-channel CRDs KULTA supports
// and is tested against: it serves HTTPRoute at v1, but not GRPCRoute (v1.1.0 and later do) and
// keeps no rule names (v1.4.0 and later do).
const MinimumVersion = "v1.0.0"

// Capabilities is what the API server's Gateway API CRDs offer KULTA.
type Capabilities struct {
	// HTTPRoute and GRPCRoute say whether the API server serves the kind at
	// gateway.networking.k8s.io/v1.
	HTTPRoute, GRPCRoute bool
	// RuleNames says whether the CRD of every served route kind has spec.rules[].name. Without
	// it the API server prunes the names KULTA gives its header rules, so the Router finds them
	// by their content.
	RuleNames bool
	// MirrorPercent says whether the CRD of every served route kind has a RequestMirror filter's
	// percent (v1.3.0 and later). Without it the API server would prune the percent, and a mirror
	// route meant for some requests would copy them all, so KULTA refuses to write one.
	MirrorPercent bool
}

// Serves reports whether the API server serves the route kind.
func (c Capabilities) Serves(kind kultav1alpha1.RouteKind) bool {
	switch kind {
	case kultav1alpha1.KindHTTPRoute:
		return c.HTTPRoute
	case kultav1alpha1.KindGRPCRoute:
		return c.GRPCRoute
	}
	return false
}

// Kinds lists the route kinds served, HTTPRoute first: the kinds to watch.
func (c Capabilities) Kinds() []string {
	var kinds []string
	if c.HTTPRoute {
		kinds = append(kinds, string(kultav1alpha1.KindHTTPRoute))
	}
	if c.GRPCRoute {
		kinds = append(kinds, string(kultav1alpha1.KindGRPCRoute))
	}
	return kinds
}

// minimumVersionOf names the oldest Gateway API release that serves kind at v1.
func minimumVersionOf(kind kultav1alpha1.RouteKind) string {
	if kind == kultav1alpha1.KindGRPCRoute {
		return "v1.1.0 or later"
	}
	return MinimumVersion + " or later"
}

// crdGVK is the kind of a CustomResourceDefinition, read as an unstructured object so that no
// apiextensions client or scheme is needed.
var crdGVK = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}

// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,resourceNames=httproutes.gateway.networking.k8s.io;grpcroutes.gateway.networking.k8s.io,verbs=get

// Detect finds out which route kinds the API server serves at gateway.networking.k8s.io/v1,
// asking mapper (discovery), and whether their CRDs have rule names, reading the
// CustomResourceDefinitions through reader (an uncached reader, such as the manager's
// APIReader). A CRD that cannot be read, for want of the permission to get it or otherwise, or
// whose schema has no v1 rules, counts as having no rule names, and why is logged: finding
// header rules by content works on every version. An error is returned only when discovery
// itself fails.
func Detect(ctx context.Context, mapper meta.RESTMapper, reader client.Reader) (Capabilities, error) {
	var c Capabilities
	var err error
	if c.HTTPRoute, err = servesV1(mapper, string(kultav1alpha1.KindHTTPRoute)); err != nil {
		return Capabilities{}, err
	}
	if c.GRPCRoute, err = servesV1(mapper, string(kultav1alpha1.KindGRPCRoute)); err != nil {
		return Capabilities{}, err
	}
	kinds := c.Kinds()
	c.RuleNames, c.MirrorPercent = len(kinds) > 0, len(kinds) > 0
	for _, kind := range kinds {
		f, err := crdFeatures(ctx, reader, kind)
		if err != nil {
			ctrl.LoggerFrom(ctx).Info("Assuming the route CRD prunes rule names and mirror percentages; KULTA finds its header rules by content", "kind", kind, "reason", err.Error())
		}
		c.RuleNames = c.RuleNames && f.ruleNames
		c.MirrorPercent = c.MirrorPercent && f.mirrorPercent
	}
	return c, nil
}

// servesV1 reports whether the API server serves the Gateway API kind at v1.
func servesV1(mapper meta.RESTMapper, kind string) (bool, error) {
	_, err := mapper.RESTMapping(schema.GroupKind{Group: Group, Kind: kind}, "v1")
	switch {
	case err == nil:
		return true, nil
	case meta.IsNoMatchError(err):
		return false, nil
	}
	return false, fmt.Errorf("looking up %s in %s/v1: %w", kind, Group, err)
}

// crdName is the CustomResourceDefinition of a Gateway API route kind, such as
// httproutes.gateway.networking.k8s.io.
func crdName(kind string) string {
	plural := map[string]string{string(kultav1alpha1.KindHTTPRoute): "httproutes", string(kultav1alpha1.KindGRPCRoute): "grpcroutes"}[kind]
	return plural + "." + Group
}

// features are the fields of a route CRD's v1 schema that KULTA's writes depend on.
type features struct {
	ruleNames, mirrorPercent bool
}

// crdFeatures reads the kind's CRD and reports which of the fields KULTA needs its v1 schema
// keeps; the error says why it could not tell (then the answer is none).
func crdFeatures(ctx context.Context, reader client.Reader, kind string) (features, error) {
	crd := &unstructured.Unstructured{}
	crd.SetGroupVersionKind(crdGVK)
	if err := reader.Get(ctx, types.NamespacedName{Name: crdName(kind)}, crd); err != nil {
		return features{}, fmt.Errorf("reading CustomResourceDefinition %s: %w", crdName(kind), err)
	}
	return featuresInCRD(crd)
}

// featuresInCRD reports whether a route CRD's v1 schema declares spec.rules[].name and
// spec.rules[].filters[].requestMirror.percent, which the API server then keeps. The error
// names what is missing when the CRD has no v1 version or no schema for the rules.
func featuresInCRD(crd *unstructured.Unstructured) (features, error) {
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, item := range versions {
		v, _ := item.(map[string]any)
		if v["name"] != "v1" {
			continue
		}
		items, found, _ := unstructured.NestedMap(v, "schema", "openAPIV3Schema", "properties", "spec", "properties", "rules", "items")
		if !found {
			return features{}, fmt.Errorf("CustomResourceDefinition %s version v1 has no schema for spec.rules", crd.GetName())
		}
		var f features
		_, f.ruleNames, _ = unstructured.NestedMap(items, "properties", "name")
		_, f.mirrorPercent, _ = unstructured.NestedMap(items, "properties", "filters", "items", "properties", "requestMirror", "properties", "percent")
		return f, nil
	}
	return features{}, fmt.Errorf("CustomResourceDefinition %s has no version v1", crd.GetName())
}
