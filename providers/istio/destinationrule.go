package istio

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// SubsetHashes are the pod-template hashes the DestinationRule's two subsets select, by the
// label kultav1alpha1.PodTemplateHashLabel that each revision's Pods carry. An empty hash is
// not known yet: that subset's labels are left as they are.
type SubsetHashes struct {
	Stable, Canary string
}

// HashesOf is what ro's status says the subsets select: the stable subset the stable revision
// and the canary subset the current one. Before the first revision is stable, both select the
// current revision; that is the one the stable subset then serves.
func HashesOf(ro *kultav1alpha1.Rollout) SubsetHashes {
	h := SubsetHashes{Stable: ro.Status.StablePodTemplateHash, Canary: ro.Status.CurrentPodTemplateHash}
	if h.Stable == "" {
		h.Stable = h.Canary
	}
	if h.Canary == "" {
		h.Canary = h.Stable
	}
	return h
}

// subsetsOf returns the DestinationRule's subsets with their names.
func subsetsOf(dr *unstructured.Unstructured) []any {
	list, _, _ := unstructured.NestedFieldNoCopy(dr.Object, "spec", "subsets")
	items, _ := list.([]any)
	return items
}

// Host is the DestinationRule's spec.host.
func Host(dr *unstructured.Unstructured) string {
	host, _, _ := unstructured.NestedString(dr.Object, "spec", "host")
	return host
}

// subsetRoles pairs each of ref's subset names with the hash it must select.
func subsetRoles(ref kultav1alpha1.IstioDestinationRule, h SubsetHashes) [2]struct{ name, hash string } {
	return [2]struct{ name, hash string }{{ref.StableSubsetName, h.Stable}, {ref.CanarySubsetName, h.Canary}}
}

// findSubsets returns, per subset name of ref, the subsets of dr with that name; a name without
// one is a RouteError.
func findSubsets(dr *unstructured.Unstructured, ref kultav1alpha1.IstioDestinationRule) (map[string][]map[string]any, error) {
	out := map[string][]map[string]any{}
	for _, item := range subsetsOf(dr) {
		subset, _ := item.(map[string]any)
		if name, _ := subset["name"].(string); name == ref.StableSubsetName || name == ref.CanarySubsetName {
			out[name] = append(out[name], subset)
		}
	}
	var missing []string
	for _, name := range []string{ref.StableSubsetName, ref.CanarySubsetName} {
		if len(out[name]) == 0 {
			missing = append(missing, fmt.Sprintf("%q", name))
		}
	}
	if len(missing) > 0 {
		return nil, routeError(ReasonSubsetNotFound, "%s has no subset named %s", describe(dr), strings.Join(missing, " or "))
	}
	return out, nil
}

// SetSubsetLabels points the stable and canary subsets of dr at the revisions h names, by the
// pod-template-hash label; every other label and field of the subsets stays. It reports whether
// anything changed. A subset ref names that dr lacks is a RouteError.
func SetSubsetLabels(dr *unstructured.Unstructured, ref kultav1alpha1.IstioDestinationRule, h SubsetHashes) (bool, error) {
	subsets, err := findSubsets(dr, ref)
	if err != nil {
		return false, err
	}
	changed := false
	for _, role := range subsetRoles(ref, h) {
		if role.hash == "" {
			continue
		}
		for _, subset := range subsets[role.name] {
			labels, _ := subset["labels"].(map[string]any)
			if labels == nil {
				labels = map[string]any{}
			}
			if labels[kultav1alpha1.PodTemplateHashLabel] == role.hash {
				continue
			}
			labels[kultav1alpha1.PodTemplateHashLabel] = role.hash
			subset["labels"] = labels
			changed = true
		}
	}
	return changed, nil
}

// SubsetLabelsProblem says, naming the DestinationRule and the subset, why the subsets of dr do
// not select the revisions h names; it is empty when they do. A subset ref names that dr lacks
// is a RouteError.
func SubsetLabelsProblem(dr *unstructured.Unstructured, ref kultav1alpha1.IstioDestinationRule, h SubsetHashes) (string, error) {
	subsets, err := findSubsets(dr, ref)
	if err != nil {
		return "", err
	}
	for _, role := range subsetRoles(ref, h) {
		if role.hash == "" {
			continue
		}
		for _, subset := range subsets[role.name] {
			labels, _ := subset["labels"].(map[string]any)
			if got, _ := labels[kultav1alpha1.PodTemplateHashLabel].(string); got != role.hash {
				return fmt.Sprintf("%s subset %q selects %s=%q, want %q", describe(dr), role.name, kultav1alpha1.PodTemplateHashLabel, got, role.hash), nil
			}
		}
	}
	return "", nil
}
