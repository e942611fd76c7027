// Package restart holds tests that stop and start the controller mid-rollout, or run it with
// settings of its own (a client limit, a counts interval); they need their own API server,
// since the rollout package's tests run one manager for their whole run.
package restart
