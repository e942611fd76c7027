package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/false-systems/kulta/internal/testenv"
)

// lockFileName is the file, in the repository's .cache folder, that one demo at a time locks.
const lockFileName = "demo.lock"

// lockFD is the descriptor the worker receives the locked lock file on (the first of
// exec.Cmd.ExtraFiles).
const lockFD = 3

// supervise is the process the user started: it takes the lock, runs the worker copy of the
// demo in a process group of its own, hands every interrupt on to it and returns its exit code.
func supervise(args []string, stdout, stderr io.Writer, errOut *console) int {
	root, err := testenv.RepoRoot()
	if err != nil {
		errOut.printf("kulta-demo: %v; run it inside the KULTA repository, as `make demo`\n", err)
		return exitBadInput
	}
	lock, err := acquireLock(filepath.Join(root, ".cache", lockFileName))
	if err != nil {
		errOut.printf("kulta-demo: %v\n", err)
		return exitBadInput
	}
	code, err := superviseWorker(args, lock, stdout, stderr)
	if cerr := lock.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("closing the lock file: %w", cerr))
	}
	if err != nil {
		errOut.printf("kulta-demo: %v\n", err)
		if code == exitOK {
			code = exitFailed
		}
	}
	return code
}

// superviseWorker runs the worker with the lock file and the same arguments, forwarding
// SIGINT, SIGTERM and SIGHUP to it, and returns its exit code once it has ended.
func superviseWorker(args []string, lock *os.File, stdout, stderr io.Writer) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return exitFailed, fmt.Errorf("finding the demo's own binary: %w", err)
	}
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(signals)

	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), workerEnv+"=1")
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.ExtraFiles = []*os.File{lock}
	cmd.SysProcAttr = workerAttributes()
	if err := cmd.Start(); err != nil {
		return exitFailed, fmt.Errorf("starting the demo: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-signals:
			if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
				return exitFailed, errors.Join(fmt.Errorf("handing %s on to the demo: %w", sig, err), <-done)
			}
		case err := <-done:
			return workerExitCode(err)
		}
	}
}

// workerExitCode turns the worker's end into this process's exit code.
func workerExitCode(waitErr error) (int, error) {
	if waitErr == nil {
		return exitOK, nil
	}
	var exitErr *exec.ExitError
	if !errors.As(waitErr, &exitErr) {
		return exitFailed, fmt.Errorf("waiting for the demo: %w", waitErr)
	}
	if code := exitErr.ExitCode(); code > 0 {
		return code, nil
	}
	return exitFailed, fmt.Errorf("the demo's worker process ended abruptly (%w); "+
		"processes it started may be left: look for etcd, kube-apiserver, kwok and prometheus", waitErr)
}
