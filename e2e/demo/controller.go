package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

const (
	// controllerReadyTimeout bounds the wait for the controller's /readyz.
	controllerReadyTimeout = time.Minute
	// controllerStopGrace is how long the controller may take to exit after SIGTERM.
	controllerStopGrace = 10 * time.Second
)

// controllerConfig is how to run kulta-controller against the cluster.
type controllerConfig struct {
	bin           string
	kubeconfig    string
	logDir        string
	metricsAddr   string
	probeAddr     string
	prometheusURL string
}

// controllerProcess is a running kulta-controller.
type controllerProcess struct {
	metricsAddr string
	probeAddr   string
	logPath     string
	cmd         *exec.Cmd
	log         *os.File
	// exited is closed once the process has ended and waitErr is set.
	exited  chan struct{}
	waitErr error
}

// startController runs kulta-controller, logging to kulta-controller.log in cfg.logDir, and
// waits until it answers /readyz. On failure the process is gone when it returns.
func startController(ctx context.Context, cfg controllerConfig) (*controllerProcess, error) {
	logPath := filepath.Join(cfg.logDir, "kulta-controller.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating the controller's log: %w", err)
	}
	cmd := exec.Command(cfg.bin, "--kubeconfig", cfg.kubeconfig,
		"--metrics-bind-address", cfg.metricsAddr, "--health-probe-bind-address", cfg.probeAddr,
		"--prometheus-address", cfg.prometheusURL, "--graceful-shutdown-timeout", "5s", "--zap-log-level", "info")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = controllerAttributes()
	if err := cmd.Start(); err != nil {
		return nil, errors.Join(fmt.Errorf("starting kulta-controller: %w", err), closeFile(logFile))
	}
	p := &controllerProcess{metricsAddr: cfg.metricsAddr, probeAddr: cfg.probeAddr, logPath: logPath,
		cmd: cmd, log: logFile, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitReady(ctx); err != nil {
		return nil, errors.Join(err, p.stop())
	}
	return p, nil
}

// waitReady polls /readyz until it answers 200, the process exits, ctx ends or
// controllerReadyTimeout passes.
func (p *controllerProcess) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, controllerReadyTimeout)
	defer cancel()
	for !ready(ctx, "http://"+p.probeAddr+"/readyz") {
		select {
		case <-p.exited:
			return fmt.Errorf("kulta-controller exited at start (%w); see %s", p.waitErr, p.logPath)
		case <-ctx.Done():
			return fmt.Errorf("kulta-controller was not ready (%w); see %s", context.Cause(ctx), p.logPath)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// stop sends SIGTERM, waits for the process to exit (killing it after controllerStopGrace) and
// closes its log. A process that had ended on its own is reported.
func (p *controllerProcess) stop() error {
	var errs []error
	select {
	case <-p.exited:
		errs = append(errs, fmt.Errorf("kulta-controller had exited on its own (%w); see %s", p.waitErr, p.logPath))
	default:
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, fmt.Errorf("signalling kulta-controller: %w", err))
		}
		select {
		case <-p.exited:
			if p.waitErr != nil {
				errs = append(errs, fmt.Errorf("kulta-controller did not exit cleanly (%w); see %s", p.waitErr, p.logPath))
			}
		case <-time.After(controllerStopGrace):
			if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
				errs = append(errs, fmt.Errorf("killing kulta-controller: %w", err))
			}
			<-p.exited
			errs = append(errs, fmt.Errorf("kulta-controller did not exit within %s of SIGTERM and was killed", controllerStopGrace))
		}
	}
	return errors.Join(append(errs, closeFile(p.log))...)
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
