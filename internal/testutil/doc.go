// Package testutil builds KULTA objects for tests with functional options, so that each test
// states only what it cares about, and decodes manifests (DecodeManifests). It is imported by
// tests and by the demo (e2e/demo), never by the controller.
package testutil
