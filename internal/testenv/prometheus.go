package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// PrometheusBinEnv names the environment variable that points tests at a Prometheus server
// binary. Without it they use .cache/bin/prometheus/prometheus, which `make prometheus-bin`
// builds from Go modules.
const PrometheusBinEnv = "KULTA_PROMETHEUS_BIN"

// PrometheusScrapeInterval is how often a test Prometheus scrapes its targets.
const PrometheusScrapeInterval = time.Second

const (
	// prometheusReadyTimeout bounds the wait for /-/ready after the process starts.
	prometheusReadyTimeout = 30 * time.Second
	// prometheusStopGrace is how long a stopping server may take before it is killed.
	prometheusStopGrace = 10 * time.Second
	// prometheusLaunchAttempts covers losing the free port to another process in between.
	prometheusLaunchAttempts = 3
)

// Prometheus is a Prometheus server on a loopback port with its own TSDB, started for a test
// (StartPrometheus) or a program (LaunchPrometheus). It can be killed and started again on the
// same address and TSDB, as a crashed server would be restarted.
type Prometheus struct {
	bin     string
	config  string
	tsdb    string
	address string
	output  *LockedBuffer

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// PrometheusBinaryPath returns the Prometheus server binary: $KULTA_PROMETHEUS_BIN, else
// .cache/bin/prometheus/prometheus in the repository. The error says how to build one.
func PrometheusBinaryPath() (string, error) {
	path := os.Getenv(PrometheusBinEnv)
	if path == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", fmt.Errorf("locating the Prometheus binary: %w", err)
		}
		path = filepath.Join(root, ".cache", "bin", "prometheus", "prometheus")
	}
	info, err := os.Stat(path)
	var problem string
	switch {
	case err != nil:
		problem = err.Error()
	case info.IsDir() || info.Mode()&0o111 == 0:
		problem = "not an executable file"
	default:
		return path, nil
	}
	return "", fmt.Errorf("no Prometheus binary at %s (%s): run `make prometheus-bin` to build it, or set %s to a "+
		"Prometheus binary", path, problem, PrometheusBinEnv)
}

// PrometheusBinary returns the Prometheus server binary the tests run. It skips the test under
// `go test -short` and fails it, saying how to build one, when the binary is missing.
func PrometheusBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a real Prometheus server; skipped with -short")
	}
	path, err := PrometheusBinaryPath()
	if err != nil {
		t.Fatalf("%v; `go test -short` skips the tests that need it", err)
	}
	return path
}

// StartPrometheus starts a Prometheus server that scrapes every target (host:port, path
// /metrics) each PrometheusScrapeInterval, and waits until it answers /-/ready. The server is
// stopped, and its TSDB removed, when the test and its subtests end. Under `go test -short` the
// test is skipped; without a binary it fails (see PrometheusBinary).
//
// A ready server has not necessarily scraped yet: its first scrape of a target comes about five
// seconds after start. Tests wait for the series they need, for example with Query.
func StartPrometheus(t testing.TB, scrapeTargets ...string) *Prometheus {
	t.Helper()
	p, err := LaunchPrometheus(PrometheusBinary(t), t.TempDir(), scrapeTargets...)
	if err != nil {
		t.Fatalf("starting Prometheus: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("stopping Prometheus: %v", err)
		}
		if t.Failed() {
			t.Logf("Prometheus at %s said:\n%s", p.address, p.Output())
		}
	})
	return p
}

// LaunchPrometheus starts the server bin with its configuration and TSDB in dir, scraping every
// target each PrometheusScrapeInterval, on a free loopback port, and waits until it is ready.
// The caller stops it with Stop; dir is the caller's to remove afterwards.
func LaunchPrometheus(bin, dir string, scrapeTargets ...string) (*Prometheus, error) {
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(scrapeConfig(scrapeTargets)), 0o600); err != nil {
		return nil, fmt.Errorf("writing the Prometheus configuration: %w", err)
	}
	var errs []error
	for attempt := range prometheusLaunchAttempts {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		p := &Prometheus{
			bin:     bin,
			config:  cfg,
			tsdb:    filepath.Join(dir, fmt.Sprintf("tsdb-%d", attempt)),
			address: fmt.Sprintf("http://127.0.0.1:%d", port),
			output:  &LockedBuffer{},
		}
		err = p.launch()
		if err == nil {
			return p, nil
		}
		errs = append(errs, fmt.Errorf("attempt %d: %w", attempt+1, err))
	}
	return nil, errors.Join(errs...)
}

// scrapeConfig is the configuration of a server scraping targets every second.
func scrapeConfig(targets []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n",
		model.Duration(PrometheusScrapeInterval), model.Duration(PrometheusScrapeInterval), model.Duration(PrometheusScrapeInterval))
	b.WriteString("scrape_configs:\n  - job_name: kulta-test\n    static_configs:\n      - targets: [")
	for i, target := range targets {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", target)
	}
	b.WriteString("]\n")
	return b.String()
}

// launch starts the process on p's address and TSDB and waits until it is ready; on any failure
// the process is gone when it returns.
func (p *Prometheus) launch() error {
	cmd := exec.Command(p.bin,
		"--web.listen-address="+strings.TrimPrefix(p.address, "http://"),
		"--storage.tsdb.path="+p.tsdb,
		"--config.file="+p.config,
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = p.output, p.output
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", p.bin, err)
	}
	exited := make(chan struct{})
	go func() {
		// The exit status is in cmd.ProcessState once exited is closed; a stop ends the
		// process with a signal, so Wait's error says nothing new.
		_ = cmd.Wait()
		close(exited)
	}()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	if err := p.waitReady(cmd, exited, prometheusReadyTimeout); err != nil {
		return errors.Join(fmt.Errorf("%w; its output:\n%s", err, p.Output()), p.Stop())
	}
	return nil
}

// waitReady polls /-/ready until it answers 200, the process exits or timeout passes.
func (p *Prometheus) waitReady(cmd *exec.Cmd, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("prometheus exited before it was ready: %s", cmd.ProcessState)
		default:
		}
		resp, err := client.Get(p.address + "/-/ready")
		if err == nil {
			ready := resp.StatusCode == http.StatusOK
			if err := resp.Body.Close(); err != nil {
				return fmt.Errorf("reading %s/-/ready: %w", p.address, err)
			}
			if ready {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("prometheus at %s was not ready within %s", p.address, timeout)
}

// Address is the server's base URL, such as http://127.0.0.1:39113.
func (p *Prometheus) Address() string { return p.address }

// Output is what the server has logged so far (warnings and errors only).
func (p *Prometheus) Output() string { return p.output.String() }

// Stop terminates the server (SIGTERM, SIGKILL after ten seconds) and waits until it has
// exited. StartPrometheus arranges for it at the end of the test; calling it again is harmless.
func (p *Prometheus) Stop() error {
	return p.signal(syscall.SIGTERM)
}

// Kill ends the server at once with SIGKILL, as a crash would, and waits until it has exited.
// Restart brings it back.
func (p *Prometheus) Kill() error {
	return p.signal(syscall.SIGKILL)
}

// Restart starts a stopped or killed server again on the same address and TSDB, and waits
// until it is ready. It fails when the server is still running.
func (p *Prometheus) Restart() error {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	select {
	case <-exited:
	default:
		return fmt.Errorf("prometheus at %s is still running", p.address)
	}
	return p.launch()
}

// signal sends sig to a running server and waits until it exits, killing it when it takes
// longer than prometheusStopGrace.
func (p *Prometheus) signal(sig syscall.Signal) error {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	select {
	case <-exited:
		return nil
	default:
	}
	var errs []error
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		errs = append(errs, fmt.Errorf("signalling Prometheus: %w", err))
	}
	select {
	case <-exited:
	case <-time.After(prometheusStopGrace):
		if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, fmt.Errorf("killing Prometheus: %w", err))
		}
		<-exited
		errs = append(errs, fmt.Errorf("prometheus did not stop within %s of %s and was killed", prometheusStopGrace, sig))
	}
	return errors.Join(errs...)
}

// Query evaluates an instant PromQL query now. It returns the value of the only sample of a
// vector or the value of a scalar; ok is false when the vector is empty. Several samples are
// an error.
func (p *Prometheus) Query(ctx context.Context, query string) (value float64, ok bool, err error) {
	client, err := api.NewClient(api.Config{Address: p.address})
	if err != nil {
		return 0, false, fmt.Errorf("prometheus client for %s: %w", p.address, err)
	}
	result, _, err := promv1.NewAPI(client).Query(ctx, query, time.Now())
	if err != nil {
		return 0, false, fmt.Errorf("query %q: %w", query, err)
	}
	switch v := result.(type) {
	case model.Vector:
		switch len(v) {
		case 0:
			return 0, false, nil
		case 1:
			return float64(v[0].Value), true, nil
		}
		return 0, false, fmt.Errorf("query %q returned %d samples, want at most one", query, len(v))
	case *model.Scalar:
		return float64(v.Value), true, nil
	}
	return 0, false, fmt.Errorf("query %q returned a %s, want a vector or a scalar", query, result.Type())
}

// FreePort returns a loopback TCP port that was free a moment ago. Nothing listens on it, so
// it also serves as the address of a server that is down.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// FreeAddr returns a loopback host:port that was free a moment ago (FreePort).
func FreeAddr() (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

// handedOut holds the ports freePort has given out in this process. A port is released as soon
// as it is found, and the kernel may give it to the next listener that asks for any port: two
// parts of one test (a controller's metrics address and the Prometheus that scrapes it) were
// once handed the same port before either listened on it. No port is handed out twice.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// freePortTries bounds the search for a port not handed out before.
const freePortTries = 100

func freePort() (int, error) { return handOut(anyLoopbackPort) }

// handOut returns a port find gives that was not handed out before, and notes it.
func handOut(find func() (int, error)) (int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	for range freePortTries {
		port, err := find()
		if err != nil {
			return 0, err
		}
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("finding a loopback port not handed out before: %d tries gave ports already given", freePortTries)
}

// anyLoopbackPort is a loopback port the kernel gives a listener that asks for any, released.
func anyLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free loopback port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("releasing loopback port %d: %w", port, err)
	}
	return port, nil
}

// LockedBuffer is a bytes.Buffer that a process's output and a test may use at once.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer.
func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if err != nil {
		return n, fmt.Errorf("buffering output: %w", err)
	}
	return n, nil
}

// String returns what was written so far.
func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
