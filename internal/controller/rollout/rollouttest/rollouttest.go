// Package rollouttest runs the Rollout reconciler for tests: a manager with the Gateway API
// traffic router and the test environment's stand-ins for the ReplicaSet controller and kubelet
// and for a Gateway implementation. Tests import it; production code must not.
package rollouttest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap/zapcore"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/false-systems/kulta/internal/controller/rollout"
	"github.com/false-systems/kulta/internal/events"
	"github.com/false-systems/kulta/internal/events/kubeevents"
	"github.com/false-systems/kulta/internal/testenv"
	"github.com/false-systems/kulta/internal/webhook"
	"github.com/false-systems/kulta/providers"
	"github.com/false-systems/kulta/providers/gatewayapi"
	"github.com/false-systems/kulta/providers/istio"
	"github.com/false-systems/kulta/providers/nginx"
)

const (
	// RejectLabel on a route makes the Gateway stand-in refuse it.
	RejectLabel = "test.kulta.io/reject"
	// IgnoreLabel on a route makes the Gateway stand-in leave its status alone, as a Gateway
	// controller that is down would.
	IgnoreLabel = "test.kulta.io/ignore"
	// LateLabel on a route makes the Gateway stand-in accept each generation only
	// testenv.LateAcceptance after it sees it.
	LateLabel = "test.kulta.io/late"
	// NeverReadyImage is an image whose Pods the readiness stand-in never marks ready.
	NeverReadyImage = "nginx:never-ready"
)

// Manager is the reconciler's manager and the stand-ins' running; Stop ends both and waits
// until they have.
type Manager struct {
	cancel context.CancelFunc
	done   chan error // one result per manager
}

// Stop stops the managers and waits for them to exit.
func (m *Manager) Stop() error {
	m.cancel()
	var errs []error
	for range 2 {
		if err := <-m.done; err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("manager: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Option changes the reconciler a test runs.
type Option func(*rollout.Reconciler)

// WithAnalyzer gives the reconciler an analyzer.
func WithAnalyzer(a rollout.Analyzer) Option {
	return func(r *rollout.Reconciler) { r.Analyzer = a }
}

// WithIstio adds the Istio provider; the API server must serve Istio's CRDs
// (testenv.InstallIstio).
func WithIstio() Option {
	return func(r *rollout.Reconciler) {
		r.Providers = append(r.Providers, istio.NewProvider(&istio.Router{Client: r.Client, APIReader: r.APIReader}))
	}
}

// WithNGINX adds the NGINX provider, reading Ingresses through the manager's client, that is
// from its cache, trimmed and indexed as kulta-controller's are.
func WithNGINX() Option {
	return func(r *rollout.Reconciler) {
		r.Providers = append(r.Providers, nginx.NewProvider(&nginx.Router{Client: r.Client, Reader: r.Client, APIReader: r.APIReader}))
	}
}

// WithEvents gives the reconciler a transition sink.
func WithEvents(sink events.Sink) Option {
	return func(r *rollout.Reconciler) { r.Events = sink }
}

// Start runs the reconciler and the stand-ins against e until ctx ends or Stop is called.
// Several managers at once would act twice; start one at a time.
func Start(ctx context.Context, e *testenv.Env, opts ...Option) (*Manager, error) {
	// Reconcile errors go to stderr, so that a failing test shows them.
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	// The reconciler's cache is set up as kulta-controller's is, trimmed; the stand-ins get a
	// manager and cache of their own, since they read what KULTA's cache drops.
	gateway := gatewayapi.NewProvider(nil, gatewayapi.Capabilities{HTTPRoute: true, GRPCRoute: true, RuleNames: true})
	// Every provider's trims, as kulta-controller's cache has them whichever providers run.
	cacheOpts, err := rollout.CacheOptions(gateway, istio.NewProvider(nil), nginx.NewProvider(nil))
	if err != nil {
		return nil, err
	}
	mgr, err := newManager(e, cacheOpts)
	if err != nil {
		return nil, err
	}
	standIns, err := newManager(e, cache.Options{})
	if err != nil {
		return nil, err
	}
	recorder := kubeevents.New(kubeevents.Options{Client: mgr.GetClient(), Scheme: mgr.GetScheme(),
		Controller: "kulta-controller", Logger: ctrl.Log.WithName("events")})
	if err := mgr.Add(recorder); err != nil {
		return nil, fmt.Errorf("adding the Event recorder: %w", err)
	}
	r := &rollout.Reconciler{
		Client:    mgr.GetClient(),
		Recorder:  recorder,
		Clock:     clock.RealClock{},
		APIReader: mgr.GetAPIReader(),
		Webhooks:  &webhook.Caller{Secrets: mgr.GetAPIReader()},

		MaxConcurrentReconciles: 4,
		// Short, so that the tests of a Gateway that never answers need not wait long.
		FoldedStatusBound: 2 * time.Second,
		CountsInterval:    time.Second,
	}
	gateway.Router = &gatewayapi.Router{Client: mgr.GetClient(), Reader: mgr.GetCache(), APIReader: mgr.GetAPIReader()}
	r.Providers = []providers.Provider{gateway}
	for _, opt := range opts {
		opt(r)
	}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		return nil, err
	}
	if err := testenv.AddReplicaSetReadiness(standIns, func(rs *appsv1.ReplicaSet) bool {
		return rs.Spec.Template.Spec.Containers[0].Image == NeverReadyImage
	}); err != nil {
		return nil, err
	}
	if err := testenv.AddRouteAcceptor(standIns, func(route client.Object) testenv.RouteVerdict {
		switch {
		case route.GetLabels()[RejectLabel] == "true":
			return testenv.RouteRefused
		case route.GetLabels()[IgnoreLabel] == "true":
			return testenv.RouteIgnored
		case route.GetLabels()[LateLabel] == "true":
			return testenv.RouteAcceptedLate
		}
		return testenv.RouteAccepted
	}); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	m := &Manager{cancel: cancel, done: make(chan error, 2)}
	go func() { m.done <- mgr.Start(ctx) }()
	go func() { m.done <- standIns.Start(ctx) }()
	return m, nil
}

func newManager(e *testenv.Env, cacheOpts cache.Options) (ctrl.Manager, error) {
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{
		Scheme:                 e.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cacheOpts,
		// A test may start a second manager after stopping the first (a restart).
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	return mgr, nil
}

// WithNotifications gives the reconciler a notifier; the test runs its Start.
func WithNotifications(n rollout.Notifications) Option {
	return func(r *rollout.Reconciler) { r.Notifications = n }
}
