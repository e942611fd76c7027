// Command demo is `make demo`: it starts a full local cluster (package e2e/cluster), the traffic
// simulator of package e2e/simulator, a real Prometheus and the kulta-controller binary, applies
// the demo's application and shows, line by line, KULTA rolling out a healthy image and then
// rolling a faulty one back on its own because its error rate is too high. It ends with a
// summary of each phase and stops everything it started, also on Ctrl-C and SIGTERM.
//
// The traffic moves through one provider, chosen with --provider or KULTA_DEMO_PROVIDER:
// gatewayapi (the default) applies examples/demo/web.yaml, an HTTPRoute on the cluster's
// Gateway; istio applies examples/demo/web-istio.yaml, a VirtualService whose route primary
// KULTA weights; nginx applies examples/demo/web-nginx.yaml, an Ingress of class nginx beside
// which KULTA keeps a canary Ingress while the canary has traffic. The controller runs with that
// provider alone (--traffic-providers), the simulator stands in for its data plane, and the
// demo reads the stable/canary split from the provider's objects. Any other value is refused
// before anything starts.
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
