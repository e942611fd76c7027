package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const argoRollout = `apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web
  namespace: shop
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers: [{name: web, image: nginx:1.27}]
  strategy:
    canary:
      canaryService: web-canary
      stableService: web-stable
      steps:
        - setWeight: 50
        - experiment: {duration: 1m}
`

const configMap = `apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  a: "1"
`

// convert reads a directory recursively, writes the converted Rollout and the object it passes
// through to standard output, says on standard error what it dropped, and fails with --strict.
// With -o it writes each input file under the directory at its own path; - reads stdin.
func TestConvertCommand(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "apps", "web"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"apps/web/rollout.yaml": argoRollout, "settings.yml": configMap, "README.md": "not YAML"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"convert", "-f", dir}, &out, &errOut); code != exitOK {
		t.Fatalf("convert exited %d: %s", code, errOut.String())
	}
	for _, want := range []string{"apiVersion: kulta.io/v1alpha1", "setWeight: 50", "---\napiVersion: v1\nkind: ConfigMap"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(errOut.String(), "warning: Rollout shop/web: spec.strategy.canary.steps[1].experiment") {
		t.Errorf("stderr does not name the dropped step:\n%s", errOut.String())
	}

	out.Reset()
	errOut.Reset()
	if code := run([]string{"convert", "-f", dir, "--strict"}, &out, &errOut); code != exitFailed {
		t.Errorf("convert --strict with a warning exited %d, want %d", code, exitFailed)
	}

	target := t.TempDir()
	if code := run([]string{"convert", "-f", dir, "-o", target}, &out, &errOut); code != exitOK {
		t.Fatalf("convert -o exited %d: %s", code, errOut.String())
	}
	written, err := os.ReadFile(filepath.Join(target, "apps", "web", "rollout.yaml"))
	if err != nil || !strings.Contains(string(written), "kind: Rollout") || !strings.Contains(string(written), "kulta.io/v1alpha1") {
		t.Errorf("apps/web/rollout.yaml under -o: %q, %v", written, err)
	}
	if passed, err := os.ReadFile(filepath.Join(target, "settings.yml")); err != nil || string(passed) != configMap {
		t.Errorf("settings.yml under -o: %q, %v; want it as written", passed, err)
	}

	root := newRoot(&out)
	root.SetIn(strings.NewReader(configMap))
	root.SetOut(&out)
	out.Reset()
	root.SetArgs([]string{"convert", "-f", "-"})
	if err := root.Execute(); err != nil || out.String() != configMap {
		t.Errorf("convert -f - gave %q, %v; want the ConfigMap as written", out.String(), err)
	}

	if code := run([]string{"convert"}, &out, &errOut); code != exitError {
		t.Errorf("convert without -f exited %d, want %d", code, exitError)
	}
}
