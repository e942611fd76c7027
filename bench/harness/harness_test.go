package harness

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testenv"
)

const exposition = `# HELP apiserver_request_total Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",group="",resource="events",scope="namespace",subresource="",verb="POST",version="v1"} 10
apiserver_request_total{code="200",component="apiserver",group="kulta.io",resource="rollouts",scope="namespace",subresource="status",verb="PATCH",version="v1alpha1"} 6
apiserver_request_total{code="409",component="apiserver",group="kulta.io",resource="rollouts",scope="namespace",subresource="status",verb="PATCH",version="v1alpha1"} 1
apiserver_request_total{code="200",component="apiserver",group="",resource="",scope="",subresource="",verb="GET",version=""} 3
go_goroutines 42
weird{msg="a \"quoted\" \\ value\n"} 1.5e3 1700000000000
step_bucket{le="1"} 2
step_bucket{le="2"} 6
step_bucket{le="+Inf"} 8
`

func TestParsePromText(t *testing.T) {
	ss, err := ParsePromText(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	if got := ss.Sum("go_goroutines", nil); got != 42 {
		t.Errorf("go_goroutines = %v, want 42", got)
	}
	if got := ss.Sum("weird", map[string]string{"msg": "a \"quoted\" \\ value\n"}); got != 1500 {
		t.Errorf("escaped label sample = %v, want 1500", got)
	}
	reqs := APIServerRequests(ss)
	if got := reqs.Resource("PATCH", "rollouts/status"); got != 7 {
		t.Errorf("PATCH rollouts/status = %v, want 7 (codes summed)", got)
	}
	if got := reqs.Writes(); got != 17 {
		t.Errorf("writes = %v, want 17", got)
	}
	if got := reqs.Writes("events"); got != 7 {
		t.Errorf("writes without events = %v, want 7", got)
	}
	if got := reqs.Resource("GET", NonResource); got != 3 {
		t.Errorf("non-resource GET = %v, want 3", got)
	}
	for _, bad := range []string{"name{a=\"x\" 1", "name", "name{a=x} 1", "name{} notanumber"} {
		if _, err := ParsePromText(strings.NewReader(bad)); err == nil {
			t.Errorf("ParsePromText(%q) succeeded", bad)
		}
	}
}

func TestHistogramQuantile(t *testing.T) {
	ss, err := ParsePromText(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	b := ss.HistogramBuckets("step", nil)
	if got := HistogramQuantile(0.5, b); got != 1.5 {
		t.Errorf("p50 = %v, want 1.5 (rank 4 halfway through bucket 1..2)", got)
	}
	if got := HistogramQuantile(0.99, b); got != 2 {
		t.Errorf("p99 = %v, want 2 (in +Inf, so the highest finite bound)", got)
	}
	delta := BucketDelta([]Bucket{{1, 2}, {2, 6}, {math.Inf(1), 8}}, b)
	if !math.IsNaN(HistogramQuantile(0.5, delta)) {
		t.Errorf("quantile of an empty delta = %v, want NaN", HistogramQuantile(0.5, delta))
	}
}

func TestParseProc(t *testing.T) {
	status := "Name:\tkulta-controller\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nRssAnon:\t   71680 kB\nRssFile:\t   30720 kB\nThreads:\t9\n"
	m, err := ParseProcStatus(strings.NewReader(status))
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS != 100*mib || m.HWM != 200*mib || m.Anon != 70*mib || m.File != 30*mib {
		t.Errorf("memory = %+v, want RSS 100 MiB, HWM 200 MiB, anonymous 70 MiB, file-backed 30 MiB", m)
	}
	if _, err := ParseProcStatus(strings.NewReader("Name:\tzombie\n")); err == nil {
		t.Error("status without VmRSS parsed")
	}
	line := "4242 (kube (api) server) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 12 0 1000 1 1 1"
	st, err := ParseProcStat(line)
	if err != nil {
		t.Fatal(err)
	}
	if st.Comm != "kube (api) server" || st.PPID != 17 || st.CPUSeconds != 4 {
		t.Errorf("stat = %+v, want comm with parentheses, ppid 17, 4 CPU seconds", st)
	}
	if _, err := ParseProcStat("4242 (short) S 1"); err == nil {
		t.Error("short stat line parsed")
	}
}

func TestClassifyRequest(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		want         RequestKey
	}{
		{"GET", "/apis/kulta.io/v1alpha1/rollouts?labelSelector=x", RequestKey{"LIST", "rollouts"}},
		{"GET", "/apis/gateway.networking.k8s.io/v1/httproutes?watch=true", RequestKey{"WATCH", "httproutes"}},
		{"PATCH", "/apis/kulta.io/v1alpha1/namespaces/ns/rollouts/ro/status", RequestKey{"PATCH", "rollouts/status"}},
		{"POST", "/api/v1/namespaces/ns/services", RequestKey{"POST", "services"}},
		{"GET", "/api/v1/namespaces/ns", RequestKey{"GET", "namespaces"}},
		{"PUT", "/api/v1/namespaces/ns/finalize", RequestKey{"PUT", "namespaces/finalize"}},
		{"DELETE", "/apis/apps/v1/namespaces/ns/replicasets", RequestKey{"DELETECOLLECTION", "replicasets"}},
		{"GET", "/metrics", RequestKey{"GET", NonResource}},
	} {
		u, err := url.Parse(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := ClassifyRequest(tc.method, u); got != tc.want {
			t.Errorf("%s %s = %+v, want %+v", tc.method, tc.path, got, tc.want)
		}
	}
}

func TestPerStepAndCounts(t *testing.T) {
	api := RequestCounts{{"PUT", "httproutes"}: 400, {"PATCH", "rollouts/status"}: 330, {"GET", "httproutes"}: 900}
	bench := RequestCounts{{"PATCH", "rollouts/status"}: 30, {"GET", "httproutes"}: 1000}
	ctrl := api.Sub(bench)
	if got := ctrl.Resource("GET", "httproutes"); got != 0 {
		t.Errorf("clamped difference = %v, want 0", got)
	}
	// 100 Rollouts, one wave of three steps: 700 writes are 700/300 per step.
	if got := PerStep(ctrl.Writes(), 100, 1); math.Abs(got-7.0/3) > 1e-9 {
		t.Errorf("per step = %v, want 2.333", got)
	}
	if got := Finite(PerStep(1, 0, 1)); got != 0 {
		t.Errorf("per step of nothing = %v, want 0", got)
	}
	p := Summarise([]time.Duration{3 * time.Second, time.Second, 2 * time.Second, 4 * time.Second})
	if p.Count != 4 || p.P50 != 2 || p.P99 != 4 || p.Max != 4 {
		t.Errorf("percentiles = %+v", p)
	}
	w := summariseWindow([]Point{
		{T: time.Unix(1, 0), RSS: 10, Scraped: true, HeapInuse: 4, Goroutines: 5},
		{T: time.Unix(2, 0), RSS: 30, Scraped: true, HeapInuse: 8, Goroutines: 7},
		{T: time.Unix(3, 0), RSS: 20},
		{T: time.Unix(9, 0), RSS: 99, Scraped: true, Goroutines: 50},
	}, time.Unix(0, 0), time.Unix(5, 0))
	if w.Samples != 3 || w.Scrapes != 2 || w.PeakRSS != 30 || w.MeanRSS != 20 || w.LastGoroutines != 7 || w.MeanHeapInuse != 6 || w.PeakHeapInuse != 8 {
		t.Errorf("window = %+v", w)
	}
}

func TestBusiestClient(t *testing.T) {
	rows := []RequestRow{
		{RequestKey{Verb: "POST", Resource: "events"}, 900},
		{RequestKey{Verb: "PATCH", Resource: "rollouts/status"}, 500},
		{RequestKey{Verb: "GET", Resource: "rollouts"}, 40},
		{RequestKey{Verb: "PATCH", Resource: "httproutes"}, 400},
		{RequestKey{Verb: "GET", Resource: "httproutes"}, 300},
		{RequestKey{Verb: "GET", Resource: NonResource}, 1000},
	}
	b := BusiestClient(rows, 50, 100)
	if b.Resource != "rollouts" || b.Requests != 500 {
		t.Errorf("busiest = %s with %v requests, want rollouts (status folded in; reads, Events and non-resource left out) with 500", b.Resource, b.Requests)
	}
	if math.Abs(b.Seconds-8) > 1e-9 {
		t.Errorf("bound = %v s, want (500-100)/50 = 8", b.Seconds)
	}
	if b := BusiestClient(rows[:3], 50, 1000); b.Seconds != 0 {
		t.Errorf("within the burst the bound is %v s, want 0", b.Seconds)
	}
}

func TestPerRolloutWritesLeaveOutLeases(t *testing.T) {
	c := RequestCounts{
		{Verb: "PATCH", Resource: "httproutes"}:      3,
		{Verb: "PATCH", Resource: "rollouts/status"}: 4,
		{Verb: "POST", Resource: "events"}:           3,
		{Verb: "PUT", Resource: "leases"}:            5,
		{Verb: "GET", Resource: "rollouts"}:          2,
	}
	if got := perRolloutWrites(c); got != 10 {
		t.Errorf("writes = %v, want 10: routes, status and Events, without the 5 lease renewals or the read", got)
	}
	if got := perRolloutWrites(c, "events"); got != 7 {
		t.Errorf("writes but Events = %v, want 7", got)
	}
}

func TestExcessLeavesOutLeases(t *testing.T) {
	r := &Result{N: 100}
	w := WaveResult{Controller: []RequestRow{
		{RequestKey{Verb: "PATCH", Resource: "httproutes"}, 300},
		{RequestKey{Verb: "PATCH", Resource: "rollouts/status"}, 400},
		{RequestKey{Verb: "PUT", Resource: "leases"}, 9},
		{RequestKey{Verb: "POST", Resource: "events"}, 300},
		{RequestKey{Verb: "GET", Resource: "rollouts"}, 7},
	}}
	if got := excess(r, w); got != "POST events 1.00" {
		t.Errorf("excess = %q, want only the Events: no lease renewals, reads, route or status writes", got)
	}
}

func TestWavePerRollout(t *testing.T) {
	r := &Result{N: 100}
	w := WaveResult{Controller: []RequestRow{
		{RequestKey{Verb: "PATCH", Resource: "httproutes"}, 400},
		{RequestKey{Verb: "GET", Resource: "httproutes"}, 300},
		{RequestKey{Verb: "PUT", Resource: "leases"}, 2},
		{RequestKey{Verb: "PATCH", Resource: "widgets"}, 100},
	}}
	got := wavePerRollout(r, w)
	if !strings.HasPrefix(got, "PATCH httproutes 4.00 (one for each step but the last") {
		t.Errorf("route writes not explained: %q", got)
	}
	if strings.Contains(got, "GET") || strings.Contains(got, "leases") {
		t.Errorf("reads or stray writes listed: %q", got)
	}
	if !strings.HasSuffix(got, "PATCH widgets 1.00") {
		t.Errorf("a write without a known reason must still be listed: %q", got)
	}
}

// summaryOf writes RESULTS.md for results into dir and returns it.
func summaryOf(t *testing.T, dir string, results []*Result) string {
	t.Helper()
	summary := filepath.Join(dir, "RESULTS.md")
	if err := WriteSummary(summary, Machine{}, results, "kulta-bench"); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(summary)
	if err != nil {
		t.Fatal(err)
	}
	return string(text)
}

func TestReadResultsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	started := time.Date(2026, 11, 25, 21, 44, 0, 0, time.UTC)
	source := &Source{Commit: "5a73364e0c1d2b3a4f5e6d7c8b9a0f1e2d3c4b5a", Modified: true}
	for _, n := range []int{1000, 100} {
		res := &Result{N: n, Waves: 1, QPS: 50, Burst: 100, Reconcilers: 4, Started: started,
			WaveResults: []WaveResult{{Wave: 1, WallSeconds: float64(n) / 10}}}
		if n == 1000 {
			res.Source = source
		}
		if err := WriteResult(dir, Machine{CPUs: 2}, res); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].N != 100 || got[1].N != 1000 {
		t.Fatalf("read %d results, want N=100 then N=1000", len(got))
	}
	if got[1].Reconcilers != 4 || !got[1].Started.Equal(started) || got[1].WaveResults[0].WallSeconds != 100 {
		t.Errorf("result not read back whole: %+v", got[1])
	}
	if got[0].Source != nil || got[1].Source == nil || *got[1].Source != *source {
		t.Errorf("sources read back: %v and %v; want none for N=100 and %+v for N=1000", got[0].Source, got[1].Source, *source)
	}
	text := summaryOf(t, dir, got)
	for _, want := range []string{
		"## N = 100\n\nRun started 2026-11-25 21:44 UTC.\n",
		"## N = 1000\n\nRun started 2026-11-25 21:44 UTC, controller built from commit 5a73364 with uncommitted changes.\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("summary lacks %q:\n%s", want, text)
		}
	}
	if none, err := ReadResults(t.TempDir()); err != nil || len(none) != 0 {
		t.Errorf("an empty folder gave %d results, error %v", len(none), err)
	}
}

func TestTargetsExplainWhatTheyMiss(t *testing.T) {
	wave := func(w int, steadyRSS uint64, goroutines float64) WaveResult {
		return WaveResult{Wave: w, WallSeconds: 30, WritesPerStep: 4, NonEventWritesPerStep: 3,
			Steady: Window{MeanRSS: steadyRSS}, During: Window{PeakGoroutines: goroutines},
			Controller: []RequestRow{{RequestKey{Verb: "PATCH", Resource: "rollouts/status"}, 500}}}
	}
	results := []*Result{
		{N: 1000, QPS: 50, Burst: 100, Reconcilers: 4, FloorRatio: 3, Floor: FloorResult{WallSeconds: 10},
			WaveResults: []WaveResult{wave(1, 100*mib, 120), wave(2, 120*mib, 140)}},
		{N: 100, QPS: 50, Burst: 100, Reconcilers: 4, FloorRatio: 1.5, Floor: FloorResult{WallSeconds: 20},
			WaveResults: []WaveResult{wave(1, 100*mib, 100), wave(2, 101*mib, 110)}},
	}
	// At N=1000 the bench told the writes before all were Completed from the tail's: the
	// bound counts only those.
	results[0].WaveResults[1].UntilCompleted = []RequestRow{{RequestKey{Verb: "PATCH", Resource: "rollouts/status"}, 300}}
	targets := Targets(results)
	checks := []struct{ target, status, mention string }{
		{"writes per Rollout", "missed", "N=1000: 4.00, 3.00 excluding Events (route 0.00, status 0.00); over by 1.00 (1.33×), 0.00 (1.00×) excluding Events; the rest, per Rollout per step: route or status writes above one each; why, per Rollout per wave: PATCH rollouts/status 0.50"},
		{"no RSS growth", "missed", "revisionHistoryLimit"},
		{"update wave", "missed", "N=1000: 30.0 s vs 10.0 s = 3.00×; over by 1.70×: the controller sent 500 requests (0 writes) in 30.0 s, 0.0 reconciles per Rollout, 4 at a time; " +
			"its busiest client (rollouts, 300 writes before all were Completed) needs at least 4.0 s"},
		{"update wave", "missed", "its busiest client (rollouts, 500 writes in the wave and its tail, which these results do not tell apart) needs at least 8.0 s"},
		{"goroutines", "missed", "the peak at N=1000 is +30 from N=100's"},
		{"at 10,000 Rollouts", "not measured", "N=10,000 was not run; at N=1000 peak RSS was 0 MiB"},
	}
	for _, c := range checks {
		tg := targetNamed(t, targets, c.target)
		if tg.Status != c.status || !strings.Contains(tg.Detail, c.mention) {
			t.Errorf("%q: %s, %q; want %s mentioning %q", tg.Name, tg.Status, tg.Detail, c.status, c.mention)
		}
	}
	// N=100 is over the target too, but why each write is made is told once, for N=1000.
	if tg := targetNamed(t, targets, "writes per Rollout"); strings.Count(tg.Detail, "why, per Rollout per wave") != 1 || !strings.Contains(tg.Detail, "N=100: 4.00") {
		t.Errorf("writes target: %q; want N=100's figures and one explanation", tg.Detail)
	}
}

// targetNamed is the target whose name starts with prefix.
func targetNamed(t *testing.T, targets []Target, prefix string) Target {
	t.Helper()
	for _, tg := range targets {
		if strings.HasPrefix(tg.Name, prefix) {
			return tg
		}
	}
	t.Fatalf("no target named %q...", prefix)
	return Target{}
}

func TestSpanOf(t *testing.T) {
	if got := spanOf(0.914, 1.241); got != "0.91× to 1.24×" {
		t.Errorf("range: %q", got)
	}
	if got := spanOf(1.081, 1.079); got != "1.08×" {
		t.Errorf("one ratio: %q", got)
	}
}

func TestTailBound(t *testing.T) {
	for _, tc := range []struct {
		n, processes int
		qps          float64
		want         time.Duration
	}{
		{1, 1, 40, 3 * time.Minute},
		{1000, 1, 40, 3 * time.Minute},
		// 30 s, then twice 5,000 writes at 40/s: 280 s.
		{5000, 1, 40, 280 * time.Second},
		{5000, 4, 40, 3 * time.Minute},
		{10000, 1, 40, 530 * time.Second},
		{10000, 4, 40, 3 * time.Minute},
		{10000, 1, 50, 430 * time.Second},
		// An unsharded run records 0 shards.
		{5000, 0, 40, 280 * time.Second},
	} {
		if got := TailBound(tc.n, tc.processes, tc.qps); got != tc.want {
			t.Errorf("TailBound(%d, %d, %g) = %s, want %s", tc.n, tc.processes, tc.qps, got, tc.want)
		}
	}
}

func TestTailOver(t *testing.T) {
	start := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	for _, tc := range []struct {
		name         string
		changed, now time.Duration
		want         bool
	}{
		// A wave of one Rollout: its last write comes right after Completed, and its old
		// revision's scale-down is due 30 s later. A quiet of 10 s or 25 s before then is
		// not the end of the tail.
		{"quiet before the scale-down is due", 0, 10 * time.Second, false},
		{"quiet until just before the scale-down is due", 0, 29 * time.Second, false},
		{"quiet across the due time but not all after it", 0, 39 * time.Second, false},
		{"quiet for Quiet after the due time", 0, 40 * time.Second, true},
		// The scale-down and the status write after it came at 31 s and 32 s.
		{"writes after the due time", 32 * time.Second, 41 * time.Second, false},
		{"quiet after those writes", 32 * time.Second, 42 * time.Second, true},
		// A large wave writes on past the delay; only the quiet matters then.
		{"still writing", 300 * time.Second, 305 * time.Second, false},
		{"quiet after a long tail", 300 * time.Second, 310 * time.Second, true},
	} {
		if got := tailOver(start, at(tc.changed), at(tc.now)); got != tc.want {
			t.Errorf("%s: tailOver(last write at %s, now %s) = %v, want %v", tc.name, tc.changed, tc.now, got, tc.want)
		}
	}
}

func TestSampleNowRecordsAPoint(t *testing.T) {
	s := NewSampler(os.Getpid(), "http://127.0.0.1:0/metrics", time.Hour, time.Hour)
	from := time.Now()
	s.SampleNow()
	w := s.Window(from, time.Now())
	if w.Samples != 1 || w.PeakRSS == 0 || w.HWM < w.PeakRSS || w.Scrapes != 0 {
		t.Errorf("window after SampleNow = %+v, want one sample of this process's memory and no scrape", w)
	}
	if n, err := s.Failures(); n != 0 {
		t.Errorf("SampleNow failed: %d, %v", n, err)
	}
	gone := NewSampler(1<<30, "http://127.0.0.1:0/metrics", time.Hour, time.Hour)
	gone.SampleNow()
	if n, err := gone.Failures(); n != 1 || err == nil {
		t.Errorf("SampleNow of no process: %d failures, %v; want 1 and its error", n, err)
	}
}

func TestIssueTargets(t *testing.T) {
	row := func(verb, resource string, count float64) RequestRow {
		return RequestRow{RequestKey{Verb: verb, Resource: resource}, count}
	}
	run := func(n, shards int, peak uint64, wave float64, controller ...RequestRow) *Result {
		return &Result{N: n, Shards: shards, Floor: FloorResult{WallSeconds: 60}, WaveResults: []WaveResult{{
			WallSeconds: wave, During: Window{PeakRSS: peak}, Controller: controller,
			KultaStepLatencyP50: 2, KultaStepLatencyP99: 20, KultaStepLatencyCount: float64(3 * n),
		}}}
	}
	single := run(1000, 0, 160*mib, 120, row("PATCH", "httproutes", 4000), row("PATCH", "rollouts/status", 5000), row("GET", "httproutes", 4000), row("GET", "rollouts", 7))
	single.WaveResults[0].IdleWrites = 5
	sharded := run(1000, 4, 120*mib, 130, row("PATCH", "httproutes", 4000))
	sharded.WaveResults[0].Replicas = []ReplicaMemory{{Shard: "s0", PeakRSS: 120 * mib}, {Shard: "s1", PeakRSS: 110 * mib}}
	alone := run(1, 0, 60*mib, 2)
	alone.WaveResults[0].KultaStepLatencyP99 = 0.008
	targets := Targets([]*Result{sharded, alone, single})
	checks := []struct{ target, status, mention string }{
		{"no read before a write", "missed", "N=1000 (run 0001-01-01): 4000 GETs for 4000 route writes, 7 GETs of Rollouts"},
		{"zero writes", "missed", "N=1000: 5 writes in the settle period (not told apart from lease renewals)"},
		{"at 1,000 Rollouts controller RSS under 100 MiB", "missed", "N=1000, no memory limit: peak 160 MiB (VmHWM)"},
		{"in 4 shards", "missed", "peak 120 MiB in its largest process against 160 MiB in one (75%), 230 MiB in all 4; wave 130.0 s against 120.0 s in one process (1.08×)"},
		{"in 4 shards", "missed", "the informers' fixed costs, 60 MiB, a process's peak RSS at N=1 (0001-01-01)"},
		{"in 4 shards", "missed", "the wave takes 1.08× one process's: the API server"},
		// The floor patched 6,000 times in 60 s: 100 req/s; the wave's 13,007 requests take 130.1 s at that rate.
		// Nothing alike at a smaller N to compare with: held to the bound alone.
		{"step latency", "met", "N=1000: p50 2.000 s, p99 20.000 s over 3000 steps against API work of 13007 requests / 100 req/s = 130.1 s: p99 0.154 of it"},
	}
	for _, c := range checks {
		tg := targetNamed(t, targets, c.target)
		if tg.Status != c.status || !strings.Contains(tg.Detail, c.mention) {
			t.Errorf("%q: %s, %q; want %s mentioning %q", tg.Name, tg.Status, tg.Detail, c.status, c.mention)
		}
	}
	alone.WaveResults[0].KultaStepLatencyP99 = 0.2
	if tg := targetNamed(t, Targets([]*Result{alone, single}), "step latency"); tg.Status != "alone missed, in waves met" {
		t.Errorf("p99 alone over 100 ms: %s, %q", tg.Status, tg.Detail)
	}
	single.WaveResults[0].IdleWrites, single.WaveResults[0].IdleLeaseWrites = 2, ptr.To[float64](2)
	if tg := targetNamed(t, Targets([]*Result{single}), "zero writes"); tg.Status != "met" || !strings.Contains(tg.Detail, "2 of them lease renewals") {
		t.Errorf("only lease renewals: %s, %q", tg.Status, tg.Detail)
	}
	single.WaveResults[0].IdleWrites = 3
	if tg := targetNamed(t, Targets([]*Result{single}), "zero writes"); tg.Status != "missed" || strings.Contains(tg.Detail, "tail") {
		t.Errorf("a write besides the lease renewals, no tail recorded: %s, %q", tg.Status, tg.Detail)
	}
	// Writes in the settle period say the tail had not ended; whether the bench stopped
	// waiting for it at its bound is told apart from a tail that went quiet for a while.
	single.WaveResults[0].TailSeconds = 42
	if tg := targetNamed(t, Targets([]*Result{single}), "zero writes"); !strings.Contains(tg.Detail, "(after a tail of 42 s, which ended at the first 3 s without a controller write, wherever it fell)") {
		t.Errorf("a tail that paused, in a result from before the bound was recorded: %q", tg.Detail)
	}
	single.WaveResults[0].TailSeconds = 180
	if tg := targetNamed(t, Targets([]*Result{single}), "zero writes"); !strings.Contains(tg.Detail, "(the wave's tail had not ended when the bench stopped waiting for it, after 180 s)") {
		t.Errorf("a tail that reached the old 3-minute bound: %q", tg.Detail)
	}
	single.WaveResults[0].TailBoundSeconds = 280
	if tg := targetNamed(t, Targets([]*Result{single}), "zero writes"); !strings.Contains(tg.Detail, "(after a tail of 180 s, which ended at the first 10 s without a controller write, wherever it fell)") {
		t.Errorf("a tail that paused, with its bound recorded: %q", tg.Detail)
	}
	single.WaveResults[0].TailAfterDelay = true
	if tg := targetNamed(t, Targets([]*Result{single}), "zero writes"); !strings.Contains(tg.Detail, "(after a tail of 180 s, which ended at the first 10 s without a controller write once the old revisions' scale-downs were due)") {
		t.Errorf("a tail that paused after the scale-down delay: %q", tg.Detail)
	}
	single.WaveResults[0].TailSeconds, single.WaveResults[0].TailCut = 280, true
	if tg := targetNamed(t, Targets([]*Result{single}), "zero writes"); !strings.Contains(tg.Detail, "(the wave's tail had not ended when the bench stopped waiting for it, after 280 s)") {
		t.Errorf("a tail cut at its bound: %q", tg.Detail)
	}
	single.WaveResults[0].IdleWrites = 2
	if tg := targetNamed(t, Targets([]*Result{single}), "zero writes"); tg.Status != "met" || strings.Contains(tg.Detail, "had not ended") {
		t.Errorf("a cut tail, but only lease renewals after it: %s, %q", tg.Status, tg.Detail)
	}
	single.WaveResults[0].Controller = single.WaveResults[0].Controller[:2]
	if tg := targetNamed(t, Targets([]*Result{single}), "no read before a write"); tg.Status != "met" {
		t.Errorf("no GETs: %s, %q", tg.Status, tg.Detail)
	}
}

func TestRSSTargetAtScale(t *testing.T) {
	run := func(n int, peak uint64) *Result {
		return &Result{N: n, WaveResults: []WaveResult{{During: Window{PeakRSS: peak}, Steady: Window{MeanRSS: peak}}}}
	}
	tg := rssTarget([]*Result{run(1000, 200*mib), run(5000, 600*mib)}, 5000, 300*mib)
	if tg.Status != "missed" || !strings.Contains(tg.Detail, "over by 300 MiB (2.00×)") || !strings.Contains(tg.Detail, "grows 102 KiB per Rollout") {
		t.Errorf("N=5,000 at 600 MiB: %s, %q", tg.Status, tg.Detail)
	}
	if tg := rssTarget([]*Result{run(5000, 250*mib)}, 5000, 300*mib); tg.Status != "met" {
		t.Errorf("N=5,000 at 250 MiB: %s, %q", tg.Status, tg.Detail)
	}
	if tg := rssTarget([]*Result{run(1000, 250*mib)}, 5000, 300*mib); tg.Status != "not measured" {
		t.Errorf("without N=5,000: %s", tg.Status)
	}

	limited := func(peak uint64) *Result {
		r := run(5000, peak)
		r.MemoryLimit, r.GoMemLimitBytes = "300Mi", 270*mib
		r.WaveResults[0].ControllerCPUSeconds = 200
		return r
	}
	unlimited := run(5000, 450*mib)
	unlimited.WaveResults[0].ControllerCPUSeconds = 140
	tg = rssTarget([]*Result{limited(280 * mib), run(1000, 150*mib), unlimited}, 5000, 300*mib)
	if tg.Status != "met with a memory limit, missed without" ||
		!strings.Contains(tg.Detail, "N=5000, no memory limit: peak 450 MiB") ||
		!strings.Contains(tg.Detail, "N=5000 in 300Mi (the controller sets GOMEMLIMIT 270 MiB there") ||
		!strings.Contains(tg.Detail, "CPU: 200 s in the last wave against 140 s without a limit") {
		t.Errorf("limited run under 300 MiB: %s, %q", tg.Status, tg.Detail)
	}
	if tg := rssTarget([]*Result{unlimited, limited(310 * mib)}, 5000, 300*mib); tg.Status != "missed" || !strings.Contains(tg.Detail, "over by 10 MiB") {
		t.Errorf("limited run over 300 MiB: %s, %q", tg.Status, tg.Detail)
	}
}

func TestMemoryLimitRuns(t *testing.T) {
	if got, err := GoMemLimit("300Mi"); err != nil || got != int64(0.9*300*mib) {
		t.Errorf("GoMemLimit(300Mi) = %d, %v; want %d", got, err, int64(0.9*300*mib))
	}
	if got, err := GoMemLimit(""); err != nil || got != 0 {
		t.Errorf("GoMemLimit(\"\") = %d, %v; want 0", got, err)
	}
	for _, bad := range []string{"lots", "0", "-1Gi"} {
		if _, err := GoMemLimit(bad); err == nil {
			t.Errorf("GoMemLimit(%q) accepted", bad)
		}
	}
	plain := &Result{N: 5000}
	limited := &Result{N: 5000, MemoryLimit: "300Mi", GoMemLimitBytes: 270 * mib}
	if plain.Name() != "results-5000" || limited.Name() != "results-5000-limit-300Mi" {
		t.Errorf("names %q, %q", plain.Name(), limited.Name())
	}
	if limited.Title() != "N = 5000, in a 300Mi container (GOMEMLIMIT 270 MiB)" || limited.Label() != "N=5000 in 300Mi" {
		t.Errorf("title %q, label %q", limited.Title(), limited.Label())
	}
	results := []*Result{limited, {N: 1000}, plain}
	SortResults(results)
	if results[0].N != 1000 || results[1] != plain || results[2] != limited {
		t.Errorf("sorted: %s, %s, %s", results[0].Name(), results[1].Name(), results[2].Name())
	}
}

func TestGoroutineTarget(t *testing.T) {
	run := func(n int, peak, steady float64) *Result {
		return &Result{N: n, WaveResults: []WaveResult{{During: Window{PeakGoroutines: peak}, Steady: Window{LastGoroutines: steady}}}}
	}
	workers := func(r *Result, n int) *Result {
		r.Reconcilers = n
		return r
	}
	on := func(r *Result, day int) *Result {
		r.Started = time.Date(2026, 12, day, 12, 0, 0, 0, time.UTC)
		return r
	}
	elect := func(r *Result, elected bool) *Result {
		r.LeaderElection = &elected
		return r
	}
	tests := []struct {
		name    string
		results []*Result
		want    string
	}{
		{"flat", []*Result{run(100, 120, 106), run(5000, 128, 111)}, "met"},
		{"a burst at the smallest N", []*Result{run(100, 157, 106), run(5000, 128, 111)}, "met"},
		{"peaks grow with N", []*Result{run(100, 120, 106), run(5000, 180, 111)}, "missed"},
		{"steady grows with N", []*Result{run(100, 120, 106), run(5000, 125, 150)}, "missed"},
		{"one N", []*Result{run(100, 120, 106)}, "not measured"},
		{"an earlier build apart", []*Result{on(run(100, 125, 118), 5), on(run(1000, 125, 118), 5), on(run(5000, 116, 106), 4)}, "met"},
		{"the newest day alone is one N", []*Result{on(run(100, 125, 118), 5), on(run(5000, 116, 150), 4)}, "missed"},
		{"more reconcile workers at one N", []*Result{workers(run(100, 123, 118), 4), workers(run(1000, 135, 130), 16)}, "met"},
		{"as many workers, more goroutines", []*Result{workers(run(100, 123, 118), 16), workers(run(1000, 152, 130), 16)}, "missed"},
		{"every worker waiting at the larger N", []*Result{workers(run(100, 133, 131), 16), workers(run(1000, 152, 131), 16)}, "met"},
		{"no workers to wait", []*Result{run(100, 120, 106), run(1000, 135, 106)}, "missed"},
		{"leader election apart", []*Result{elect(run(1000, 160, 145), true), elect(run(10000, 160, 144), true), elect(run(5000, 150, 133), false)}, "met"},
		{"leader election alike", []*Result{elect(run(1000, 160, 145), true), elect(run(5000, 150, 133), true)}, "missed"},
	}
	for _, tt := range tests {
		if got := goroutineTarget(tt.results); got.Status != tt.want {
			t.Errorf("%s: %s (%s), want %s", tt.name, got.Status, got.Detail, tt.want)
		}
	}
}

// TestElectedLeader checks how a run tells whether its controllers elected a leader: as
// recorded, or, in a result from before it was recorded, by whether it started once the bench
// elected one.
func TestElectedLeader(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		r    *Result
		want bool
	}{
		{&Result{Started: leaderElectionSince.Add(-time.Minute)}, false},
		{&Result{Started: leaderElectionSince}, true},
		{&Result{Started: leaderElectionSince.Add(-time.Hour), LeaderElection: &yes}, true},
		{&Result{Started: leaderElectionSince.Add(time.Hour), LeaderElection: &no}, false},
	} {
		if got := tc.r.ElectedLeader(); got != tc.want {
			t.Errorf("started %s, recorded %v: elected %t, want %t", tc.r.Started, tc.r.LeaderElection, got, tc.want)
		}
	}
}

// TestMeasuredAtDefaultLayout checks that the run the targets hold to N (measuredAt) is the one
// in the default layout, whatever order the results come in: a run of all Rollouts in one
// namespace is reported beside it, not instead of it.
func TestMeasuredAtDefaultLayout(t *testing.T) {
	oneNamespace := &Result{N: 1000, PerNamespace: 1000}
	plain := &Result{N: 1000}
	if got := measuredAt([]*Result{oneNamespace, plain}, 1000); got != plain {
		t.Errorf("measured at 1,000: %s, want the default layout's run", got.Label())
	}
	if got := measuredAt([]*Result{oneNamespace}, 1000); got != nil {
		t.Errorf("measured at 1,000 with only another layout: %s, want none", got.Label())
	}
	throughNGINX := &Result{N: 1000, Provider: ProviderNGINX}
	if got := measuredAt([]*Result{throughNGINX, plain}, 1000); got != plain {
		t.Errorf("measured at 1,000: %s, want the Gateway API run", got.Label())
	}
	if got := measuredAt([]*Result{throughNGINX}, 1000); got != nil {
		t.Errorf("measured at 1,000 with only an NGINX run: %s, want none", got.Label())
	}
}

// TestNGINXRunsBesideTheTargets checks that a run through NGINX Ingresses is listed in the
// targets but judged by none of those held to the Gateway API runs: the RSS target's slope from
// the N below, Argo's Gateway API plugin, the goroutine comparison.
func TestNGINXRunsBesideTheTargets(t *testing.T) {
	run := func(n int, rss uint64, provider string) *Result {
		return &Result{N: n, QPS: 40, Burst: 80, Provider: provider, Floor: FloorResult{WallSeconds: 73},
			WaveResults: []WaveResult{{WallSeconds: 90, During: Window{PeakRSS: rss, PeakGoroutines: 150}, Steady: Window{LastGoroutines: 140}}}}
	}
	gw1k, nginx1k, gw10k := run(1000, 90*mib, ""), run(1000, 900*mib, ProviderNGINX), run(10000, 600*mib, "")
	results := []*Result{gw10k, nginx1k, gw1k}
	rss := targetNamed(t, Targets(results), "at 10,000 Rollouts controller RSS")
	if !strings.Contains(rss.Detail, "from N=1000 (90 MiB)") {
		t.Errorf("RSS at 10,000: %q; want its slope from the Gateway API run at 1,000", rss.Detail)
	}
	peer := targetNamed(t, Targets(results), "N=1,000 wave at least 5×")
	if strings.Contains(peer.Detail, "NGINX") {
		t.Errorf("Argo's Gateway API plugin compared with an NGINX run: %q", peer.Detail)
	}
	g := goroutineTarget([]*Result{gw1k, nginx1k, gw10k})
	if !strings.Contains(g.Detail, "not compared") || !strings.Contains(g.Detail, "ran the nginx provider's informers): N=1000, through NGINX Ingresses") {
		t.Errorf("goroutines: %q; want the NGINX run apart", g.Detail)
	}
	writes := targetNamed(t, Targets(results), "writes per Rollout per step")
	if !strings.Contains(writes.Detail, "N=1000, through NGINX Ingresses:") {
		t.Errorf("writes: %q; want the NGINX run listed", writes.Detail)
	}
	nginxShards := run(10000, 90*mib, ProviderNGINX)
	nginxShards.Shards = 4
	rss10k := targetNamed(t, Targets([]*Result{gw1k, gw10k, nginxShards}), "at 10,000 Rollouts controller RSS")
	if strings.Contains(rss10k.Detail, "NGINX") {
		t.Errorf("RSS at 10,000: %s, %q; want the NGINX shards left out", rss10k.Status, rss10k.Detail)
	}
	sharded := run(1000, 80*mib, ProviderNGINX)
	sharded.Shards = 4
	shards := targetNamed(t, Targets([]*Result{gw1k, sharded}), "in 4 shards")
	if shards.Status != "not measured" || !strings.Contains(shards.Detail, "N=1000 in 4 shards, through NGINX Ingresses: not compared") {
		t.Errorf("shards: %s, %q; want the NGINX shards not compared with the Gateway API process", shards.Status, shards.Detail)
	}
}

// TestRefsLayout checks that Refs puts perNamespace Rollouts to a namespace, PerNamespace when
// not positive.
func TestRefsLayout(t *testing.T) {
	namespaces := func(refs []Ref) []string {
		var out []string
		for _, r := range refs {
			if !slices.Contains(out, r.Namespace) {
				out = append(out, r.Namespace)
			}
		}
		return out
	}
	if got := namespaces(Refs(250, 0)); !slices.Equal(got, []string{"bench-000", "bench-001", "bench-002"}) {
		t.Errorf("default layout: namespaces %v", got)
	}
	if got := namespaces(Refs(250, 250)); !slices.Equal(got, []string{"bench-000"}) {
		t.Errorf("250 to a namespace: namespaces %v", got)
	}
	if refs := Refs(5, 2); refs[1].Namespace != "bench-000" || refs[2].Namespace != "bench-001" || refs[4].Namespace != "bench-002" {
		t.Errorf("2 to a namespace: %+v", refs)
	}
}

func TestShardAssignment(t *testing.T) {
	refs := Refs(10, 0)
	AssignShards(refs, 1)
	for _, r := range refs {
		if r.Shard != "" || rolloutLabels(r)[kultav1alpha1.ShardLabel] != "" {
			t.Fatalf("one shard labelled %+v", r)
		}
	}
	AssignShards(refs, 3)
	counts := map[string]int{}
	for i, r := range refs {
		if want := fmt.Sprintf("s%d", i%3); r.Shard != want {
			t.Errorf("ref %d (%s) in shard %q, want %q", i, r.Name, r.Shard, want)
		}
		counts[r.Shard]++
	}
	if counts["s0"] != 4 || counts["s1"] != 3 || counts["s2"] != 3 {
		t.Errorf("shard sizes %v, want s0 4, s1 3, s2 3", counts)
	}
	if l := rolloutLabels(refs[4]); l[kultav1alpha1.ShardLabel] != "s1" || l[RunLabel] != "true" || len(l) != 2 {
		t.Errorf("labels of ref 4 = %v, want the run label and %s=s1", l, kultav1alpha1.ShardLabel)
	}
	if keys := ShardKeys(1); keys != nil {
		t.Errorf("ShardKeys(1) = %v, want none", keys)
	}
	if keys := ShardKeys(3); strings.Join(keys, ",") != "s0,s1,s2" {
		t.Errorf("ShardKeys(3) = %v", keys)
	}
	o := ControllerOptions{Kubeconfig: "kc", QPS: 50, Burst: 100, Reconcilers: 4}
	if args := strings.Join(o.args(1, 2, 3), " "); strings.Contains(args, "--shard-key") || !strings.Contains(args, "--zap-log-level=info") {
		t.Errorf("unsharded controller args %q; want no shard key, info logs", args)
	}
	if args := strings.Join(ControllerOptions{LogLevel: "debug"}.args(1, 2, 3), " "); !strings.Contains(args, "--zap-log-level=debug") {
		t.Errorf("args %q; want debug logs", args)
	}
	o.ShardKey = "s1"
	if args := o.args(1, 2, 3); args[len(args)-1] != "--shard-key=s1" {
		t.Errorf("sharded controller args %q", args)
	}
	if controllerLogName("") != "controller.log" || controllerLogName("s2") != "controller-s2.log" {
		t.Errorf("log names %q, %q", controllerLogName(""), controllerLogName("s2"))
	}
}

func TestShardedResults(t *testing.T) {
	plain := &Result{N: 1000}
	limited := &Result{N: 1000, MemoryLimit: "300Mi", GoMemLimitBytes: 270 * mib}
	sharded := &Result{N: 1000, Shards: 4}
	both := &Result{N: 1000, Shards: 4, MemoryLimit: "300Mi", GoMemLimitBytes: 270 * mib}
	two := &Result{N: 1000, Shards: 2}
	for _, tc := range []struct {
		r                  *Result
		name, label, title string
	}{
		{plain, "results-1000", "N=1000", "N = 1000"},
		{sharded, "results-1000-shards-4", "N=1000 in 4 shards", "N = 1000 in 4 shards (one controller process each)"},
		{both, "results-1000-limit-300Mi-shards-4", "N=1000 in 4 shards of 300Mi", "N = 1000 in 4 shards, each in a 300Mi container (GOMEMLIMIT 270 MiB)"},
		{&Result{N: 1000, Shards: 1}, "results-1000", "N=1000", "N = 1000"},
		{&Result{N: 1000, PerNamespace: 1000}, "results-1000-per-ns-1000", "N=1000, all in one namespace", "N = 1000, all in one namespace"},
		{&Result{N: 1000, Shards: 4, PerNamespace: 500}, "results-1000-shards-4-per-ns-500", "N=1000 in 4 shards, 500 to a namespace",
			"N = 1000 in 4 shards (one controller process each), 500 to a namespace"},
		{&Result{N: 1000, Provider: ProviderNGINX}, "results-1000-nginx", "N=1000, through NGINX Ingresses", "N = 1000, through NGINX Ingresses"},
		{&Result{N: 1000, PerNamespace: 1000, Provider: ProviderNGINX}, "results-1000-per-ns-1000-nginx", "N=1000, all in one namespace, through NGINX Ingresses",
			"N = 1000, all in one namespace, through NGINX Ingresses"},
	} {
		if tc.r.Name() != tc.name || tc.r.Label() != tc.label || tc.r.Title() != tc.title {
			t.Errorf("name %q, label %q, title %q; want %q, %q, %q", tc.r.Name(), tc.r.Label(), tc.r.Title(), tc.name, tc.label, tc.title)
		}
	}
	results := []*Result{both, sharded, {N: 5000}, two, {N: 1000, PerNamespace: 1000}, limited, plain, {N: 100, Shards: 2}}
	SortResults(results)
	var names []string
	for _, r := range results {
		names = append(names, r.Name())
	}
	want := "results-100-shards-2 results-1000 results-1000-per-ns-1000 results-1000-limit-300Mi results-1000-shards-2 results-1000-shards-4 results-1000-limit-300Mi-shards-4 results-5000"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("sorted:\n%s\nwant\n%s", got, want)
	}

	// One process: no trace of shards in the JSON, as before.
	data, err := json.Marshal(&Result{N: 100, WaveResults: []WaveResult{{Wave: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "shards") || strings.Contains(string(data), "replicas") {
		t.Errorf("unsharded result encodes shards: %s", data)
	}

	dir := t.TempDir()
	for _, r := range []*Result{
		{N: 100, Shards: 2, WaveResults: []WaveResult{{Wave: 1, Replicas: []ReplicaMemory{{Shard: "s0", PeakRSS: 40 * mib}, {Shard: "s1", PeakRSS: 41 * mib}}}}},
		{N: 100, WaveResults: []WaveResult{{Wave: 1}}},
	} {
		if err := WriteResult(dir, Machine{}, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Sharded() || got[1].Shards != 2 || len(got[1].WaveResults[0].Replicas) != 2 || got[1].WaveResults[0].Replicas[1].Shard != "s1" {
		t.Fatalf("read back %d results; want the single-process one, then the sharded one with its replicas", len(got))
	}
	text := summaryOf(t, dir, got)
	if !strings.Contains(text, "N run: 100, 100 in 2 shards.") ||
		!strings.Contains(text, "## N = 100\n") || !strings.Contains(text, "## N = 100 in 2 shards (one controller process each)") ||
		strings.Index(text, "## N = 100\n") > strings.Index(text, "## N = 100 in 2 shards") {
		t.Errorf("summary of a single-process and a sharded run:\n%s", text)
	}
}

func TestMergeSamples(t *testing.T) {
	parse := func(text string) Samples {
		ss, err := ParsePromText(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		return ss
	}
	// Two processes before and after a wave; the second made its first observations in it.
	a0 := parse("rest_client_requests_total{method=\"PATCH\"} 10\nrest_client_requests_total{method=\"GET\"} 5\n" +
		"lat_bucket{le=\"1\"} 1\nlat_bucket{le=\"2\"} 2\nlat_bucket{le=\"+Inf\"} 2\ngo_goroutines 50\n")
	b0 := parse("rest_client_requests_total{method=\"PATCH\"} 3\ngo_goroutines 40\n")
	a1 := parse("rest_client_requests_total{method=\"PATCH\"} 20\nrest_client_requests_total{method=\"GET\"} 5\n" +
		"lat_bucket{le=\"1\"} 3\nlat_bucket{le=\"2\"} 4\nlat_bucket{le=\"+Inf\"} 4\ngo_goroutines 50\n")
	b1 := parse("rest_client_requests_total{method=\"PATCH\"} 13\n" +
		"lat_bucket{le=\"1\"} 0\nlat_bucket{le=\"2\"} 4\nlat_bucket{le=\"+Inf\"} 6\ngo_goroutines 40\n")
	before, after := MergeSamples(a0, b0), MergeSamples(a1, b1)
	if len(before) != len(a0)+len(b0) {
		t.Errorf("merged %d samples, want %d", len(before), len(a0)+len(b0))
	}
	patch := map[string]string{"method": "PATCH"}
	if got := after.Sum("rest_client_requests_total", patch) - before.Sum("rest_client_requests_total", patch); got != 20 {
		t.Errorf("PATCH requests in the wave = %v, want 10 + 10", got)
	}
	if got := after.Sum("rest_client_requests_total", nil); got != 38 {
		t.Errorf("all requests = %v, want 25 + 13", got)
	}
	delta := BucketDelta(before.HistogramBuckets("lat", nil), after.HistogramBuckets("lat", nil))
	want := []Bucket{{1, 2}, {2, 6}, {math.Inf(1), 8}}
	if len(delta) != len(want) {
		t.Fatalf("delta = %v, want %v", delta, want)
	}
	for i := range want {
		if delta[i] != want[i] {
			t.Errorf("delta = %v, want %v (each process's observations added bound by bound)", delta, want)
			break
		}
	}
	if got := HistogramQuantile(0.5, delta); got != 1.5 {
		t.Errorf("merged p50 = %v, want 1.5", got)
	}
	if got := MergeSamples(a1).Sum("go_goroutines", nil); got != 50 {
		t.Errorf("one scrape merged = %v goroutines, want 50", got)
	}
}

func TestReplicaMemory(t *testing.T) {
	during := []Window{{PeakRSS: 40 * mib, PeakHeapInuse: 20 * mib}, {PeakRSS: 45 * mib, PeakHeapInuse: 22 * mib}, {PeakRSS: 45 * mib}}
	steady := []Window{{MeanRSS: 38 * mib, MeanHeapInuse: 15 * mib}, {MeanRSS: 39 * mib, MeanHeapInuse: 16 * mib}, {MeanRSS: 44 * mib}}
	d, s, replicas := replicaMemory([]string{"s0", "s1", "s2"}, during, steady)
	if d.PeakRSS != 45*mib || d.PeakHeapInuse != 22*mib || s.MeanRSS != 39*mib {
		t.Errorf("windows %+v, %+v; want s1's, the first with the highest peak", d, s)
	}
	if len(replicas) != 3 || replicas[2] != (ReplicaMemory{Shard: "s2", PeakRSS: 45 * mib, SteadyRSS: 44 * mib}) ||
		replicas[0] != (ReplicaMemory{Shard: "s0", PeakRSS: 40 * mib, SteadyRSS: 38 * mib, PeakHeapInuse: 20 * mib, SteadyHeapInuse: 15 * mib}) {
		t.Errorf("replicas %+v", replicas)
	}
	if got := ReplicasPeakRSS(WaveResult{Replicas: replicas}); got != 130*mib {
		t.Errorf("sum of peaks %d MiB, want 130", got/mib)
	}
	if d, s, replicas := replicaMemory([]string{""}, during[:1], steady[:1]); d.PeakRSS != 40*mib || s.MeanRSS != 38*mib || replicas != nil {
		t.Errorf("one process: %+v, %+v, %+v", d, s, replicas)
	}

	w := WaveResult{Wave: 1, During: d, Steady: s, Replicas: replicas}
	var b strings.Builder
	writeResultTable(&b, &Result{N: 300, Shards: 3, WaveResults: []WaveResult{w}})
	if !strings.Contains(b.String(), "| controller RSS peak per replica; sum (MiB) | s0 40 · s1 45 · s2 45; sum 130 | ") ||
		!strings.Contains(b.String(), "--shard-key=s0…s2, one process each") {
		t.Errorf("sharded table:\n%s", b.String())
	}
	b.Reset()
	writeResultTable(&b, &Result{N: 300, WaveResults: []WaveResult{{Wave: 1, During: d, Steady: s}}})
	if strings.Contains(b.String(), "per replica") || strings.Contains(b.String(), "shard") {
		t.Errorf("unsharded table shows shards:\n%s", b.String())
	}
	// A window without a /metrics reading shows none, not a zero that reads as measured.
	b.Reset()
	scrapedOnce := Window{Scrapes: 1, PeakHeapInuse: 30 * mib, MeanHeapInuse: 30 * mib, PeakGoroutines: 140, LastGoroutines: 130}
	writeResultTable(&b, &Result{N: 1, WaveResults: []WaveResult{{Wave: 1, During: Window{Samples: 1, PeakRSS: 60 * mib}, Steady: scrapedOnce}}})
	if !strings.Contains(b.String(), "| heap in use peak / steady (MiB) | not scraped / 30 | ") ||
		!strings.Contains(b.String(), "| goroutines peak / steady | not scraped / 130 | ") {
		t.Errorf("a wave without a scrape:\n%s", b.String())
	}
}

func TestShardedTargets(t *testing.T) {
	wave := func(w int, steady ...uint64) WaveResult {
		wr := WaveResult{Wave: w, During: Window{PeakRSS: 200 * mib}, Steady: Window{MeanRSS: steady[0]}}
		for i, rss := range steady {
			wr.Replicas = append(wr.Replicas, ReplicaMemory{Shard: ShardKey(i), PeakRSS: 200 * mib, SteadyRSS: rss})
		}
		return wr
	}
	sharded := &Result{N: 5000, Shards: 2, WaveResults: []WaveResult{wave(1, 100*mib, 100*mib), wave(2, 101*mib, 140*mib)}}
	single := &Result{N: 5000, WaveResults: []WaveResult{{During: Window{PeakRSS: 450 * mib}, Steady: Window{MeanRSS: 400 * mib}}}}
	tg := rssTarget([]*Result{sharded, single}, 5000, 300*mib)
	if tg.Status != "met per process in 2 shards, missed in one process" ||
		!strings.Contains(tg.Detail, "N=5000 in 2 shards: peak 200 MiB in the largest of its 2 processes") ||
		!strings.Contains(tg.Detail, "add up to 400 MiB") || !strings.Contains(tg.Detail, "N=5000, no memory limit: peak 450 MiB") {
		t.Errorf("sharded RSS target: %s, %q", tg.Status, tg.Detail)
	}
	g := growthTarget([]*Result{sharded})
	if g.Status != "missed" || !strings.Contains(g.Detail, "(process s1, whose steady RSS grew most; per Rollout of its shard): steady RSS 100 → 140 MiB (+40.0 MiB, +16.4 KiB per Rollout)") {
		t.Errorf("sharded growth target: %s, %q", g.Status, g.Detail)
	}
	rows := []RequestRow{{RequestKey{Verb: "PATCH", Resource: "rollouts/status"}, 1100}}
	if b := BusiestClient(perProcess(rows, 2), 50, 100); b.Requests != 550 || b.Seconds != 9 {
		t.Errorf("per process bound %+v, want 550 requests, (550-100)/50 = 9 s", b)
	}
}

// The peak RSS a target reads is the process's: a high-water mark reached in the settle
// period after a wave (its tail still running) counts.
func TestPeakRSSTakesInTheSettlePeriod(t *testing.T) {
	r := &Result{N: 10000, WaveResults: []WaveResult{{
		During: Window{PeakRSS: 495 * mib, HWM: 495 * mib},
		Steady: Window{PeakRSS: 470 * mib, HWM: 502 * mib},
	}}}
	if got := peakRSS(r); got != 502*mib {
		t.Errorf("peak RSS %d MiB, want the settle period's VmHWM, 502 MiB", got/mib)
	}
	target := Targets([]*Result{r})
	for _, tg := range target {
		if strings.HasPrefix(tg.Name, "at 10,000 Rollouts controller RSS") {
			if tg.Status != "missed" || !strings.Contains(tg.Detail, "peak 502 MiB (VmHWM)") {
				t.Errorf("target %q: %s, %s; want missed at 502 MiB", tg.Name, tg.Status, tg.Detail)
			}
			return
		}
	}
	t.Fatal("no RSS target at 10,000 Rollouts")
}

func TestPeerTarget(t *testing.T) {
	run := func(wave float64) *Result {
		return &Result{N: 1000, QPS: 40, Burst: 80, Floor: FloorResult{WallSeconds: 73}, WaveResults: []WaveResult{{WallSeconds: wave}}}
	}
	tg := targetNamed(t, Targets([]*Result{run(92.2)}), "N=1,000 wave at least 5×")
	for _, mention := range []string{
		"N=1000: 92.2 s, 3.84× faster (5× is a wave of 70.8 s at most)",
		"took 73.0 s (4.85× faster than Argo's wave): 3000 route patches alone take at least 73.0 s at 40 req/s after a burst of 80",
		"took 130.5 s, 2.71× faster",
	} {
		if tg.Status != "missed" || !strings.Contains(tg.Detail, mention) {
			t.Errorf("a wave of 92.2 s: %s, %q; want missed mentioning %q", tg.Status, tg.Detail, mention)
		}
	}
	if tg := targetNamed(t, Targets([]*Result{run(70)}), "N=1,000 wave at least 5×"); tg.Status != "met" || tg.Detail != "N=1000: 70.0 s, 5.06× faster" {
		t.Errorf("a wave of 70 s: %s, %q; want met", tg.Status, tg.Detail)
	}
	// A wave at other client limits than Argo's is not compared.
	faster := run(60)
	faster.QPS, faster.Burst = 50, 100
	if tg := targetNamed(t, Targets([]*Result{faster}), "N=1,000 wave at least 5×"); tg.Status != "not measured" || tg.Detail != "N=1000: not compared, run at QPS 50 / burst 100" {
		t.Errorf("a run at 50/100: %s, %q; want not measured", tg.Status, tg.Detail)
	}
	// Only the single-process run is judged; a sharded one is reported beside it.
	sharded := run(98.5)
	sharded.Shards = 4
	if tg := targetNamed(t, Targets([]*Result{sharded}), "N=1,000 wave at least 5×"); tg.Status != "not measured" || !strings.Contains(tg.Detail, "98.5 s, 3.59× faster") {
		t.Errorf("only a sharded run: %s, %q; want not measured, with its figures", tg.Status, tg.Detail)
	}
}

func TestStandinWorkersKeepPaceWithTheShards(t *testing.T) {
	for shards, want := range map[int]int{0: 4, 1: 4, 4: 16} {
		if got := StandinWorkers(shards); got != want {
			t.Errorf("StandinWorkers(%d) = %d, want %d", shards, got, want)
		}
	}
}

// TestControllerBuildIsTheImages checks the bench measures the binary users run: the
// Makefile's build target and the Dockerfile build the controller with exactly the environment
// and flags of ControllerBuild, their target platform and -X main.version apart.
func TestControllerBuildIsTheImages(t *testing.T) {
	if got, want := ControllerBuild.String(), `CGO_ENABLED=0 go build -trimpath -ldflags "-s -w"`; got != want {
		t.Fatalf("ControllerBuild renders as %s, want %s", got, want)
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"Makefile", "Dockerfile"} {
		raw, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		var found []string
		for _, l := range strings.Split(strings.ReplaceAll(string(raw), "\\\n", " "), "\n") {
			if w := shellWords(l); slices.Contains(w, "./cmd/kulta-controller") && !strings.HasPrefix(strings.TrimSpace(l), "#") {
				found = append(found, l)
			}
		}
		if len(found) != 1 {
			t.Fatalf("%s: %d go builds of ./cmd/kulta-controller, want 1: %q", file, len(found), found)
		}
		env, flags := buildSettings(shellWords(found[0]))
		if !slices.Equal(env, ControllerBuild.Env) || !slices.Equal(flags, ControllerBuild.Flags) {
			t.Errorf("%s builds the controller with environment %q and flags %q, the bench with %q and %q", file, env, flags, ControllerBuild.Env, ControllerBuild.Flags)
		}
	}
	// The comparison itself: a flag the bench does not pass, or an ldflag beyond -X, is seen.
	for _, line := range []string{
		`CGO_ENABLED=0 go build -trimpath -tags netgo -ldflags "-s -w" -o bin/kulta-controller ./cmd/kulta-controller`,
		`CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(VERSION) -linkmode external" -o bin/kulta-controller ./cmd/kulta-controller`,
		`GOAMD64=v3 CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/kulta-controller ./cmd/kulta-controller`,
	} {
		if env, flags := buildSettings(shellWords(line)); slices.Equal(env, ControllerBuild.Env) && slices.Equal(flags, ControllerBuild.Flags) {
			t.Errorf("%s read as the bench's build", line)
		}
	}
}

// shellWords splits a command line at spaces, keeping a double-quoted part whole, without its
// quotes.
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	quoted, in := false, false
	for _, r := range line {
		switch {
		case r == '"':
			quoted, in = !quoted, true
		case (r == ' ' || r == '\t') && !quoted:
			if in {
				words = append(words, cur.String())
				cur.Reset()
			}
			in = false
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

// buildSettings reads a go build command's environment (its target platform apart) and its
// flags before -o, with -X settings left out of -ldflags.
func buildSettings(words []string) (env, flags []string) {
	i := slices.Index(words, "go")
	if i < 0 || i+1 >= len(words) || words[i+1] != "build" {
		return nil, nil
	}
	for _, w := range words[:i] {
		name, _, ok := strings.Cut(w, "=")
		if ok && name != "GOOS" && name != "GOARCH" {
			env = append(env, w)
		}
	}
	for j := i + 2; j < len(words) && words[j] != "-o"; j++ {
		flags = append(flags, words[j])
		if words[j] != "-ldflags" || j+1 >= len(words) {
			continue
		}
		j++
		var kept []string
		parts := strings.Fields(words[j])
		for k := 0; k < len(parts); k++ {
			if parts[k] == "-X" {
				k++
				continue
			}
			kept = append(kept, parts[k])
		}
		flags = append(flags, strings.Join(kept, " "))
	}
	return env, flags
}

// A sharded run compared with one process built at another commit, or another way, says so.
func TestShardTargetNamesUnalikeBuilds(t *testing.T) {
	wave := WaveResult{WallSeconds: 100, During: Window{PeakRSS: 100 * mib}}
	sharded := &Result{N: 10000, Shards: 4, Source: &Source{Commit: "06cc64f0000"}, WaveResults: []WaveResult{wave}}
	single := &Result{N: 10000, Source: &Source{Commit: "46edd720000"}, Build: ControllerBuild.String(), WaveResults: []WaveResult{wave}}
	for _, c := range []struct {
		name          string
		source        *Source
		build, reason string
	}{
		{"another commit and build", &Source{Commit: "06cc64f0000"}, "",
			"(measured at other commits or builds: N=10000 in 4 shards commit 06cc64f, built with go build's defaults; N=10000 commit 46edd72, built as the image is)"},
		{"the same commit, go build's defaults", single.Source, "",
			"(measured at other commits or builds: N=10000 in 4 shards commit 46edd72, built with go build's defaults; N=10000 commit 46edd72, built as the image is)"},
		{"the same commit, another build", single.Source, "go build -race",
			"(measured at other commits or builds: N=10000 in 4 shards commit 46edd72, built with go build -race; N=10000 commit 46edd72, built as the image is)"},
		{"an unrecorded commit", nil, ControllerBuild.String(),
			"(measured at other commits or builds: N=10000 in 4 shards at an unrecorded commit, built as the image is; N=10000 commit 46edd72, built as the image is)"},
		{"alike", single.Source, ControllerBuild.String(), ""},
	} {
		sharded.Source, sharded.Build = c.source, c.build
		detail := shardTarget([]*Result{sharded, single}).Detail
		if c.reason == "" {
			if strings.Contains(detail, "other commits or builds") {
				t.Errorf("%s: runs of the same build named unalike: %q", c.name, detail)
			}
			continue
		}
		if !strings.Contains(detail, c.reason) {
			t.Errorf("%s: shard target detail %q, want it to contain %q", c.name, detail, c.reason)
		}
	}
}

// The collector's goal is the last one a scrape reported, and the report prints it.
func TestGCPercentRecorded(t *testing.T) {
	s := NewSampler(0, "", time.Second, time.Second)
	if got := s.GCPercent(); got != 0 {
		t.Fatalf("no scrape: goal %g, want 0", got)
	}
	now := time.Now()
	s.record(Point{T: now, Scraped: true, GCPercent: 50}, nil)
	s.record(Point{T: now.Add(time.Second), Scraped: true, GCPercent: 25}, nil)
	s.record(Point{T: now.Add(2 * time.Second)}, nil)
	if got := s.GCPercent(); got != 25 {
		t.Errorf("goal %g, want the last scrape's 25", got)
	}
	// The goal comes from the controller's /metrics, as its runtime reports it.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if _, err := fmt.Fprint(w, "# TYPE go_gc_gogc_percent gauge\ngo_gc_gogc_percent 40\n"); err != nil {
			t.Error(err)
		}
	}))
	defer srv.Close()
	scraped := NewSampler(os.Getpid(), srv.URL, time.Second, time.Second)
	scraped.record(scraped.sample(t.Context()))
	if n, err := scraped.Failures(); n != 0 || scraped.GCPercent() != 40 {
		t.Errorf("scraped goal %g (failures %d, %v), want 40", scraped.GCPercent(), n, err)
	}
	res := &Result{Build: ControllerBuild.String(), GCPercent: 25}
	if got, want := buildNote(res), "Built with `"+ControllerBuild.String()+"`, as the image is. Collector goal (go_gc_gogc_percent): 25."; got != want {
		t.Errorf("build note %q, want %q", got, want)
	}
	if got := buildNote(&Result{Build: "go build -race"}); got != "Built with `go build -race`." {
		t.Errorf("build note of another build %q", got)
	}
}

// TestStepLatencyGrowsNoFasterThanTheAPIWork: in a wave, p99 step latency is held to the
// wave's API work over the API server's throughput, and judged by how it grows with N against
// that among runs alike, on the bench's exact measure where the histogram's disagrees.
func TestStepLatencyGrowsNoFasterThanTheAPIWork(t *testing.T) {
	run := func(n, shards int, requests, p99, outside float64) *Result {
		return &Result{N: n, Shards: shards, QPS: 40, Burst: 80, Reconcilers: 16, Floor: FloorResult{WallSeconds: float64(n) / 10}, WaveResults: []WaveResult{{
			Controller:          []RequestRow{{RequestKey{Verb: "PATCH", Resource: "httproutes"}, requests}},
			KultaStepLatencyP50: p99 / 2, KultaStepLatencyP99: p99, KultaStepLatencyCount: float64(3 * n),
			StepLatency: StepLatencies{All: Percentiles{Count: 3 * n, P99: outside}},
		}}}
	}
	// Each floor takes n/10 s for 6n patches: 60 req/s. N=100: 1,200 requests, 20 s of API
	// work, p99 4 s (0.2 of it; 3 s, 0.15, from outside); N=1,000: 12,000 requests, 200 s.
	alone := run(1, 0, 10, 0.05, 0.04)
	small := run(100, 0, 1200, 4, 3)
	sharded := run(1000, 4, 12000, 2, 2)
	const disagree = "the two disagree, within the histogram's buckets 1.58× apart, and the exact measure decides"
	for _, c := range []struct {
		name            string
		p99, outside    float64
		status, mention string
		disagree        bool
	}{
		{"grows as the work", 40, 30, "met", "from N=100 its p99 grew 1.00× as fast as its API work (the bench's watch: 1.00×)", false},
		{"grows slower", 30, 30, "met", "N=1000: p50 15.000 s, p99 30.000 s over 3000 steps against API work of 12000 requests / 60 req/s = 200.0 s: p99 0.150 of it (the bench's watch: p99 30.000 s, 0.150)", false},
		{"the histogram alone rises", 48, 30, "met", "grew 1.20× as fast as its API work (the bench's watch: 1.00×); " + disagree, true},
		{"the exact measure alone rises", 38, 36, "alone met, in waves missed", "grew 0.95× as fast as its API work (the bench's watch: 1.20×); " + disagree, true},
		{"both rise", 80, 70, "alone met, in waves missed", "grew 2.00× as fast as its API work (the bench's watch: 2.33×)", false},
		{"over the bound", 250, 150, "alone met, in waves missed", "p99 1.250 of it (the bench's watch: p99 150.000 s, 0.750), over the bound itself", false},
	} {
		single := run(1000, 0, 12000, c.p99, c.outside)
		// The sharded run at 1,000 has nothing alike at 100: held to its bound, compared with
		// neither.
		tg := stepLatencyTarget([]*Result{sharded, single, alone, small})
		if tg.Status != c.status || !strings.Contains(tg.Detail, c.mention) {
			t.Errorf("%s: %s, %q; want %s mentioning %q", c.name, tg.Status, tg.Detail, c.status, c.mention)
		}
		if strings.Contains(tg.Detail, disagree) != c.disagree {
			t.Errorf("%s: %q; want the measures' disagreement named: %v", c.name, tg.Detail, c.disagree)
		}
		if strings.Count(tg.Detail, "from N=") != 1 {
			t.Errorf("%s: %q; want the one-process run at 1,000 alone compared", c.name, tg.Detail)
		}
	}
	// Nor another layout of Rollouts to namespaces.
	oneNamespace := run(1000, 0, 12000, 80, 70)
	oneNamespace.PerNamespace = 1000
	if tg := stepLatencyTarget([]*Result{small, oneNamespace}); strings.Contains(tg.Detail, "from N=") {
		t.Errorf("a run of another layout compared: %s, %q", tg.Status, tg.Detail)
	}
	// Unalike client limits are not compared.
	faster := run(1000, 0, 12000, 80, 70)
	faster.QPS = 80
	if tg := stepLatencyTarget([]*Result{small, faster}); tg.Status != "alone not measured, in waves met" || strings.Contains(tg.Detail, "from N=") {
		t.Errorf("runs at other client limits compared: %s, %q", tg.Status, tg.Detail)
	}
	if tg := stepLatencyTarget([]*Result{alone, small}); tg.Status != "met" {
		t.Errorf("one N in waves, within its bound: %s, %q", tg.Status, tg.Detail)
	}
	empty := run(1000, 0, 0, 10, 10)
	empty.WaveResults[0].Controller = nil
	if tg := stepLatencyTarget([]*Result{small, empty}); tg.Status != "alone not measured, in waves met" || !strings.Contains(tg.Detail, "N=1000: p50 5.000 s, p99 10.000 s over 3000 steps (no controller requests or no p99 recorded: not judged)") {
		t.Errorf("a run without requests: %s, %q", tg.Status, tg.Detail)
	}
}
