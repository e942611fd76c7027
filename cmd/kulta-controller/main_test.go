package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/testutil"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env))
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestFlags(t *testing.T) {
	if code := run(context.Background(), []string{"--version"}, nil); code != 0 {
		t.Errorf("--version exited %d", code)
	}
	if code := run(context.Background(), []string{"--no-such-flag"}, nil); code != 2 {
		t.Errorf("an unknown flag exited %d, want 2", code)
	}
	t.Setenv("KULTA_LEADER_ELECTION", "true")
	t.Setenv("POD_NAMESPACE", "kulta-system")
	o, err := parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !o.leaderElect || o.leaderElectionNS != "kulta-system" {
		t.Errorf("environment not honoured: leaderElect=%v namespace=%q", o.leaderElect, o.leaderElectionNS)
	}
}

// TestControllerRuns starts the controller as main does, against the test API server, and
// checks probes, /metrics, a reconciled Rollout and a clean shutdown.
func TestControllerRuns(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	startReadiness(t, ctx, e)

	metricsAddr, probeAddr := freeAddr(t), freeAddr(t)
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--metrics-bind-address", metricsAddr, "--health-probe-bind-address", probeAddr, "--zap-log-level", "error"}, e.Config)
	}()
	for _, path := range []string{"/healthz", "/readyz"} {
		g.Eventually(func() int { return status(probeAddr, path) }).WithTimeout(20*time.Second).Should(Equal(http.StatusOK), path)
	}

	ns := e.CreateNamespace(t, "main")
	for _, name := range []string{"web-stable", "web-canary"} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Port: 80}}}}
		g.Expect(e.Client.Create(ctx, svc)).To(Succeed())
	}
	ro := testutil.Rollout(ns, "web")
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	g.Eventually(func(g Gomega) kultav1alpha1.Phase {
		got := &kultav1alpha1.Rollout{}
		g.Expect(e.Client.Get(ctx, client.ObjectKeyFromObject(ro), got)).To(Succeed())
		return got.Status.Phase
	}).WithTimeout(20 * time.Second).Should(Equal(kultav1alpha1.PhaseCompleted))

	body := get(t, metricsAddr, "/metrics")
	g.Expect(body).To(ContainSubstring(`controller_runtime_reconcile_total{controller="rollout"`))

	cancel()
	select {
	case code := <-done:
		g.Expect(code).To(Equal(0))
	case <-time.After(35 * time.Second):
		t.Fatal("the controller did not stop within its graceful-shutdown timeout")
	}
}

func status(addr, path string) int {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0
	}
	if err := resp.Body.Close(); err != nil {
		return 0
	}
	return resp.StatusCode
}

func get(t *testing.T, addr, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(resp.Body)
	if closeErr := resp.Body.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	return string(data)
}

// startReadiness runs the ReplicaSet readiness stand-in (envtest has no kubelet) in its own
// manager until ctx ends.
func startReadiness(t *testing.T, ctx context.Context, e *testenv.Env) {
	t.Helper()
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{
		Scheme:                 e.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := testenv.AddReplicaSetReadiness(mgr, nil); err != nil {
		t.Fatal(err)
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "readiness manager:", err)
		}
	}()
}
