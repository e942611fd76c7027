package analysis

import (
	"testing"
	"time"

	"github.com/false-systems/kulta/internal/testenv"
)

// serviceTraffic is the synthetic load of one service of the integration test.
type serviceTraffic struct {
	service string
	traffic testenv.Traffic
}

// integrationTraffic is the synthetic traffic of the integration test, all in
// integrationNamespace.
var integrationTraffic = []serviceTraffic{
	{"stable", testenv.Traffic{RPS: 200, ErrorRatio: 0.005, Latency: 20 * time.Millisecond}},
	{"canary-healthy", testenv.Traffic{RPS: 200, ErrorRatio: 0.005, Latency: 20 * time.Millisecond}},
	{"canary-bad", testenv.Traffic{RPS: 200, ErrorRatio: 0.1, Latency: 800 * time.Millisecond}},
	{"canary-clean", testenv.Traffic{RPS: 100, Latency: 20 * time.Millisecond}},
	// Series that exist but never grow.
	{"canary-idle", testenv.Traffic{}},
	{oddService, testenv.Traffic{RPS: 100, ErrorRatio: 0.1, Latency: 20 * time.Millisecond}},
}

// startIntegrationServer starts the traffic app with integrationTraffic and a Prometheus server
// scraping it, both stopped when the test ends, and returns the server's address.
func startIntegrationServer(t *testing.T) string {
	t.Helper()
	// Fail or skip before starting anything when there is no Prometheus to run.
	testenv.PrometheusBinary(t)
	app := testenv.StartTrafficApp(t)
	for _, s := range integrationTraffic {
		app.Set(integrationNamespace, s.service, s.traffic)
	}
	return testenv.StartPrometheus(t, app.Target()).Address()
}
