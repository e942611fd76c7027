package harness

import (
	"math"
	"net/url"
	"strings"
	"testing"
	"time"
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

func TestWavePerRollout(t *testing.T) {
	r := &Result{N: 100}
	w := WaveResult{Controller: []RequestRow{
		{RequestKey{Verb: "PATCH", Resource: "httproutes"}, 400},
		{RequestKey{Verb: "GET", Resource: "httproutes"}, 300},
		{RequestKey{Verb: "PUT", Resource: "leases"}, 2},
		{RequestKey{Verb: "PATCH", Resource: "widgets"}, 100},
	}}
	got := wavePerRollout(r, w)
	if !strings.HasPrefix(got, "PATCH httproutes 4.00 (one per step") {
		t.Errorf("route writes not explained: %q", got)
	}
	if strings.Contains(got, "GET") || strings.Contains(got, "leases") {
		t.Errorf("reads or stray writes listed: %q", got)
	}
	if !strings.HasSuffix(got, "PATCH widgets 1.00") {
		t.Errorf("a write without a known reason must still be listed: %q", got)
	}
}

func TestReadResultsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	started := time.Date(2026, 11, 25, 21, 44, 0, 0, time.UTC)
	for _, n := range []int{1000, 100} {
		res := &Result{N: n, Waves: 1, QPS: 50, Burst: 100, Reconcilers: 4, Started: started,
			WaveResults: []WaveResult{{Wave: 1, WallSeconds: float64(n) / 10}}}
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
	byName := map[string]Target{}
	for _, tg := range Targets(results) {
		byName[strings.SplitN(tg.Name, " ", 2)[0]] = tg
	}
	checks := []struct{ target, status, mention string }{
		{"writes", "missed", "why, per Rollout per wave: PATCH rollouts/status 5.00"},
		{"no", "missed", "revisionHistoryLimit"},
		{"update", "missed", "busiest client (rollouts, 500 writes) needs at least 8.0 s"},
		{"goroutines", "missed", "the peak at N=1000 is +30 from N=100's"},
	}
	for _, c := range checks {
		tg := byName[c.target]
		if tg.Status != c.status || !strings.Contains(tg.Detail, c.mention) {
			t.Errorf("%q: %s, %q; want %s mentioning %q", tg.Name, tg.Status, tg.Detail, c.status, c.mention)
		}
	}
}

func TestRSSTargetAtScale(t *testing.T) {
	run := func(n int, peak uint64) *Result {
		return &Result{N: n, WaveResults: []WaveResult{{During: Window{PeakRSS: peak}, Steady: Window{MeanRSS: peak}}}}
	}
	tg := rssTarget([]*Result{run(1000, 200*mib), run(5000, 600*mib)})
	if tg.Status != "missed" || !strings.Contains(tg.Detail, "over by 300 MiB (2.00×)") || !strings.Contains(tg.Detail, "grows 102 KiB per Rollout") {
		t.Errorf("N=5,000 at 600 MiB: %s, %q", tg.Status, tg.Detail)
	}
	if tg := rssTarget([]*Result{run(5000, 250*mib)}); tg.Status != "met" {
		t.Errorf("N=5,000 at 250 MiB: %s, %q", tg.Status, tg.Detail)
	}
	if tg := rssTarget([]*Result{run(1000, 250*mib)}); tg.Status != "not measured" {
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
	tg = rssTarget([]*Result{limited(280 * mib), run(1000, 150*mib), unlimited})
	if tg.Status != "met with a memory limit, missed without" ||
		!strings.Contains(tg.Detail, "N=5000, no memory limit: peak 450 MiB") ||
		!strings.Contains(tg.Detail, "N=5000 in 300Mi (the controller sets GOMEMLIMIT 270 MiB there") ||
		!strings.Contains(tg.Detail, "CPU: 200 s in the last wave against 140 s without a limit") {
		t.Errorf("limited run under 300 MiB: %s, %q", tg.Status, tg.Detail)
	}
	if tg := rssTarget([]*Result{unlimited, limited(310 * mib)}); tg.Status != "missed" || !strings.Contains(tg.Detail, "over by 10 MiB") {
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
	}
	for _, tt := range tests {
		if got := goroutineTarget(tt.results); got.Status != tt.want {
			t.Errorf("%s: %s (%s), want %s", tt.name, got.Status, got.Detail, tt.want)
		}
	}
}
