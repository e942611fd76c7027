// Package events is KULTA's neutral model of what happened to a Rollout: a Transition (a Rollout
// moved to a new step, paused, completed, rolled back, ...) and the Sink interface that turns
// transitions into messages for the outside world.
//
// The reconciler builds transitions from the decisions it records in status.decisions and hands
// them to a Sink after its status patch. Implementations live in sub-packages: cdevents sends
// CDEvents over HTTP, occurrence writes FALSE Protocol occurrences as JSON lines.
//
// This package must not do I/O, and a Sink must never block a reconcile or make it fail: a sink
// that cannot deliver counts and logs the loss and moves on.
package events
