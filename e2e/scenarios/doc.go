// Package scenarios holds KULTA's end-to-end scenarios: each test runs on a full local cluster
// (package e2e/cluster) with the real kulta-controller binary, a real Prometheus and the Gateway
// stand-in of package e2e/simulator, and drives Rollouts the way a user would. The tests are
// behind the build tag e2e; run them with `make e2e`.
package scenarios
