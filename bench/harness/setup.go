package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/false-systems/kulta/internal/testenv"
)

// countedConfig copies cfg with its own rate limit and every request counted by counter.
func countedConfig(cfg *rest.Config, qps float32, burst int, counter *RequestCounter) *rest.Config {
	out := rest.CopyConfig(cfg)
	out.QPS, out.Burst = qps, burst
	out.UserAgent = "kulta-bench"
	out.WrapTransport = counter.Wrap
	return out
}

// startEnv starts the API server and writes a kubeconfig for the controller's own user.
func (r *runner) startEnv(dir string) error {
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	r.env = env
	user, err := env.Environment().AddUser(envtest.User{Name: "kulta-controller", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding the controller's user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig for the controller: %w", err)
	}
	r.kubeconfig = filepath.Join(dir, "controller.kubeconfig")
	if err := os.WriteFile(r.kubeconfig, kc, 0o600); err != nil {
		return fmt.Errorf("writing the controller's kubeconfig: %w", err)
	}
	hcfg := countedConfig(env.Config, 500, 1000, r.harnessCount)
	if r.client, err = client.New(hcfg, client.Options{Scheme: env.Scheme}); err != nil {
		return fmt.Errorf("harness client: %w", err)
	}
	// The API server's /metrics is read with a client of its own, not counted: the API server
	// does not count the reads of its /metrics in apiserver_request_total, so counting them as
	// the bench's would take them off the requests the controller is left with.
	hc, err := rest.HTTPClientFor(env.Config)
	if err != nil {
		return fmt.Errorf("HTTP client for the API server: %w", err)
	}
	hc.Timeout = 30 * time.Second
	r.apiHTTP, r.apiMetricsURL = hc, strings.TrimSuffix(env.Config.Host, "/")+"/metrics"
	r.apiserverPID, err = ChildByName(os.Getpid(), "kube-apiserver")
	if err != nil {
		return err
	}
	r.etcdPID, err = ChildByName(os.Getpid(), "etcd")
	return err
}

// StandinWorkers is how many routes (and ReplicaSets) the stand-ins handle at once: four for
// each controller process, since each process has client limits of its own. With four in all,
// the route acceptor fell behind 4 shards at N=10,000 (6 Dec 2026 18:35): its queue waited
// more than the 10-minute progress deadline, and 1,087 Rollouts were rolled back for routes
// the stand-in had not accepted yet, as they would be behind a Gateway that slow.
func StandinWorkers(shards int) int { return 4 * max(1, shards) }

// startStandins runs the ReplicaSet readiness stand-in (playing the ReplicaSet controller and
// the kubelet) and the route acceptor (playing a Gateway) in this process, with the tracker's
// handlers on their informers.
func (r *runner) startStandins(ctx context.Context, logPath string) error {
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("creating the stand-ins' log: %w", err)
	}
	r.closers = append(r.closers, logFile.Close)
	// At V(1) the route acceptor logs each route generation it accepts, which RouteWatch's
	// reports are read against.
	ctrl.SetLogger(zap.New(zap.WriteTo(logFile), zap.Level(zapcore.Level(-1))))
	mgr, err := ctrl.NewManager(countedConfig(r.env.Config, 1000, 2000, r.standinCount), ctrl.Options{
		Scheme:                 r.env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Each N gets a fresh manager in the same process: the stand-ins' names repeat.
		Controller: config.Controller{MaxConcurrentReconciles: StandinWorkers(r.cfg.Shards), SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return fmt.Errorf("stand-in manager: %w", err)
	}
	if err := testenv.AddReplicaSetReadiness(mgr, nil); err != nil {
		return err
	}
	if err := testenv.AddRouteAcceptor(mgr, nil); err != nil {
		return err
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	r.stopStandins = func() error {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("stand-in manager: %w", err)
		}
		return nil
	}
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return fmt.Errorf("stand-in caches did not sync")
	}
	r.standinCache = mgr.GetCache()
	if err := r.completions.Register(ctx, r.standinCache); err != nil {
		return err
	}
	if err := r.routes.Register(ctx, r.standinCache); err != nil {
		return err
	}
	return r.tracker.Register(ctx, r.standinCache)
}

// snapshot is every counter the bench reads at one moment.
type snapshot struct {
	t     time.Time
	api   RequestCounts
	bench RequestCounts
	// ctrl is the controller processes' /metrics merged (MergeSamples), ctrlCPU their CPU summed.
	ctrl      Samples
	ctrlCPU   float64
	apiCPU    float64
	etcdCPU   float64
	withCtrl  bool
	benchHarn RequestCounts
}

func (r *runner) snapshot(ctx context.Context) (snapshot, error) {
	// A sample of each running controller just before the snapshot's time: a window that ends
	// at this snapshot (a wave with its tail, a settle period) has one even when it is shorter
	// than the samplers' interval.
	for i, c := range r.ctrls {
		if !c.Exited() {
			r.samplers[i].SampleNow()
		}
	}
	s := snapshot{t: time.Now()}
	ss, err := Scrape(ctx, r.apiHTTP, r.apiMetricsURL)
	if err != nil {
		return s, err
	}
	s.api = APIServerRequests(ss)
	s.benchHarn = r.harnessCount.Snapshot()
	s.bench = addCounts(s.benchHarn, r.standinCount.Snapshot())
	if s.apiCPU, err = cpuOf(r.apiserverPID); err != nil {
		return s, err
	}
	if s.etcdCPU, err = cpuOf(r.etcdPID); err != nil {
		return s, err
	}
	// The controller's own counters and CPU are summed over its processes (one per shard).
	var scrapes []Samples
	for _, c := range r.ctrls {
		if c.Exited() {
			continue
		}
		s.withCtrl = true
		ss, err := Scrape(ctx, http.DefaultClient, c.MetricsURL)
		if err != nil {
			return s, err
		}
		cpu, err := cpuOf(c.PID)
		if err != nil {
			return s, err
		}
		scrapes = append(scrapes, ss)
		s.ctrlCPU += cpu
	}
	if len(scrapes) > 0 {
		s.ctrl = MergeSamples(scrapes...)
	}
	return s, nil
}

func cpuOf(pid int) (float64, error) {
	if pid == 0 {
		return 0, nil
	}
	st, err := ReadProcStat(pid)
	return st.CPUSeconds, err
}

func addCounts(a, b RequestCounts) RequestCounts {
	out := RequestCounts{}
	for k, v := range a {
		out[k] += v
	}
	for k, v := range b {
		out[k] += v
	}
	return out
}
