// Command kulta-controller runs KULTA's Rollout controller: it parses flags and environment,
// builds the manager and wires the implementations (the Gateway API traffic router), and
// nothing else.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/KimMachineGun/automemlimit/memlimit"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/controller/rollout"
	"github.com/false-systems/kulta/internal/events/kubeevents"
	"github.com/false-systems/kulta/internal/metricsauth"
	kultascheme "github.com/false-systems/kulta/internal/scheme"
	"github.com/false-systems/kulta/internal/webhook"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(ctrl.SetupSignalHandler(), os.Args[1:], nil))
}

// options are the controller's settings, from flags with environment fallbacks.
type options struct {
	kubeconfig       string
	metricsAddr      string
	metricsSecure    bool
	probeAddr        string
	pprofAddr        string
	leaderElect      bool
	leaderElectionNS string
	leaderElectionID string
	leaseDuration    time.Duration
	renewDeadline    time.Duration
	retryPeriod      time.Duration
	namespaces       string
	shardKey         string
	// shardKinds are the kinds a shard's cache holds only where marked for it (scopeToShard),
	// set when the manager is built.
	shardKinds      []schema.GroupKind
	watchSelector   string
	rolloutSelector labels.Selector
	providerList    string
	providers       []string
	qps             float64
	burst           int
	workers         int
	shutdownTimeout time.Duration
	prometheus      prometheusOptions
	events          eventOptions
	zap             zap.Options
	memLimitRatio   float64
	gcPercent       int
	showVersion     bool
}

func parse(args []string) (*options, error) {
	o := &options{}
	gcPercent, err := envInt("KULTA_GC_PERCENT", defaultGCPercent)
	if err != nil {
		return nil, err
	}
	fs := flag.NewFlagSet("kulta-controller", flag.ContinueOnError)
	fs.StringVar(&o.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "Path to a kubeconfig; in-cluster configuration when empty.")
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address of the /metrics endpoint; 0 disables it.")
	fs.BoolVar(&o.metricsSecure, "metrics-secure", false, "Serve /metrics over HTTPS with Kubernetes authentication and authorization.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of /healthz and /readyz; 0 disables them.")
	fs.StringVar(&o.pprofAddr, "pprof-bind-address", envOr("KULTA_PPROF_BIND_ADDRESS", "0"), "Address of Go's /debug/pprof endpoints, for profiling; 0 disables them (env KULTA_PPROF_BIND_ADDRESS).")
	fs.BoolVar(&o.leaderElect, "leader-elect", envBool("KULTA_LEADER_ELECTION"), "Elect a leader with a Lease, so that only one replica reconciles (env KULTA_LEADER_ELECTION).")
	fs.StringVar(&o.leaderElectionNS, "leader-election-namespace", os.Getenv("POD_NAMESPACE"), "Namespace of the leader-election Lease (env POD_NAMESPACE).")
	fs.StringVar(&o.leaderElectionID, "leader-election-id", "kulta-controller.kulta.io", "Name of the leader-election Lease.")
	fs.DurationVar(&o.leaseDuration, "leader-election-lease-duration", 15*time.Second, "How long a leader's Lease lasts without renewal; a new leader takes over within it.")
	fs.DurationVar(&o.renewDeadline, "leader-election-renew-deadline", 10*time.Second, "How long the leader keeps trying to renew before it gives up leadership.")
	fs.DurationVar(&o.retryPeriod, "leader-election-retry-period", 2*time.Second, "How often candidates try to acquire or renew the Lease.")
	fs.StringVar(&o.providerList, "traffic-providers", envOr("KULTA_TRAFFIC_PROVIDERS", "gatewayAPI"), "Comma-separated traffic providers to run: gatewayAPI, istio, nginx; each is used only where its API is served (env KULTA_TRAFFIC_PROVIDERS).")
	fs.StringVar(&o.namespaces, "namespaces", os.Getenv("KULTA_NAMESPACES"), "Comma-separated namespaces to watch; all when empty (env KULTA_NAMESPACES).")
	fs.StringVar(&o.shardKey, "shard-key", os.Getenv("KULTA_SHARD_KEY"), "Reconcile only the Rollouts labelled "+kultav1alpha1.ShardLabel+"=KEY, with a leader-election Lease of this shard's own (env KULTA_SHARD_KEY).")
	fs.StringVar(&o.watchSelector, "watch-label-selector", os.Getenv("KULTA_WATCH_LABEL_SELECTOR"), "Reconcile only the Rollouts this label selector matches, such as '!"+kultav1alpha1.ShardLabel+"' for the replicas that serve every Rollout no shard claims (env KULTA_WATCH_LABEL_SELECTOR).")
	fs.Float64Var(&o.qps, "kube-api-qps", 50, "Queries per second to the API server.")
	fs.IntVar(&o.burst, "kube-api-burst", 100, "Burst of queries to the API server.")
	fs.IntVar(&o.workers, "max-concurrent-reconciles", rollout.DefaultMaxConcurrentReconciles, "How many Rollouts are reconciled at once; one Rollout is never reconciled by two at a time.")
	fs.DurationVar(&o.shutdownTimeout, "graceful-shutdown-timeout", 30*time.Second, "How long in-flight reconciles may take to finish on shutdown.")
	fs.Float64Var(&o.memLimitRatio, "auto-gomemlimit-ratio", 0.9, "Set the Go runtime's soft memory limit to this fraction of the container's memory limit (cgroup); 0 leaves it unset. GOMEMLIMIT in the environment wins.")
	fs.IntVar(&o.gcPercent, "gc-percent", gcPercent, "The Go garbage collector's goal, as GOGC: collect when the heap has grown by this percent of the live data; 0 leaves Go's default of 100. GOGC in the environment wins (env KULTA_GC_PERCENT).")
	fs.BoolVar(&o.showVersion, "version", false, "Print the version and exit.")
	o.prometheus.bind(fs)
	o.events.bind(fs)
	o.zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("parsing flags: %w", err)
	}
	if o.memLimitRatio < 0 || o.memLimitRatio > 1 {
		return nil, fmt.Errorf("--auto-gomemlimit-ratio must be between 0 and 1, got %g", o.memLimitRatio)
	}
	if o.gcPercent < 0 {
		return nil, fmt.Errorf("--gc-percent must be 0 (Go's default) or more, got %d", o.gcPercent)
	}
	if o.workers < 1 {
		return nil, fmt.Errorf("--max-concurrent-reconciles must be at least 1, got %d", o.workers)
	}
	if o.providers, err = parseProviders(o.providerList); err != nil {
		return nil, err
	}
	if o.rolloutSelector, err = shardSelector(o.shardKey, o.watchSelector); err != nil {
		return nil, err
	}
	if o.shardKey != "" {
		explicit := false
		fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "leader-election-id" })
		if !explicit {
			o.leaderElectionID = "kulta-controller-" + o.shardKey + ".kulta.io"
		}
	}
	return o, nil
}

// shardSelector is the selector of the Rollouts this replica reconciles: those labelled with
// its shard key, or those the watch selector matches, or (both empty) all of them.
func shardSelector(shardKey, watchSelector string) (labels.Selector, error) {
	switch {
	case shardKey != "" && watchSelector != "":
		return nil, fmt.Errorf("--shard-key and --watch-label-selector both set: use one (a shard's replicas --shard-key, the others --watch-label-selector='!%s')", kultav1alpha1.ShardLabel)
	case shardKey != "":
		// A non-empty label value is also a label name, so shard.Label(shardKey) is valid too.
		if errs := validation.IsValidLabelValue(shardKey); len(errs) > 0 {
			return nil, fmt.Errorf("--shard-key %q is not a label value: %s", shardKey, strings.Join(errs, "; "))
		}
		return labels.SelectorFromSet(labels.Set{kultav1alpha1.ShardLabel: shardKey}), nil
	case watchSelector != "":
		sel, err := labels.Parse(watchSelector)
		if err != nil {
			return nil, fmt.Errorf("--watch-label-selector %q: %w", watchSelector, err)
		}
		return sel, nil
	}
	return labels.Everything(), nil
}

// envOr is the environment variable key, or def when it is empty.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// envInt is the environment variable key as an integer, or def when it is empty.
func envInt(key string, def int) (int, error) {
	raw := os.Getenv(key)
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil {
		return 0, fmt.Errorf("%s=%q is not an integer: %w", key, raw, err)
	}
	return n, nil
}

func envBool(key string) bool {
	switch strings.ToLower(os.Getenv(key)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// run starts the manager and blocks until ctx ends. cfg, when given, replaces the kubeconfig
// lookup (tests pass the test API server's).
func run(ctx context.Context, args []string, cfg *rest.Config) int {
	o, err := parse(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if o.showVersion {
		fmt.Println("kulta-controller", version)
		return 0
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.zap)))
	log := ctrl.Log.WithName("setup")
	if o.memLimitRatio > 0 {
		if _, err := setMemoryLimit(o.memLimitRatio, memlimit.FromCgroup, ctrl.Log.WithName("memlimit")); err != nil {
			log.Error(err, "Running without a Go memory limit")
		}
	}
	setGCPercent(o.gcPercent, ctrl.Log.WithName("gc"))
	if err := start(ctx, o, cfg); err != nil {
		log.Error(err, "Controller stopped")
		return 1
	}
	return 0
}

func start(ctx context.Context, o *options, cfg *rest.Config) error {
	mgr, err := newManager(o, cfg)
	if err != nil {
		return err
	}
	if err := setupReconciler(ctx, o, mgr); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("adding health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("adding ready check: %w", err)
	}
	ctrl.Log.WithName("setup").Info("Starting KULTA controller", "version", version, "leaderElection", o.leaderElect,
		"leaderElectionID", o.leaderElectionID, "namespaces", o.namespaces, "rollouts", o.rolloutSelector.String())
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("running manager: %w", err)
	}
	return nil
}

// newManager builds the manager: client limits, metrics serving, leader election, and the
// namespaces the cache watches.
func newManager(o *options, cfg *rest.Config) (ctrl.Manager, error) {
	if cfg == nil {
		var err error
		if cfg, err = restConfig(o.kubeconfig); err != nil {
			return nil, err
		}
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = float32(o.qps), o.burst
	cfg.UserAgent = "kulta-controller/" + version
	scheme, err := kultascheme.New()
	if err != nil {
		return nil, err
	}
	metricsOpts := metricsserver.Options{BindAddress: o.metricsAddr, SecureServing: o.metricsSecure}
	if o.metricsSecure {
		metricsOpts.FilterProvider = metricsauth.FilterProvider
	}
	cacheOpts, err := rollout.CacheOptions(cacheTrims()...)
	if err != nil {
		return nil, err
	}
	if err := rollout.SelectRollouts(&cacheOpts, o.rolloutSelector); err != nil {
		return nil, err
	}
	var mapperProvider func(*rest.Config, *http.Client) (meta.RESTMapper, error)
	if o.shardKey != "" {
		// A shard's replica asks a REST mapper which of the kinds it scopes are served before
		// the cache is built, and hands the same mapper to the manager.
		httpClient, err := rest.HTTPClientFor(cfg)
		if err != nil {
			return nil, fmt.Errorf("building the API server's HTTP client: %w", err)
		}
		mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
		if err != nil {
			return nil, fmt.Errorf("building the REST mapper: %w", err)
		}
		if o.shardKinds, err = scopeToShard(&cacheOpts, o.shardKey, scheme, mapper); err != nil {
			return nil, err
		}
		mapperProvider = func(*rest.Config, *http.Client) (meta.RESTMapper, error) { return mapper, nil }
	}
	if o.namespaces != "" {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range strings.Split(o.namespaces, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				cacheOpts.DefaultNamespaces[ns] = cache.Config{}
			}
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		MapperProvider:                mapperProvider, // nil: the manager's own
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        o.probeAddr,
		PprofBindAddress:              o.pprofAddr,
		LeaderElection:                o.leaderElect,
		LeaderElectionID:              o.leaderElectionID,
		LeaderElectionNamespace:       o.leaderElectionNS,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &o.leaseDuration,
		RenewDeadline:                 &o.renewDeadline,
		RetryPeriod:                   &o.retryPeriod,
		GracefulShutdownTimeout:       &o.shutdownTimeout,
		Cache:                         cacheOpts,
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	return mgr, nil
}

// setupReconciler wires the implementations into the Rollout reconciler: the enabled traffic
// providers whose APIs are served, the Prometheus analyzer, and the event sinks.
func setupReconciler(ctx context.Context, o *options, mgr ctrl.Manager) error {
	ps, err := trafficProviders(ctx, o, mgr)
	if err != nil {
		return err
	}
	checker, err := o.prometheus.checker()
	if err != nil {
		return err
	}
	sinks, err := o.events.sinks(mgr)
	if err != nil {
		return err
	}
	notifier, err := o.events.notifier(mgr)
	if err != nil {
		return err
	}
	recorder := kubeevents.New(kubeevents.Options{Client: mgr.GetClient(), Scheme: mgr.GetScheme(),
		Controller: "kulta-controller", Logger: ctrl.Log.WithName("events")})
	if err := mgr.Add(recorder); err != nil {
		return fmt.Errorf("adding the Event recorder: %w", err)
	}
	c, _ := o.readers(mgr)
	r := &rollout.Reconciler{
		Client:    c,
		APIReader: mgr.GetAPIReader(),
		Recorder:  recorder,
		Clock:     clock.RealClock{},
		Analyzer:  checker,
		Events:    sinks,
		// Secrets named by urlFrom and tokenFrom are read from the API server, never cached:
		// the controller may get them by name only.
		Webhooks: &webhook.Caller{Secrets: mgr.GetAPIReader()},

		Providers:       ps,
		RolloutSelector: o.rolloutSelector,
		ShardKey:        o.shardKey,

		MaxConcurrentReconciles: o.workers,
	}
	r.ClientQPS, r.ClientBurst = o.qps, o.burst
	if o.qps == 0 {
		// What client-go applies to a rest.Config that sets no limit.
		r.ClientQPS, r.ClientBurst = float64(rest.DefaultQPS), rest.DefaultBurst
	}
	if notifier != nil {
		// Not a nil *Notifier in the interface: the reconciler tests the interface for nil.
		r.Notifications = notifier
	}
	return r.SetupWithManager(ctx, mgr)
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		cfg, err := ctrl.GetConfig()
		if err != nil {
			return nil, fmt.Errorf("loading Kubernetes configuration: %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig %s: %w", kubeconfig, err)
	}
	return cfg, nil
}
