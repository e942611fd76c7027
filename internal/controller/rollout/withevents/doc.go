// Package withevents holds tests of the reconciler sending CDEvents to a real HTTP CloudEvents
// receiver; it runs its own API server.
package withevents
