package cluster

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Binary names, as `make envtest-bin` and `make cluster-bin` put them in the bin folder.
const (
	binEtcd              = "etcd"
	binAPIServer         = "kube-apiserver"
	binControllerManager = "kube-controller-manager"
	binScheduler         = "kube-scheduler"
	binKubectl           = "kubectl"
	binKwok              = "kwok"
)

// requiredBinaries are every binary Start runs, plus kubectl, which users of the cluster (the
// demo, kubectl-kulta tests) run against Kubeconfig.
var requiredBinaries = []string{binEtcd, binAPIServer, binControllerManager, binScheduler, binKubectl, binKwok}

// kwokStages are the kwok stage files, relative to the kwok module, that make the fake Node
// Ready and keep its lease fresh, and that take Pods through completion and deletion.
var kwokStages = []string{
	"kustomize/stage/node/fast/node-initialize.yaml",
	"kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
	"kustomize/stage/pod/fast/pod-complete.yaml",
	"kustomize/stage/pod/fast/pod-delete.yaml",
}

// ownStages are the stage files of this repository, relative to its root: the Pod-ready stage
// that replaces kwok's fast one, delaying only Pods that carry PodReadyDelayAnnotation.
var ownStages = []string{
	"e2e/cluster/testdata/pod-ready.yaml",
}

// binDir is the folder with the cluster's binaries: opts.BinDir, else $KUBEBUILDER_ASSETS, else
// .cache/bin/k8s in the repository, made absolute.
func binDir(optsDir, root string) (string, error) {
	dir := optsDir
	if dir == "" {
		dir = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if dir == "" {
		dir = filepath.Join(root, ".cache", "bin", "k8s")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("cluster binaries folder %s: %w", dir, err)
	}
	return abs, nil
}

// checkBinaries fails, naming every missing binary, unless all of requiredBinaries are
// executable files in dir.
func checkBinaries(dir string) error {
	var missing []string
	for _, name := range requiredBinaries {
		info, err := os.Stat(filepath.Join(dir, name))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, name)
		case err != nil:
			return fmt.Errorf("checking %s: %w", filepath.Join(dir, name), err)
		case !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0:
			missing = append(missing, name+" (not an executable file)")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("cluster binaries missing in %s: %s; run `make cluster-bin` first",
			dir, strings.Join(missing, ", "))
	}
	return nil
}

// moduleDir is the module cache folder of module mod as required by the Go module in dir.
func moduleDir(dir, mod string) (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", mod)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating module %s from %s (go list -m): %w: %s",
			mod, dir, err, strings.TrimSpace(stderr.String()))
	}
	modDir := strings.TrimSpace(string(out))
	if modDir == "" {
		return "", fmt.Errorf("module %s is not in the module cache; run `make cluster-bin` first", mod)
	}
	return modDir, nil
}

// stageFiles are the kwok stage files from the kwok module that hack/k8s pins, followed by the
// repository's own.
func stageFiles(root string) ([]string, error) {
	kwokDir, err := moduleDir(filepath.Join(root, "hack", "k8s"), "sigs.k8s.io/kwok")
	if err != nil {
		return nil, err
	}
	files := make([]string, 0, len(kwokStages)+len(ownStages))
	for _, rel := range kwokStages {
		files = append(files, filepath.Join(kwokDir, filepath.FromSlash(rel)))
	}
	for _, rel := range ownStages {
		files = append(files, filepath.Join(root, filepath.FromSlash(rel)))
	}
	for _, file := range files {
		if _, err := os.Stat(file); err != nil {
			return nil, fmt.Errorf("kwok stage: %w", err)
		}
	}
	return files, nil
}
