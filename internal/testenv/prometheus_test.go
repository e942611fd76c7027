package testenv

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// TestPrometheusKillAndRestart checks that a killed server stops answering at once and that
// Restart brings it back on the same address with the samples it had already stored.
func TestPrometheusKillAndRestart(t *testing.T) {
	app := StartTrafficApp(t)
	app.Set("ns", "svc", Traffic{RPS: 50})
	p := StartPrometheus(t, app.Target())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const query = `count_over_time(up{job="kulta-test"}[10m])`
	before := waitSamples(ctx, t, p, query, 2)

	if err := p.Kill(); err != nil {
		t.Fatalf("killing Prometheus: %v", err)
	}
	host := strings.TrimPrefix(p.Address(), "http://")
	if conn, err := net.DialTimeout("tcp", host, time.Second); err == nil {
		t.Errorf("something still listens on %s after Kill", host)
		if err := conn.Close(); err != nil {
			t.Errorf("closing: %v", err)
		}
	}
	if _, _, err := p.Query(ctx, query); err == nil {
		t.Fatal("a query to a killed Prometheus succeeded")
	}
	if err := p.Restart(); err != nil {
		t.Fatalf("restarting Prometheus: %v", err)
	}
	if err := p.Restart(); err == nil {
		t.Error("Restart of a running server succeeded, want an error")
	}
	after := waitSamples(ctx, t, p, query, before)
	t.Logf("%v samples of up before the kill, %v after the restart", before, after)
}

// waitSamples polls query until it returns at least want and returns the value.
func waitSamples(ctx context.Context, t *testing.T, p *Prometheus, query string, want float64) float64 {
	t.Helper()
	for {
		v, ok, err := p.Query(ctx, query)
		if err == nil && ok && v >= want {
			return v
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s never reached %v (last %v, %v, %v)", query, want, v, ok, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// A port the kernel gives again, released a moment ago, is not handed out a second time: the
// next one is. One that keeps coming back is an error after freePortTries.
func TestFreePortNeverHandsOutAPortTwice(t *testing.T) {
	kernel := []int{1, 1, 2}
	next := func() (int, error) {
		port := kernel[0]
		if len(kernel) > 1 {
			kernel = kernel[1:]
		}
		return port, nil
	}
	first, err := handOut(next)
	if err != nil || first != 1 {
		t.Fatalf("first port %d (error %v), want 1", first, err)
	}
	second, err := handOut(next)
	if err != nil || second != 2 {
		t.Fatalf("second port %d (error %v), want 2, not 1 again", second, err)
	}
	if port, err := handOut(func() (int, error) { return 2, nil }); err == nil {
		t.Errorf("a kernel that keeps giving port 2 handed out %d", port)
	}
}
