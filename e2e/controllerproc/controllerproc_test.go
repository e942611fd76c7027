package controllerproc

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A binary that exits at once is reported with its log, leaves nothing running, and can be
// neither killed nor stopped into an error afterwards.
func TestStartReportsAnExitAtStart(t *testing.T) {
	bin, err := exec.LookPath("false")
	if err != nil {
		t.Skip("no false binary on this machine")
	}
	log := filepath.Join(t.TempDir(), "kulta-controller-0.log")
	p := New(Options{Bin: bin, LogPath: log, MetricsAddr: "127.0.0.1:1", ProbeAddr: "127.0.0.1:1"})
	if p.Name() != "kulta-controller-0" {
		t.Errorf("name %q, want kulta-controller-0", p.Name())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = p.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "exited at start") || !strings.Contains(err.Error(), log) {
		t.Fatalf("Start of a binary that exits: %v, want an error saying it exited and naming its log", err)
	}
	if p.Running() {
		t.Error("running after a failed start")
	}
	if err := p.Kill(); err == nil {
		t.Error("Kill of a process that is not running succeeded")
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop after a failed start: %v", err)
	}
	if p.Leading(ctx) {
		t.Error("a process that is not running leads")
	}
}

func TestArgs(t *testing.T) {
	p := New(Options{Kubeconfig: "kc", MetricsAddr: "m", ProbeAddr: "h", PrometheusURL: "http://prom"})
	got := strings.Join(p.args(), " ")
	for _, want := range []string{"--kubeconfig kc", "--metrics-bind-address m", "--health-probe-bind-address h", "--prometheus-address http://prom"} {
		if !strings.Contains(got, want) {
			t.Errorf("args %q lack %q", got, want)
		}
	}
	if strings.Contains(got, "--leader-elect") || strings.Contains(got, "--cdevents") || strings.Contains(got, "--traffic-providers") {
		t.Errorf("args %q enable leader election, CDEvents or traffic providers without being asked", got)
	}
	p = New(Options{CDEventsURL: "http://sink", LeaderElect: true, TrafficProviders: []string{"gatewayAPI", "istio"}})
	got = strings.Join(p.args(), " ")
	for _, want := range []string{"--cdevents-enabled --cdevents-sink-url http://sink", "--leader-elect ", "--leader-election-lease-duration 4s", "--traffic-providers gatewayAPI,istio"} {
		if !strings.Contains(got, want) {
			t.Errorf("args %q lack %q", got, want)
		}
	}
}
