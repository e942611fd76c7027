package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// Exit codes.
const (
	exitOK = 0
	// exitFailed: the demo ran and something went wrong (a rollout did not do what it should,
	// a process failed, teardown failed).
	exitFailed = 1
	// exitBadInput: the demo could not start: bad flags, another demo running, the port taken,
	// binaries missing.
	exitBadInput = 2
	// exitInterrupted: Ctrl-C or SIGTERM; everything was stopped.
	exitInterrupted = 130
)

// Environment variables the demo reads.
const (
	// prometheusPortEnv overrides the default of --prometheus-port.
	prometheusPortEnv = "KULTA_DEMO_PROMETHEUS_PORT"
	// providerEnv overrides the default of --provider.
	providerEnv = "KULTA_DEMO_PROVIDER"
	// workerEnv marks the copy of the demo that does the work (see doc.go).
	workerEnv = "KULTA_DEMO_WORKER"
)

// defaultPrometheusPort is the loopback port Prometheus is served on unless told otherwise.
const defaultPrometheusPort = 9090

// options are the demo's settings, from flags and the environment.
type options struct {
	// provider is the traffic provider KULTA moves the application's traffic with.
	provider trafficProvider
	// prometheusPort is the loopback port Prometheus is served on; 0 picks a free one.
	prometheusPort int
	// logDir receives one log file per process; empty means .cache/demo/logs.
	logDir string
	// timeout bounds the whole demo, so that nothing waits forever.
	timeout time.Duration
}

// badInputError is a problem the user must fix before the demo can run; its message says how.
type badInputError struct{ err error }

func (e *badInputError) Error() string { return e.err.Error() }
func (e *badInputError) Unwrap() error { return e.err }

// badInput marks err as a problem with the user's input or machine.
func badInput(err error) error { return &badInputError{err: err} }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses the flags and runs the demo, as the process the user started or as its worker
// copy, and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	out, errOut := newConsole(stdout), newConsole(stderr)
	code := dispatch(args, stdout, stderr, out, errOut)
	if code == exitOK && (out.Err() != nil || errOut.Err() != nil) {
		// The demo ran, but the user could not see it.
		return exitFailed
	}
	return code
}

// dispatch runs the demo as the process the user started or as its worker copy.
func dispatch(args []string, stdout, stderr io.Writer, out, errOut *console) int {
	opts, err := parseOptions(args, errOut)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		errOut.printf("kulta-demo: %v\n", err)
		return exitBadInput
	}
	if os.Getenv(workerEnv) == "1" {
		return work(opts, out, errOut)
	}
	return supervise(args, stdout, stderr, errOut)
}

// parseOptions reads the flags, with defaults from the environment.
func parseOptions(args []string, stderr *console) (options, error) {
	port := defaultPrometheusPort
	if env := os.Getenv(prometheusPortEnv); env != "" {
		p, err := strconv.Atoi(env)
		if err != nil {
			return options{}, fmt.Errorf("%s=%q is not a port number", prometheusPortEnv, env)
		}
		port = p
	}
	providerName := defaultProvider
	if env := os.Getenv(providerEnv); env != "" {
		if _, err := lookupProvider(env); err != nil {
			return options{}, fmt.Errorf("%s=%q %w", providerEnv, env, err)
		}
		providerName = env
	}
	var opts options
	fs := flag.NewFlagSet("kulta-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&opts.prometheusPort, "prometheus-port", port,
		"Loopback port to serve Prometheus on while the demo runs; 0 picks a free one (env "+prometheusPortEnv+").")
	fs.StringVar(&providerName, "provider", providerName,
		"Traffic provider KULTA moves the traffic with: "+providerNames()+" (env "+providerEnv+").")
	fs.StringVar(&opts.logDir, "log-dir", "", "Folder for the processes' logs (default .cache/demo/logs in the repository).")
	fs.DurationVar(&opts.timeout, "timeout", 15*time.Minute, "Give up, stop everything and fail after this long.")
	fs.Usage = func() {
		stderr.printf("Usage: kulta-demo [flags] (normally run by `make demo`)\n\n" +
			"Starts a local cluster, Prometheus and the KULTA controller, rolls out a healthy image and\n" +
			"then a faulty one that KULTA rolls back on its own, and stops everything again. The traffic\n" +
			"moves through Gateway API, Istio or ingress-nginx (--provider, env " + providerEnv + ").\n" +
			"The cluster's binaries come from $KUBEBUILDER_ASSETS or .cache/bin/k8s (`make cluster-bin`),\n" +
			"Prometheus from $KULTA_PROMETHEUS_BIN or .cache/bin/prometheus (`make prometheus-bin`).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return options{}, fmt.Errorf("parsing flags: %w", err)
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if opts.prometheusPort < 0 || opts.prometheusPort > 65535 {
		return options{}, fmt.Errorf("--prometheus-port %d is not a port number", opts.prometheusPort)
	}
	p, err := lookupProvider(providerName)
	if err != nil {
		return options{}, fmt.Errorf("--provider %q %w", providerName, err)
	}
	opts.provider = p
	if opts.timeout <= 0 {
		return options{}, fmt.Errorf("--timeout must be positive, not %s", opts.timeout)
	}
	return opts, nil
}

// console writes what the user reads, from any goroutine, and keeps the first write error so
// that the demo can fail when its output went nowhere.
type console struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
	err   error
}

// newConsole writes to w; logf measures time from now.
func newConsole(w io.Writer) *console { return &console{w: w, start: time.Now()} }

// printf writes formatted text as it is.
func (c *console) printf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	if _, err := fmt.Fprintf(c.w, format, args...); err != nil {
		c.err = fmt.Errorf("writing output: %w", err)
	}
}

// Write writes p as it is, so that a console can be a flag set's output.
func (c *console) Write(p []byte) (int, error) {
	c.printf("%s", p)
	if err := c.Err(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// logf writes one line, prefixed with the seconds since the demo began.
func (c *console) logf(format string, args ...any) {
	c.printf("[%6.1fs] %s\n", time.Since(c.start).Seconds(), fmt.Sprintf(format, args...))
}

// Err is the first write error, if any.
func (c *console) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
