package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/false-systems/kulta/internal/testenv"
)

// clusterBinaries are the binaries e2e/cluster runs (and kubectl), as `make cluster-bin` builds
// them.
var clusterBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok"}

// inputs are what preflight found: where the binaries are, and the port Prometheus is served on.
type inputs struct {
	clusterBinDir string
	prometheusBin string
	// listener holds the Prometheus port from the start, so that nothing takes it meanwhile.
	listener net.Listener
}

// preflight checks, before anything is started, that the binaries are there and that the
// Prometheus port is free, and reports every problem at once with what to do about it.
func preflight(root string, opts options) (*inputs, error) {
	var problems []error
	in := &inputs{}
	dir, err := checkClusterBinaries(root)
	if err != nil {
		problems = append(problems, err)
	}
	in.clusterBinDir = dir
	in.prometheusBin, err = testenv.PrometheusBinaryPath()
	if err != nil {
		problems = append(problems, fmt.Errorf("%w (`make demo` builds it too)", err))
	}
	in.listener, err = listenPrometheusPort(opts.prometheusPort)
	if err != nil {
		problems = append(problems, err)
	}
	if len(problems) == 0 {
		return in, nil
	}
	if in.listener != nil {
		if err := in.listener.Close(); err != nil {
			problems = append(problems, fmt.Errorf("releasing the Prometheus port: %w", err))
		}
	}
	return nil, badInput(errors.Join(problems...))
}

// checkClusterBinaries returns the folder of the cluster's binaries ($KUBEBUILDER_ASSETS, else
// .cache/bin/k8s) and fails, naming each missing one, unless all are executable files there.
func checkClusterBinaries(root string) (string, error) {
	dir, from := os.Getenv("KUBEBUILDER_ASSETS"), " (from $KUBEBUILDER_ASSETS)"
	if dir == "" {
		dir, from = filepath.Join(root, ".cache", "bin", "k8s"), ""
	}
	var missing []string
	for _, name := range clusterBinaries {
		info, err := os.Stat(filepath.Join(dir, name))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, name)
		case err != nil:
			return dir, fmt.Errorf("checking the cluster binary %s: %w", name, err)
		case !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0:
			missing = append(missing, name+" (not an executable file)")
		}
	}
	if len(missing) > 0 {
		return dir, fmt.Errorf("cluster binaries missing in %s%s: %s; run `make demo`, which builds them, or `make cluster-bin`",
			dir, from, strings.Join(missing, ", "))
	}
	return dir, nil
}

// listenPrometheusPort takes the loopback port Prometheus is to be served on.
func listenPrometheusPort(port int) (net.Listener, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("%s is already in use, and the demo serves Prometheus there: choose another port "+
			"with --prometheus-port=PORT or %s=PORT (for example `%s=9091 make demo`; 0 picks a free one)",
			addr, prometheusPortEnv, prometheusPortEnv)
	}
	if err != nil {
		return nil, fmt.Errorf("listening on %s for Prometheus: %w", addr, err)
	}
	return l, nil
}
