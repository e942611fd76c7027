package harness

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"k8s.io/utils/ptr"
)

// Result is everything measured for one N.
type Result struct {
	N               int          `json:"n"`
	Waves           int          `json:"waves"`
	QPS             float64      `json:"controllerQPS"`
	Burst           int          `json:"controllerBurst"`
	Reconcilers     int          `json:"controllerReconcilers,omitempty"`
	Started         time.Time    `json:"started"`
	CreateSeconds   float64      `json:"createSeconds"`
	WaveResults     []WaveResult `json:"waveResults"`
	Floor           FloorResult  `json:"floor"`
	FloorRatio      float64      `json:"wallTimeRatioToFloor"`
	SamplerFailures int          `json:"samplerFailures"`
	// ScrapeSeconds is how often the controller's /metrics was read (0 in results from before
	// the interval was recorded: every second).
	ScrapeSeconds float64 `json:"scrapeSeconds,omitempty"`
	// MemoryLimit is the container memory limit the run stood for ("300Mi"), empty for none;
	// the controller then ran with GOMEMLIMIT GoMemLimitBytes, what --auto-gomemlimit-ratio
	// sets in such a container.
	MemoryLimit     string `json:"memoryLimit,omitempty"`
	GoMemLimitBytes int64  `json:"goMemLimitBytes,omitempty"`
	// Shards is the number of controller processes the Rollouts were split over (each with
	// --shard-key=s<k>, each given every Shards-th Rollout); 0 for one process without a key.
	// Each process had the QPS, burst, reconcilers and memory limit above.
	Shards int `json:"shards,omitempty"`
	// PerNamespace is how many Rollouts shared a namespace when not PerNamespace (100, as in
	// every run before 7 Dec 2026 13:30 UTC); 0 otherwise.
	PerNamespace int `json:"perNamespace,omitempty"`
	// Provider is the traffic provider the Rollouts routed through when not Gateway API (as in
	// every run before 7 Dec 2026 19:00 UTC): "nginx"; empty otherwise.
	Provider string `json:"provider,omitempty"`
	// LeaderElection tells whether the controllers elected a leader (--leader-elect), as every
	// run since bench commit 6cd5409 did; nil in results from before it was recorded, where
	// ElectedLeader tells it from when the run started.
	LeaderElection *bool `json:"leaderElection,omitempty"`
	// Source is the code the controller was built from; nil in results from before it was
	// recorded (6 Dec 2026 21:42 UTC) or when git could not tell it.
	Source *Source `json:"source,omitempty"`
	// Build is the go build command the controller was built with (ControllerBuild); empty in
	// results from before commit 001831b (7 Dec 2026 03:50 UTC), whose controller was built
	// with go build's defaults, dynamically linked.
	Build string `json:"build,omitempty"`
	// GCPercent is the collector's goal the controller's runtime reported on /metrics
	// (go_gc_gogc_percent; the highest of a sharded run's processes); 0 in results from before
	// it was recorded (7 Dec 2026 05:00 UTC).
	GCPercent float64 `json:"controllerGCPercent,omitempty"`
	// HeapProfile is where the live heap went after the last wave's settle period (nil in
	// results from before commit d8f5ffc, or when it could not be read: HeapProfileError says
	// why).
	HeapProfile *HeapProfile `json:"heapProfile,omitempty"`
	// EarlierHeapProfiles are read the same way after the settle period of each wave before
	// the last, in wave order (none in results from before commit 24a9c9f, nor in a run of one
	// wave): with HeapProfile, what the live heap gained by owner from wave to wave
	// (HeapGrowth). Each is kept beside the results as <Name()>.wave-<W>.heap.pb.gz.
	EarlierHeapProfiles []*HeapProfile `json:"earlierHeapProfiles,omitempty"`
	// HeapProfileError says which profiles could not be read, and why ("after wave W: …").
	HeapProfileError string `json:"heapProfileError,omitempty"`
	// SamplerLastError is the last failed sample's error (the controller's last seconds, when
	// it is stopped before the floor, usually).
	SamplerLastError string `json:"samplerLastError,omitempty"`
}

// WaveResult is one update wave.
type WaveResult struct {
	Wave int `json:"wave"`
	// WallSeconds runs from the first image patch to the moment every Rollout was seen
	// Completed (by a watch since 6 Dec 2026, by a List once a second before); PatchSeconds is how long sending the N patches took.
	WallSeconds          float64 `json:"wallSeconds"`
	PatchSeconds         float64 `json:"patchSeconds"`
	ControllerCPUSeconds float64 `json:"controllerCPUSeconds"`
	APIServerCPUSeconds  float64 `json:"apiServerCPUSeconds"`
	EtcdCPUSeconds       float64 `json:"etcdCPUSeconds"`
	// During covers the wave and its tail (results from before 7 Dec 2026 02:20 UTC: the wave
	// alone, up to the last Completed), Steady the settle period after it.
	// A snapshot's own /proc sample ends each (Sampler.SampleNow). In a sharded run both are
	// the process with the highest peak RSS during the wave (so they stay figures of one
	// replica), and Replicas lists every process.
	During   Window          `json:"during"`
	Steady   Window          `json:"steady"`
	Replicas []ReplicaMemory `json:"replicas,omitempty"`
	// APIServer is every request the API server counted in the wave; Bench is what this
	// process sent (stand-ins and harness, counted client-side); Controller is the difference.
	APIServer  []RequestRow `json:"apiServerRequests"`
	Bench      []RequestRow `json:"benchRequests"`
	Controller []RequestRow `json:"controllerRequests"`
	// UntilCompleted is the part of Controller sent before every Rollout read Completed,
	// without the tail: what the controller's token buckets had to pass within WallSeconds.
	// Nil in results from before 6 Dec 2026, which did not tell the two apart.
	UntilCompleted []RequestRow `json:"controllerRequestsUntilCompleted,omitempty"`
	// ControllerWrites are the controller's writes in the wave; per step divides by 3N.
	// WritesPerStep and NonEventWritesPerStep leave out leader election's lease renewals,
	// which each process makes every few seconds whatever its Rollouts do (at N=1, with a tail
	// of 45 s, they were about a quarter of the wave's writes) where LeasesApart is set; results
	// from before commit 1e5119d (7 Dec 2026 01:43 UTC) count them (at N=1,000 about 0.004 per
	// Rollout per step).
	ControllerWrites      float64 `json:"controllerWrites"`
	WritesPerStep         float64 `json:"writesPerRolloutPerStep"`
	NonEventWritesPerStep float64 `json:"nonEventWritesPerRolloutPerStep"`
	RouteWritesPerStep    float64 `json:"routeWritesPerRolloutPerStep"`
	StatusWritesPerStep   float64 `json:"statusWritesPerRolloutPerStep"`
	LeasesApart           bool    `json:"writesPerStepWithoutLeases,omitempty"`
	EventsPerRollout      float64 `json:"eventsPerRolloutPerWave"`
	// ClientWrites is the controller's own count (rest_client_requests_total, POST/PUT/PATCH/DELETE).
	ClientWrites float64 `json:"controllerClientSideWrites"`
	// ClientRequests is the controller's own count of all its requests.
	ClientRequests float64 `json:"controllerClientSideRequests"`
	// EventsDropped is kulta_kubernetes_events_dropped_total: Events KULTA recorded but did
	// not write (its queue full, or the write failed).
	EventsDropped float64 `json:"eventsDropped"`
	// KultaRouteWrites is kulta_traffic_route_writes_total{result="ok"}.
	KultaRouteWrites     float64 `json:"kultaRouteWrites"`
	ReconcilesPerRollout float64 `json:"reconcilesPerRollout"`
	// TailWrites are the controller's writes after every Rollout read Completed, until its
	// tail was over (tailOver) TailSeconds later: the old revisions' scale-downs and the status
	// writes when their Pods leave the counts, and what its rate-limited clients still had
	// queued (Events above all). They are counted in the wave's writes.
	// Results from before TailSeconds was recorded (0) took a fixed 5 s as the tail.
	TailWrites  float64 `json:"tailWritesAfterCompleted"`
	TailSeconds float64 `json:"tailSeconds,omitempty"`
	// TailBoundSeconds is how long the bench would wait for the tail (TailBound), and TailCut
	// whether it stopped there, the controller having written within the last Quiet; both are
	// zero in results from before 6 Dec 2026 22:00 UTC, which waited 3 minutes at most (see
	// tailCut).
	TailBoundSeconds float64 `json:"tailBoundSeconds,omitempty"`
	TailCut          bool    `json:"tailCut,omitempty"`
	// TailAfterDelay says the tail's quiet was taken only after the last old revision's
	// scale-down was due (tailOver); false in results from before commit 4a68b61 (7 Dec 2026
	// 01:40 UTC), whose
	// tail ended at the first Quiet without a write, so that a small wave's could end before
	// its scale-downs.
	TailAfterDelay bool `json:"tailAfterScaleDownDelay,omitempty"`
	// IdleWrites are the controller's writes in the settle period after the tail, when no
	// Rollout has anything left to do; IdleEventWrites the Events among them. It is nil in
	// results from before it was recorded.
	IdleWrites      float64  `json:"idleWritesAfterWave"`
	IdleEventWrites *float64 `json:"idleEventWritesAfterWave,omitempty"`
	// IdleLeaseWrites are the leader-election lease renewals among IdleWrites (one every few
	// seconds while a process leads, whatever the Rollouts do); nil in results from before it
	// was recorded.
	IdleLeaseWrites *float64 `json:"idleLeaseWritesAfterWave,omitempty"`
	// KultaStepLatency* come from KULTA's kulta_rollout_step_latency_seconds histogram:
	// from a traffic change becoming due to its weight written on the route.
	KultaStepLatencyP50   float64 `json:"kultaStepLatencyP50Seconds"`
	KultaStepLatencyP99   float64 `json:"kultaStepLatencyP99Seconds"`
	KultaStepLatencyCount float64 `json:"kultaStepLatencyCount"`
	// StepLatency is the same interval measured from outside by the Tracker, a cross-check;
	// StepDuration* come from KULTA's kulta_rollout_step_duration_seconds histogram.
	StepLatency     StepLatencies `json:"stepLatency"`
	StepDurationP50 float64       `json:"stepDurationP50Seconds"`
	StepDurationP99 float64       `json:"stepDurationP99Seconds"`
}

// ReplicaMemory is one controller process's memory in a wave of a sharded run.
type ReplicaMemory struct {
	// Shard is the process's --shard-key.
	Shard string `json:"shard"`
	// PeakRSS and PeakHeapInuse are the highest samples during the wave; SteadyRSS and
	// SteadyHeapInuse the means over the settle period after it.
	PeakRSS         uint64  `json:"peakRSSBytes"`
	SteadyRSS       uint64  `json:"steadyRSSBytes"`
	PeakHeapInuse   float64 `json:"peakHeapInuseBytes"`
	SteadyHeapInuse float64 `json:"steadyHeapInuseBytes"`
}

// replicaMemory takes each controller process's windows during a wave and in the settle
// period after it (keys, during and steady in the same order) and returns the windows of the
// process with the highest peak RSS during the wave (the first of equals) and, when there is
// more than one process, every process's figures.
func replicaMemory(keys []string, during, steady []Window) (Window, Window, []ReplicaMemory) {
	if len(during) == 0 || len(steady) != len(during) {
		return Window{}, Window{}, nil
	}
	top := 0
	for i, w := range during {
		if w.PeakRSS > during[top].PeakRSS {
			top = i
		}
	}
	if len(during) == 1 {
		return during[top], steady[top], nil
	}
	replicas := make([]ReplicaMemory, len(during))
	for i := range during {
		replicas[i] = ReplicaMemory{
			PeakRSS: during[i].PeakRSS, SteadyRSS: steady[i].MeanRSS,
			PeakHeapInuse: during[i].PeakHeapInuse, SteadyHeapInuse: steady[i].MeanHeapInuse,
		}
		if i < len(keys) {
			replicas[i].Shard = keys[i]
		}
	}
	return during[top], steady[top], replicas
}

// ReplicasPeakRSS is the sum of the processes' peak RSS in w (each sampled on its own, so
// the peaks need not have been at the same moment); 0 for an unsharded run.
func ReplicasPeakRSS(w WaveResult) uint64 {
	total := uint64(0)
	for _, m := range w.Replicas {
		total += m.PeakRSS
	}
	return total
}

// FloorResult is the plain-client baseline.
type FloorResult struct {
	WallSeconds         float64 `json:"wallSeconds"`
	Writes              float64 `json:"writes"`
	WritesPerStep       float64 `json:"writesPerRolloutPerStep"`
	APIServerCPUSeconds float64 `json:"apiServerCPUSeconds"`
	APIServerWrites     float64 `json:"apiServerWritesAllClients"`
}

var clientWriteMethods = []string{"POST", "PUT", "PATCH", "DELETE"}

// waveResult works out one wave's figures from snapshots at its start (s0), when every Rollout
// read Completed (s1), when the controller went quiet (tail) and at the end of the settle
// period (s2). Requests and the controller's own counters run from s0 to tail, wall and CPU
// time from s0 to s1; the steady window is tail to s2. The controller's counters and CPU are
// summed over its processes; memory is per process (see replicaMemory).
func (r *runner) waveResult(w int, s0, s1, tail, s2 snapshot) WaveResult {
	n := r.cfg.N
	api := tail.api.Sub(s0.api)
	bench := tail.bench.Sub(s0.bench)
	ctrlReqs := api.Sub(bench)
	tailReqs := tail.api.Sub(s1.api).Sub(tail.bench.Sub(s1.bench))
	idle := s2.api.Sub(tail.api).Sub(s2.bench.Sub(tail.bench))
	writes := ctrlReqs.Writes()
	wr := WaveResult{
		Wave:                  w,
		WallSeconds:           s1.t.Sub(s0.t).Seconds(),
		ControllerCPUSeconds:  s1.ctrlCPU - s0.ctrlCPU,
		APIServerCPUSeconds:   s1.apiCPU - s0.apiCPU,
		EtcdCPUSeconds:        s1.etcdCPU - s0.etcdCPU,
		APIServer:             api.Rows(),
		Bench:                 bench.Rows(),
		Controller:            ctrlReqs.Rows(),
		UntilCompleted:        s1.api.Sub(s0.api).Sub(s1.bench.Sub(s0.bench)).Rows(),
		ControllerWrites:      writes,
		WritesPerStep:         Finite(PerStep(perRolloutWrites(ctrlReqs), n, 1)),
		NonEventWritesPerStep: Finite(PerStep(perRolloutWrites(ctrlReqs, "events"), n, 1)),
		RouteWritesPerStep:    Finite(PerStep(resourceWrites(ctrlReqs, routeKinds...), n, 1)),
		StatusWritesPerStep:   Finite(PerStep(resourceWrites(ctrlReqs, "rollouts/status"), n, 1)),
		LeasesApart:           true,
		EventsPerRollout:      resourceWrites(ctrlReqs, "events") / float64(n),
		TailWrites:            tailReqs.Writes(),
		IdleWrites:            idle.Writes(),
		IdleEventWrites:       ptr.To(resourceWrites(idle, "events")),
		IdleLeaseWrites:       ptr.To(resourceWrites(idle, leaseResource)),
		StepLatency:           r.tracker.Latencies(),
	}
	during, steady := make([]Window, len(r.samplers)), make([]Window, len(r.samplers))
	for i, s := range r.samplers {
		during[i], steady[i] = s.Window(s0.t, tail.t), s.Window(tail.t, s2.t)
	}
	wr.During, wr.Steady, wr.Replicas = replicaMemory(r.shardKeys, during, steady)
	for _, m := range clientWriteMethods {
		wr.ClientWrites += tail.ctrl.Sum("rest_client_requests_total", map[string]string{"method": m}) -
			s0.ctrl.Sum("rest_client_requests_total", map[string]string{"method": m})
	}
	wr.ClientRequests = tail.ctrl.Sum("rest_client_requests_total", nil) - s0.ctrl.Sum("rest_client_requests_total", nil)
	wr.EventsDropped = tail.ctrl.Sum("kulta_kubernetes_events_dropped_total", nil) - s0.ctrl.Sum("kulta_kubernetes_events_dropped_total", nil)
	ok := map[string]string{"result": "ok"}
	wr.KultaRouteWrites = tail.ctrl.Sum("kulta_traffic_route_writes_total", ok) - s0.ctrl.Sum("kulta_traffic_route_writes_total", ok)
	rc := map[string]string{"controller": "rollout"}
	wr.ReconcilesPerRollout = (tail.ctrl.Sum("controller_runtime_reconcile_total", rc) - s0.ctrl.Sum("controller_runtime_reconcile_total", rc)) / float64(n)
	latency := BucketDelta(s0.ctrl.HistogramBuckets("kulta_rollout_step_latency_seconds", nil), tail.ctrl.HistogramBuckets("kulta_rollout_step_latency_seconds", nil))
	wr.KultaStepLatencyP50, wr.KultaStepLatencyP99 = Finite(HistogramQuantile(0.5, latency)), Finite(HistogramQuantile(0.99, latency))
	if len(latency) > 0 {
		wr.KultaStepLatencyCount = latency[len(latency)-1].Count
	}
	steps := BucketDelta(s0.ctrl.HistogramBuckets("kulta_rollout_step_duration_seconds", nil), tail.ctrl.HistogramBuckets("kulta_rollout_step_duration_seconds", nil))
	wr.StepDurationP50, wr.StepDurationP99 = Finite(HistogramQuantile(0.5, steps)), Finite(HistogramQuantile(0.99, steps))
	return wr
}

// leaseResource is leader election's: a leading process renews its Lease every few seconds,
// whatever its Rollouts do.
const leaseResource = "leases"

// perRolloutWrites are the controller's writes on behalf of its Rollouts, but on the resources
// except: all writes but leader election's lease renewals.
func perRolloutWrites(c RequestCounts, except ...string) float64 {
	return c.Writes(slices.Concat(except, []string{leaseResource})...)
}

// routeKinds are the resources of the objects a traffic router writes.
var routeKinds = []string{"httproutes", "grpcroutes", "virtualservices", "destinationrules", "ingresses"}

// resourceWrites sums the writing verbs on resources.
func resourceWrites(c RequestCounts, resources ...string) float64 {
	total := 0.0
	for k, v := range c {
		if slices.Contains(resources, k.Resource) && IsWrite(k.Verb) {
			total += v
		}
	}
	return total
}

// finish computes the derived figures.
func (res *Result) finish() {
	if len(res.WaveResults) > 0 {
		res.FloorRatio = Finite(Ratio(res.WaveResults[len(res.WaveResults)-1].WallSeconds, res.Floor.WallSeconds))
	}
}

// Sharded reports whether the run split the Rollouts over more than one controller process.
func (r *Result) Sharded() bool { return r.Shards > 1 }

// HeapProfiles are the heap profiles r holds, in wave order: those read after the earlier
// waves, then the last wave's.
func (r *Result) HeapProfiles() []*HeapProfile {
	all := slices.Clone(r.EarlierHeapProfiles)
	if r.HeapProfile != nil {
		all = append(all, r.HeapProfile)
	}
	return all
}

// leaderElectionSince is when the first run with leader election started (bench commit
// 6cd5409, 7 Dec 2026): the earliest start of a result that elected a leader without saying
// so.
var leaderElectionSince = time.Date(2026, 12, 7, 9, 50, 0, 0, time.UTC)

// ElectedLeader tells whether the run's controllers elected a leader: as recorded, or, for a
// result from before that was recorded, whether it started after the bench began to.
func (r *Result) ElectedLeader() bool {
	if r.LeaderElection != nil {
		return *r.LeaderElection
	}
	return !r.Started.Before(leaderElectionSince)
}

// processes is the number of controller processes the run had.
func (r *Result) processes() int { return max(1, r.Shards) }

// Name is the results files' name: results-<N>, with -limit-<limit> for a run with a memory
// limit, then -shards-<K> for a run in K shards and -per-ns-<P> for P Rollouts to a namespace
// other than PerNamespace, and -<provider> for a provider other than Gateway API
// (results-5000-limit-300Mi-shards-4, results-1000-per-ns-1000-nginx).
func (r *Result) Name() string {
	name := fmt.Sprintf("results-%d", r.N)
	if r.MemoryLimit != "" {
		name += "-limit-" + r.MemoryLimit
	}
	if r.Sharded() {
		name += fmt.Sprintf("-shards-%d", r.Shards)
	}
	if r.PerNamespace > 0 {
		name += fmt.Sprintf("-per-ns-%d", r.PerNamespace)
	}
	if r.Provider != "" {
		name += "-" + r.Provider
	}
	return name
}

// layout completes a run's label and title for a run with other than PerNamespace Rollouts to
// a namespace (", all in one namespace" or ", 500 to a namespace") or through another traffic
// provider than Gateway API (", through NGINX Ingresses"); empty otherwise.
func (r *Result) layout() string {
	out := ""
	switch {
	case r.PerNamespace == 0:
	case r.PerNamespace >= r.N:
		out = ", all in one namespace"
	default:
		out = fmt.Sprintf(", %d to a namespace", r.PerNamespace)
	}
	switch r.Provider {
	case "":
	case ProviderNGINX:
		out += ", through NGINX Ingresses"
	default:
		out += ", through " + r.Provider
	}
	return out
}

// Label names the run in the targets: "N=5000", "N=5000 in 300Mi" with a memory limit,
// "N=5000 in 4 shards" in shards, "N=5000 in 4 shards of 300Mi" with both; then the layout,
// when not the default ("N=1000, all in one namespace").
func (r *Result) Label() string { return r.label() + r.layout() }

func (r *Result) label() string {
	switch {
	case r.Sharded() && r.MemoryLimit != "":
		return fmt.Sprintf("N=%d in %d shards of %s", r.N, r.Shards, r.MemoryLimit)
	case r.Sharded():
		return fmt.Sprintf("N=%d in %d shards", r.N, r.Shards)
	case r.MemoryLimit != "":
		return fmt.Sprintf("N=%d in %s", r.N, r.MemoryLimit)
	}
	return fmt.Sprintf("N=%d", r.N)
}

// Title is the heading of the run's section.
func (r *Result) Title() string { return r.title() + r.layout() }

func (r *Result) title() string {
	switch {
	case r.Sharded() && r.MemoryLimit != "":
		return fmt.Sprintf("N = %d in %d shards, each in a %s container (GOMEMLIMIT %.0f MiB)", r.N, r.Shards, r.MemoryLimit, float64(r.GoMemLimitBytes)/mib)
	case r.Sharded():
		return fmt.Sprintf("N = %d in %d shards (one controller process each)", r.N, r.Shards)
	case r.MemoryLimit != "":
		return fmt.Sprintf("N = %d, in a %s container (GOMEMLIMIT %.0f MiB)", r.N, r.MemoryLimit, float64(r.GoMemLimitBytes)/mib)
	}
	return fmt.Sprintf("N = %d", r.N)
}

// builtFrom completes the sentence "Run started <time>" with the code measured, when known.
func (r *Result) builtFrom() string {
	if r.Source == nil || r.Source.Commit == "" {
		return ""
	}
	return ", controller built from " + r.Source.String()
}

// SortResults orders results by N; for one N the single-process runs come first, then the
// sharded ones by number of shards, and for each the run without a memory limit first, the
// default layout (PerNamespace) before others, and Gateway API before other providers.
func SortResults(results []*Result) {
	sort.SliceStable(results, func(i, j int) bool {
		a, b := results[i], results[j]
		if a.N != b.N {
			return a.N < b.N
		}
		if a.processes() != b.processes() {
			return a.processes() < b.processes()
		}
		if a.MemoryLimit != b.MemoryLimit {
			return a.MemoryLimit < b.MemoryLimit
		}
		if a.PerNamespace != b.PerNamespace {
			return a.PerNamespace < b.PerNamespace
		}
		return a.Provider < b.Provider
	})
}
