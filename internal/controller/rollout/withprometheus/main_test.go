package withprometheus_test

import (
	"os"
	"testing"

	"github.com/false-systems/kulta/internal/testenv"
)

// env is the package's API server; nil under -short.
var env *testenv.Env

// TestMain starts only the API server: the Prometheus server, the traffic application and the
// manager belong to the test that uses them, which stops them when its subtests are done.
func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env))
}
