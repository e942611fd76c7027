package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
	// The environment variables of KULTA's first controller keep working.
	t.Setenv("KULTA_LEADER_ELECTION", "true")
	t.Setenv("POD_NAMESPACE", "kulta-system")
	t.Setenv("KULTA_PROMETHEUS_ADDRESS", "http://prometheus.monitoring:9090")
	t.Setenv("KULTA_CDEVENTS_ENABLED", "true")
	t.Setenv("KULTA_CDEVENTS_SINK_URL", "http://broker.delivery/cdevents")
	t.Setenv("KULTA_OCCURRENCE_DIR", "/var/lib/kulta/occurrences")
	o, err := parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !o.leaderElect || o.leaderElectionNS != "kulta-system" {
		t.Errorf("environment not honoured: leaderElect=%v namespace=%q", o.leaderElect, o.leaderElectionNS)
	}
	if o.prometheus.address != "http://prometheus.monitoring:9090" || !o.events.cdeventsEnabled ||
		o.events.cdeventsSinkURL != "http://broker.delivery/cdevents" || o.events.occurrenceDir != "/var/lib/kulta/occurrences" {
		t.Errorf("environment not honoured: %+v %+v", o.prometheus, o.events)
	}
	if o.pprofAddr != "0" {
		t.Errorf("--pprof-bind-address defaults to %q, want 0 (disabled)", o.pprofAddr)
	}
	t.Setenv("KULTA_PPROF_BIND_ADDRESS", "127.0.0.1:6060")
	if o, err := parse(nil); err != nil || o.pprofAddr != "127.0.0.1:6060" {
		t.Errorf("KULTA_PPROF_BIND_ADDRESS not honoured: %v, error %v", o, err)
	}
	if o.workers != 16 {
		t.Errorf("--max-concurrent-reconciles defaults to %d, want 16", o.workers)
	}
	if o, err := parse([]string{"--max-concurrent-reconciles=10"}); err != nil || o.workers != 10 {
		t.Errorf("--max-concurrent-reconciles=10: workers %v, error %v", o, err)
	}
	if code := run(context.Background(), []string{"--max-concurrent-reconciles=0"}, nil); code != 2 {
		t.Errorf("--max-concurrent-reconciles=0 exited %d, want 2", code)
	}
	if o.memLimitRatio != 0.9 {
		t.Errorf("--auto-gomemlimit-ratio defaults to %g, want 0.9", o.memLimitRatio)
	}
	for _, bad := range []string{"-0.1", "1.5"} {
		if code := run(context.Background(), []string{"--auto-gomemlimit-ratio=" + bad}, nil); code != 2 {
			t.Errorf("--auto-gomemlimit-ratio=%s exited %d, want 2", bad, code)
		}
	}
	if !slices.Equal(o.providers, []string{"gatewayAPI"}) {
		t.Errorf("--traffic-providers defaults to %v, want gatewayAPI", o.providers)
	}
	if o, err := parse([]string{"--traffic-providers= nginx,gatewayAPI,nginx"}); err != nil || !slices.Equal(o.providers, []string{"nginx", "gatewayAPI"}) {
		t.Errorf("--traffic-providers=nginx,gatewayAPI,nginx: %v, error %v", o, err)
	}
	if _, err := parse([]string{"--traffic-providers=gatewayAPI,traefik"}); err == nil || !strings.Contains(err.Error(), `unknown provider "traefik"`) {
		t.Errorf("--traffic-providers=traefik: error %v, want one naming the unknown provider", err)
	}
	if !o.rolloutSelector.Empty() || o.leaderElectionID != "kulta-controller.kulta.io" {
		t.Errorf("unsharded: selector %q, lease %q; want every Rollout and the default Lease", o.rolloutSelector, o.leaderElectionID)
	}
	if o, err := parse([]string{"--shard-key=shard-1"}); err != nil || o.rolloutSelector.String() != "kulta.io/shard=shard-1" || o.leaderElectionID != "kulta-controller-shard-1.kulta.io" {
		t.Errorf("--shard-key=shard-1: %v, error %v; want selector kulta.io/shard=shard-1 and the shard's own Lease", o, err)
	}
	if o, err := parse([]string{"--shard-key=a", "--leader-election-id=mine"}); err != nil || o.leaderElectionID != "mine" {
		t.Errorf("an explicit --leader-election-id with a shard key: %v, error %v; want it kept", o, err)
	}
	if o, err := parse([]string{"--watch-label-selector=!kulta.io/shard"}); err != nil || o.rolloutSelector.String() != "!kulta.io/shard" {
		t.Errorf("--watch-label-selector=!kulta.io/shard: %v, error %v", o, err)
	}
	for args, want := range map[string]string{
		"--shard-key=a --watch-label-selector=team=x": "both set",
		"--shard-key=not/a/value":                     `--shard-key "not/a/value" is not a label value`,
		"--watch-label-selector=a==b==c":              `--watch-label-selector "a==b==c"`,
	} {
		if _, err := parse(strings.Fields(args)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one saying %q", args, err, want)
		}
	}
	if code := run(context.Background(), []string{"--cdevents-enabled", "--cdevents-sink-url", ""}, &rest.Config{Host: "http://127.0.0.1:1"}); code != 1 {
		t.Errorf("CDEvents without a sink exited %d, want 1", code)
	}
}

// TestControllerRuns starts the controller as main does, against the test API server, and
// checks probes, /metrics, a reconciled Rollout and a clean shutdown.
func TestControllerRuns(t *testing.T) {
	e := testenv.Require(t, env)
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	startStandIns(t, ctx, e)

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
	ro := testutil.Rollout(ns, "web", testutil.WithReplicas(4),
		testutil.WithCanarySteps(testutil.Weight(25), testutil.PauseUntilPromoted(), testutil.Weight(50), testutil.PauseUntilPromoted()))
	g.Expect(e.Client.Create(ctx, ro)).To(Succeed())
	series := func(name string) string {
		return fmt.Sprintf(`%s{namespace=%q,rollout="web"}`, name, ns)
	}
	info := func(phase string) string {
		return fmt.Sprintf(`kulta_rollout_info{namespace=%q,phase=%q,rollout="web",strategy="canary"} 1`, ns, phase)
	}
	scrape := func() string { return get(t, metricsAddr, "/metrics") }
	g.Eventually(scrape).WithTimeout(20 * time.Second).Should(ContainSubstring(info("Completed")))
	g.Expect(scrape()).To(ContainSubstring(`controller_runtime_reconcile_total{controller="rollout"`))

	// The series follow the rollout: step 1 at 25 %, then step 3 at 50 %.
	patch := client.RawPatch(types.JSONPatchType, []byte(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"nginx:1.28"}]`))
	g.Expect(e.Client.Patch(ctx, ro, patch)).To(Succeed())
	g.Eventually(scrape).WithTimeout(20 * time.Second).Should(And(
		ContainSubstring(info("Paused")), ContainSubstring(series("kulta_rollout_step")+" 1"), ContainSubstring(series("kulta_rollout_canary_weight")+" 25")))
	g.Expect(scrape()).NotTo(ContainSubstring(info("Completed")), "one info series per Rollout")
	promote := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"kulta.io/promote":"true"}}}`))
	g.Expect(e.Client.Patch(ctx, ro, promote)).To(Succeed())
	g.Eventually(scrape).WithTimeout(20 * time.Second).Should(And(
		ContainSubstring(series("kulta_rollout_step")+" 3"), ContainSubstring(series("kulta_rollout_canary_weight")+" 50")))
	g.Eventually(scrape).WithTimeout(20 * time.Second).Should(ContainSubstring(fmt.Sprintf(`kulta_rollout_transitions_total{kind="step",namespace=%q,reason="ManualPromotion",rollout="web"} 1`, ns)))
	g.Expect(scrape()).To(ContainSubstring(series("kulta_rollout_paused_seconds_total")), "the ended pause is counted")

	// A deleted Rollout's series disappear.
	g.Expect(e.Client.Delete(ctx, ro)).To(Succeed())
	webSeries := func() []string {
		var left []string
		for _, line := range strings.Split(scrape(), "\n") {
			// Other tests' Rollouts named web live in other namespaces.
			if strings.Contains(line, `rollout="web"`) && strings.Contains(line, fmt.Sprintf(`namespace=%q`, ns)) {
				left = append(left, line)
			}
		}
		return left
	}
	g.Eventually(webSeries).WithTimeout(20*time.Second).Should(BeEmpty(), "a deleted Rollout's series disappear")

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

// httpGet returns the body of a 200 response.
func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	data, err := io.ReadAll(resp.Body)
	if closeErr := resp.Body.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	return string(data), nil
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
