package harness

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// Target is one of the targets, measured.
type Target struct {
	Name   string
	Status string // met, missed, not measured
	Detail string
}

// Targets evaluates the targets over the runs made.
func Targets(results []*Result) []Target {
	SortResults(results)
	return []Target{
		writesTarget(results), readsTarget(results), idleTarget(results),
		floorTarget(results), peerTarget(results),
		rssTarget(results, 1000, 100*mib), rssTarget(results, 10000, 500*mib), growthTarget(results),
		shardTarget(results), stepLatencyTarget(results),
		goroutineTarget(results),
	}
}

// minWaveN is the smallest N whose waves the wave-time and goroutine targets count: a wave of
// fewer Rollouts (-n 1, for the step latency alone) lasts a second, shorter than the floor's
// setup and than one /metrics scrape.
const minWaveN = 100

// The targets (#17), measured at these bounds.
const (
	// TargetWritesPerStep bounds the writes per Rollout per step at N=1,000, Events included.
	TargetWritesPerStep = 3
	// TargetFloorRatio bounds the wave at N=1,000 against the plain-client floor.
	TargetFloorRatio = 1.3
	// TargetShardShare is the largest share of one process's peak RSS a process of a 4-shard
	// run may take at the same N: a quarter, and a fifth of it again for what every process
	// holds whatever its share (the binary, the runtime, the caches' fixed costs).
	TargetShardShare = 0.3
	// TargetPeerSpeedup is how many times faster than Argo Rollouts with its Gateway API
	// plugin the wave at N=1,000 must be.
	TargetPeerSpeedup = 5
	// ArgoWaveSeconds is Argo Rollouts' wave at N=1,000 with its Gateway API plugin, both at
	// QPS 40 / burst 80 (../shared/PEER-FIGURES.md, measured on 25 Nov 2026 by the peers'
	// harness on this machine kind).
	ArgoWaveSeconds = 354.1
	// ArgoQPS and ArgoBurst are the client limits Argo's wave ran at; a wave at other limits
	// is not compared with it.
	ArgoQPS, ArgoBurst = 40, 80
	// TargetLoneStepP99 bounds the step latency of a Rollout stepping alone (N=1), in seconds.
	TargetLoneStepP99 = 0.1
)

// measuredAt is the single-process run without a memory limit, in the default layout and
// through Gateway API, at N=n, nil without one.
func measuredAt(results []*Result, n int) *Result {
	for _, r := range results {
		if r.N == n && !r.Sharded() && r.MemoryLimit == "" && r.PerNamespace == 0 && r.Provider == "" {
			return r
		}
	}
	return nil
}

func last(r *Result) WaveResult { return r.WaveResults[len(r.WaveResults)-1] }

func writesTarget(results []*Result) Target {
	t := Target{Name: fmt.Sprintf("writes per Rollout per step at N=1,000 at most %d, Events included (the floor makes %d: one route write, one status write)",
		TargetWritesPerStep, FloorWritesPerStep), Status: "not measured"}
	if measuredAt(results, 1000) != nil {
		t.Status = "met"
	}
	var parts []string
	for _, r := range results {
		w := last(r)
		parts = append(parts, fmt.Sprintf("%s: %.2f, %.2f excluding Events (route %.2f, status %.2f)",
			r.Label(), w.WritesPerStep, w.NonEventWritesPerStep, w.RouteWritesPerStep, w.StatusWritesPerStep))
		if w.WritesPerStep > TargetWritesPerStep+0.005 {
			if r == measuredAt(results, 1000) {
				t.Status = "missed"
			}
			over := fmt.Sprintf("over by %.2f (%.2f×), %.2f (%.2f×) excluding Events; the rest, per Rollout per step: %s",
				w.WritesPerStep-TargetWritesPerStep, w.WritesPerStep/TargetWritesPerStep,
				w.NonEventWritesPerStep-TargetWritesPerStep, w.NonEventWritesPerStep/TargetWritesPerStep, excess(r, w))
			// Why each write is made is told once, for the run the target is judged on.
			if r == measuredAt(results, 1000) {
				over += "; why, per Rollout per wave: " + wavePerRollout(r, w)
			}
			parts = append(parts, over)
		}
	}
	if t.Status == "missed" {
		parts = append(parts, writesFloorOfTheDesign)
	}
	t.Detail = strings.Join(parts, "; ")
	return t
}

// writesFloorOfTheDesign says why the writes stay above the target.
const writesFloorOfTheDesign = "why not 3: a wave of three steps, as KULTA runs it since 5 Dec 2026, takes 4 status writes (the revision starting, the middle step, " +
	"completion, which the last step of 100 is, and the old revision's Pods leaving the counts: each a state users and tools read), 3 route writes (two steps " +
	"and the hand-back to the stable Service), 2 ReplicaSet writes (the new revision, the old one's scale-down), 2 Service pins and 3 Events (started, first step, " +
	"completed): 14 writes, 4.67 per step; meeting 3 would mean leaving out Events users read, status they watch, or the Service pins the routes' weights rely on"

// readsTarget: no read before a write on the hot path.
func readsTarget(results []*Result) Target {
	t := Target{Name: "no read before a write on the hot path (GETs of the routes in a wave)", Status: "not measured"}
	var parts []string
	if measuredAt(results, 1000) != nil {
		t.Status = "met"
	}
	for _, r := range results {
		gets, writes, rolloutGets := 0.0, 0.0, 0.0
		for _, row := range last(r).Controller {
			if row.Resource == "rollouts" && row.Verb == "GET" {
				rolloutGets += row.Count
			}
			for _, kind := range routeKinds {
				if row.Resource != kind {
					continue
				}
				if row.Verb == "GET" {
					gets += row.Count
				} else if IsWrite(row.Verb) {
					writes += row.Count
				}
			}
		}
		parts = append(parts, fmt.Sprintf("%s (run %s): %.0f GETs for %.0f route writes, %.0f GETs of Rollouts", r.Label(), r.Started.Format("2006-01-02"), gets, writes, rolloutGets))
		// A route is read from the API server when the cache has not yet seen KULTA's own last
		// write to it, or after a conflict; a handful per wave is that, not a read on every
		// write.
		if gets > 0.01*writes && r == measuredAt(results, 1000) {
			t.Status = "missed"
		}
	}
	if t.Status == "met" {
		parts = append(parts, "every route write is a merge patch computed from the cached route, with its resourceVersion as precondition; "+
			"the route is read from the API server instead only when the cache has not yet seen KULTA's own last write to it (its resourceVersion is older than the one that write returned) "+
			"or after a conflict: the GETs above are those; a Rollout is read from the API server likewise when the cache has not yet seen KULTA's last write to it "+
			"(runs from before 2026-12-04 still read each route before writing it whole)")
	}
	t.Detail = strings.Join(parts, "; ")
	return t
}

// idleTarget: zero writes in steady state.
func idleTarget(results []*Result) Target {
	t := Target{Name: "zero writes in steady state (the settle period after each run's last wave), leader election's lease renewals apart", Status: "not measured"}
	var parts []string
	unknown := false
	if measuredAt(results, 1000) != nil {
		t.Status = "met"
	}
	for _, r := range results {
		w := last(r)
		d := fmt.Sprintf("%s: %.0f writes in the settle period", r.Label(), w.IdleWrites)
		if w.IdleEventWrites != nil && *w.IdleEventWrites > 0 {
			d += fmt.Sprintf(" (%.0f of them Events)", *w.IdleEventWrites)
		}
		rest := w.IdleWrites
		switch {
		case w.IdleLeaseWrites != nil:
			d += fmt.Sprintf(", %.0f of them lease renewals", *w.IdleLeaseWrites)
			rest -= *w.IdleLeaseWrites
		case w.IdleWrites > 0:
			// Older results do not tell the lease renewals apart: one per process in the settle
			// period is what leader election makes, anything above it is the controller's.
			unknown = true
			d += " (not told apart from lease renewals)"
			rest -= float64(r.processes())
		}
		if rest > 0 && r == measuredAt(results, 1000) {
			t.Status = "missed"
		}
		if rest > 0 && w.TailSeconds > 0 {
			d += tailNote(w)
		}
		parts = append(parts, d)
	}
	if unknown {
		parts = append(parts, "a leading process renews its Lease every few seconds (PUT leases in the request tables); "+
			"where a run's idle writes are not told apart, up to one per process is counted as that")
	}
	t.Detail = strings.Join(parts, "; ")
	return t
}

// tailNote tells how the wave's tail before a settle period with writes ended: cut at the
// bench's bound, the controller still writing, or at a pause of Quiet without a write: the
// first after the last old revision's scale-down was due, or in older results the first at
// all (3 s in results from before 6 Dec 2026 22:00 UTC, which waited 3 minutes at most and did
// not record whether they stopped there).
func tailNote(w WaveResult) string {
	if tailCut(w) {
		return fmt.Sprintf(" (the wave's tail had not ended when the bench stopped waiting for it, after %.0f s)", w.TailSeconds)
	}
	quiet := Quiet.Seconds()
	if w.TailBoundSeconds == 0 {
		quiet = 3
	}
	if w.TailAfterDelay {
		return fmt.Sprintf(" (after a tail of %.0f s, which ended at the first %.0f s without a controller write once the old revisions' scale-downs were due)", w.TailSeconds, quiet)
	}
	return fmt.Sprintf(" (after a tail of %.0f s, which ended at the first %.0f s without a controller write, wherever it fell)", w.TailSeconds, quiet)
}

// tailCut reports whether the bench stopped waiting for the wave's tail at its bound: as
// recorded, or for results from before the bound was recorded, at their fixed 3 minutes.
func tailCut(w WaveResult) bool {
	return w.TailCut || (w.TailBoundSeconds == 0 && w.TailSeconds >= 179)
}

// excess lists the controller's writes per Rollout per step other than route and status writes.
func excess(r *Result, w WaveResult) string {
	var parts []string
	for _, row := range w.Controller {
		if !IsWrite(row.Verb) || slices.Contains(routeKinds, row.Resource) || row.Resource == "rollouts/status" || row.Resource == leaseResource {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s %.2f", row.Verb, row.Resource, PerStep(row.Count, r.N, 1)))
	}
	if len(parts) == 0 {
		return "route or status writes above one each"
	}
	return strings.Join(parts, ", ")
}

// peakRSS is the highest RSS (sampled or VmHWM) over a run's waves and the settle periods
// after them: a wave's tail can outlast the wave into its settle period. VmHWM counts from
// the process's start, so it takes in the creation of the Rollouts as well.
func peakRSS(r *Result) uint64 {
	peak := uint64(0)
	for _, w := range r.WaveResults {
		peak = max(peak, w.During.PeakRSS, w.During.HWM, w.Steady.PeakRSS, w.Steady.HWM)
	}
	return peak
}

// rssTarget: controller RSS under limit at N=n, in one process without a memory limit; runs
// with a limit or in shards at that N are reported beside it.
func rssTarget(results []*Result, n int, limit uint64) Target {
	t := Target{Name: fmt.Sprintf("at %s Rollouts controller RSS under %.0f MiB", thousands(n), float64(limit)/mib)}
	unlimited := measuredAt(results, n)
	var prev *Result
	var limited, sharded []*Result
	for _, r := range results {
		switch {
		case r.N < n && measuredAt(results, r.N) == r:
			prev = r
		case r.N != n, r.Provider != "":
		case r.Sharded():
			sharded = append(sharded, r)
		case r.MemoryLimit != "":
			limited = append(limited, r)
		}
	}
	if unlimited == nil && len(limited) == 0 && len(sharded) == 0 {
		t.Status = "not measured"
		if prev != nil {
			t.Detail = fmt.Sprintf("N=%s was not run; at N=%d peak RSS was %.0f MiB", thousands(n), prev.N, float64(peakRSS(prev))/mib)
		}
		return t
	}
	var parts []string
	metWithout, metWith := false, false
	if r := unlimited; r != nil {
		peak := peakRSS(r)
		metWithout = peak <= limit
		d := fmt.Sprintf("%s, no memory limit: peak %.0f MiB (VmHWM), steady after the last wave %.0f MiB%s", r.Label(), float64(peak)/mib, float64(last(r).Steady.MeanRSS)/mib, heapLead(r))
		if !metWithout {
			d += fmt.Sprintf(", over by %.0f MiB (%.2f×)", float64(peak-limit)/mib, float64(peak)/float64(limit))
			if prev != nil {
				slope := (float64(peak) - float64(peakRSS(prev))) / float64(r.N-prev.N) / 1024
				d += fmt.Sprintf("; why: from N=%d (%.0f MiB) it grows %.0f KiB per Rollout. Each Rollout brings its objects to the informer caches "+
					"(the Rollout with its template and decisions, 2 to 3 ReplicaSets packed without their Pod templates, 2 Services with only their selectors, "+
					"the route trimmed and packed, its metadata typed and the rest as JSON, with the code of 6 Dec 06:45 on; the Rollout packed the same way and the Services packed to their metadata and selector, "+
					"with the code of 6 Dec 09:20 on; the labels and annotations of those three kinds as key-value pairs instead of maps, with the code of 6 Dec 16:40 on), its entries in the index the watches read (KULTA's own with the code of 6 Dec 12:00 on; before, "+
					"controller-runtime's field indexes, which keep each value twice) and a compact record of its metric series, which a scrape turns into 11 samples for a moment; "+
					"Go's collector lets the heap grow to one and a quarter times the live data before it runs (--gc-percent 25, with the code of commit 46edd72 on (7 Dec 04:13); one and a half times, 50, from 6 Dec 17:00; twice, GOGC 100, before), "+
					"and RSS holds what it has not yet returned to the kernel",
					prev.N, float64(peakRSS(prev))/mib, slope)
			}
		}
		if metWithout && len(r.WaveResults) < DefaultRevisionHistoryLimit {
			// Each wave leaves an old revision per Rollout, held until revisionHistoryLimit.
			waves := "waves"
			if len(r.WaveResults) == 1 {
				waves = "wave"
			}
			d += fmt.Sprintf("; met over %d %s, fewer than a Rollout keeps old revisions (revisionHistoryLimit, %d by default): "+
				"what a process holds once they are all kept is in the growth row", len(r.WaveResults), waves, DefaultRevisionHistoryLimit)
		}
		parts = append(parts, d)
	}
	for _, r := range limited {
		peak := peakRSS(r)
		ok := peak <= limit
		metWith = metWith || ok
		w := last(r)
		d := fmt.Sprintf("%s (the controller sets GOMEMLIMIT %.0f MiB there, --auto-gomemlimit-ratio 0.9): peak %.0f MiB, steady %.0f MiB, "+
			"heap in use peak %.0f MiB; the price is CPU: %.0f s in the last wave against %.0f s without a limit, and the wave took %.1f s (%.2f× the floor)",
			r.Label(), float64(r.GoMemLimitBytes)/mib, float64(peak)/mib, float64(w.Steady.MeanRSS)/mib, w.During.PeakHeapInuse/mib,
			w.ControllerCPUSeconds, cpuWithout(unlimited), w.WallSeconds, r.FloorRatio)
		if !ok {
			d += fmt.Sprintf("; over by %.0f MiB", float64(peak-limit)/mib)
			if w.During.PeakFile > 0 {
				d += fmt.Sprintf(": GOMEMLIMIT bounds the memory Go manages (anonymous RSS, peak %.0f MiB), not the pages of the controller's binary the kernel maps in "+
					"(file-backed RSS, peak %.0f MiB), which it can drop and read again under the container's limit",
					float64(w.During.PeakAnon)/mib, float64(w.During.PeakFile)/mib)
			}
		}
		parts = append(parts, d)
	}
	metShards := 0
	for _, r := range sharded {
		peak, w := peakRSS(r), last(r)
		if peak <= limit && (metShards == 0 || r.Shards < metShards) {
			metShards = r.Shards
		}
		d := fmt.Sprintf("%s: peak %.0f MiB in the largest of its %d processes, steady %.0f MiB there%s; the processes' peaks add up to %.0f MiB in the last wave",
			r.Label(), float64(peak)/mib, r.Shards, float64(w.Steady.MeanRSS)/mib, heapLead(r), float64(ReplicasPeakRSS(w))/mib)
		if peak > limit {
			d += fmt.Sprintf(", over by %.0f MiB per process", float64(peak-limit)/mib)
		}
		parts = append(parts, d)
	}
	switch {
	case metWithout:
		t.Status = "met"
	case metWith:
		t.Status = "met with a memory limit, missed without"
	case metShards > 0:
		t.Status = fmt.Sprintf("met per process in %d shards", metShards)
		if unlimited != nil {
			t.Status += ", missed in one process"
		}
	default:
		t.Status = "missed"
	}
	t.Detail = strings.Join(parts, "; ")
	return t
}

// heapLead is "; live heap after wave W X MiB (heap profile), the largest shares A a MiB, B b
// MiB, C c MiB" for a result with a heap profile (the three largest owners but what none
// claims; its section has them all), "" for one without.
func heapLead(r *Result) string {
	hp := r.HeapProfile
	if hp == nil {
		return ""
	}
	var parts []string
	for _, o := range hp.Owners {
		if o.Name == otherOwner {
			continue
		}
		if parts = append(parts, fmt.Sprintf("%s %s MiB", o.Name, mibString(o.Bytes))); len(parts) == 3 {
			break
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf(", live heap after wave %d %s MiB (heap profile), the largest shares: %s", hp.Wave, mibString(hp.InuseBytes), strings.Join(parts, "; "))
}

// thousands writes n with a comma between thousands, as the issue does: 1,000, 10,000.
func thousands(n int) string {
	if n < 1000 {
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("%s,%03d", thousands(n/1000), n%1000)
}

// cpuWithout is the controller CPU of r's last wave, NaN without r.
func cpuWithout(r *Result) float64 {
	if r == nil {
		return math.NaN()
	}
	return last(r).ControllerCPUSeconds
}

func growthTarget(results []*Result) Target {
	t := Target{Name: "no RSS growth across update waves (steady RSS after the first wave and after the last)", Status: "met"}
	var parts []string
	measured := 0
	for _, r := range results {
		if r.N < minWaveN {
			continue
		}
		if len(r.WaveResults) < 2 {
			parts = append(parts, r.Label()+": one wave only")
			continue
		}
		measured++
		a, b, which := steadyGrowth(r)
		growth := float64(b.MeanRSS) - float64(a.MeanRSS)
		label := r.Label()
		if which != "" {
			label += " (process " + which + ", whose steady RSS grew most; per Rollout of its shard)"
		}
		// A process of a sharded run holds N/shards Rollouts.
		rollouts := float64(r.N) / float64(r.processes())
		parts = append(parts, fmt.Sprintf("%s: steady RSS %.0f → %.0f MiB (%+.1f MiB, %+.1f KiB per Rollout), heap %.0f → %.0f MiB%s",
			label, float64(a.MeanRSS)/mib, float64(b.MeanRSS)/mib, growth/mib, growth/1024/rollouts, a.MeanHeapInuse/mib, b.MeanHeapInuse/mib, heapGrowthLead(r)))
		// Allow 5% for allocator noise between two steady periods.
		if growth > 0.05*float64(a.MeanRSS) {
			t.Status = "missed"
		}
	}
	if measured == 0 {
		t.Status = "not measured"
	}
	if t.Status == "missed" {
		parts = append(parts, retainedPerWave)
	}
	t.Detail = strings.Join(parts, "; ")
	return t
}

// heapGrowthLead is ", live heap a MiB after wave 1, b MiB after wave W (heap profiles),
// gained most by: A +x MiB; B +y MiB; C +z MiB" for a result with heap profiles of one process after its
// first and last waves (the three largest gains), "" for one without.
func heapGrowthLead(r *Result) string {
	hps := r.HeapProfiles()
	if len(hps) < 2 || !sameProcess(hps) {
		return ""
	}
	first, lastHP := hps[0], hps[len(hps)-1]
	var gains []string
	for _, g := range HeapGrowth(first, lastHP) {
		if g.Bytes <= 0 || len(gains) == 3 {
			break
		}
		gains = append(gains, fmt.Sprintf("%s %+.1f MiB", g.Name, float64(g.Bytes)/mib))
	}
	process := ""
	if lastHP.Shard != "" {
		process = " of shard " + lastHP.Shard
	}
	lead := fmt.Sprintf(", live heap%s %s MiB after wave %d, %s MiB after wave %d (heap profiles)", process, mibString(first.InuseBytes), first.Wave, mibString(lastHP.InuseBytes), lastHP.Wave)
	if len(gains) > 0 {
		lead += ", gained most by: " + strings.Join(gains, "; ")
	}
	return lead
}

// steadyGrowth gives r's steady memory after its first and its last wave: of its one
// controller process or, in a sharded run, of the process whose steady RSS grew most between
// them (which names its shard; empty otherwise).
func steadyGrowth(r *Result) (a, b Window, which string) {
	first, lastWave := r.WaveResults[0], r.WaveResults[len(r.WaveResults)-1]
	a, b = first.Steady, lastWave.Steady
	best := math.Inf(-1)
	for _, x := range first.Replicas {
		for _, y := range lastWave.Replicas {
			if x.Shard != y.Shard {
				continue
			}
			if g := float64(y.SteadyRSS) - float64(x.SteadyRSS); g > best {
				best, which = g, x.Shard
				a = Window{MeanRSS: x.SteadyRSS, MeanHeapInuse: x.SteadyHeapInuse}
				b = Window{MeanRSS: y.SteadyRSS, MeanHeapInuse: y.SteadyHeapInuse}
			}
		}
	}
	return a, b, which
}

// DefaultRevisionHistoryLimit is how many old revisions a Rollout keeps when its spec does not
// say, as the planner takes it (the bench's Rollouts do not say).
const DefaultRevisionHistoryLimit = 10

// retainedPerWave says what the controller keeps, by design and bounded, for each wave.
const retainedPerWave = "why: what the controller holds grows with each wave by design, up to bounds: every Rollout gains a ReplicaSet " +
	"(old revisions stay, scaled to 0, up to revisionHistoryLimit, default 10) and the wave's decisions in its status (20 kept); " +
	"steady RSS and heap in use also carry garbage not yet collected, " +
	"so a leak would show as growth that continues past those bounds, which three waves cannot tell apart; " +
	"a run of twelve waves at N=1,000 with the ReplicaSet index of commit 46457fd (7 Dec 2026 14:00, bench/results/growth-12-index, bench/README) levels off once they are reached: " +
	"steady RSS 84 MiB after the first wave, 103 to 104 from the ninth, VmHWM 105 MiB at most from the eleventh (over the 100 MiB RSS target at 1,000, which three waves meet), " +
	"live heap 27 MiB after the first wave and 39 to 47 from the fifth, the packed ReplicaSets 1.5 MiB after the first and 6.5 to 8.5 from the eighth; " +
	"the run before the index (11:14, bench/results/growth-12) levelled at the same RSS (VmHWM 106 MiB at most), while its controller CPU per wave rose from 20.2 s to 34.4 s, against 20.0 s to 24.8 s with the index"

// scrapeEvery is how often the run read the controller's /metrics, as text ("5 s").
func scrapeEvery(r *Result) string {
	if r.ScrapeSeconds == 0 {
		return "1 s"
	}
	return fmt.Sprintf("%g s", r.ScrapeSeconds)
}

func floorTarget(results []*Result) Target {
	t := Target{Name: fmt.Sprintf("update wave at N=1,000 within %g× of the plain-client floor", TargetFloorRatio), Status: "not measured"}
	if measuredAt(results, 1000) != nil {
		t.Status = "met"
	}
	var parts []string
	for _, r := range results {
		if r.N < minWaveN {
			continue
		}
		w := last(r)
		parts = append(parts, fmt.Sprintf("%s: %.1f s vs %.1f s = %.2f×", r.Label(), w.WallSeconds, r.Floor.WallSeconds, r.FloorRatio))
		if r.FloorRatio > TargetFloorRatio {
			if r == measuredAt(results, 1000) {
				t.Status = "missed"
			}
			total := 0.0
			for _, row := range w.Controller {
				total += row.Count
			}
			// Each process of a sharded run has its own clients and token buckets, and about
			// 1/shards of the requests.
			// The bound counts what had to pass before the last Rollout read Completed; older
			// results count the tail's writes too (the old revisions' Pod counts, held back
			// while the wave's writes queue), and say so.
			rows, within := w.UntilCompleted, "before all were Completed"
			if rows == nil {
				rows, within = w.Controller, "in the wave and its tail, which these results do not tell apart"
			}
			bound := BusiestClient(perProcess(rows, r.processes()), r.QPS, r.Burst)
			busiest, workers := fmt.Sprintf("its busiest client (%s, %.0f writes %s)", bound.Resource, bound.Requests, within), reconcilers(r)
			if r.Sharded() {
				busiest = fmt.Sprintf("the busiest client of each of its %d processes (%s, about %.0f writes %s, 1/%d of all)", r.Shards, bound.Resource, bound.Requests, within, r.Shards)
				workers += fmt.Sprintf(" in each of %d processes", r.Shards)
			}
			floorBound := max(0, float64(StepsPerWave*r.N-r.Burst)/r.QPS)
			parts = append(parts, fmt.Sprintf("over by %.2f×: the controller sent %.0f requests (%.0f writes) in %.1f s, %.1f reconciles per Rollout, %s at a time; "+
				"%s needs at least %.1f s at %g req/s after a burst of %d (one token bucket per resource kind; reads past the cache and Events have clients of their own, and Events are sent in the background), "+
				"the floor's busiest at least %.1f s (%d); the rest is each Rollout's chain of reconciles, each waiting for a watch event, "+
				"and CPU: controller %.0f s, API server %.0f s, etcd %.0f s of CPU in the wave's %.0f s, %.1f cores busy on average without the bench itself "+
				"(whose stand-ins and %s /metrics scrape of the controller also cost CPU)",
				r.FloorRatio-TargetFloorRatio, total, w.ControllerWrites, w.WallSeconds, w.ReconcilesPerRollout, workers,
				busiest, bound.Seconds, r.QPS, r.Burst, floorBound, StepsPerWave*r.N,
				w.ControllerCPUSeconds, w.APIServerCPUSeconds, w.EtcdCPUSeconds, w.WallSeconds,
				(w.ControllerCPUSeconds+w.APIServerCPUSeconds+w.EtcdCPUSeconds)/w.WallSeconds, scrapeEvery(r)))
		}
	}
	t.Detail = strings.Join(parts, "; ")
	return t
}

// peerTarget: the wave at N=1,000 against Argo Rollouts' on the same scenario. The plugin is
// not served as a Go module here, so Argo's wave is the figure of ../shared/PEER-FIGURES.md, and
// the floor run with each result says what any controller at the same client limits needs.
func peerTarget(results []*Result) Target {
	t := Target{Name: fmt.Sprintf("N=1,000 wave at least %d× faster than Argo Rollouts with its Gateway API plugin (%.1f s at QPS %d / burst %d, ../shared/PEER-FIGURES.md)",
		TargetPeerSpeedup, ArgoWaveSeconds, ArgoQPS, ArgoBurst), Status: "not measured"}
	var parts []string
	for _, r := range results {
		// Argo's figures are of its Gateway API plugin.
		if r.N != 1000 || r.MemoryLimit != "" || r.Provider != "" {
			continue
		}
		if r.QPS != ArgoQPS || r.Burst != ArgoBurst {
			parts = append(parts, fmt.Sprintf("%s: not compared, run at QPS %g / burst %d", r.Label(), r.QPS, r.Burst))
			continue
		}
		w := last(r)
		speedup := ArgoWaveSeconds / w.WallSeconds
		if r == measuredAt(results, 1000) {
			t.Status = "met"
			if speedup < TargetPeerSpeedup {
				t.Status = "missed"
			}
		}
		part := fmt.Sprintf("%s: %.1f s, %.2f× faster", r.Label(), w.WallSeconds, speedup)
		if speedup < TargetPeerSpeedup {
			routeBound := max(0, float64(StepsPerWave*r.N-r.Burst)/r.QPS)
			part += fmt.Sprintf(" (%d× is a wave of %.1f s at most); this run's floor, a plain client making only each step's route and status patch at QPS %g / burst %d, "+
				"took %.1f s (%.2f× faster than Argo's wave): %d route patches alone take at least %.1f s at %g req/s after a burst of %d",
				TargetPeerSpeedup, ArgoWaveSeconds/TargetPeerSpeedup, r.QPS, r.Burst,
				r.Floor.WallSeconds, ArgoWaveSeconds/r.Floor.WallSeconds, StepsPerWave*r.N, routeBound, r.QPS, r.Burst)
		}
		parts = append(parts, part)
	}
	if t.Status == "missed" {
		parts = append(parts, peerBound)
	}
	t.Detail = strings.Join(parts, "; ")
	return t
}

// peerBound says why the speedup against Argo stays under the target.
const peerBound = "why: at equal client limits the target asks for a wave shorter than the floor, since Argo's own wave is under 5× the time " +
	"a client at 40 req/s needs for the 3,000 route patches of a wave; Argo's figure comes from the peers' harness (its stand-in marks ReplicaSets ready, " +
	"and for KULTA also each route version Accepted, 4 writes per Rollout per wave Argo's run did not make); side by side under that harness on 4 Dec 2026, " +
	"KULTA (commit 2126d8a, QPS 40 / burst 80) took 130.5 s, 2.71× faster"

// shardTarget: K shards each hold about 1/K of what one process holds at the same N, and the
// wave against one process's.
func shardTarget(results []*Result) Target {
	t := Target{Name: fmt.Sprintf("in 4 shards, each process's peak RSS at most %.0f%% of one process's at the same N (a quarter, and its fixed costs)", TargetShardShare*100),
		Status: "not measured"}
	var parts []string
	largest := 0
	fastest, slowest := math.Inf(1), math.Inf(-1)
	for _, r := range results {
		single := measuredAt(results, r.N)
		if !r.Sharded() || single == nil {
			continue
		}
		if r.Provider != "" {
			// The one-process runs the share is taken of route through Gateway API.
			parts = append(parts, fmt.Sprintf("%s: not compared (the one-process run at N=%d routes through Gateway API): peak %.0f MiB in its largest process, %.0f MiB in all %d",
				r.Label(), r.N, float64(peakRSS(r))/mib, float64(ReplicasPeakRSS(last(r)))/mib, r.Shards))
			continue
		}
		w, one := last(r), last(single)
		fastest, slowest = min(fastest, w.WallSeconds/one.WallSeconds), max(slowest, w.WallSeconds/one.WallSeconds)
		share := float64(peakRSS(r)) / float64(peakRSS(single))
		parts = append(parts, fmt.Sprintf("%s: peak %.0f MiB in its largest process against %.0f MiB in one (%.0f%%), %.0f MiB in all %d; "+
			"wave %.1f s against %.1f s in one process (%.2f×), %.1f against %.1f reconciles per Rollout%s",
			r.Label(), float64(peakRSS(r))/mib, float64(peakRSS(single))/mib, share*100, float64(ReplicasPeakRSS(w))/mib, r.Shards,
			w.WallSeconds, one.WallSeconds, w.WallSeconds/one.WallSeconds, w.ReconcilesPerRollout, one.ReconcilesPerRollout, unalike(r, single)))
		if r.Shards != 4 || r.N < largest {
			continue
		}
		largest = r.N
		t.Status = "met"
		if share > TargetShardShare {
			t.Status = "missed"
		}
	}
	if t.Status == "missed" {
		fixed := "about 80 MiB in runs before 6 Dec 2026"
		if one := measuredAt(results, 1); one != nil {
			fixed = fmt.Sprintf("%.0f MiB, a process's peak RSS at N=1 (%s)", float64(peakRSS(one))/mib, one.Started.Format("2006-01-02"))
		}
		parts = append(parts, "why: since 5 Dec 2026 a shard caches only its Rollouts and the ReplicaSets, Services and routes labelled for it "+
			"(runs before cached every one of them), so what is left is what each process holds whatever its share: the binary's pages, "+
			"the runtime and the informers' fixed costs, "+fixed+", which every process pays once: a shard's share comes down towards a quarter "+
			"only as its Rollouts outweigh them, as the shares above fall with N; "+
			"the wave takes "+spanOf(fastest, slowest)+" one process's: the API server, not the controller, is the bottleneck on 2 cores, "+
			"single waves differ by up to a quarter there, and at large N the shards add their own watches and more status writes: "+
			"each, quicker than one busy process, comes back to a step before the Gateway "+
			"(here the bench's stand-in, on the same saturated API server) has accepted its route, and once 30 s have passed says so "+
			"(TrafficRouted False, RouteNotAccepted, and True again), where one busy process comes back later and finds the route accepted (bench/README.md)")
	}
	t.Detail = strings.Join(parts, "; ")
	return t
}

// unalike names the commits and builds of two runs compared with each other, when their
// controllers were built at different commits or in different ways; empty when alike.
// Different commits need not mean different controller code: the results do not record which
// files changed between them.
func unalike(a, b *Result) string {
	sameCode := a.Source != nil && b.Source != nil && *a.Source == *b.Source
	if sameCode && a.Build == b.Build {
		return ""
	}
	return fmt.Sprintf(" (measured at other commits or builds: %s %s; %s %s)", a.Label(), builtFrom(a), b.Label(), builtFrom(b))
}

// builtFrom names a run's commit and how its controller was built.
func builtFrom(r *Result) string {
	code := "at an unrecorded commit"
	if r.Source != nil {
		code = r.Source.String()
	}
	switch r.Build {
	case "":
		return code + ", built with go build's defaults"
	case ControllerBuild.String():
		return code + ", built as the image is"
	}
	return code + ", built with " + r.Build
}

// spanOf writes a range of ratios, "0.91× to 1.24×", or the one ratio when they are equal.
func spanOf(lo, hi float64) string {
	if fmt.Sprintf("%.2f", lo) == fmt.Sprintf("%.2f", hi) {
		return fmt.Sprintf("%.2f×", lo)
	}
	return fmt.Sprintf("%.2f× to %.2f×", lo, hi)
}

// stepLatencyTarget: a Rollout stepping alone lands its weight within 100 ms p99 of the step
// becoming due; in a wave, p99 step latency grows with N no faster than the wave's API work
// divided by the API server's throughput. That bound is the wave's controller requests over
// the rate at which the API server took the floor's patches under the same client limits.
// Each run's p99 is given as a share of it; p99 must stay within the bound, and the share must
// not rise from one N to the next among runs alike (the same number of processes, memory limit,
// client limits, reconcilers and Rollouts to a namespace); a run with nothing alike at a smaller N is held to the bound
// alone. KULTA's quantiles are interpolated within buckets stepLatencyBucketFactor apart, so
// the rise is judged on the bench's own measure of the same interval from outside (the
// Tracker's nearest-rank p99, exact) where a run has it, and on the histogram's otherwise;
// both are given.
func stepLatencyTarget(results []*Result) Target {
	t := Target{Name: fmt.Sprintf("step latency p99: alone (N=1) at most %.0f ms (KULTA's histogram); in a wave within the wave's API work over the API server's throughput, "+
		"and growing with N no faster than it (KULTA's histogram, the bench's exact watch beside it)", TargetLoneStepP99*1000), Status: "not measured"}
	var parts []string
	alone, waves := "not measured", "not measured"
	type share struct {
		label          string
		kulta, outside float64
	}
	smaller := map[string]share{}
	byN := slices.Clone(results)
	slices.SortStableFunc(byN, func(a, b *Result) int { return cmp.Compare(a.N, b.N) })
	for _, r := range byN {
		w := last(r)
		if w.KultaStepLatencyCount == 0 || (r.N > 1 && r.Floor.WallSeconds == 0) {
			continue
		}
		d := fmt.Sprintf("%s: p50 %.3f s, p99 %.3f s over %.0f steps", r.Label(), w.KultaStepLatencyP50, w.KultaStepLatencyP99, w.KultaStepLatencyCount)
		if r.N == 1 {
			alone = "met"
			if w.KultaStepLatencyP99 > TargetLoneStepP99 {
				alone = "missed"
			}
			parts = append(parts, d)
			continue
		}
		requests := 0.0
		for _, row := range w.Controller {
			requests += row.Count
		}
		if requests == 0 || w.KultaStepLatencyP99 <= 0 {
			parts = append(parts, d+" (no controller requests or no p99 recorded: not judged)")
			continue
		}
		if waves == "not measured" {
			waves = "met"
		}
		// The floor makes two patches per Rollout per step as fast as the API server takes them.
		floorRate := float64(2*StepsPerWave*r.N) / r.Floor.WallSeconds
		bound := requests / floorRate
		now := share{label: r.Label(), kulta: w.KultaStepLatencyP99 / bound, outside: w.StepLatency.All.P99 / bound}
		d += fmt.Sprintf(" against API work of %.0f requests / %.0f req/s = %.1f s: p99 %.3f of it (the bench's watch: p99 %.3f s, %.3f)",
			requests, floorRate, bound, now.kulta, w.StepLatency.All.P99, now.outside)
		if w.KultaStepLatencyP99 > bound {
			waves = "missed"
			d += ", over the bound itself"
		}
		key := fmt.Sprintf("%d/%s/%g/%d/%d/%d/%s", r.processes(), r.MemoryLimit, r.QPS, r.Burst, r.Reconcilers, r.PerNamespace, r.Provider)
		if before, ok := smaller[key]; ok {
			growth := now.kulta / before.kulta
			d += fmt.Sprintf("; from %s its p99 grew %.2f× as fast as its API work", before.label, growth)
			rose := growth > 1
			if before.outside > 0 && now.outside > 0 {
				exact := now.outside / before.outside
				d += fmt.Sprintf(" (the bench's watch: %.2f×)", exact)
				if rose != (exact > 1) {
					d += fmt.Sprintf("; the two disagree, within the histogram's buckets %.2f× apart, and the exact measure decides", stepLatencyBucketFactor)
				}
				rose = exact > 1
			}
			if rose {
				waves = "missed"
			}
		}
		smaller[key] = now
		parts = append(parts, d)
	}
	switch {
	case alone == "not measured" && waves == "not measured":
	case alone == waves:
		t.Status = alone
	default:
		t.Status = fmt.Sprintf("alone %s, in waves %s", alone, waves)
	}
	t.Detail = strings.Join(parts, "; ")
	return t
}

// stepLatencyBucketFactor is the ratio between neighbouring buckets of KULTA's step latency
// histogram (internal/metrics: 30 buckets from 1 ms to 600 s, exponentially spaced), the
// resolution of the quantiles read from it.
var stepLatencyBucketFactor = math.Pow(600/0.001, 1.0/29)

// perProcess divides the request counts in rows by processes: one process's share when the
// Rollouts are split evenly over them.
func perProcess(rows []RequestRow, processes int) []RequestRow {
	if processes <= 1 {
		return rows
	}
	out := make([]RequestRow, len(rows))
	for i, row := range rows {
		out[i] = RequestRow{RequestKey: row.RequestKey, Count: row.Count / float64(processes)}
	}
	return out
}

func goroutineTarget(all []*Result) Target {
	t := Target{Name: "goroutines independent of N"}
	// Goroutines at rest depend on the build (each feature's workers), on leader election (its
	// renewal loop and the Lease's client) and on the traffic provider (its informers), so only
	// the runs of the newest run's day that elected a leader as the newest run did, through
	// Gateway API, are compared; the others are listed apart.
	var results, earlier, unalike []*Result
	newest, elected := "", false
	for _, r := range all {
		if day := r.Started.Format(time.DateOnly); r.N >= minWaveN && (day > newest || day == newest && r.ElectedLeader()) {
			newest, elected = day, r.ElectedLeader()
		}
	}
	for _, r := range all {
		switch {
		case r.N < minWaveN:
		case r.Started.Format(time.DateOnly) != newest:
			earlier = append(earlier, r)
		case r.ElectedLeader() != elected || r.Provider != "":
			unalike = append(unalike, r)
		default:
			results = append(results, r)
		}
	}
	if len(results) < 2 {
		results, earlier = append(results, earlier...), nil
		slices.SortStableFunc(results, func(a, b *Result) int { return a.N - b.N })
	}
	if len(results) < 2 {
		t.Status = "not measured"
		if len(results) == 1 {
			t.Detail = fmt.Sprintf("one N only (N=%d: peak %.0f)", results[0].N, last(results[0]).During.PeakGoroutines)
		}
		return t
	}
	var parts []string
	lo, hi := 1e18, 0.0
	// A run's reconcile workers (--max-concurrent-reconciles, one goroutine each) are set by a
	// flag, not by N: runs with other settings compare without them.
	workers := func(r *Result) float64 { return float64(r.Reconcilers) }
	for _, r := range results {
		g := last(r).Steady.LastGoroutines - workers(r)
		lo, hi = min(lo, g), max(hi, g)
		parts = append(parts, fmt.Sprintf("%s: peak %.0f, steady %.0f (%s reconcile workers)", r.Label(), last(r).During.PeakGoroutines, last(r).Steady.LastGoroutines, reconcilers(r)))
	}
	smallest, largest := results[0], results[len(results)-1]
	peakGrowth := (last(largest).During.PeakGoroutines - workers(largest)) - (last(smallest).During.PeakGoroutines - workers(smallest))
	t.Status = "met"
	// Allow ten goroutines for connections and timers in flight. Peaks are single samples of
	// bursts of requests in flight, so only their growth from the smallest N to the largest
	// counts, and it may also hold one goroutine per reconcile worker: each worker waits on at
	// most one request at a time, which Go's HTTP/2 client serves in a goroutine of its own, and
	// a small N's wave seldom keeps every worker waiting at once, as a large N's does.
	peakAllowed := 10 + max(workers(smallest), workers(largest))
	if hi-lo > 10 || peakGrowth > peakAllowed {
		t.Status = "missed"
	}
	parts = append(parts, fmt.Sprintf("N grew %d×: without the reconcile workers (fixed by --max-concurrent-reconciles), steady counts differ by %.0f (allowed: 10, for connections "+
		"and timers in flight) and the peak at N=%d is %+.0f from N=%d's (allowed: %.0f, those 10 and one request in flight per reconcile worker, "+
		"each served by a goroutine of Go's HTTP/2 client, when a wave keeps every worker waiting on the API server)",
		largest.N/smallest.N, hi-lo, largest.N, peakGrowth, smallest.N, peakAllowed))
	for _, r := range earlier {
		parts = append(parts, fmt.Sprintf("not compared, run %s with an earlier build: %s: peak %.0f, steady %.0f",
			r.Started.Format(time.DateOnly), r.Label(), last(r).During.PeakGoroutines, last(r).Steady.LastGoroutines))
	}
	for _, r := range unalike {
		why := map[bool]string{true: "elected a leader", false: "elected no leader"}[r.ElectedLeader()]
		if r.ElectedLeader() == elected {
			why = "ran the " + r.Provider + " provider's informers"
		}
		parts = append(parts, fmt.Sprintf("not compared, run %s (its controllers, unlike the others', %s): %s: peak %.0f, steady %.0f",
			r.Started.Format("2006-01-02 15:04"), why, r.Label(), last(r).During.PeakGoroutines, last(r).Steady.LastGoroutines))
	}
	t.Detail = strings.Join(parts, "; ")
	return t
}

// WriteSummary writes RESULTS.md: the machine, the date, one column per N, and the targets.
func WriteSummary(path string, m Machine, results []*Result, command string) error {
	var b strings.Builder
	b.WriteString("# KULTA at scale: last bench results\n\n")
	fmt.Fprintf(&b, "Generated by `%s` on %s. See bench/README.md for what is measured and how.\n\n", command, now())
	fmt.Fprintf(&b, "Machine: %d CPUs (shared with other builds), %d MiB memory, %s, kernel `%s`.\n\n", m.CPUs, m.MemoryMiB, m.GoVersion, m.Kernel)
	var ns []string
	for _, r := range results {
		// "100", and for the other runs of an N what sets them apart: "5000 in 300Mi", "5000 in 4 shards".
		ns = append(ns, strings.TrimPrefix(r.Label(), "N="))
	}
	fmt.Fprintf(&b, "N run: %s. Figures are for the last wave unless a row says otherwise.\n\n", strings.Join(ns, ", "))
	for _, r := range results {
		fmt.Fprintf(&b, "## %s\n\nRun started %s%s.\n\n", r.Title(), r.Started.Format("2006-01-02 15:04 MST"), r.builtFrom())
		writeResultBody(&b, r)
		b.WriteString("\n")
	}
	b.WriteString("## Targets (measured, not asserted)\n\n| target | status | measured |\n|---|---|---|\n")
	for _, t := range Targets(results) {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", t.Name, t.Status, t.Detail)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
