package convert_test

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/false-systems/kulta/internal/testenv"
)

// TestConvertedRolloutsApply sends every object the golden inputs convert to a real API server
// with KULTA's, Gateway API's and Istio's CRDs (a server-side dry run): each is accepted, CEL
// rules included; every converted Rollout of each source is among them.
func TestConvertedRolloutsApply(t *testing.T) {
	for _, source := range sources {
		t.Run(source, func(t *testing.T) { applyConverted(t, source) })
	}
}

func applyConverted(t *testing.T, source string) {
	e := testenv.Require(t, env)
	ctx := context.Background()
	ns := e.CreateNamespace(t, "convert")
	rollouts := 0
	for _, path := range goldenInputs(t, source) {
		res := convertFile(t, path)
		for _, doc := range strings.Split(string(res.Outputs[0].Data), "\n---\n") {
			obj := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
				t.Fatalf("%s: output is not YAML: %v", path, err)
			}
			if obj.GetAPIVersion() == "kulta.io/v1alpha1" {
				rollouts++
			}
			if obj.GetKind() == "Namespace" {
				continue
			}
			obj.SetNamespace(ns)
			if err := e.Client.Create(ctx, obj, client.DryRunAll); err != nil {
				t.Errorf("%s: %s %s is refused: %v", path, obj.GetKind(), obj.GetName(), err)
			}
		}
	}
	if rollouts < 15 {
		t.Errorf("%d converted Rollouts applied, want one from each Rollout or Canary input", rollouts)
	}
}
