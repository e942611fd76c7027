// Package cdevents sends a Rollout's transitions as CDEvents (https://cdevents.dev, spec 0.5)
// in CloudEvents HTTP binary mode to one configurable sink.
//
// Mapping (see eventType): Started → service.deployed; StepAdvanced and Promoted →
// service.upgraded; RolledBack, and Failed when a stable revision was restored →
// service.rolledback; Completed and Concluded → service.published; Paused → nothing. Every event
// names the Rollout as its source and subject (/apis/kulta.io/v1alpha1/namespaces/NS/rollouts/NAME),
// the namespace as its environment, and the first container image, as an OCI package URL, as
// its artifact.
//
// Emit only enqueues: one worker goroutine (Start) drains a bounded queue in order, validates
// each event against the CDEvents schema, and sends it with retries and exponential backoff.
// When the queue is full, Emit drops the transition and counts it; it must never block or fail
// a reconcile, and nothing here talks to the Kubernetes API.
package cdevents
