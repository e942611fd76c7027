package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

const mib = 1024 * 1024

// Machine describes where the bench ran.
type Machine struct {
	CPUs      int    `json:"cpus"`
	MemoryMiB uint64 `json:"memoryMiB"`
	GoVersion string `json:"goVersion"`
	Kernel    string `json:"kernel"`
}

// DescribeMachine reads the CPU count, /proc/meminfo and /proc/version.
func DescribeMachine() (Machine, error) {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	version, err := os.ReadFile("/proc/version")
	if err != nil {
		return m, fmt.Errorf("reading /proc/version: %w", err)
	}
	m.Kernel = strings.TrimSpace(string(version))
	meminfo, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return m, fmt.Errorf("reading /proc/meminfo: %w", err)
	}
	for _, line := range strings.Split(string(meminfo), "\n") {
		var kb uint64
		if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
			m.MemoryMiB = kb / 1024
		}
	}
	return m, nil
}

// WriteResult writes <name>.json and <name>.md into dir (see Result.Name).
func WriteResult(dir string, m Machine, res *Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for _, hp := range res.HeapProfiles() {
		if hp.raw == nil {
			continue
		}
		hp.File = heapProfileFile(res, hp)
		if err := os.WriteFile(filepath.Join(dir, hp.File), hp.raw, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", hp.File, err)
		}
	}
	data, err := json.MarshalIndent(struct {
		Machine Machine `json:"machine"`
		*Result
	}{m, res}, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding results: %w", err)
	}
	base := filepath.Join(dir, res.Name())
	if err := os.WriteFile(base+".json", append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s.json: %w", base, err)
	}
	return WriteResultPage(dir, res)
}

// heapProfileFile names the file hp, one of res's heap profiles, is kept in beside the results:
// <name>.heap.pb.gz for the last wave's, <name>.wave-<W>.heap.pb.gz for an earlier one's.
func heapProfileFile(res *Result, hp *HeapProfile) string {
	if hp == res.HeapProfile {
		return res.Name() + ".heap.pb.gz"
	}
	return fmt.Sprintf("%s.wave-%d.heap.pb.gz", res.Name(), hp.Wave)
}

// WriteResultPage writes <name>.md, the page of one result, into dir. A report made later
// writes it again from the result read back (ReadResults), so that every page names the heap's
// owners as the summary does.
func WriteResultPage(dir string, res *Result) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# KULTA bench, %s\n\n", res.Title())
	writeResultBody(&b, res)
	path := filepath.Join(dir, res.Name()+".md")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// writeResultBody writes what a result's page and its section of the summary share: the table
// by wave, the requests of the last wave and where the live heap went.
func writeResultBody(b *strings.Builder, res *Result) {
	writeResultTable(b, res)
	b.WriteString("\n")
	writeRequestTable(b, res)
	writeHeapProfile(b, res)
}

// reanalyse sorts the heap profile kept beside the results in dir (hp.File) again, with the
// owners as they are now, so that a report made later names them alike for every run; hp
// keeps what the run recorded when the file is not there. What the run knew (the wave, the
// process, whether it collected first) stays.
func reanalyse(dir string, hp *HeapProfile) error {
	if hp == nil || hp.File == "" {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(dir, hp.File))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the heap profile: %w", err)
	}
	again, err := AnalyseHeapProfile(data)
	if err != nil {
		return fmt.Errorf("%s: %w", hp.File, err)
	}
	again.Wave, again.Shard, again.File, again.Collected = hp.Wave, hp.Shard, hp.File, hp.Collected
	*hp = *again
	return nil
}

// ReadResults reads the results-<N>.json files in dir, ordered by N; a missing dir is none.
func ReadResults(dir string) ([]*Result, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "results-*.json"))
	if err != nil {
		return nil, fmt.Errorf("listing results in %s: %w", dir, err)
	}
	var out []*Result
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		res := &Result{}
		if err := json.Unmarshal(data, res); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", p, err)
		}
		for _, hp := range res.HeapProfiles() {
			if err := reanalyse(dir, hp); err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
		}
		out = append(out, res)
	}
	SortResults(out)
	return out, nil
}

// writeResultTable writes one column per wave and one for the floor.
func writeResultTable(b *strings.Builder, res *Result) {
	b.WriteString("| | ")
	for _, w := range res.WaveResults {
		fmt.Fprintf(b, "wave %d | ", w.Wave)
	}
	b.WriteString("\n|---|")
	b.WriteString(strings.Repeat("---|", len(res.WaveResults)))
	b.WriteString("\n")
	type row struct {
		name string
		f    func(WaveResult) string
	}
	rows := []row{
		{"wall time, first patch → all Completed (s)", func(w WaveResult) string { return f1(w.WallSeconds) }},
		{"controller CPU (s)", func(w WaveResult) string { return f2(w.ControllerCPUSeconds) }},
		{"API server CPU / etcd CPU (s)", func(w WaveResult) string { return f1(w.APIServerCPUSeconds) + " / " + f1(w.EtcdCPUSeconds) }},
		{"controller RSS peak / steady (MiB)", func(w WaveResult) string { return mb(w.During.PeakRSS) + " / " + mb(w.Steady.MeanRSS) }},
		{"… RSS peaks: anonymous (heap, stacks) / file-backed (the binary, reclaimable) (MiB)", func(w WaveResult) string {
			if w.During.PeakAnon == 0 {
				return "not recorded"
			}
			return mb(w.During.PeakAnon) + " / " + mb(w.During.PeakFile)
		}},
		{replicaRSSRowName, replicaRSSRow},
		{"heap in use peak / steady (MiB)", func(w WaveResult) string {
			return scraped(w.During, mbf(w.During.PeakHeapInuse)) + " / " + scraped(w.Steady, mbf(w.Steady.MeanHeapInuse))
		}},
		{"goroutines peak / steady", func(w WaveResult) string {
			return scraped(w.During, f0(w.During.PeakGoroutines)) + " / " + scraped(w.Steady, f0(w.Steady.LastGoroutines))
		}},
		{"controller writes per Rollout per step (floor 2)", func(w WaveResult) string { return f2(w.WritesPerStep) }},
		{"… excluding Events", func(w WaveResult) string { return f2(w.NonEventWritesPerStep) }},
		{"… route writes / status writes", func(w WaveResult) string { return f2(w.RouteWritesPerStep) + " / " + f2(w.StatusWritesPerStep) }},
		{"Events per Rollout per wave / Events dropped", func(w WaveResult) string { return f2(w.EventsPerRollout) + " / " + f0(w.EventsDropped) }},
		{"controller writes: API server − bench / controller's own count", func(w WaveResult) string { return f0(w.ControllerWrites) + " / " + f0(w.ClientWrites) }},
		{"controller requests, its own count (all verbs)", func(w WaveResult) string { return f0(w.ClientRequests) }},
		{"reconciles per Rollout", func(w WaveResult) string { return f1(w.ReconcilesPerRollout) }},
		{"controller writes after all were Completed: the wave's tail (counted above; its length) / idle (of which Events)", func(w WaveResult) string {
			idle := f0(w.IdleWrites)
			if w.IdleEventWrites != nil {
				idle += " (" + f0(*w.IdleEventWrites) + ")"
			}
			length := "5 s fixed"
			if w.TailSeconds > 0 {
				length = f1(w.TailSeconds) + " s"
			}
			if tailCut(w) {
				length += ", cut at its bound"
			}
			return f0(w.TailWrites) + " (" + length + ") / " + idle
		}},
		{"step condition met → weight on route p50 / p99 (s), KULTA's kulta_rollout_step_latency_seconds", func(w WaveResult) string {
			return f3(w.KultaStepLatencyP50) + " / " + f3(w.KultaStepLatencyP99)
		}},
		{"… observations (route moves)", func(w WaveResult) string { return f0(w.KultaStepLatencyCount) }},
		{"the same from outside (bench watches) p50 / p99 (s)", func(w WaveResult) string { return f3(w.StepLatency.All.P50) + " / " + f3(w.StepLatency.All.P99) }},
		{"… samples / missing / reordered", func(w WaveResult) string {
			return fmt.Sprintf("%d / %d / %d", w.StepLatency.All.Count, w.StepLatency.Missing, w.StepLatency.Reordered)
		}},
		{"kulta_rollout_step_duration_seconds p50 / p99 (s)", func(w WaveResult) string { return f2(w.StepDurationP50) + " / " + f2(w.StepDurationP99) }},
	}
	for _, row := range rows {
		if row.name == replicaRSSRowName && !res.Sharded() {
			continue
		}
		fmt.Fprintf(b, "| %s | ", row.name)
		for _, w := range res.WaveResults {
			b.WriteString(row.f(w) + " | ")
		}
		b.WriteString("\n")
	}
	writes := fmt.Sprintf("%d route + %d status patches", StepsPerWave*res.N, StepsPerWave*res.N)
	if res.Provider == ProviderNGINX {
		writes = fmt.Sprintf("%d canary Ingress writes, a create, a patch and a delete per Rollout, + %d status patches", StepsPerWave*res.N, StepsPerWave*res.N)
	}
	fmt.Fprintf(b, "\nFloor (plain client, same QPS %g / burst %d, %s): %.1f s, %.2f writes per Rollout per step; last wave / floor = %.2f×.\n",
		res.QPS, res.Burst, writes, res.Floor.WallSeconds, res.Floor.WritesPerStep, res.FloorRatio)
	fmt.Fprintf(b, "Controller flags: --kube-api-qps=%g --kube-api-burst=%d --max-concurrent-reconciles=%s%s. %s\n", res.QPS, res.Burst, reconcilers(res), shardFlags(res), buildNote(res))
	if res.Sharded() {
		fmt.Fprintf(b, "%d controller processes, Rollout i labelled %s=s<i mod %d>: the RSS, heap and goroutine rows are the process with the highest peak RSS in the wave; "+
			"controller CPU, its own counts, reconciles and KULTA's histograms are summed over the %d; requests are counted at the API server, as always.\n",
			res.Shards, kultav1alpha1.ShardLabel, res.Shards, res.Shards)
	}
	fmt.Fprintf(b, "Creating the %d Rollouts and their first rollout took %.1f s. /proc read every second, /metrics every %s. Sampler failures: %d.\n",
		res.N, res.CreateSeconds, scrapeEvery(res), res.SamplerFailures)
}

// writeRequestTable lists the controller's requests per Rollout in the last wave.
func writeRequestTable(b *strings.Builder, res *Result) {
	if len(res.WaveResults) == 0 {
		return
	}
	w := res.WaveResults[len(res.WaveResults)-1]
	if w.UntilCompleted == nil {
		fmt.Fprintf(b, "Controller requests in wave %d (API server count − bench's own), per Rollout:\n\n| resource | verb | total | per Rollout |\n|---|---|---|---|\n", w.Wave)
		for _, row := range w.Controller {
			fmt.Fprintf(b, "| %s | %s | %.0f | %.2f |\n", row.Resource, row.Verb, row.Count, row.Count/float64(res.N))
		}
		return
	}
	before := map[RequestKey]float64{}
	for _, row := range w.UntilCompleted {
		before[row.RequestKey] = row.Count
	}
	fmt.Fprintf(b, "Controller requests in wave %d (API server count − bench's own), per Rollout; of the total, those sent before every Rollout read Completed (the rest are the wave's tail):\n\n"+
		"| resource | verb | total | per Rollout | before all Completed |\n|---|---|---|---|---|\n", w.Wave)
	for _, row := range w.Controller {
		fmt.Fprintf(b, "| %s | %s | %.0f | %.2f | %.0f |\n", row.Resource, row.Verb, row.Count, row.Count/float64(res.N), before[row.RequestKey])
	}
}

// replicaRSSRowName is the row, shown only for a sharded run, of every controller process's
// peak RSS in a wave and their sum.
const replicaRSSRowName = "controller RSS peak per replica; sum (MiB)"

// replicaRSSRow is "s0 41 · s1 40; sum 81": each process's peak RSS in w and their sum.
func replicaRSSRow(w WaveResult) string {
	if len(w.Replicas) == 0 {
		return "not recorded"
	}
	parts := make([]string, len(w.Replicas))
	for i, m := range w.Replicas {
		parts[i] = m.Shard + " " + mb(m.PeakRSS)
	}
	return strings.Join(parts, " · ") + "; sum " + mb(ReplicasPeakRSS(w))
}

// shardFlags is the sharded run's --shard-key flags, as text (" --shard-key=s0…s3, one process
// each"); empty for an unsharded run.
func shardFlags(res *Result) string {
	if !res.Sharded() {
		return ""
	}
	return fmt.Sprintf(" --shard-key=%s…%s, one process each", ShardKey(0), ShardKey(res.Shards-1))
}

// reconcilers is the controller's --max-concurrent-reconciles as run, or "default".
func reconcilers(res *Result) string {
	if res.Reconcilers == 0 {
		return "default"
	}
	return fmt.Sprint(res.Reconcilers)
}

func f0(x float64) string { return fmt.Sprintf("%.0f", x) }
func f1(x float64) string { return fmt.Sprintf("%.1f", x) }
func f2(x float64) string { return fmt.Sprintf("%.2f", x) }
func f3(x float64) string { return fmt.Sprintf("%.3f", x) }
func mb(x uint64) string  { return fmt.Sprintf("%.0f", float64(x)/mib) }
func mbf(x float64) string {
	return fmt.Sprintf("%.0f", x/mib)
}

// now is the report's date.
func now() string { return time.Now().UTC().Format("2006-01-02 15:04 MST") }

// scraped is v, or "not scraped" where the window had no /metrics reading: a wave shorter than
// the scrape interval, in results from before its tail was counted in it.
func scraped(w Window, v string) string {
	if w.Scrapes == 0 {
		return "not scraped"
	}
	return v
}

// buildNote says how the measured binary was built, and the collector's goal it ran with.
func buildNote(res *Result) string {
	var b string
	switch res.Build {
	case "":
		b = "Built with go build's defaults (dynamically linked, with symbols), as the bench did before commit 001831b (7 Dec 2026 03:50 UTC)."
	case ControllerBuild.String():
		b = "Built with `" + res.Build + "`, as the image is."
	default:
		b = "Built with `" + res.Build + "`."
	}
	if res.GCPercent != 0 {
		b += fmt.Sprintf(" Collector goal (go_gc_gogc_percent): %g.", res.GCPercent)
	}
	return b
}

// writeHeapProfile writes where the live heap went after the last wave (Result.HeapProfile)
// as a table, what it gained by owner from wave to wave, and which profiles could not be read;
// nothing for results from before profiles were read.
func writeHeapProfile(b *strings.Builder, res *Result) {
	if res.HeapProfileError != "" {
		fmt.Fprintf(b, "\nHeap profile not read: %s.\n", res.HeapProfileError)
	}
	if res.HeapProfile != nil {
		writeHeapOwners(b, res.HeapProfile)
	}
	writeHeapGrowth(b, res)
}

// writeHeapOwners writes the owners of hp's live heap as a table, and the functions that
// allocated what none of them claims.
func writeHeapOwners(b *strings.Builder, hp *HeapProfile) {
	process := ""
	if hp.Shard != "" {
		process = fmt.Sprintf(" of shard %s (the process with the highest peak RSS)", hp.Shard)
	}
	file := ""
	if hp.File != "" {
		file = fmt.Sprintf(" (`%s`, for `go tool pprof`)", hp.File)
	}
	when := "after a collection the read asked for"
	if !hp.Collected {
		when = "as the runtime had published it, up to two collections before the read"
	}
	fmt.Fprintf(b, "\nWhere the live heap%s went after wave %d's settle period, from the controller's heap profile%s, %s: %s MiB in %d allocation stacks. "+
		"The runtime records about one allocation in every %s KiB allocated and scales it up, so a share of B bytes is an estimate with a standard error of about √(B × %s KiB) "+
		"(%s MiB on 4 MiB).\n\n| held by | MiB | share |\n|---|---|---|\n",
		process, hp.Wave, file, when, mibString(hp.InuseBytes), hp.Stacks, f0(float64(hp.SampleRateBytes)/1024), f0(float64(hp.SampleRateBytes)/1024),
		f1(math.Sqrt(4*mib*float64(hp.SampleRateBytes))/mib))
	for _, o := range hp.Owners {
		fmt.Fprintf(b, "| %s | %s | %s %% |\n", o.Name, mibString(o.Bytes), f0(100*float64(o.Bytes)/float64(max(hp.InuseBytes, 1))))
	}
	if len(hp.Unclaimed) == 0 {
		return
	}
	parts := make([]string, len(hp.Unclaimed))
	for i, u := range hp.Unclaimed {
		parts[i] = fmt.Sprintf("`%s` %s MiB", u.Name, f2(float64(u.Bytes)/mib))
	}
	fmt.Fprintf(b, "\nWhat no owner above claims, by the function that allocated it: %s.\n", strings.Join(parts, ", "))
}

// writeHeapGrowth writes the live heap by owner after each wave whose profile was read, and
// what each owner gained from the first of them to the last: what the controller kept from
// wave to wave. Profiles of different processes (in a sharded run the process with the highest
// peak can change from wave to wave) are not set side by side; a result with one profile
// has nothing to compare.
func writeHeapGrowth(b *strings.Builder, res *Result) {
	hps := res.HeapProfiles()
	if len(hps) < 2 {
		return
	}
	waves := make([]string, len(hps))
	for i, hp := range hps {
		waves[i] = fmt.Sprint(hp.Wave)
	}
	if !sameProcess(hps) {
		fmt.Fprintf(b, "\nThe heap profiles after waves %s were read from different processes (each wave's highest peak), so they are not set side by side.\n", strings.Join(waves, ", "))
		return
	}
	first, lastHP := hps[0], hps[len(hps)-1]
	fmt.Fprintf(b, "\nThe live heap by owner after each wave's settle period (MiB; each profile read after a collection, as above), "+
		"and what each owner gained from wave %d to wave %d, each figure good to the sampling error of its profile:\n\n| held by | wave %s | wave %d → %d |\n|---|%s---|\n",
		first.Wave, lastHP.Wave, strings.Join(waves, " | wave "), first.Wave, lastHP.Wave, strings.Repeat("---|", len(hps)))
	row := func(name string, held func(*HeapProfile) int64) {
		fmt.Fprintf(b, "| %s |", name)
		for _, hp := range hps {
			fmt.Fprintf(b, " %s |", mibString(held(hp)))
		}
		fmt.Fprintf(b, " %+.1f |\n", float64(held(lastHP)-held(first))/mib)
	}
	row("the live heap", func(hp *HeapProfile) int64 { return hp.InuseBytes })
	for _, name := range ownerNames(hps) {
		row(name, func(hp *HeapProfile) int64 { return ownerBytes(hp, name) })
	}
}

// ownerNames are the owners of any of hps: in the order of the last, then those it lacks in
// the order they first appear.
func ownerNames(hps []*HeapProfile) []string {
	var names []string
	for _, hp := range append([]*HeapProfile{hps[len(hps)-1]}, hps[:len(hps)-1]...) {
		for _, o := range hp.Owners {
			if !slices.Contains(names, o.Name) {
				names = append(names, o.Name)
			}
		}
	}
	return names
}

// ownerBytes is what owner name held in hp; 0 when hp does not name it.
func ownerBytes(hp *HeapProfile, name string) int64 {
	for _, o := range hp.Owners {
		if o.Name == name {
			return o.Bytes
		}
	}
	return 0
}

// mibString is n bytes in MiB with one decimal.
func mibString(n int64) string { return f1(float64(n) / mib) }
