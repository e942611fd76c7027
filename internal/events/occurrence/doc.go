// Package occurrence writes a Rollout's transitions as FALSE Protocol occurrences: one JSON
// object per line, with an id (ULID), a type such as canary.rollout.failed, a severity and an
// outcome, correlation keys, the Rollout's state, the objects involved, and, when something went
// wrong, an error block that explains what failed, why it matters, what may have caused it and
// what to do, with the analysis evidence and the decisions that led there.
//
// Lines go to occurrences.jsonl in a configured directory, rotated by size, or to stdout. Emit
// writes synchronously (a local append), never returns an error and never panics: failures are
// counted and logged. Nothing here talks to the Kubernetes API.
package occurrence
