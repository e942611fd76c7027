package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/false-systems/kulta/e2e/cluster"
	"github.com/false-systems/kulta/e2e/controllerproc"
	"github.com/false-systems/kulta/e2e/simulator"
	"github.com/false-systems/kulta/internal/testenv"
)

// badImage is the image whose Pods the simulated data plane answers with a 5xx status one
// request in ten.
const badImage = "nginx:1.28-bad"

// badBehaviour is how the simulator answers for badImage.
var badBehaviour = simulator.Behaviour{ErrorRatio: 0.1, Latency: 10 * time.Millisecond}

// world is everything the demo starts, and how to stop it again.
type world struct {
	// provider is the traffic provider the application is routed through.
	provider trafficProvider
	root     string
	logDir   string
	workDir  string
	out      *console

	cluster      *cluster.Cluster
	simulator    *simulator.Simulator
	prometheus   *testenv.Prometheus
	publicProm   string // the URL users open, on the fixed port
	controller   *controllerproc.Process
	kubectlKulta string
	// metricsAddr and probeAddr are the controller's /metrics and /readyz addresses.
	metricsAddr, probeAddr string

	// stops are the stop functions of what was started, in the order it started.
	stops []namedStop
}

// namedStop stops one part of the world.
type namedStop struct {
	name string
	stop func() error
}

// onStop registers how to stop what was just started.
func (w *world) onStop(name string, stop func() error) {
	w.stops = append(w.stops, namedStop{name: name, stop: stop})
}

// stop stops everything that was started, in reverse order, and reports every failure.
func (w *world) stop() error {
	var errs []error
	for i := len(w.stops) - 1; i >= 0; i-- {
		if err := w.stops[i].stop(); err != nil {
			errs = append(errs, fmt.Errorf("stopping %s: %w", w.stops[i].name, err))
		}
	}
	w.stops = nil
	return errors.Join(errs...)
}

// start starts the world: the binaries are built while the cluster starts, then the simulator,
// Prometheus (also served on in.listener) and the controller, which runs only the chosen traffic
// provider. Whatever it started is in stops even when it fails.
func (w *world) start(ctx context.Context, in *inputs) error {
	w.onStop("the Prometheus port", func() error { return closeListener(in.listener) })
	binDir := filepath.Join(w.workDir, "bin")
	built := make(chan error, 1)
	go func() {
		built <- controllerproc.Build(ctx, w.root, binDir, "./cmd/kulta-controller", "./cmd/kubectl-kulta")
	}()

	w.out.logf("Building kulta-controller and kubectl-kulta; starting the local cluster " +
		"(etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)")
	c, err := cluster.Start(ctx, cluster.Options{BinDir: in.clusterBinDir, LogDir: w.logDir})
	if err != nil {
		return errors.Join(fmt.Errorf("starting the cluster: %w", err), <-built)
	}
	w.cluster = c
	w.onStop("the cluster", c.Stop)
	w.out.logf("Cluster up: API server at %s, Node %s Ready, Gateway %s/%s created",
		c.Config().Host, c.NodeName(), cluster.GatewayNamespace, cluster.GatewayName)
	if err := <-built; err != nil {
		return err
	}
	w.kubectlKulta = filepath.Join(binDir, "kubectl-kulta")
	if err := w.startSimulator(ctx); err != nil {
		return err
	}
	metricsAddr, err := testenv.FreeAddr()
	if err != nil {
		return err
	}
	probeAddr, err := testenv.FreeAddr()
	if err != nil {
		return err
	}
	if err := w.startPrometheus(in, metricsAddr); err != nil {
		return err
	}
	w.out.logf("Starting kulta-controller (--traffic-providers %s)", w.provider.controllerName)
	w.controller = controllerproc.New(controllerproc.Options{
		Bin: filepath.Join(binDir, "kulta-controller"), Kubeconfig: c.Kubeconfig(),
		LogPath:     filepath.Join(w.logDir, "kulta-controller.log"),
		MetricsAddr: metricsAddr, ProbeAddr: probeAddr, PrometheusURL: w.prometheus.Address(),
		TrafficProviders: []string{w.provider.controllerName},
		SysProcAttr:      controllerAttributes(),
	})
	w.metricsAddr, w.probeAddr = metricsAddr, probeAddr
	if err := w.controller.Start(ctx); err != nil {
		return err
	}
	w.onStop("kulta-controller", w.controller.Stop)
	w.printAddresses(in.prometheusBin)
	return nil
}

// startSimulator starts the traffic simulator, the stand-in for the data plane of every
// provider, writing the errors of its ticks to simulator.log.
func (w *world) startSimulator(ctx context.Context) error {
	logPath := filepath.Join(w.logDir, "simulator.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("creating the simulator's log: %w", err)
	}
	log := &errorLog{f: logFile}
	sim, err := simulator.Start(ctx, w.cluster.Client(), simulator.Options{
		Behaviour: map[string]simulator.Behaviour{badImage: badBehaviour},
		OnError:   log.write,
	})
	if err != nil {
		return errors.Join(fmt.Errorf("starting the traffic simulator: %w", err), log.close())
	}
	w.simulator = sim
	w.onStop("the traffic simulator", func() error { return errors.Join(sim.Stop(), log.close()) })
	return nil
}

// errorLog writes the simulator's errors to a file. The simulator carries on after an error, so
// a failed write is kept and reported when the log is closed.
type errorLog struct {
	mu       sync.Mutex
	f        *os.File
	writeErr error
}

// write appends err with the time.
func (l *errorLog) write(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, werr := fmt.Fprintf(l.f, "%s %v\n", time.Now().Format(time.RFC3339Nano), err); werr != nil && l.writeErr == nil {
		l.writeErr = fmt.Errorf("writing %s: %w", l.f.Name(), werr)
	}
}

// close closes the file and reports the first failed write.
func (l *errorLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return errors.Join(l.writeErr, closeFile(l.f))
}

// startPrometheus starts Prometheus, scraping the simulator and the controller's metrics
// address every second, and serves it on the fixed port too.
func (w *world) startPrometheus(in *inputs, controllerMetrics string) error {
	dir, err := os.MkdirTemp(w.workDir, "prometheus-")
	if err != nil {
		return fmt.Errorf("creating Prometheus's folder: %w", err)
	}
	w.onStop("Prometheus's folder", func() error { return removeAll(dir) })
	w.out.logf("Starting Prometheus (scrapes the traffic simulator and kulta-controller every %s)",
		testenv.PrometheusScrapeInterval)
	p, err := testenv.LaunchPrometheus(in.prometheusBin, dir, w.simulator.Target(), controllerMetrics)
	if err != nil {
		return fmt.Errorf("starting Prometheus: %w", err)
	}
	w.prometheus = p
	w.onStop("Prometheus", func() error {
		return errors.Join(p.Stop(), os.WriteFile(filepath.Join(w.logDir, "prometheus.log"), []byte(p.Output()), 0o644))
	})
	target, err := url.Parse(p.Address())
	if err != nil {
		return fmt.Errorf("parsing Prometheus's address: %w", err)
	}
	server := &http.Server{Handler: httputil.NewSingleHostReverseProxy(target), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- server.Serve(in.listener) }()
	w.publicProm = "http://" + in.listener.Addr().String()
	w.onStop("the Prometheus proxy", func() error { return shutdown(server, served) })
	return nil
}

// printAddresses tells the user where everything is.
func (w *world) printAddresses(prometheusBin string) {
	c := w.cluster
	w.out.logf("Everything is up:")
	w.out.printf("    Prometheus         %s  (the one KULTA queries; try rate(http_requests_total[30s]))\n", w.publicProm)
	w.out.printf("    kube-apiserver     %s  (listening: %s)\n", c.Config().Host, strings.Join(c.Addresses(), ", "))
	w.out.printf("    kulta-controller   metrics http://%s/metrics, health http://%s/readyz\n",
		w.metricsAddr, w.probeAddr)
	w.out.printf("    Traffic simulator  http://%s/metrics  (as %s: %g requests/s per route; image %s fails %g %% of them)\n",
		w.simulator.Target(), w.provider.dataPlane, float64(simulator.DefaultRate), badImage, badBehaviour.ErrorRatio*100)
	w.out.printf("    Logs               %s\n", w.logDir)
	w.out.printf("    Binaries           %s, %s\n", c.BinDir(), filepath.Dir(prometheusBin))
	w.out.printf("  To look yourself while the demo runs, in another terminal:\n")
	w.out.printf("    export KUBECONFIG=%s\n", c.Kubeconfig())
	w.out.printf("    %s get rollout web --watch\n", w.kubectlKulta)
	w.out.printf("    %s get rollouts.kulta.io,%s,replicasets,pods\n", filepath.Join(c.BinDir(), "kubectl"), w.provider.resources)
}

// shutdown stops an HTTP server and waits until it has stopped serving.
func shutdown(server *http.Server, served <-chan error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	if err := server.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("shutting down: %w", err))
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, fmt.Errorf("serving: %w", err))
	}
	return errors.Join(errs...)
}

// closeListener closes l; closing one that an HTTP server already closed is not an error.
func closeListener(l net.Listener) error {
	if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("closing %s: %w", l.Addr(), err)
	}
	return nil
}

// closeFile closes f.
func closeFile(f *os.File) error {
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", f.Name(), err)
	}
	return nil
}

// removeAll removes dir and everything in it.
func removeAll(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	return nil
}
