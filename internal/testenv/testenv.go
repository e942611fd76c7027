package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	kultascheme "github.com/false-systems/kulta/internal/scheme"
)

// Env is a running API server with the CRDs installed.
type Env struct {
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Client is a direct (uncached) client with Scheme.
	Client client.Client
	// Scheme knows the core kinds, KULTA's kinds and Gateway API's kinds.
	Scheme *runtime.Scheme
	// RepoRoot is the repository's top folder.
	RepoRoot string

	env *envtest.Environment
	// beforeStop runs, last added first, before the API server stops (BeforeStop).
	beforeStop []func() error
}

// BeforeStop has Main run stop, once the tests are done, before it stops the API server: for
// a manager a setup started, so that it has stopped (its informers' watches closed) before the
// API server it talks to goes.
func (e *Env) BeforeStop(stop func() error) { e.beforeStop = append(e.beforeStop, stop) }

// Start starts etcd and kube-apiserver and installs the CRDs: KULTA's and the standard Gateway
// API CRDs of the gateway-api module this repository requires. Call Stop when done.
func Start() (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	gatewayCRDs, err := GatewayAPICRDDir(root)
	if err != nil {
		return nil, err
	}
	return StartWithGatewayAPI(gatewayCRDs)
}

// StartWithGatewayAPI is Start with the Gateway API CRDs of the folder gatewayCRDs, such as
// another release's from GatewayAPICRDDirAt.
func StartWithGatewayAPI(gatewayCRDs string) (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, ".cache", "bin", "k8s")
	}
	for _, bin := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			return nil, fmt.Errorf("%s not found in %s: run `make envtest-bin` first: %w", bin, assets, err)
		}
	}
	scheme, err := kultascheme.New()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths: []string{
			filepath.Join(root, "charts", "kulta", "crds"),
			gatewayCRDs,
		},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest API server: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("creating client: %w", err), env.Stop())
	}
	return &Env{Config: cfg, Client: c, Scheme: scheme, RepoRoot: root, env: env}, nil
}

// Stop stops the API server and etcd.
func (e *Env) Stop() error {
	if err := e.env.Stop(); err != nil {
		return fmt.Errorf("stopping envtest API server: %w", err)
	}
	return nil
}

// Environment returns the underlying envtest environment, for AddUser and the like.
func (e *Env) Environment() *envtest.Environment { return e.env }

// Main runs a package's tests against one API server that it starts first and stops last.
// Use it from TestMain: `func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }`.
// Each setup function runs after the API server is up, with a context that is cancelled once
// the tests are done (before the API server stops); use it to start managers.
// Under `go test -short` it starts nothing and *out stays nil; tests call Require to skip then.
func Main(m *testing.M, out **Env, setups ...func(context.Context, *Env) error) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	env, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*out = env
	ctx, cancel := context.WithCancel(context.Background())
	code := 0
	for _, setup := range setups {
		if err := setup(ctx, env); err != nil {
			fmt.Fprintln(os.Stderr, "test setup:", err)
			code = 1
			break
		}
	}
	if code == 0 {
		code = m.Run()
	}
	cancel()
	for i := len(env.beforeStop) - 1; i >= 0; i-- {
		if err := env.beforeStop[i](); err != nil {
			fmt.Fprintln(os.Stderr, "test teardown:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Require returns env, or skips the test when no API server was started (under -short).
func Require(t testing.TB, env *Env) *Env {
	t.Helper()
	if env == nil {
		t.Skip("needs the envtest API server, which is not started under -short")
	}
	return env
}

// CreateNamespace creates a namespace with a generated name for one test and deletes it when
// the test ends. envtest runs no namespace controller, so the deletion only marks it.
func (e *Env) CreateNamespace(t testing.TB, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := e.Client.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Client.Delete(context.Background(), ns); err != nil {
			t.Errorf("deleting namespace %s: %v", ns.Name, err)
		}
	})
	return ns.Name
}

// RepoRoot finds the repository's top folder: the nearest parent of the working directory with
// a go.mod for module github.com/false-systems/kulta.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding repository root: %w", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(data), "module github.com/false-systems/kulta\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod for github.com/false-systems/kulta above the working directory")
		}
		dir = parent
	}
}

// GatewayAPICRDDir is the standard-channel CRD folder of the gateway-api module this
// repository requires, from the module cache.
func GatewayAPICRDDir(root string) (string, error) {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("locating the gateway-api module (go list): %w", err)
	}
	return standardCRDs(strings.TrimSpace(string(out)))
}

// GatewayAPICRDDirAt is the standard-channel CRD folder of gateway-api release version, such as
// v1.0.0, from the module cache. `go mod download` fetches the release through the Go module
// proxy when the cache lacks it; it changes neither go.mod nor go.sum. root is the repository's
// top folder, where the go command runs.
func GatewayAPICRDDirAt(root, version string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", "sigs.k8s.io/gateway-api@"+version)
	cmd.Dir = root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	// The go command describes a failed download in the JSON's Error field.
	var module struct{ Dir, Error string }
	if jsonErr := json.Unmarshal(out, &module); jsonErr != nil && err == nil {
		return "", fmt.Errorf("reading `go mod download` output for gateway-api %s: %w", version, jsonErr)
	}
	if err == nil && module.Error != "" {
		err = errors.New(module.Error)
	}
	if err != nil {
		detail := module.Error
		if detail == "" {
			detail = strings.TrimSpace(stderr.String())
		}
		return "", fmt.Errorf("downloading gateway-api %s with `go mod download` (%s): %w", version, detail, err)
	}
	return standardCRDs(module.Dir)
}

// standardCRDs is the standard-channel CRD folder of a gateway-api module folder.
func standardCRDs(moduleDir string) (string, error) {
	dir := filepath.Join(moduleDir, "config", "crd", "standard")
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("gateway-api CRDs: %w", err)
	}
	return dir, nil
}
