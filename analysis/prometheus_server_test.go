package analysis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// prometheusBinEnv names the environment variable that points the integration tests at a
// Prometheus server binary; by default they use the one `make prometheus-bin` builds.
const prometheusBinEnv = "KULTA_PROMETHEUS_BIN"

// prometheusBinary returns the Prometheus binary, skipping under -short and failing with
// instructions when it is missing.
func prometheusBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test against a real Prometheus server; skipped with -short")
	}
	path := os.Getenv(prometheusBinEnv)
	if path == "" {
		root, err := repoRoot()
		if err != nil {
			t.Fatalf("finding the repository root: %v", err)
		}
		path = filepath.Join(root, ".cache", "bin", "prometheus", "prometheus")
	}
	info, err := os.Stat(path)
	problem := ""
	switch {
	case err != nil:
		problem = err.Error()
	case info.IsDir() || info.Mode()&0o111 == 0:
		problem = "not an executable file"
	default:
		return path
	}
	t.Fatalf("no Prometheus binary at %s (%s): run `make prometheus-bin` to build it, or set %s "+
		"to a Prometheus binary; `go test -short` skips this test", path, problem, prometheusBinEnv)
	return ""
}

// repoRoot walks up from the working directory to the directory holding KULTA's go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(data, []byte("module github.com/false-systems/kulta\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of module github.com/false-systems/kulta above the working directory")
		}
		dir = parent
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// prometheusProcess is a running Prometheus server.
type prometheusProcess struct {
	URL    string
	cmd    *exec.Cmd
	exited chan struct{}
	output *syncBuffer
}

// startPrometheus runs bin scraping target (host:port) every second and waits until it is
// ready. The server is stopped when the test ends.
func startPrometheus(t *testing.T, bin, target string) *prometheusProcess {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	writeFile(t, cfg, fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: kulta-analysis-test
    static_configs:
      - targets: [%q]
`, target))
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		p, err := launchPrometheus(t, bin, cfg, filepath.Join(dir, fmt.Sprintf("tsdb-%d", attempt)))
		if err == nil {
			return p
		}
		lastErr = err
	}
	t.Fatalf("starting Prometheus: %v", lastErr)
	return nil
}

// launchPrometheus starts one Prometheus process on a fresh port and waits for /-/ready.
func launchPrometheus(t *testing.T, bin, cfg, tsdb string) (*prometheusProcess, error) {
	t.Helper()
	port := freePort(t)
	p := &prometheusProcess{URL: fmt.Sprintf("http://127.0.0.1:%d", port), exited: make(chan struct{}), output: &syncBuffer{}}
	p.cmd = exec.Command(bin,
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
		"--storage.tsdb.path="+tsdb,
		"--config.file="+cfg,
		"--log.level=warn")
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("running %s: %w", bin, err)
	}
	go func() {
		// The exit status is reported through p.exited; a stop at cleanup is expected.
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() { p.stop(t) })
	if err := p.waitReady(30 * time.Second); err != nil {
		p.stop(t)
		return nil, fmt.Errorf("%w\nPrometheus output:\n%s", err, p.output.String())
	}
	return p, nil
}

// waitReady polls /-/ready until it answers 200, the process exits or the time is up.
func (p *prometheusProcess) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("prometheus exited before it was ready: %v", p.cmd.ProcessState)
		default:
		}
		resp, err := client.Get(p.URL + "/-/ready")
		if err == nil {
			ready := resp.StatusCode == http.StatusOK
			if cerr := resp.Body.Close(); cerr != nil {
				return fmt.Errorf("reading /-/ready: %w", cerr)
			}
			if ready {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("prometheus at %s was not ready within %s", p.URL, timeout)
}

// stop terminates the process (SIGTERM, then SIGKILL after 10s) and waits for it. Calling it
// again is harmless.
func (p *prometheusProcess) stop(t *testing.T) {
	select {
	case <-p.exited:
		return
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("stopping Prometheus: %v", err)
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			t.Errorf("killing Prometheus: %v", err)
		}
		<-p.exited
	}
	if t.Failed() {
		t.Logf("Prometheus output:\n%s", p.output.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the process's writers and the test's readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serviceTraffic describes the synthetic traffic of one service.
type serviceTraffic struct {
	service    string
	perTick    int           // requests every 100ms
	errorEvery int           // every n-th request is a 5xx; 0 for none
	latency    time.Duration // of every request
	idle       bool          // series exist but never grow
}

// testApp is an HTTP server exposing request metrics for synthetic services, the way an
// instrumented application does, with traffic generated every 100ms until the test ends.
type testApp struct {
	namespace string
	requests  *prometheus.CounterVec
	durations *prometheus.HistogramVec
	server    *httptest.Server
}

// startTestApp starts the metrics endpoint and the traffic generator.
func startTestApp(t *testing.T, namespace string, services []serviceTraffic) *testApp {
	t.Helper()
	registry := prometheus.NewRegistry()
	app := &testApp{
		namespace: namespace,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", Help: "Responses by status code.",
		}, []string{"namespace", "service", "code"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds", Help: "Response latency.", Buckets: prometheus.DefBuckets,
		}, []string{"namespace", "service"}),
	}
	registry.MustRegister(app.requests, app.durations)
	app.server = httptest.NewServer(promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	t.Cleanup(app.server.Close)

	for _, s := range services {
		if s.idle {
			app.requests.WithLabelValues(namespace, s.service, "200")
			app.durations.WithLabelValues(namespace, s.service)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go app.generate(ctx, services, done)
	t.Cleanup(func() { cancel(); <-done })
	return app
}

// generate records requests every 100ms until ctx ends.
func (a *testApp) generate(ctx context.Context, services []serviceTraffic, done chan<- struct{}) {
	defer close(done)
	counts := make([]int, len(services))
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	for {
		for i, s := range services {
			for range s.perTick {
				counts[i]++
				code := "200"
				if s.errorEvery > 0 && counts[i]%s.errorEvery == 0 {
					code = []string{"500", "503"}[(counts[i]/s.errorEvery)%2]
				}
				a.requests.WithLabelValues(a.namespace, s.service, code).Inc()
				a.durations.WithLabelValues(a.namespace, s.service).Observe(s.latency.Seconds())
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// target is the host:port Prometheus scrapes.
func (a *testApp) target() string {
	return strings.TrimPrefix(a.server.URL, "http://")
}
