package rollout_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/false-systems/kulta/internal/controller/rollout"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/providers/gatewayapi"
)

var env *testenv.Env

// rejectLabel on a route makes the acceptor stand-in refuse it.
const rejectLabel = "test.kulta.io/reject"

// neverReadyImage is an image whose Pods the readiness stand-in never marks ready.
const neverReadyImage = "nginx:never-ready"

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &env, startManager))
}

// startManager runs the Rollout reconciler with the Gateway API traffic router, plus the
// stand-ins for the ReplicaSet controller/kubelet and for a Gateway implementation, against the
// test API server until the tests end.
func startManager(ctx context.Context, e *testenv.Env) error {
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{
		Scheme:                 e.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	r := &rollout.Reconciler{
		Client:      mgr.GetClient(),
		Recorder:    mgr.GetEventRecorder("kulta-controller"),
		Router:      &gatewayapi.Router{Client: mgr.GetClient()},
		Clock:       clock.RealClock{},
		WatchRoutes: true,
		APIReader:   mgr.GetAPIReader(),
	}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		return err
	}
	if err := testenv.AddReplicaSetReadiness(mgr, func(rs *appsv1.ReplicaSet) bool {
		return rs.Spec.Template.Spec.Containers[0].Image == neverReadyImage
	}); err != nil {
		return err
	}
	if err := testenv.AddRouteAcceptor(mgr, func(route client.Object) bool {
		return route.GetLabels()[rejectLabel] == "true"
	}); err != nil {
		return err
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager stopped:", err)
		}
	}()
	return nil
}
