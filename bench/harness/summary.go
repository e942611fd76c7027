package harness

import (
	"fmt"
	"math"
	"os"
	"strings"
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
	return []Target{writesTarget(results), rssTarget(results), growthTarget(results), floorTarget(results), goroutineTarget(results)}
}

func last(r *Result) WaveResult { return r.WaveResults[len(r.WaveResults)-1] }

func writesTarget(results []*Result) Target {
	t := Target{Name: "writes per step per Rollout at the floor (2: one route write, one status write)", Status: "met"}
	var parts []string
	for _, r := range results {
		w := last(r)
		parts = append(parts, fmt.Sprintf("%s: %.2f, %.2f excluding Events (route %.2f, status %.2f)",
			r.Label(), w.WritesPerStep, w.NonEventWritesPerStep, w.RouteWritesPerStep, w.StatusWritesPerStep))
		if w.WritesPerStep > FloorWritesPerStep+0.005 {
			t.Status = "missed"
			parts = append(parts, fmt.Sprintf("over by %.2f (%.2f×), %.2f (%.2f×) excluding Events; the rest, per Rollout per step: %s; why, per Rollout per wave: %s",
				w.WritesPerStep-FloorWritesPerStep, w.WritesPerStep/FloorWritesPerStep,
				w.NonEventWritesPerStep-FloorWritesPerStep, w.NonEventWritesPerStep/FloorWritesPerStep, excess(r, w), wavePerRollout(r, w)))
		}
	}
	t.Detail = strings.Join(parts, "; ")
	return t
}

// excess lists the controller's writes per Rollout per step other than route and status writes.
func excess(r *Result, w WaveResult) string {
	var parts []string
	for _, row := range w.Controller {
		if !IsWrite(row.Verb) || row.Resource == "httproutes" || row.Resource == "rollouts/status" {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s %.2f", row.Verb, row.Resource, PerStep(row.Count, r.N, 1)))
	}
	if len(parts) == 0 {
		return "route or status writes above one each"
	}
	return strings.Join(parts, ", ")
}

// peakRSS is the highest RSS (sampled or VmHWM) over a run's waves.
func peakRSS(r *Result) uint64 {
	peak := uint64(0)
	for _, w := range r.WaveResults {
		peak = max(peak, w.During.PeakRSS, w.During.HWM)
	}
	return peak
}

func rssTarget(results []*Result) Target {
	t := Target{Name: "at 5,000 Rollouts controller RSS under 300 MiB"}
	var unlimited, prev *Result
	var limited, sharded []*Result
	for _, r := range results {
		switch {
		case r.Sharded():
			if r.N >= 5000 {
				sharded = append(sharded, r)
			}
		case r.MemoryLimit != "":
			if r.N >= 5000 {
				limited = append(limited, r)
			}
		case r.N >= 5000 && unlimited == nil:
			unlimited = r
		case r.N < 5000:
			prev = r
		}
	}
	if unlimited == nil && len(limited) == 0 && len(sharded) == 0 {
		t.Status = "not measured"
		if prev != nil {
			t.Detail = fmt.Sprintf("N=5,000 was not run; at N=%d peak RSS was %.0f MiB", prev.N, float64(peakRSS(prev))/mib)
		}
		return t
	}
	var parts []string
	metWithout, metWith := false, false
	if r := unlimited; r != nil {
		peak := peakRSS(r)
		metWithout = peak < 300*mib
		d := fmt.Sprintf("%s, no memory limit: peak %.0f MiB (VmHWM), steady after the last wave %.0f MiB", r.Label(), float64(peak)/mib, float64(last(r).Steady.MeanRSS)/mib)
		if !metWithout {
			d += fmt.Sprintf(", over by %.0f MiB (%.2f×)", float64(peak-300*mib)/mib, float64(peak)/(300*mib))
			if prev != nil {
				slope := (float64(peak) - float64(peakRSS(prev))) / float64(r.N-prev.N) / 1024
				d += fmt.Sprintf("; why: from N=%d (%.0f MiB) it grows %.0f KiB per Rollout. Each Rollout brings its objects to the informer caches "+
					"(the Rollout with its template and decisions, 2 to 3 ReplicaSets without their Pod templates, 2 Services with only their selectors, "+
					"the route trimmed but still a map per JSON object) and a compact record of its metric series, which a scrape turns into 11 samples for a moment; "+
					"Go's collector lets the heap grow to twice the live data (GOGC 100) before it runs, and RSS holds what it has not yet returned to the kernel",
					prev.N, float64(peakRSS(prev))/mib, slope)
			}
		}
		parts = append(parts, d)
	}
	for _, r := range limited {
		peak := peakRSS(r)
		ok := peak < 300*mib
		metWith = metWith || ok
		w := last(r)
		d := fmt.Sprintf("%s (the controller sets GOMEMLIMIT %.0f MiB there, --auto-gomemlimit-ratio 0.9): peak %.0f MiB, steady %.0f MiB, "+
			"heap in use peak %.0f MiB; the price is CPU: %.0f s in the last wave against %.0f s without a limit, and the wave took %.1f s (%.2f× the floor)",
			r.Label(), float64(r.GoMemLimitBytes)/mib, float64(peak)/mib, float64(w.Steady.MeanRSS)/mib, w.During.PeakHeapInuse/mib,
			w.ControllerCPUSeconds, cpuWithout(unlimited), w.WallSeconds, r.FloorRatio)
		if !ok {
			d += fmt.Sprintf("; over by %.0f MiB", float64(peak-300*mib)/mib)
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
		if peak < 300*mib && (metShards == 0 || r.Shards < metShards) {
			metShards = r.Shards
		}
		d := fmt.Sprintf("%s: peak %.0f MiB in the largest of its %d processes, steady %.0f MiB there; the processes' peaks add up to %.0f MiB in the last wave",
			r.Label(), float64(peak)/mib, r.Shards, float64(w.Steady.MeanRSS)/mib, float64(ReplicasPeakRSS(w))/mib)
		if peak >= 300*mib {
			d += fmt.Sprintf(", over by %.0f MiB per process", float64(peak-300*mib)/mib)
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

// cpuWithout is the controller CPU of r's last wave, NaN without r.
func cpuWithout(r *Result) float64 {
	if r == nil {
		return math.NaN()
	}
	return last(r).ControllerCPUSeconds
}

func growthTarget(results []*Result) Target {
	t := Target{Name: "no RSS growth across two update waves", Status: "met"}
	var parts []string
	for _, r := range results {
		if len(r.WaveResults) < 2 {
			return Target{Name: t.Name, Status: "not measured", Detail: "fewer than two waves"}
		}
		a, b, which := steadyGrowth(r)
		growth := float64(b.MeanRSS) - float64(a.MeanRSS)
		label := r.Label()
		if which != "" {
			label += " (process " + which + ", whose steady RSS grew most; per Rollout of its shard)"
		}
		// A process of a sharded run holds N/shards Rollouts.
		rollouts := float64(r.N) / float64(r.processes())
		parts = append(parts, fmt.Sprintf("%s: steady RSS %.0f → %.0f MiB (%+.1f MiB, %+.1f KiB per Rollout), heap %.0f → %.0f MiB",
			label, float64(a.MeanRSS)/mib, float64(b.MeanRSS)/mib, growth/mib, growth/1024/rollouts, a.MeanHeapInuse/mib, b.MeanHeapInuse/mib))
		// Allow 5% for allocator noise between two steady periods.
		if growth > 0.05*float64(a.MeanRSS) {
			t.Status = "missed"
		}
	}
	if t.Status == "missed" {
		parts = append(parts, retainedPerWave)
	}
	t.Detail = strings.Join(parts, "; ")
	return t
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

// retainedPerWave says what the controller keeps, by design and bounded, for each wave.
const retainedPerWave = "why: what the controller holds grows with each wave by design, up to bounds: every Rollout gains a ReplicaSet " +
	"(old revisions stay, scaled to 0, up to revisionHistoryLimit, default 10) and the wave's decisions in its status (20 kept); " +
	"steady RSS and heap in use also carry garbage not yet collected (GOGC 100), " +
	"so a leak would show as growth that continues past those bounds, which two waves cannot tell apart"

// scrapeEvery is how often the run read the controller's /metrics, as text ("5 s").
func scrapeEvery(r *Result) string {
	if r.ScrapeSeconds == 0 {
		return "1 s"
	}
	return fmt.Sprintf("%g s", r.ScrapeSeconds)
}

func floorTarget(results []*Result) Target {
	t := Target{Name: "update wave time within 2× of the plain-client floor", Status: "met"}
	var parts []string
	for _, r := range results {
		w := last(r)
		parts = append(parts, fmt.Sprintf("%s: %.1f s vs %.1f s = %.2f×", r.Label(), w.WallSeconds, r.Floor.WallSeconds, r.FloorRatio))
		if r.FloorRatio > 2 {
			t.Status = "missed"
			total := 0.0
			for _, row := range w.Controller {
				total += row.Count
			}
			// Each process of a sharded run has its own clients and token buckets, and about
			// 1/shards of the requests.
			bound := BusiestClient(perProcess(w.Controller, r.processes()), r.QPS, r.Burst)
			busiest, workers := fmt.Sprintf("its busiest client (%s, %.0f writes)", bound.Resource, bound.Requests), reconcilers(r)
			if r.Sharded() {
				busiest = fmt.Sprintf("the busiest client of each of its %d processes (%s, about %.0f writes, 1/%d of all)", r.Shards, bound.Resource, bound.Requests, r.Shards)
				workers += fmt.Sprintf(" in each of %d processes", r.Shards)
			}
			floorBound := max(0, float64(StepsPerWave*r.N-r.Burst)/r.QPS)
			parts = append(parts, fmt.Sprintf("over by %.2f×: the controller sent %.0f requests (%.0f writes) in %.1f s, %.1f reconciles per Rollout, %s at a time; "+
				"%s needs at least %.1f s at %g req/s after a burst of %d (one token bucket per resource kind; reads past the cache and Events have clients of their own, and Events are sent in the background), "+
				"the floor's busiest at least %.1f s (%d); the rest is each Rollout's chain of reconciles, each waiting for a watch event, "+
				"and CPU: controller %.0f s, API server %.0f s, etcd %.0f s of CPU in the wave's %.0f s, %.1f cores busy on average without the bench itself "+
				"(whose stand-ins and %s /metrics scrape of the controller also cost CPU)",
				r.FloorRatio-2, total, w.ControllerWrites, w.WallSeconds, w.ReconcilesPerRollout, workers,
				busiest, bound.Seconds, r.QPS, r.Burst, floorBound, StepsPerWave*r.N,
				w.ControllerCPUSeconds, w.APIServerCPUSeconds, w.EtcdCPUSeconds, w.WallSeconds,
				(w.ControllerCPUSeconds+w.APIServerCPUSeconds+w.EtcdCPUSeconds)/w.WallSeconds, scrapeEvery(r)))
		}
	}
	t.Detail = strings.Join(parts, "; ")
	return t
}

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

func goroutineTarget(results []*Result) Target {
	t := Target{Name: "goroutines independent of N"}
	if len(results) < 2 {
		t.Status = "not measured"
		if len(results) == 1 {
			t.Detail = fmt.Sprintf("one N only (N=%d: peak %.0f)", results[0].N, last(results[0]).During.PeakGoroutines)
		}
		return t
	}
	var parts []string
	lo, hi := 1e18, 0.0
	for _, r := range results {
		g := last(r).Steady.LastGoroutines
		lo, hi = min(lo, g), max(hi, g)
		parts = append(parts, fmt.Sprintf("%s: peak %.0f, steady %.0f", r.Label(), last(r).During.PeakGoroutines, g))
	}
	smallest, largest := results[0], results[len(results)-1]
	peakGrowth := last(largest).During.PeakGoroutines - last(smallest).During.PeakGoroutines
	t.Status = "met"
	// Allow ten goroutines for connections and timers in flight. Peaks are single samples of
	// bursts of requests in flight, so only their growth from the smallest N to the largest counts.
	if hi-lo > 10 || peakGrowth > 10 {
		t.Status = "missed"
	}
	parts = append(parts, fmt.Sprintf("N grew %d×: steady counts differ by %.0f and the peak at N=%d is %+.0f from N=%d's (allowed: 10 each, for connections and timers in flight); the reconcile workers are fixed by --max-concurrent-reconciles",
		largest.N/smallest.N, hi-lo, largest.N, peakGrowth, smallest.N))
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
		fmt.Fprintf(&b, "## %s\n\nRun started %s.\n\n", r.Title(), r.Started.Format("2006-01-02 15:04 MST"))
		writeResultTable(&b, r)
		b.WriteString("\n")
		writeRequestTable(&b, r)
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
