// Package withnginx holds tests of the reconciler driving the NGINX provider through its cache,
// trimmed and indexed as kulta-controller's is; it runs its own API server and manager, since
// the rollout package's shared manager leaves NGINX out to test a provider that is not running.
package withnginx
