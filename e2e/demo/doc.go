// Command demo is `make demo`: it starts a full local cluster (package e2e/cluster), the Gateway
// stand-in of package e2e/simulator, a real Prometheus and the kulta-controller binary, applies
// examples/demo/web.yaml and shows, line by line, KULTA rolling out a healthy image and then
// rolling a faulty one back on its own because its error rate is too high. It ends with a
// summary of each phase and stops everything it started, also on Ctrl-C and SIGTERM.
//
// The command runs as two processes. The one the user starts takes the lock .cache/demo.lock,
// so that only one demo runs at a time, and runs a copy of itself in a process group of its own:
// a Ctrl-C in the terminal reaches only the first, which hands it on as one SIGTERM, and the
// copy stops the cluster in order rather than every process dying of the same signal at once.
// The copy also receives SIGTERM when the first dies.
//
// Prometheus is reachable on a fixed loopback port (9090 unless --prometheus-port or
// KULTA_DEMO_PROMETHEUS_PORT says otherwise) for the user to open while the demo runs.
//
// It is a demonstration and test support only; KULTA's controller does not import it, and it
// must not download anything: the binaries come from `make cluster-bin` and `make
// prometheus-bin`.
package main
