package harness

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	controllerReadyTimeout = 60 * time.Second
	controllerStopGrace    = 40 * time.Second
)

// ControllerBuild is how the bench builds the controller: as the Makefile's build target and
// the Dockerfile build the binary users run, statically linked and without the symbol table and
// DWARF. go build's defaults link libc dynamically when a C compiler is present, and that
// binary's pages and threads count in RSS too.
var ControllerBuild = Build{Env: []string{"CGO_ENABLED=0"}, Flags: []string{"-trimpath", "-ldflags", "-s -w"}}

// Build is a go build invocation: environment settings and flags before the output.
type Build struct {
	Env   []string
	Flags []string
}

// String renders b as a shell command line, for the results.
func (b Build) String() string {
	parts := slices.Clone(b.Env)
	parts = append(parts, "go", "build")
	for _, f := range b.Flags {
		if strings.ContainsAny(f, " \t") {
			f = strconv.Quote(f)
		}
		parts = append(parts, f)
	}
	return strings.Join(parts, " ")
}

// BuildController compiles cmd/kulta-controller from the repository at root into dir with
// ControllerBuild.
func BuildController(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "kulta-controller")
	args := append(append([]string{"build"}, ControllerBuild.Flags...), "-o", bin, "./cmd/kulta-controller")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), ControllerBuild.Env...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the controller (%s): %w: %s", ControllerBuild, err, out)
	}
	return bin, nil
}

// Controller is a running kulta-controller process.
type Controller struct {
	// PID is the process id, for /proc.
	PID int
	// MetricsURL is its /metrics address on loopback.
	MetricsURL string
	// PprofURL is its Go /debug/pprof/ on loopback (--pprof-bind-address); HeapProfileURL
	// the heap profile there, read after a collection (heap?gc=1).
	PprofURL, HeapProfileURL string

	cmd    *exec.Cmd
	exited chan struct{}
	log    *os.File

	stopOnce sync.Once
	stopErr  error
}

// ControllerOptions say how to run the controller.
type ControllerOptions struct {
	Binary     string
	Kubeconfig string
	QPS        float64
	Burst      int
	// Reconcilers is --max-concurrent-reconciles; the controller's default when zero.
	Reconcilers int
	// LogPath receives the controller's output.
	LogPath string
	// GoMemLimit, when above zero, is the controller's GOMEMLIMIT in bytes.
	GoMemLimit int64
	// ShardKey, when set, is --shard-key: the process reconciles and caches only the Rollouts
	// labelled kulta.io/shard=ShardKey.
	ShardKey string
	// LogLevel is --zap-log-level ("debug" also logs each status write and what it changed);
	// info when empty.
	LogLevel string
	// Providers, when set, is --traffic-providers: the traffic providers the process runs.
	Providers string
}

// args are the controller's command-line arguments with /metrics on metricsPort, the probes
// on probePort and Go's /debug/pprof on pprofPort, all on loopback. Each process elects a
// leader with a Lease, as the chart runs it (leaderElection.enabled): its renewals, every
// --leader-election-retry-period, are among the requests counted (in the shard's own Lease
// for a process with a shard key).
func (o ControllerOptions) args(metricsPort, probePort, pprofPort int) []string {
	args := []string{
		"--kubeconfig=" + o.Kubeconfig,
		"--leader-elect",
		"--leader-election-namespace=" + LeaseNamespace,
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probePort),
		fmt.Sprintf("--pprof-bind-address=127.0.0.1:%d", pprofPort),
		"--kube-api-qps=" + strconv.FormatFloat(o.QPS, 'f', -1, 64),
		"--kube-api-burst=" + strconv.Itoa(o.Burst),
		"--zap-log-level=" + cmp.Or(o.LogLevel, "info"),
	}
	if o.Reconcilers > 0 {
		args = append(args, "--max-concurrent-reconciles="+strconv.Itoa(o.Reconcilers))
	}
	if o.ShardKey != "" {
		args = append(args, "--shard-key="+o.ShardKey)
	}
	if o.Providers != "" {
		args = append(args, "--traffic-providers="+o.Providers)
	}
	return args
}

// LeaseNamespace holds the controllers' leader-election Leases: one the API server makes
// itself, so that nothing needs creating first.
const LeaseNamespace = "default"

// StartController runs the controller on loopback ports and waits until /readyz answers.
func StartController(o ControllerOptions) (*Controller, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(o.LogPath)
	if err != nil {
		return nil, fmt.Errorf("creating controller log: %w", err)
	}
	c := &Controller{
		MetricsURL:     fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[0]),
		PprofURL:       pprofURL(ports[2]),
		HeapProfileURL: heapProfileURL(pprofURL(ports[2])),
		exited:         make(chan struct{}), log: logFile,
	}
	c.cmd = exec.Command(o.Binary, o.args(ports[0], ports[1], ports[2])...)
	if o.GoMemLimit > 0 {
		c.cmd.Env = append(os.Environ(), "GOMEMLIMIT="+strconv.FormatInt(o.GoMemLimit, 10))
	}
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	// The controller dies with the bench if the bench is killed outright.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		return nil, errors.Join(fmt.Errorf("starting the controller: %w", err), logFile.Close())
	}
	c.PID = c.cmd.Process.Pid
	go func() {
		// The exit status is read from ProcessState after exited closes.
		_ = c.cmd.Wait()
		close(c.exited)
	}()
	if err := c.waitReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1])); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	return c, nil
}

// pprofURL is Go's /debug/pprof/ of a controller serving it on loopback port port. Its heap
// profile is read with ?gc=1: what is live after a collection, not what the runtime published
// at an earlier one.
func pprofURL(port int) string {
	return fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/", port)
}

// heapProfileURL is the heap profile under pprof (a pprofURL), read after a collection.
func heapProfileURL(pprof string) string { return pprof + "heap?gc=1" }

func (c *Controller) waitReady(url string) error {
	deadline := time.Now().Add(controllerReadyTimeout)
	hc := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-c.exited:
			return fmt.Errorf("the controller exited before it was ready: %s", c.cmd.ProcessState)
		default:
		}
		resp, err := hc.Get(url)
		if err == nil {
			ok := resp.StatusCode == http.StatusOK
			if err := resp.Body.Close(); err != nil {
				return fmt.Errorf("reading %s: %w", url, err)
			}
			if ok {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("the controller was not ready within %s", controllerReadyTimeout)
}

// Exited reports whether the process has ended.
func (c *Controller) Exited() bool {
	select {
	case <-c.exited:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, kills the process if it has not exited after a grace period, and waits.
// Calling it again returns the first call's result.
func (c *Controller) Stop() error {
	c.stopOnce.Do(func() { c.stopErr = c.stop() })
	return c.stopErr
}

func (c *Controller) stop() error {
	var errs []error
	if !c.Exited() {
		if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, fmt.Errorf("signalling the controller: %w", err))
		}
		select {
		case <-c.exited:
		case <-time.After(controllerStopGrace):
			if err := c.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
				errs = append(errs, fmt.Errorf("killing the controller: %w", err))
			}
			<-c.exited
			errs = append(errs, fmt.Errorf("the controller did not stop within %s and was killed", controllerStopGrace))
		}
	}
	if err := c.log.Close(); err != nil {
		errs = append(errs, fmt.Errorf("closing the controller log: %w", err))
	}
	return errors.Join(errs...)
}

// freePorts asks the kernel for n free loopback ports, holding all until it has them.
func freePorts(n int) (ports []int, err error) {
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			if cerr := l.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("releasing a port: %w", cerr))
			}
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Scrape fetches and parses a Prometheus /metrics endpoint with hc.
func Scrape(ctx context.Context, hc *http.Client, url string) (Samples, error) {
	data, err := get(ctx, hc, url, "scraping")
	if err != nil {
		return nil, err
	}
	ss, err := ParsePromText(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", url, err)
	}
	return ss, nil
}
