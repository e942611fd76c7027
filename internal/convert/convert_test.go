package convert_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/false-systems/kulta/internal/convert"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// sources are the peers whose manifests testdata holds, a directory each.
var sources = []string{"argo", "flagger"}

// goldenInputs are the manifests of testdata/SOURCE, each converted on its own; at least 15 per
// source.
func goldenInputs(t *testing.T, source string) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", source, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var inputs []string
	for _, p := range paths {
		if !strings.HasSuffix(p, ".out.yaml") {
			inputs = append(inputs, p)
		}
	}
	if len(inputs) < 15 {
		t.Fatalf("%d golden inputs in testdata/%s, want at least 15", len(inputs), source)
	}
	return inputs
}

func convertFile(t *testing.T, path string) convert.Result {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := convert.Convert([]convert.Input{{Name: filepath.Base(path), Data: data}})
	if err != nil {
		t.Fatalf("converting %s: %v", path, err)
	}
	return res
}

// TestGolden converts each input and compares the output stream with NAME.out.yaml and the
// warnings with NAME.warnings; converting again gives the same bytes.
func TestGolden(t *testing.T) {
	var paths []string
	for _, source := range sources {
		paths = append(paths, goldenInputs(t, source)...)
	}
	for _, path := range paths {
		base := strings.TrimSuffix(path, ".yaml")
		t.Run(filepath.Base(filepath.Dir(base))+"/"+filepath.Base(base), func(t *testing.T) {
			res := convertFile(t, path)
			var warnings []string
			for _, w := range res.Warnings {
				warnings = append(warnings, w.String())
			}
			got := map[string]string{
				base + ".out.yaml": string(res.Outputs[0].Data),
				base + ".warnings": strings.Join(warnings, "\n") + "\n",
			}
			for file, content := range got {
				if *update {
					if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(file)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if content != string(want) {
					t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", file, content, want)
				}
			}
			again := convertFile(t, path)
			if string(again.Outputs[0].Data) != string(res.Outputs[0].Data) {
				t.Error("converting the same input again gave other bytes")
			}
		})
	}
}

// An input that is not YAML is an error naming it; nothing is converted.
func TestNotYAMLIsAnError(t *testing.T) {
	_, err := convert.Convert([]convert.Input{{Name: "broken.yaml", Data: []byte("kind: [unclosed")}})
	if err == nil || !strings.Contains(err.Error(), "broken.yaml") {
		t.Fatalf("Convert of broken YAML: %v, want an error naming broken.yaml", err)
	}
}
