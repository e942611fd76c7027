package istio_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/istio"
)

// TestTrim checks that a trimmed VirtualService and DestinationRule answer every question the
// Router asks of them as the whole ones do, keep less, and trim to the same thing twice.
func TestTrim(t *testing.T) {
	status := map[string]any{
		"observedGeneration": "2",
		"conditions": []any{
			condition("Reconciled", "False", int64(2)),
			map[string]any{"type": "Reconciled", "status": "True", "reason": "Done", "message": "ok", "lastTransitionTime": "2026-01-01T00:00:00Z"},
			condition("Synced", "True", int64(2)),
		},
		"validationMessages": []any{map[string]any{"level": "WARNING"}},
	}
	vs := load(t, "full-config")
	vs.SetGeneration(2)
	vs.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "kubectl"}})
	vs.Object["status"] = status
	b := withRoutes(web, "primary")

	trimmed := vs.DeepCopy()
	if !istio.Trim(trimmed) {
		t.Fatal("Trim did not take a VirtualService")
	}
	if len(trimmed.GetAnnotations()) != 0 || len(trimmed.GetManagedFields()) != 0 {
		t.Error("annotations or managedFields kept")
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(trimmed.Object, "spec", "hosts"); found {
		t.Error("spec.hosts kept")
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(trimmed.Object, "status", "validationMessages"); found {
		t.Error("status.validationMessages kept")
	}
	for name, q := range map[string]func(*unstructured.Unstructured) any{
		"CurrentWeights": func(u *unstructured.Unstructured) any { w, err := istio.CurrentWeights(u, b); return []any{w, err} },
		"Accepted":       func(u *unstructured.Unstructured) any { ok, msg := istio.Accepted(u); return []any{ok, msg} },
		"SetHeaderRoute": func(u *unstructured.Unstructured) any {
			changed, err := istio.SetHeaderRoute(u.DeepCopy(), b, variantBHeader)
			return []any{changed, err}
		},
		"SetWeights": func(u *unstructured.Unstructured) any {
			changed, err := istio.SetWeights(u.DeepCopy(), b, providers.Weights{Stable: 100})
			return []any{changed, err}
		},
	} {
		if whole, cut := q(vs), q(trimmed); !equality.Semantic.DeepEqual(whole, cut) {
			t.Errorf("%s: %v on the whole VirtualService, %v on the trimmed one", name, whole, cut)
		}
	}

	dr := load(t, "destinationrule")
	hashes := istio.SubsetHashes{Stable: "a", Canary: "b"}
	trimmedDR := dr.DeepCopy()
	if !istio.Trim(trimmedDR) {
		t.Fatal("Trim did not take a DestinationRule")
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(trimmedDR.Object, "spec", "trafficPolicy"); found {
		t.Error("spec.trafficPolicy kept")
	}
	if istio.Host(trimmedDR) != istio.Host(dr) {
		t.Error("spec.host lost")
	}
	wholeProblem, _ := istio.SubsetLabelsProblem(dr, webDR, hashes)
	cutProblem, _ := istio.SubsetLabelsProblem(trimmedDR, webDR, hashes)
	if wholeProblem != cutProblem {
		t.Errorf("SubsetLabelsProblem: %q on the whole, %q on the trimmed", wholeProblem, cutProblem)
	}

	for _, u := range []*unstructured.Unstructured{trimmed, trimmedDR} {
		again := u.DeepCopy()
		istio.Trim(again)
		if !equality.Semantic.DeepEqual(again.Object, u.Object) {
			t.Errorf("trimming a trimmed %s changed it", u.GetKind())
		}
	}
	other := &unstructured.Unstructured{}
	other.SetAPIVersion("networking.istio.io/v1")
	other.SetKind("Gateway")
	if istio.Trim(other) {
		t.Error("Trim took an Istio Gateway")
	}
}
