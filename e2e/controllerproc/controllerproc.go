// Package controllerproc builds kulta-controller and runs it as a process against a local
// cluster, for the end-to-end scenarios and the demo: started and waited on until ready,
// stopped with SIGTERM or killed with SIGKILL as a crash would, and started again on the same
// addresses.
package controllerproc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	// readyTimeout bounds the wait for /readyz after the process starts.
	readyTimeout = time.Minute
	// StopGrace is how long the controller may take to exit after SIGTERM before Stop kills it.
	StopGrace = 10 * time.Second
)

// Build compiles the packages (such as ./cmd/kulta-controller) of the repository at root into
// the folder dir, without cgo. Cancelling ctx interrupts the build as Ctrl-C would.
func Build(ctx context.Context, root, dir string, packages ...string) error {
	args := append([]string{"build", "-o", dir + string(filepath.Separator)}, packages...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: %w\n%s", strings.Join(packages, " "), err, out)
	}
	return nil
}

// Options say how to run the controller.
type Options struct {
	// Bin is the kulta-controller binary.
	Bin string
	// Kubeconfig is the cluster's kubeconfig.
	Kubeconfig string
	// LogPath is the file the process logs to; every start appends to it.
	LogPath string
	// MetricsAddr and ProbeAddr are the host:port of /metrics and of /healthz and /readyz.
	MetricsAddr, ProbeAddr string
	// PrometheusURL is the Prometheus that Rollouts naming none are analysed with.
	PrometheusURL string
	// CDEventsURL, when set, receives the CDEvents of every transition.
	CDEventsURL string
	// LeaderElect runs with a Lease in the default namespace and short timings (4 s lease),
	// so that a standby takes over quickly.
	LeaderElect bool
	// TrafficProviders, when set, is the controller's --traffic-providers list (its default
	// is gatewayAPI alone).
	TrafficProviders []string
	// SysProcAttr, when set, is given to the process, for example to stop it with its parent.
	SysProcAttr *syscall.SysProcAttr
}

// Process is one kulta-controller process; it is not safe for concurrent use.
type Process struct {
	opts    Options
	cmd     *exec.Cmd
	log     *os.File
	exited  chan struct{}
	waitErr error
	// killed is set by Kill, so that Stop does not report the exit as a crash.
	killed bool
}

// New describes a controller process; Start runs it.
func New(opts Options) *Process { return &Process{opts: opts} }

// Name is the controller's log file name without its extension, to tell replicas apart.
func (p *Process) Name() string {
	return strings.TrimSuffix(filepath.Base(p.opts.LogPath), filepath.Ext(p.opts.LogPath))
}

// MetricsAddr is the host:port of the controller's /metrics.
func (p *Process) MetricsAddr() string { return p.opts.MetricsAddr }

// args are the controller's flags.
func (p *Process) args() []string {
	o := p.opts
	args := []string{"--kubeconfig", o.Kubeconfig,
		"--metrics-bind-address", o.MetricsAddr, "--health-probe-bind-address", o.ProbeAddr,
		"--prometheus-address", o.PrometheusURL, "--graceful-shutdown-timeout", "5s", "--zap-log-level", "info"}
	if o.CDEventsURL != "" {
		args = append(args, "--cdevents-enabled", "--cdevents-sink-url", o.CDEventsURL)
	}
	if len(o.TrafficProviders) > 0 {
		args = append(args, "--traffic-providers", strings.Join(o.TrafficProviders, ","))
	}
	if o.LeaderElect {
		args = append(args, "--leader-elect", "--leader-election-namespace", "default",
			"--leader-election-lease-duration", "4s", "--leader-election-renew-deadline", "3s",
			"--leader-election-retry-period", "500ms")
	}
	return args
}

// Start runs the process and waits until it answers /readyz (a standby replica is ready too).
// On failure the process is gone when it returns.
func (p *Process) Start(ctx context.Context) error {
	if p.Running() {
		return fmt.Errorf("%s is already running", p.Name())
	}
	logFile, err := os.OpenFile(p.opts.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening the log of %s: %w", p.Name(), err)
	}
	cmd := exec.Command(p.opts.Bin, p.args()...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = p.opts.SysProcAttr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", p.Name(), errors.Join(err, logFile.Close()))
	}
	exited := make(chan struct{})
	p.cmd, p.log, p.exited, p.killed = cmd, logFile, exited, false
	go func() {
		p.waitErr = cmd.Wait()
		close(exited)
	}()
	if err := p.waitReady(ctx); err != nil {
		p.killed = true
		return errors.Join(err, p.Stop())
	}
	return nil
}

// waitReady polls /readyz until it answers 200, the process exits, ctx ends or readyTimeout
// passes.
func (p *Process) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for !answers(ctx, "http://"+p.opts.ProbeAddr+"/readyz") {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited at start (%w); see %s", p.Name(), p.waitErr, p.opts.LogPath)
		case <-ctx.Done():
			return fmt.Errorf("%s was not ready (%w); see %s", p.Name(), context.Cause(ctx), p.opts.LogPath)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// Running reports whether the process is alive.
func (p *Process) Running() bool {
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Kill ends the process with SIGKILL, as a node failure or an OOM kill would, and waits until
// it has exited.
func (p *Process) Kill() error {
	if !p.Running() {
		return fmt.Errorf("%s is not running", p.Name())
	}
	p.killed = true
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing %s: %w", p.Name(), err)
	}
	<-p.exited
	return p.closeLog()
}

// Stop ends a running process with SIGTERM and checks that it exits cleanly within StopGrace,
// killing it otherwise. A process that ended on its own, without Kill, is reported; one never
// started or already stopped is not.
func (p *Process) Stop() error {
	if p.cmd == nil {
		return nil
	}
	select {
	case <-p.exited:
		if p.killed {
			return p.closeLog()
		}
		p.killed = true
		return errors.Join(fmt.Errorf("%s had exited on its own (%w); see %s", p.Name(), p.waitErr, p.opts.LogPath), p.closeLog())
	default:
	}
	var errs []error
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		errs = append(errs, fmt.Errorf("signalling %s: %w", p.Name(), err))
	}
	select {
	case <-p.exited:
		if p.waitErr != nil {
			errs = append(errs, fmt.Errorf("%s did not exit cleanly (%w); see %s", p.Name(), p.waitErr, p.opts.LogPath))
		}
	case <-time.After(StopGrace):
		errs = append(errs, fmt.Errorf("%s did not exit within %s of SIGTERM and was killed; see %s", p.Name(), StopGrace, p.opts.LogPath))
		if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, fmt.Errorf("killing %s: %w", p.Name(), err))
		}
		<-p.exited
	}
	p.killed = true
	return errors.Join(append(errs, p.closeLog())...)
}

// closeLog closes the log file of the last run.
func (p *Process) closeLog() error {
	if p.log == nil {
		return nil
	}
	err := p.log.Close()
	p.log = nil
	if err != nil {
		return fmt.Errorf("closing the log of %s: %w", p.Name(), err)
	}
	return nil
}

// Leading reports whether the process holds the leader-election Lease, from its own
// leader_election_master_status metric. Without leader election a running process leads.
func (p *Process) Leading(ctx context.Context) bool {
	if !p.Running() {
		return false
	}
	if !p.opts.LeaderElect {
		return true
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.opts.MetricsAddr+"/metrics", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	body, err := io.ReadAll(resp.Body)
	if errors.Join(err, resp.Body.Close()) != nil {
		return false
	}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "leader_election_master_status{") && strings.HasSuffix(line, " 1") {
			return true
		}
	}
	return false
}

// answers reports whether url answers 200.
func answers(ctx context.Context, url string) bool {
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
