package convert_test

import (
	"os"
	"testing"

	"github.com/false-systems/kulta/internal/testenv"
)

// env is the real API server, with KULTA's, Gateway API's and Istio's CRDs, shared by this
// package's tests; nil under -short.
var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env, testenv.InstallIstio))
}
