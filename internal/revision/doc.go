// Package revision names and builds the ReplicaSets of a Rollout: one per distinct Pod template,
// identified by a hash of that template.
//
// It is pure: it computes hashes and builds objects, and must not talk to the API server.
package revision
