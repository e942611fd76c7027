// Package charts holds the tests of KULTA's Helm chart (charts/kulta): lint, golden
// `helm template` output, the values schema, least-privilege RBAC, the restricted Pod Security
// Standard, and the rendered objects accepted by a real API server.
package charts
