// Package harness measures what KULTA's controller costs at scale against a real API server:
// it starts envtest's etcd and kube-apiserver, runs the controller binary as its own process,
// drives N Rollouts through update waves, samples the controller's /metrics and /proc, counts
// API requests from the API server's apiserver_request_total, compares against a plain client
// doing the minimum writes, and writes JSON and Markdown reports.
//
// The pure parts (Prometheus text parsing, /proc parsing, request accounting, statistics) are
// unit-tested; the run itself is started by cmd/kulta-bench and never under `go test`.
package harness
