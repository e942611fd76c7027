package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/false-systems/kulta/internal/testenv"
)

// work is the worker copy of the demo: it runs the demo until it ends, fails, times out or is
// interrupted, stops everything, says what happened and returns the exit code.
func work(opts options, out, errOut *console) int {
	keepLock()
	signalled, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	// Signals stay caught until the end, so that a second Ctrl-C cannot cut the teardown short.
	defer stop()
	ctx, cancel := context.WithTimeoutCause(signalled, opts.timeout,
		fmt.Errorf("the demo took longer than --timeout=%s", opts.timeout))
	defer cancel()

	runErr, stopErr := runDemo(ctx, opts, out)
	switch {
	case signalled.Err() != nil:
		errOut.printf("kulta-demo: interrupted (%v)\n", context.Cause(signalled))
		if stopErr != nil {
			errOut.printf("kulta-demo: stopping what the demo started failed: %v\n", stopErr)
			return exitFailed
		}
		errOut.printf("kulta-demo: everything the demo started has been stopped\n")
		return exitInterrupted
	case runErr != nil || stopErr != nil:
		errOut.printf("kulta-demo: %v\n", errors.Join(runErr, stopErr))
		var bad *badInputError
		if errors.As(runErr, &bad) && stopErr == nil {
			return exitBadInput
		}
		return exitFailed
	}
	out.printf("\nDemo finished in %s; everything it started has been stopped.\n", roundDuration(time.Since(out.start)))
	return exitOK
}

// runDemo checks the inputs, starts the world, plays the scenario, prints the summary and stops
// the world. runErr is what went wrong before the teardown, stopErr what went wrong in it.
func runDemo(ctx context.Context, opts options, out *console) (runErr, stopErr error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return badInput(fmt.Errorf("%w; run the demo inside the KULTA repository, as `make demo`", err)), nil
	}
	in, err := preflight(root, opts)
	if err != nil {
		return err, nil
	}
	workDir := filepath.Join(root, ".cache", "demo")
	logDir := opts.logDir
	if logDir == "" {
		logDir = filepath.Join(workDir, "logs")
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return errors.Join(fmt.Errorf("creating the log folder: %w", err), closeListener(in.listener)), nil
	}
	out.logf("KULTA demo: a canary that passes its analysis, then one that KULTA rolls back on its own (a minute or two); "+
		"traffic through %s (%s=%s)", opts.provider.title, providerEnv, opts.provider.name)
	w := &world{provider: opts.provider, root: root, logDir: logDir, workDir: workDir, out: out}
	defer func() {
		out.printf("\n")
		out.logf("Stopping kulta-controller, Prometheus, the traffic simulator and the cluster")
		began := time.Now()
		stopErr = w.stop()
		if stopErr == nil {
			out.logf("Stopped in %s; logs are in %s", roundDuration(time.Since(began)), logDir)
		}
	}()
	if err := w.start(ctx, in); err != nil {
		return err, nil
	}
	results, via, err := play(ctx, w)
	printSummary(out, opts.provider, via, results, err)
	return err, nil
}

// printSummary prints which provider moved the traffic (through via, the objects it wrote, when
// the demo got that far), what each phase showed, and the error that ended the demo early if any.
func printSummary(out *console, p trafficProvider, via string, results []phaseResult, err error) {
	if via != "" {
		via = ": " + via
	}
	out.printf("\nSummary (traffic moved by KULTA's %s provider, %s%s)\n", p.controllerName, p.title, via)
	for i, r := range results {
		out.printf("  %d. %s: %s in %s\n", i+1, r.title, r.outcome, roundDuration(r.took))
		if len(r.weights) > 1 {
			out.printf("       route stable/canary weights: %s\n", strings.Join(r.weights, " -> "))
		}
		for _, a := range r.analysis {
			out.printf("       analysis: %s\n", a)
		}
		if d := r.decision; d != nil {
			out.printf("       final decision: %s, reason %s: %s\n", d.Action, d.Reason, d.Message)
		}
		for _, note := range r.notes {
			out.printf("       %s\n", note)
		}
	}
	if err != nil {
		out.printf("  %d. did not finish: %v\n", len(results)+1, err)
	}
}

// roundDuration rounds d for people to read.
func roundDuration(d time.Duration) time.Duration {
	if d > time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}
