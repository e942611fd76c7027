// Package rollout is KULTA's Rollout reconciler: it observes a Rollout's ReplicaSets, Services
// and routes, asks the pure planner (Compute) for the next state, and applies that plan.
//
// The planner files (plan_*.go, planner.go) never touch a client or the wall clock; time comes
// from the injected clock through the Observation. The reconciler moves traffic only through
// providers.TrafficRouter, and writes the Rollout's status once per reconcile.
package rollout
