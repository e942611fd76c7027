// Package testutil builds KULTA objects for tests with functional options, so that each test
// states only what it cares about. It is imported by tests only.
package testutil
