// Package conformance is the suite every TrafficRouter must pass, run against a real API server
// with the provider's real CRDs: weights, idempotence, header routes, conflict retries, drift,
// clean-up, unusable objects and, where supported, objects in another namespace. The specs are
// provider-neutral: a provider's test hands Run a Harness whose Fixture creates its objects and
// reads them back. A provider declares the features it does not support, and the suite skips
// exactly those.
//
// It is imported by providers' tests only, and must not name any provider's objects.
package conformance
