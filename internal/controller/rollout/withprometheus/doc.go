// Package withprometheus holds tests of the Rollout reconciler with real Prometheus analysis:
// the reconciler, with analysis.Checker as its analyzer, gates canary steps on verdicts that a
// real Prometheus server computes from the request metrics of a test application whose traffic
// each test controls.
//
// The package has no code of its own. Its tests run their own envtest API server (TestMain)
// and their own Prometheus server and traffic application (testenv.StartPrometheus and
// testenv.StartTrafficApp), apart from the other reconciler tests, whose manager runs without
// an analyzer. Prometheus is built by `make prometheus-bin`; `go test -short` skips the tests.
package withprometheus
