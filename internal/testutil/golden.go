package testutil

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Golden compares got with the file at path, or writes got there first when update is set
// (the package's -update flag). rerun is the command that regenerates the file, for the
// failure message.
func Golden(t *testing.T, path string, got []byte, update bool, rerun string) {
	t.Helper()
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run `%s` to create it): %v", rerun, err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs (run `%s` and review the diff):\n got:\n%s\nwant:\n%s", path, rerun, got, want)
	}
}

// ReadUnstructured reads one YAML object from path.
func ReadUnstructured(t testing.TB, path string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(js); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return obj
}
