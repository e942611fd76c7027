// Package withnotify holds tests of the reconciler telling notification services (real local
// receivers speaking the Slack, Teams and generic formats) of transitions, across a controller
// restart; it runs its own API server.
package withnotify
