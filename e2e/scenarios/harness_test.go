//go:build e2e

package scenarios

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/false-systems/kulta/e2e/cluster"
	"github.com/false-systems/kulta/e2e/simulator"
	"github.com/false-systems/kulta/internal/testenv"
)

// badImage is the image whose Pods answer one request in ten with a 5xx status.
const badImage = "nginx:1.28-bad"

// controllerStopGrace is how long the controller may take to exit after SIGTERM.
const controllerStopGrace = 10 * time.Second

// world is everything the scenarios run against.
type world struct {
	cluster    *cluster.Cluster
	client     client.Client
	watcher    client.WithWatch
	prometheus *testenv.Prometheus
	simulator  *simulator.Simulator
}

// startWorld starts the cluster, the Gateway simulator, Prometheus (scraping the simulator and
// the controller) and the controller process; all of them stop when t ends, in reverse order.
func startWorld(ctx context.Context, t *testing.T) *world {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatalf("locating the repository: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "kulta-controller")
	built := make(chan error, 1)
	go func() { built <- buildController(ctx, root, bin) }()

	began := time.Now()
	c, err := cluster.Start(ctx, cluster.Options{})
	if err != nil {
		t.Fatalf("starting the cluster: %v", errors.Join(err, <-built))
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stopping the cluster: %v", err)
		}
	})
	t.Logf("cluster up in %s (logs in %s)", time.Since(began).Round(time.Millisecond), c.LogDir())
	if err := <-built; err != nil {
		t.Fatal(err)
	}
	watcher, err := client.NewWithWatch(c.Config(), client.Options{Scheme: c.Scheme()})
	if err != nil {
		t.Fatalf("creating a watching client: %v", err)
	}

	sim, err := simulator.Start(ctx, c.Client(), simulator.Options{
		Behaviour: map[string]simulator.Behaviour{badImage: {ErrorRatio: 0.1, Latency: 10 * time.Millisecond}},
		OnError:   func(err error) { t.Logf("gateway simulator: %v", err) },
	})
	if err != nil {
		t.Fatalf("starting the gateway simulator: %v", err)
	}
	t.Cleanup(func() {
		if err := sim.Stop(); err != nil {
			t.Errorf("stopping the gateway simulator: %v", err)
		}
	})

	metricsAddr, probeAddr := freeAddr(t), freeAddr(t)
	prom := testenv.StartPrometheus(t, sim.Target(), metricsAddr)
	startController(ctx, t, bin, c, metricsAddr, probeAddr, prom.Address())
	return &world{cluster: c, client: c.Client(), watcher: watcher, prometheus: prom, simulator: sim}
}

// buildController compiles cmd/kulta-controller into bin.
func buildController(ctx context.Context, root, bin string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/kulta-controller")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building kulta-controller: %w\n%s", err, out)
	}
	return nil
}

// startController runs the controller binary against the cluster, logging to
// kulta-controller.log in the cluster's log folder, waits until it answers /readyz, and stops
// it when t ends.
func startController(ctx context.Context, t *testing.T, bin string, c *cluster.Cluster, metricsAddr, probeAddr, promAddr string) {
	t.Helper()
	logPath := filepath.Join(c.LogDir(), "kulta-controller.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("creating the controller's log: %v", err)
	}
	cmd := exec.Command(bin, "--kubeconfig", c.Kubeconfig(),
		"--metrics-bind-address", metricsAddr, "--health-probe-bind-address", probeAddr,
		"--prometheus-address", promAddr, "--graceful-shutdown-timeout", "5s", "--zap-log-level", "info")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting kulta-controller: %v", errors.Join(err, logFile.Close()))
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		select {
		case <-exited:
			t.Errorf("kulta-controller exited before the end of the test: %v (log: %s)", waitErr, logPath)
		default:
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Errorf("signalling kulta-controller: %v", err)
			}
			select {
			case <-exited:
				if waitErr != nil {
					t.Errorf("kulta-controller did not exit cleanly: %v (log: %s)", waitErr, logPath)
				}
			case <-time.After(controllerStopGrace):
				t.Errorf("kulta-controller did not exit within %s of SIGTERM; killing it", controllerStopGrace)
				if err := cmd.Process.Kill(); err != nil {
					t.Errorf("killing kulta-controller: %v", err)
				}
				<-exited
			}
		}
		if err := logFile.Close(); err != nil {
			t.Errorf("closing the controller's log: %v", err)
		}
	})
	deadline := time.Now().Add(time.Minute)
	for !ready(ctx, "http://"+probeAddr+"/readyz") {
		select {
		case <-exited:
			t.Fatalf("kulta-controller exited at start: %v (log: %s)", waitErr, logPath)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("kulta-controller was not ready within a minute (log: %s)", logPath)
		}
	}
}

// ready reports whether url answers 200.
func ready(ctx context.Context, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	ok := resp.StatusCode == http.StatusOK
	return resp.Body.Close() == nil && ok
}

// freeAddr is a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("releasing %s: %v", addr, err)
	}
	return addr
}

// newNamespace creates a namespace named after prefix for one scenario.
func (w *world) newNamespace(ctx context.Context, t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := w.client.Create(ctx, ns); err != nil {
		t.Fatalf("creating a namespace: %v", err)
	}
	return ns.Name
}
