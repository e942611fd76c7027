package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// IstioCRDFile is the file of Istio's CRDs (kubernetes/customresourcedefinitions.gen.yaml, every
// Istio kind in one multi-document file) in the istio.io/api module this repository requires,
// from the module cache. root is the repository's top folder, where the go command runs.
func IstioCRDFile(root string) (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "istio.io/api")
	cmd.Dir = root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating the istio.io/api module (go list: %s): %w", strings.TrimSpace(stderr.String()), err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("the istio.io/api module is not in the module cache: run `go mod download istio.io/api`")
	}
	file := filepath.Join(dir, "kubernetes", "customresourcedefinitions.gen.yaml")
	if _, err := os.Stat(file); err != nil {
		return "", fmt.Errorf("istio CRDs: %w", err)
	}
	return file, nil
}

// InstallIstio installs Istio's CRDs (IstioCRDFile) into env's running API server, waits until
// they are served, and adds Istio's networking.istio.io/v1 kinds to env.Scheme, so env.Client
// reads and writes typed VirtualServices and DestinationRules. It is a setup for Main:
// `testenv.Main(m, &env, testenv.InstallIstio)`. Other packages' API servers stay without
// Istio's CRDs.
func InstallIstio(ctx context.Context, env *Env) error {
	file, err := IstioCRDFile(env.RepoRoot)
	if err != nil {
		return err
	}
	if err := istionetworkingv1.AddToScheme(env.Scheme); err != nil {
		return fmt.Errorf("adding Istio's networking kinds to the scheme: %w", err)
	}
	opts := envtest.CRDInstallOptions{
		Paths:              []string{file},
		ErrorIfPathMissing: true,
		Scheme:             env.Scheme,
		MaxTime:            time.Minute,
	}
	if deadline, ok := ctx.Deadline(); ok {
		opts.MaxTime = time.Until(deadline)
	}
	if _, err := envtest.InstallCRDs(env.Config, opts); err != nil {
		return fmt.Errorf("installing Istio's CRDs from %s: %w", file, err)
	}
	return nil
}
