package testutil

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// HelmVersion is the helm release `make helm-bin` builds; HelmBinary falls back to it.
const HelmVersion = "v3.22.0"

// HelmBinary is the helm binary the chart tests run: $KULTA_HELM, which the Makefile sets to
// the one it builds from Go modules, or that build's place under root when run by hand.
func HelmBinary(root string) (string, error) {
	bin := os.Getenv("KULTA_HELM")
	if bin == "" {
		bin = filepath.Join(root, ".cache", "bin", "helm-"+HelmVersion)
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("helm not found at %s: run `make helm-bin` first: %w", bin, err)
	}
	return bin, nil
}

// Helm runs helm with args in root, the repository's top folder, with its cache, config and
// data in scratch (a folder of the caller's, such as t.TempDir()), and returns what it
// printed. A failure names the arguments and carries helm's own message.
func Helm(root, scratch string, args ...string) (string, error) {
	bin, err := HelmBinary(root)
	if err != nil {
		return "", err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(scratch, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(scratch, "config"), "HELM_DATA_HOME="+filepath.Join(scratch, "data"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}
