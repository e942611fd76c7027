// Package metrics defines KULTA's Prometheus collectors and registers them with
// controller-runtime's registry, which the manager serves on /metrics.
//
// Label values are bounded: namespace and Rollout name, never hashes, Pod names or free text.
package metrics
