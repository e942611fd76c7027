package rollout_test

import (
	"context"
	"os"
	"testing"

	"github.com/false-systems/kulta/internal/controller/rollout/rollouttest"
	"github.com/false-systems/kulta/internal/testenv"
)

var env *testenv.Env

const (
	rejectLabel     = rollouttest.RejectLabel
	neverReadyImage = rollouttest.NeverReadyImage
)

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env, testenv.InstallIstio, func(ctx context.Context, e *testenv.Env) error {
		m, err := rollouttest.Start(ctx, e, rollouttest.WithIstio())
		if err != nil {
			return err
		}
		e.BeforeStop(m.Stop)
		return nil
	}))
}
