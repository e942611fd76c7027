package convert_test

import (
	"os"
	"testing"

	"github.com/false-systems/kulta/internal/testenv"
)

// env is the real API server shared by this package's tests; nil under -short.
var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env))
}
