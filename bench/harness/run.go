package harness

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/false-systems/kulta/internal/controller/rollout"
	"github.com/false-systems/kulta/internal/testenv"
)

// Config is one bench run's settings.
type Config struct {
	// N is the number of Rollouts.
	N int
	// Waves is the number of update waves (each changes every template once).
	Waves int
	// QPS and Burst are the controller's client-side rate limit, also applied to the floor.
	QPS   float64
	Burst int
	// Reconcilers is the controller's --max-concurrent-reconciles.
	Reconcilers int
	// Settle is how long the bench watches after each wave completes (steady memory, idle writes).
	Settle time.Duration
	// ScrapeInterval is how often the controller's /metrics is read; /proc is read every second.
	ScrapeInterval time.Duration
	// MemoryLimit, when set ("300Mi"), runs the controller as in a container with that memory
	// limit: with GOMEMLIMIT at GoMemLimitRatio of it, as --auto-gomemlimit-ratio sets it from
	// the cgroup. The kernel does not enforce the limit here.
	MemoryLimit string
	// Shards, above 1, splits the Rollouts over that many controller processes: Rollout i is
	// labelled kulta.io/shard=s<i mod Shards> and process k runs with --shard-key=s<k>, with
	// its own log (controller-s<k>.log) and sampler. 0 or 1 runs one process without a shard key.
	Shards int
	// PerNamespace is how many Rollouts share a namespace (PerNamespace when 0): the
	// reconciler's reads of a Rollout's own objects must not grow with its neighbours.
	PerNamespace int
	// Provider is the traffic provider the Rollouts route through (Providers); Gateway API
	// when empty. The controller runs with that provider alone (--traffic-providers).
	Provider string
	// Workers bounds concurrent object creation and floor writes.
	Workers int
	// Binary is the controller binary; WorkDir holds kubeconfig and logs.
	Binary  string
	WorkDir string
	// Source is the code Binary was built from, recorded in the result; nil when unknown.
	Source *Source
	// Build is how Binary was built (ControllerBuild's String), recorded in the result.
	Build string
	// ControllerLogLevel is each controller process's --zap-log-level; info when empty.
	ControllerLogLevel string
	// Log receives progress lines.
	Log io.Writer
}

// GoMemLimitRatio is the share of a container's memory limit the controller gives the Go
// runtime as its soft limit: the chart's goMemLimitRatio default.
const GoMemLimitRatio = 0.9

// GoMemLimit is the GOMEMLIMIT, in bytes, the controller sets itself in a container with the
// given memory limit ("300Mi"); 0 for none.
func GoMemLimit(limit string) (int64, error) {
	if limit == "" {
		return 0, nil
	}
	q, err := resource.ParseQuantity(limit)
	if err != nil {
		return 0, fmt.Errorf("memory limit %q: %w", limit, err)
	}
	if q.Value() <= 0 {
		return 0, fmt.Errorf("memory limit %q is not positive", limit)
	}
	return int64(float64(q.Value()) * GoMemLimitRatio), nil
}

type runner struct {
	cfg           Config
	goMemLimit    int64
	env           *testenv.Env
	kubeconfig    string
	client        client.Client
	apiHTTP       *http.Client
	apiMetricsURL string
	apiserverPID  int
	etcdPID       int
	harnessCount  *RequestCounter
	standinCount  *RequestCounter
	tracker       *Tracker
	completions   *Completions
	routes        *RouteWatch
	// standinCache is the stand-ins' informer cache, which the completions are counted from.
	standinCache cache.Cache
	// shardKeys, ctrls and samplers are the controller processes, one each; shardKeys holds
	// the single "" of an unsharded run.
	shardKeys    []string
	ctrls        []*Controller
	samplers     []*Sampler
	stopSamplers context.CancelFunc
	stopStandins func() error
	closers      []func() error
	logErr       error
	refs         []Ref
}

// Run measures one N: it starts everything, runs the waves and the floor, stops everything and
// returns the results. Nothing it started outlives it.
func Run(ctx context.Context, cfg Config) (res *Result, err error) {
	r := &runner{cfg: cfg, harnessCount: NewRequestCounter(), standinCount: NewRequestCounter(), tracker: NewTracker(), completions: NewCompletions(), routes: NewRouteWatch(), refs: Refs(cfg.N, cfg.PerNamespace)}
	AssignShards(r.refs, cfg.Shards)
	if r.goMemLimit, err = GoMemLimit(cfg.MemoryLimit); err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, r.teardown(), r.logErr) }()
	if err := r.startEnv(cfg.WorkDir); err != nil {
		return nil, err
	}
	if err := r.startStandins(ctx, filepath.Join(cfg.WorkDir, "standins.log")); err != nil {
		return nil, err
	}
	if err := r.startControllers(ctx); err != nil {
		return nil, err
	}
	res = &Result{N: cfg.N, Waves: cfg.Waves, QPS: cfg.QPS, Burst: cfg.Burst, Reconcilers: cfg.Reconcilers, Started: time.Now().UTC(),
		ScrapeSeconds: cfg.ScrapeInterval.Seconds(), MemoryLimit: cfg.MemoryLimit, GoMemLimitBytes: r.goMemLimit, Source: cfg.Source, Build: cfg.Build}
	if cfg.Shards > 1 {
		res.Shards = cfg.Shards
	}
	elected := true // ControllerOptions.args always elects a leader.
	res.LeaderElection = &elected
	if cfg.PerNamespace > 0 && cfg.PerNamespace != PerNamespace {
		res.PerNamespace = cfg.PerNamespace
	}
	if cfg.Provider != ProviderGatewayAPI {
		res.Provider = cfg.Provider
	}
	if res.CreateSeconds, err = r.populate(ctx); err != nil {
		return nil, err
	}
	for w := 1; w <= cfg.Waves; w++ {
		wr, err := r.wave(ctx, w)
		if err != nil {
			return nil, err
		}
		res.WaveResults = append(res.WaveResults, wr)
		r.profileAfter(ctx, res, wr)
	}
	if res.Floor, err = r.floor(ctx); err != nil {
		return nil, err
	}
	res.SamplerFailures, res.SamplerLastError = r.samplerFailures()
	for _, s := range r.samplers {
		res.GCPercent = max(res.GCPercent, s.GCPercent())
	}
	res.finish()
	return res, nil
}

func (r *runner) logf(format string, args ...any) {
	_, err := fmt.Fprintf(r.cfg.Log, "[N=%d] %s %s\n", r.cfg.N, time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	if err != nil && r.logErr == nil {
		r.logErr = fmt.Errorf("writing progress: %w", err)
	}
}

// startControllers starts the controller processes, one per shard (one without a shard key
// in an unsharded run), each with a sampler of its own.
func (r *runner) startControllers(ctx context.Context) error {
	keys := ShardKeys(r.cfg.Shards)
	if len(keys) == 0 {
		keys = []string{""}
	}
	sctx, cancel := context.WithCancel(ctx)
	r.stopSamplers = cancel
	for _, key := range keys {
		c, err := StartController(ControllerOptions{
			Binary: r.cfg.Binary, Kubeconfig: r.kubeconfig, QPS: r.cfg.QPS, Burst: r.cfg.Burst, Reconcilers: r.cfg.Reconcilers,
			LogPath: filepath.Join(r.cfg.WorkDir, controllerLogName(key)), GoMemLimit: r.goMemLimit, ShardKey: key,
			LogLevel: r.cfg.ControllerLogLevel, Providers: cmp.Or(r.cfg.Provider, ProviderGatewayAPI),
		})
		if err != nil {
			if key != "" {
				return fmt.Errorf("shard %s: %w", key, err)
			}
			return err
		}
		r.logf("controller%s: pid %d, pprof at %s", shardSuffix(key), c.PID, c.PprofURL)
		s := NewSampler(c.PID, c.MetricsURL, time.Second, r.cfg.ScrapeInterval)
		r.shardKeys, r.ctrls, r.samplers = append(r.shardKeys, key), append(r.ctrls, c), append(r.samplers, s)
		go s.Run(sctx)
	}
	if len(keys) > 1 {
		r.logf("started %d controller processes, --shard-key=%s to %s", len(keys), keys[0], keys[len(keys)-1])
	}
	return nil
}

// shardSuffix is " s<k>" for shard key s<k>, "" for an unsharded run's only process.
func shardSuffix(key string) string {
	if key == "" {
		return ""
	}
	return " " + key
}

// controllerLogName is the log file of the controller process with shard key key ("" for
// an unsharded run's only process).
func controllerLogName(key string) string {
	if key == "" {
		return "controller.log"
	}
	return "controller-" + key + ".log"
}

// stopControllers stops the samplers, then every controller process, and returns their
// errors joined.
func (r *runner) stopControllers() error {
	if r.stopSamplers != nil {
		r.stopSamplers()
	}
	var errs []error
	for i, c := range r.ctrls {
		if err := c.Stop(); err != nil {
			if key := r.shardKeys[i]; key != "" {
				err = fmt.Errorf("shard %s: %w", key, err)
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// samplerFailures adds up the samplers' failures and gives the last error of the last sampler
// that had one, prefixed with its shard in a sharded run.
func (r *runner) samplerFailures() (int, string) {
	total, last := 0, ""
	for i, s := range r.samplers {
		n, err := s.Failures()
		total += n
		if err == nil {
			continue
		}
		last = err.Error()
		if key := r.shardKeys[i]; key != "" {
			last = "shard " + key + ": " + last
		}
	}
	return total, last
}

// populate creates the namespaces, Services, routes and Rollouts and waits until every
// Rollout is Completed at its first revision.
func (r *runner) populate(ctx context.Context) (float64, error) {
	start := time.Now()
	routes := "HTTPRoutes"
	if r.cfg.Provider == ProviderNGINX {
		routes = "stable Ingresses"
	}
	r.logf("creating %d Rollouts (+%d Services, %d %s)", r.cfg.N, 2*r.cfg.N, r.cfg.N, routes)
	if err := r.completions.Expect(ctx, r.standinCache, InitialImage, r.cfg.N); err != nil {
		return 0, err
	}
	if err := CreateNamespaces(ctx, r.client, r.refs); err != nil {
		return 0, err
	}
	if err := ForEach(ctx, r.refs, r.cfg.Workers, func(ctx context.Context, ref Ref) error {
		return CreateRollout(ctx, r.client, ref, r.cfg.Provider)
	}); err != nil {
		return 0, err
	}
	if _, err := r.waitCompleted(ctx, nil); err != nil {
		return 0, err
	}
	r.logf("all %d Completed after %.1fs", r.cfg.N, time.Since(start).Seconds())
	return time.Since(start).Seconds(), sleep(ctx, r.cfg.Settle)
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return fmt.Errorf("interrupted: %w", ctx.Err())
	case <-time.After(d):
		return nil
	}
}

// Routes left unaccepted this long are reported while the bench waits (see RouteWatch); the
// stand-in accepts a route as soon as it sees it, and KULTA's progress deadline is 10 minutes.
const (
	stuckAfter       = 3 * time.Minute
	stuckCheckPeriod = 30 * time.Second
	stuckReported    = 3
)

// waitCompleted waits for the completions, and meanwhile reports the routes left unaccepted:
// how the bench's watch and the API server see each.
func (r *runner) waitCompleted(ctx context.Context, progress func(int)) (time.Time, error) {
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(stuckCheckPeriod)
		defer tick.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case now := <-tick.C:
				r.reportStuckRoutes(wctx, now)
			}
		}
	}()
	at, err := r.completions.Wait(ctx, progress)
	stop()
	<-done
	return at, err
}

func (r *runner) reportStuckRoutes(ctx context.Context, now time.Time) {
	stuck, total := r.routes.Stuck(now, stuckAfter, stuckReported)
	for _, s := range stuck {
		live := &gatewayv1.HTTPRoute{}
		state := ""
		if err := r.client.Get(ctx, s.Key, live); err != nil {
			state = fmt.Sprintf("reading it from the API server: %v", err)
		} else {
			state = fmt.Sprintf("the API server holds generation %d, accepted at %d (resourceVersion %s)", live.Generation, AcceptedGeneration(live), live.ResourceVersion)
		}
		r.logf("route %s: generation %d unaccepted for %s in the bench's watch (accepted there: %d); %s; %d routes unaccepted for over %s",
			s.Key, s.Generation, s.For.Round(time.Second), s.Accepted, state, total, stuckAfter)
	}
}

// wave changes every template and waits until every Rollout is Completed again and the wave's
// tail is over (tailOver), then watches for cfg.Settle more.
func (r *runner) wave(ctx context.Context, w int) (WaveResult, error) {
	image := WaveImage(w)
	r.tracker.StartWave(image)
	if err := r.completions.Expect(ctx, r.standinCache, image, r.cfg.N); err != nil {
		return WaveResult{}, err
	}
	s0, err := r.snapshot(ctx)
	if err != nil {
		return WaveResult{}, err
	}
	r.logf("wave %d: setting image %s on %d Rollouts", w, image, r.cfg.N)
	if err := ForEach(ctx, r.refs, r.cfg.Workers, func(ctx context.Context, ref Ref) error {
		return SetImage(ctx, r.client, ref, image)
	}); err != nil {
		return WaveResult{}, err
	}
	patched := time.Since(s0.t)
	tenth, logged := max(1, r.cfg.N/10), 0
	if _, err := r.waitCompleted(ctx, func(done int) {
		if done/tenth > logged/tenth {
			r.logf("wave %d: %d/%d Completed", w, done, r.cfg.N)
			logged = done
		}
	}); err != nil {
		return WaveResult{}, err
	}
	s1, err := r.snapshot(ctx)
	if err != nil {
		return WaveResult{}, err
	}
	// The wave's tail: the old revisions' scale-downs and the status writes after them, which
	// come scaleDownDelaySeconds after each Rollout read Completed, and what the controller's
	// rate-limited clients still have queued. It ends as tailOver says; the settle period after
	// it should see no write at all.
	bound := TailBound(r.cfg.N, r.cfg.Shards, r.cfg.QPS)
	cut, err := r.waitQuiet(ctx, bound)
	if err != nil {
		return WaveResult{}, err
	}
	tail, err := r.snapshot(ctx)
	if err != nil {
		return WaveResult{}, err
	}
	if err := sleep(ctx, r.cfg.Settle); err != nil {
		return WaveResult{}, err
	}
	s2, err := r.snapshot(ctx)
	if err != nil {
		return WaveResult{}, err
	}
	wr := r.waveResult(w, s0, s1, tail, s2)
	wr.PatchSeconds = patched.Seconds()
	wr.TailSeconds = tail.t.Sub(s1.t).Seconds()
	wr.TailBoundSeconds = bound.Seconds()
	wr.TailCut = cut
	wr.TailAfterDelay = true
	r.logf("wave %d: %.1fs, %.2f controller writes per Rollout per step", w, wr.WallSeconds, wr.WritesPerStep)
	return wr, nil
}

// profileAfter reads the heap profile after wave wr (heapProfile) and keeps it in res: as the
// last wave's profile or, before the last wave, among the earlier ones. It is read after every
// wave so that what the heap gains from wave to wave is seen by owner; the wave's figures and
// its settle period's are taken by then. One that cannot be read is named in
// res.HeapProfileError and loses the owners, not the run's figures.
func (r *runner) profileAfter(ctx context.Context, res *Result, wr WaveResult) {
	hp, err := r.heapProfile(ctx, wr)
	if err != nil {
		unread := fmt.Sprintf("after wave %d: %v", wr.Wave, err)
		res.HeapProfileError = strings.TrimPrefix(res.HeapProfileError+"; "+unread, "; ")
		r.logf("heap profile %s", unread)
		return
	}
	if wr.Wave < res.Waves {
		res.EarlierHeapProfiles = append(res.EarlierHeapProfiles, hp)
		return
	}
	res.HeapProfile = hp
}

// heapProfile reads the heap profile of the process with the highest peak RSS in wave w
// (the process whose memory the results give), after a collection it asks for: the wave's
// and the settle period's figures are taken by then. It sorts the live heap by owner.
func (r *runner) heapProfile(ctx context.Context, w WaveResult) (*HeapProfile, error) {
	i, err := topReplica(w, r.shardKeys)
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: heapProfileTimeout}
	data, err := FetchHeapProfile(ctx, hc, r.ctrls[i].HeapProfileURL)
	if err != nil {
		return nil, err
	}
	hp, err := AnalyseHeapProfile(data)
	if err != nil {
		return nil, err
	}
	hp.Wave, hp.Shard, hp.Collected = w.Wave, r.shardKeys[i], true
	return hp, nil
}

// heapProfileTimeout bounds a heap profile's read, the collection it asks for included.
const heapProfileTimeout = time.Minute

// topReplica is the index, in keys (a run's processes, in the order replicaMemory lists
// them), of the process with the highest peak RSS in w, the first of equals, as
// replicaMemory takes it; 0 for an unsharded run. A list of processes that does not match
// keys is an error.
func topReplica(w WaveResult, keys []string) (int, error) {
	if len(w.Replicas) == 0 {
		if len(keys) > 1 {
			return 0, fmt.Errorf("wave %d has no figures of its %d processes", w.Wave, len(keys))
		}
		return 0, nil
	}
	if len(w.Replicas) != len(keys) {
		return 0, fmt.Errorf("wave %d has figures of %d processes, the run %d", w.Wave, len(w.Replicas), len(keys))
	}
	top := 0
	for i, m := range w.Replicas {
		if m.Shard != keys[i] {
			return 0, fmt.Errorf("wave %d: process %d is shard %q in the figures, %q in the run", w.Wave, i, m.Shard, keys[i])
		}
		if m.PeakRSS > w.Replicas[top].PeakRSS {
			top = i
		}
	}
	return top, nil
}

// floor stops every controller process and runs the plain-client baseline against the same
// API server.
func (r *runner) floor(ctx context.Context) (FloorResult, error) {
	if err := r.stopControllers(); err != nil {
		return FloorResult{}, err
	}
	counter := NewRequestCounter()
	c, err := client.New(countedConfig(r.env.Config, float32(r.cfg.QPS), r.cfg.Burst, counter), client.Options{Scheme: r.env.Scheme})
	if err != nil {
		return FloorResult{}, fmt.Errorf("floor client: %w", err)
	}
	before, err := r.snapshot(ctx)
	if err != nil {
		return FloorResult{}, err
	}
	r.logf("floor: %d route writes and %d status patches", StepsPerWave*r.cfg.N, StepsPerWave*r.cfg.N)
	wall, err := RunFloor(ctx, c, r.refs, r.cfg.Workers, r.cfg.Provider)
	if err != nil {
		return FloorResult{}, err
	}
	after, err := r.snapshot(ctx)
	if err != nil {
		return FloorResult{}, err
	}
	writes := counter.Snapshot().Writes()
	r.logf("floor: %.1fs", wall.Seconds())
	return FloorResult{
		WallSeconds:         wall.Seconds(),
		Writes:              writes,
		WritesPerStep:       Finite(PerStep(writes, r.cfg.N, 1)),
		APIServerCPUSeconds: after.apiCPU - before.apiCPU,
		APIServerWrites:     after.api.Sub(before.api).Writes(),
	}, nil
}

func (r *runner) teardown() error {
	errs := []error{r.stopControllers()}
	if r.stopStandins != nil {
		errs = append(errs, r.stopStandins())
	}
	if r.env != nil {
		errs = append(errs, r.env.Stop())
	}
	for _, c := range r.closers {
		errs = append(errs, c())
	}
	if r.kubeconfig != "" {
		if err := os.Remove(r.kubeconfig); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing kubeconfig: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Quiet is how long the controller must go without a write (lease renewals aside) for a wave's
// tail to be over: longer than the pauses it takes on purpose (a Pod-count write waits 5 s for
// the next, a revision's scale-down is looked at again every 5 s), so that the tail does not
// end inside one of them. Results from before 6 Dec 2026 22:00 UTC took 3 s.
const Quiet = 10 * time.Second

// tailOver reports whether a wave's tail that began at start (every Rollout read Completed)
// is over at now, the controller's last write having come at changed: Quiet has passed without
// a write, and all of that quiet came after the last Rollout's old revision was due to be
// scaled down (rollout.DefaultScaleDownDelay after it read Completed), so that a small wave,
// whose writes stop long before that delay has passed, is not taken as over before the
// scale-downs and the status writes after them. Results from before commit 4a68b61 (7 Dec 2026
// 01:40 UTC) took the first Quiet without a write, wherever it fell (TailAfterDelay false).
func tailOver(start, changed, now time.Time) bool {
	return now.Sub(changed) >= Quiet && now.Sub(start) >= rollout.DefaultScaleDownDelay+Quiet
}

// TailBound is how long waitQuiet waits for the tail of a wave of n Rollouts over the given
// number of controller processes at qps: 3 minutes, or more where the tail's own writes need
// it. Once every Rollout reads Completed, each still has its old revision scaled to 0 after
// scaleDownDelaySeconds (30 s) and a status write when that revision's Pods leave its counts;
// each process's clients send its share of each at qps (one token bucket per kind), and the
// bound allows twice that. Results from before 6 Dec 2026 22:00 UTC took 3 minutes at any N.
func TailBound(n, processes int, qps float64) time.Duration {
	const least = 3 * time.Minute
	perProcess := float64(n) / float64(max(1, processes))
	need := rollout.DefaultScaleDownDelay + time.Duration(2*perProcess/qps*float64(time.Second))
	return max(least, need)
}

// waitQuiet polls the API server's request counts every second until the wave's tail is over
// (tailOver), or bound has passed; cut tells the latter.
func (r *runner) waitQuiet(ctx context.Context, bound time.Duration) (cut bool, err error) {
	start := time.Now()
	last, changed := -1.0, start
	for {
		ss, err := Scrape(ctx, r.apiHTTP, r.apiMetricsURL)
		if err != nil {
			return false, err
		}
		bench := addCounts(r.harnessCount.Snapshot(), r.standinCount.Snapshot())
		writes := perRolloutWrites(APIServerRequests(ss).Sub(bench))
		now := time.Now()
		if writes != last {
			last, changed = writes, now
		}
		if tailOver(start, changed, now) {
			return false, nil
		}
		if now.Sub(start) >= bound {
			return true, nil
		}
		if err := sleep(ctx, time.Second); err != nil {
			return false, err
		}
	}
}
