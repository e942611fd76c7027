package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/pprof/profile"
)

// heapProfileOf builds a heap profile with one sample per stack (functions listed from the
// allocation outwards) of the given live bytes, encoded as /debug/pprof/heap serves it.
func heapProfileOf(t *testing.T, stacks map[string]int64) []byte {
	t.Helper()
	p := &profile.Profile{
		SampleType: []*profile.ValueType{
			{Type: "alloc_objects", Unit: "count"}, {Type: "alloc_space", Unit: "bytes"},
			{Type: "inuse_objects", Unit: "count"}, {Type: "inuse_space", Unit: "bytes"},
		},
		PeriodType: &profile.ValueType{Type: "space", Unit: "bytes"},
		Period:     512 * 1024,
	}
	functions := map[string]*profile.Function{}
	for stack, live := range stacks {
		var locs []*profile.Location
		for _, name := range strings.Split(stack, ";") {
			fn, ok := functions[name]
			if !ok {
				fn = &profile.Function{ID: uint64(len(functions) + 1), Name: name}
				functions[name] = fn
				p.Function = append(p.Function, fn)
			}
			loc := &profile.Location{ID: uint64(len(p.Location) + 1), Line: []profile.Line{{Function: fn}}}
			p.Location = append(p.Location, loc)
			locs = append(locs, loc)
		}
		p.Sample = append(p.Sample, &profile.Sample{Location: locs, Value: []int64{1, live * 2, 1, live}})
	}
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAnalyseHeapProfileSortsByOwner(t *testing.T) {
	const (
		kulta     = "github.com/false-systems/kulta/"
		reflector = "k8s.io/client-go/tools/cache.(*Reflector).watchHandler"
		decoded   = "objects decoded from the API server's lists and watches (the metadata the packed objects keep, objects cached whole, lists not yet replaced)"
	)
	data := heapProfileOf(t, map[string]int64{
		// A Rollout packed by the cache's transform, called from the reflector: the packed
		// object owns it, not the decoding or the informer that called it.
		"runtime.mallocgc;encoding/json.Marshal;" + kulta + "internal/controller/rollout.packRollout;" + reflector: 3 << 20,
		// Metadata decoded from a watch, kept by a packed object.
		"runtime.mallocgc;k8s.io/apimachinery/pkg/runtime/serializer/protobuf.(*Serializer).Decode;k8s.io/apimachinery/pkg/watch.(*StreamWatcher).receive": 2 << 20,
		// The informer's queue, under the reflector: a store, not decoding.
		"runtime.mallocgc;k8s.io/client-go/tools/cache.(*RealFIFO).addToItems_locked;" + reflector:                                                1 << 20,
		"runtime.mallocgc;github.com/santhosh-tekuri/jsonschema/v6.(*Compiler).Compile;github.com/cdevents/sdk-go/pkg/api.init.1;runtime.doInit1": 5 << 20,
		"runtime.mallocgc;compress/flate.NewWriter;github.com/prometheus/common/expfmt.NewEncoder.func7;" +
			"github.com/prometheus/client_golang/prometheus/promhttp.HandlerForTransactional.func1": 1 << 20,
		// KULTA's index, allocated in a helper of the reconciler's package nearer the
		// allocation: the index's frame decides, wherever it stands.
		"runtime.mallocgc;" + kulta + "internal/controller/rollout.indexKeysOf;" + kulta + "internal/controller/rollout.(*rolloutIndex).set": 1 << 19,
		// A route written: the store's record of the write is the reconciler's, not the cache's.
		"runtime.mallocgc;" + kulta + "providers/internal/objects.(*Store).write":                                                                                          1 << 18,
		"runtime.mallocgc;encoding/json.Marshal;" + kulta + "providers/internal/objects.Pack;" + kulta + "providers/internal/objects.CacheTrim.func1":                      1 << 17,
		"runtime.mallocgc;" + kulta + "internal/metrics.(*rolloutCollector).record":                                                                                        1 << 16,
		"runtime.mallocgc;github.com/prometheus/client_golang/prometheus.(*MetricVec).GetMetricWithLabelValues;" + kulta + "internal/controller/rollout.(*Reconciler).act": 1 << 15,
		"runtime.mallocgc;regexp.MustCompile;k8s.io/api/core/v1.init;runtime.doInit1":                                                                                      1 << 14,
		// Nobody's: named by the first frame outside the runtime and the containers.
		"runtime.mallocgc;runtime.makeslice;strings.(*Builder).grow;reflect.New;encoding/json.Marshal;example.com/lib.render;main.main": 1 << 13,
		"runtime.mallocgc;example.com/lib.other": 1 << 12,
		"runtime.mallocgc;runtime.growslice":     1 << 11,
		// Freed: counted nowhere.
		"runtime.mallocgc;example.com/lib.freed": 0,
	})
	hp, err := AnalyseHeapProfile(data)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(12<<20 + 1<<19 + 1<<18 + 1<<17 + 1<<16 + 1<<15 + 1<<14 + 1<<13 + 1<<12 + 1<<11); hp.InuseBytes != want || hp.Stacks != 14 || hp.SampleRateBytes != 512<<10 {
		t.Errorf("in use %d in %d stacks at %d, want %d in 14 at 512 KiB", hp.InuseBytes, hp.Stacks, hp.SampleRateBytes, want)
	}
	got := map[string]int64{}
	for _, o := range hp.Owners {
		got[o.Name] = o.Bytes
	}
	owner := func(frame string) string {
		for _, o := range heapOwners {
			if slices.Contains(o.frames, frame) {
				return o.name
			}
		}
		t.Fatalf("no owner has the frame %q", frame)
		return ""
	}
	want := map[string]int64{
		owner("github.com/cdevents/"):                    5 << 20,
		owner("client_golang/prometheus/promhttp."):      1 << 20,
		owner("internal/controller/rollout.packRollout"): 3 << 20,
		decoded:                                2 << 20,
		owner("k8s.io/client-go/tools/cache."): 1 << 20,
		owner("internal/controller/rollout.(*rolloutIndex)"): 1 << 19,
		owner("github.com/false-systems/kulta/internal/"):    1 << 18,
		owner("client_golang/prometheus.(*MetricVec)"):       1 << 15,
		owner("kulta/providers/internal/objects.Pack"):       1 << 17,
		owner("kulta/internal/metrics.(*rolloutCollector)"):  1 << 16,
		owner("runtime.doInit"):                              1 << 14,
		otherOwner:                                           1<<13 + 1<<12 + 1<<11,
	}
	if len(got) != len(want) {
		t.Errorf("owners %v, want %v", got, want)
	}
	for name, b := range want {
		if got[name] != b {
			t.Errorf("%q holds %d, want %d (all: %v)", name, got[name], b, got)
		}
	}
	if hp.Owners[0].Name != owner("github.com/cdevents/") {
		t.Errorf("largest owner %q, want the CDEvents SDK first", hp.Owners[0].Name)
	}
	wantUnclaimed := []HeapShare{{"example.com/lib.render", 1 << 13}, {"example.com/lib.other", 1 << 12}, {"runtime.growslice", 1 << 11}}
	if !slices.Equal(hp.Unclaimed, wantUnclaimed) {
		t.Errorf("unclaimed %v, want %v", hp.Unclaimed, wantUnclaimed)
	}
}

func TestUnclaimedKeepsTheLargest(t *testing.T) {
	stacks := map[string]int64{}
	for i := range maxUnclaimed + 2 {
		// Two of each size: equals are listed by name.
		stacks[fmt.Sprintf("runtime.mallocgc;example.com/lib.f%02d", i)] = int64(1+i/2) << 10
	}
	hp, err := AnalyseHeapProfile(heapProfileOf(t, stacks))
	if err != nil {
		t.Fatal(err)
	}
	if len(hp.Unclaimed) != maxUnclaimed {
		t.Fatalf("%d unclaimed listed, want %d", len(hp.Unclaimed), maxUnclaimed)
	}
	if hp.Unclaimed[0] != (HeapShare{"example.com/lib.f10", 6 << 10}) || hp.Unclaimed[1] != (HeapShare{"example.com/lib.f11", 6 << 10}) ||
		hp.Unclaimed[maxUnclaimed-1] != (HeapShare{"example.com/lib.f03", 2 << 10}) {
		t.Errorf("unclaimed %v; want the largest first, equals by name, the two smallest left out", hp.Unclaimed)
	}
}

func TestAnalyseHeapProfileRejectsOtherProfiles(t *testing.T) {
	if _, err := AnalyseHeapProfile([]byte("not a profile")); err == nil {
		t.Error("a non-profile was analysed")
	}
	p := &profile.Profile{SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}}}
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := AnalyseHeapProfile(buf.Bytes()); err == nil || !strings.Contains(err.Error(), "inuse_space") {
		t.Errorf("a CPU-like profile: err %v, want one naming inuse_space", err)
	}
}

// retained is kept live so that the test's own heap profile holds it.
var retained [][]byte

//go:noinline
func retainForProfile(n int) {
	for range n {
		retained = append(retained, make([]byte, 64<<10))
	}
}

// TestFetchHeapProfileFromARuntime reads this process's own heap profile as the controller
// serves its (net/http/pprof), and finds what a function of this test keeps live.
func TestFetchHeapProfileFromARuntime(t *testing.T) {
	// A finer rate from here on; what was sampled before is scaled at the old rate and does
	// not count here: only retainForProfile's bytes are checked.
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 4096
	t.Cleanup(func() { runtime.MemProfileRate = old; retained = nil })
	retainForProfile(64) // 4 MiB
	// Without ?gc=1 a heap profile is as of up to two collections before the read, as the
	// runtime publishes it; two collections publish what the test keeps.
	runtime.GC()
	runtime.GC()
	srv := httptest.NewServer(pprof.Handler("heap"))
	t.Cleanup(srv.Close)
	data, err := FetchHeapProfile(context.Background(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	hp, err := AnalyseHeapProfile(data)
	if err != nil {
		t.Fatal(err)
	}
	var kept int64
	for _, u := range hp.Unclaimed {
		if strings.HasSuffix(u.Name, "harness.retainForProfile") {
			kept = u.Bytes
		}
	}
	if kept < 3<<20 || kept > 5<<20 {
		t.Errorf("retainForProfile holds %d bytes in the profile, want about 4 MiB (unclaimed: %v)", kept, hp.Unclaimed)
	}
	if hp.InuseBytes < kept {
		t.Errorf("in use %d, less than the %d one function holds", hp.InuseBytes, kept)
	}

	missing := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(missing.Close)
	if _, err := FetchHeapProfile(context.Background(), missing.Client(), missing.URL); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("a 404: err %v, want one naming the status", err)
	}
}

func TestTopReplicaIsTheProcessWithTheHighestPeak(t *testing.T) {
	keys := []string{"s0", "s1", "s2"}
	w := WaveResult{Replicas: []ReplicaMemory{{Shard: "s0", PeakRSS: 5}, {Shard: "s1", PeakRSS: 9}, {Shard: "s2", PeakRSS: 9}}}
	if i, err := topReplica(w, keys); err != nil || i != 1 {
		t.Errorf("top replica %d (%v), want 1 (the first of the highest)", i, err)
	}
	if i, err := topReplica(WaveResult{}, []string{""}); err != nil || i != 0 {
		t.Errorf("unsharded: %d (%v), want 0", i, err)
	}
	_, _, replicas := replicaMemory(keys, []Window{{PeakRSS: 5}, {PeakRSS: 9}, {PeakRSS: 9}}, make([]Window, 3))
	if i, err := topReplica(WaveResult{Replicas: replicas}, keys); err != nil || i != 1 {
		t.Errorf("top replica of replicaMemory's list %d (%v), want 1, the process whose windows the results give", i, err)
	}
	for name, bad := range map[string]WaveResult{
		"no figures":    {},
		"fewer":         {Replicas: replicas[:2]},
		"another order": {Replicas: []ReplicaMemory{replicas[1], replicas[0], replicas[2]}},
	} {
		if _, err := topReplica(bad, keys); err == nil {
			t.Errorf("%s: a list of processes unlike the run's was taken", name)
		}
	}
}

// TestHeapProfileReadsTheTopProcess runs the runner's read against two processes' pprof
// endpoints: the one with the highest peak is read, after a collection.
func TestHeapProfileReadsTheTopProcess(t *testing.T) {
	var asked []string
	serve := func(data []byte) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			asked = append(asked, req.URL.RawQuery)
			if _, err := w.Write(data); err != nil {
				t.Error(err)
			}
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	s0 := serve([]byte("not a profile"))
	s1 := serve(heapProfileOf(t, map[string]int64{"runtime.mallocgc;github.com/false-systems/kulta/internal/controller/rollout.packService": 1 << 20}))
	r := &runner{
		shardKeys: []string{"s0", "s1"},
		ctrls:     []*Controller{{HeapProfileURL: s0.URL + "/debug/pprof/heap?gc=1"}, {HeapProfileURL: s1.URL + "/debug/pprof/heap?gc=1"}},
	}
	w := WaveResult{Wave: 2, Replicas: []ReplicaMemory{{Shard: "s0", PeakRSS: 5}, {Shard: "s1", PeakRSS: 7}}}
	hp, err := r.heapProfile(context.Background(), w)
	if err != nil {
		t.Fatal(err)
	}
	if hp.Shard != "s1" || hp.Wave != 2 || !hp.Collected || hp.InuseBytes != 1<<20 {
		t.Errorf("profile %+v; want shard s1's after wave 2, collected first", hp)
	}
	if !slices.Equal(asked, []string{"gc=1"}) {
		t.Errorf("queries sent %q, want one, asking for a collection", asked)
	}
	w.Replicas[0].PeakRSS = 8
	if _, err := r.heapProfile(context.Background(), w); err == nil || !strings.Contains(err.Error(), "parsing a heap profile") {
		t.Errorf("shard s0's answer: err %v, want it not parsed", err)
	}

	o := ControllerOptions{Kubeconfig: "kc"}
	args := o.args(1, 2, 3)
	if !slices.Contains(args, "--pprof-bind-address=127.0.0.1:3") {
		t.Errorf("controller args %q; want pprof on loopback port 3", args)
	}
	if !slices.Contains(args, "--leader-elect") || !slices.Contains(args, "--leader-election-namespace=default") {
		t.Errorf("controller args %q; want a leader elected with a Lease in default, as the chart runs it", args)
	}
	if u := heapProfileURL(pprofURL(3)); u != "http://127.0.0.1:3/debug/pprof/heap?gc=1" {
		t.Errorf("heap profile at %q; want port 3's, after a collection", u)
	}
	if shardSuffix("") != "" || shardSuffix("s2") != " s2" {
		t.Errorf("shard suffixes %q, %q; want none for one process", shardSuffix(""), shardSuffix("s2"))
	}
}

func TestWriteResultKeepsTheHeapProfile(t *testing.T) {
	data := heapProfileOf(t, map[string]int64{"runtime.mallocgc;github.com/false-systems/kulta/internal/controller/rollout.packService": 2 << 20})
	hp, err := AnalyseHeapProfile(data)
	if err != nil {
		t.Fatal(err)
	}
	hp.Wave, hp.Shard, hp.Collected = 2, "s3", true
	dir := t.TempDir()
	res := &Result{N: 1000, Waves: 2, Shards: 4, HeapProfile: hp, WaveResults: []WaveResult{{Wave: 1}, {Wave: 2}}}
	if err := WriteResult(dir, Machine{}, res); err != nil {
		t.Fatal(err)
	}
	kept, err := os.ReadFile(filepath.Join(dir, "results-1000-shards-4.heap.pb.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(kept, data) {
		t.Error("the profile kept beside the results is not the one read")
	}
	js, err := os.ReadFile(filepath.Join(dir, "results-1000-shards-4.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		HeapProfile HeapProfile `json:"heapProfile"`
	}
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if back.HeapProfile.File != "results-1000-shards-4.heap.pb.gz" || back.HeapProfile.InuseBytes != 2<<20 || back.HeapProfile.Shard != "s3" {
		t.Errorf("heap profile in the JSON %+v", back.HeapProfile)
	}
	md, err := os.ReadFile(filepath.Join(dir, "results-1000-shards-4.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Where the live heap of shard s3 (the process with the highest peak RSS) went after wave 2's settle period",
		"`results-1000-shards-4.heap.pb.gz`",
		"| Services in the cache, packed | 2.0 | 100 % |",
		"after a collection the read asked for: 2.0 MiB in 1 allocation stacks",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results page lacks %q:\n%s", want, md)
		}
	}

	var b strings.Builder
	writeHeapProfile(&b, &Result{HeapProfileError: "reading http://x: status 404"})
	if !strings.Contains(b.String(), "Heap profile not read: reading http://x: status 404.") {
		t.Errorf("a profile not read: %q", b.String())
	}
	b.Reset()
	writeHeapProfile(&b, &Result{})
	if b.String() != "" {
		t.Errorf("results from before profiles were read: %q, want nothing", b.String())
	}
}

func TestRSSTargetNamesWhereTheHeapGoes(t *testing.T) {
	hp := &HeapProfile{Wave: 3, InuseBytes: 30 * mib, Owners: []HeapShare{
		{"CDEvents", 7 * mib}, {otherOwner, 6.5 * mib}, {"Rollouts", 6 * mib}, {"routes", 5 * mib}, {"logging", 1 * mib},
	}}
	r := &Result{N: 1000, WaveResults: []WaveResult{{Wave: 3, During: Window{PeakRSS: 90 * mib}}}, HeapProfile: hp}
	got := rssTarget([]*Result{r}, 1000, 100*mib).Detail
	want := ", live heap after wave 3 30.0 MiB (heap profile), the largest shares: CDEvents 7.0 MiB; Rollouts 6.0 MiB; routes 5.0 MiB"
	if !strings.Contains(got, want) || strings.Contains(got, "logging") {
		t.Errorf("RSS target %q; want the three largest owners but what none claims: %q", got, want)
	}
	// One wave, fewer than the revisions a Rollout keeps: the growth row tells the rest.
	if !strings.Contains(got, "; met over 1 wave, fewer than a Rollout keeps old revisions (revisionHistoryLimit, 10 by default)") {
		t.Errorf("RSS target met over one wave %q; want it to say the revisions are not all kept yet", got)
	}
	twelve := &Result{N: 1000, WaveResults: slices.Repeat(r.WaveResults, 12)}
	if got := rssTarget([]*Result{twelve}, 1000, 100*mib).Detail; strings.Contains(got, "fewer than a Rollout keeps") {
		t.Errorf("RSS target over twelve waves %q names the revisions not yet kept", got)
	}
	sharded := &Result{N: 1000, Shards: 4, WaveResults: r.WaveResults, HeapProfile: hp}
	if got := rssTarget([]*Result{sharded}, 1000, 100*mib).Detail; !strings.Contains(got, want) {
		t.Errorf("RSS target of a sharded run %q; want %q", got, want)
	}
	r.HeapProfile = nil
	if got := rssTarget([]*Result{r}, 1000, 100*mib).Detail; strings.Contains(got, "heap profile") {
		t.Errorf("RSS target without a profile %q names one", got)
	}
}

// TestReadResultsSortsKeptProfilesAgain: a report made later sorts each kept profile with the
// owners as they are then, and keeps what the run knew.
func TestReadResultsSortsKeptProfilesAgain(t *testing.T) {
	data := heapProfileOf(t, map[string]int64{"runtime.mallocgc;github.com/false-systems/kulta/internal/controller/rollout.packReplicaSet": 3 << 20})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "results-100.heap.pb.gz"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	// As an older harness recorded it: other owners, another field for the stacks.
	old := `{"n": 100, "heapProfile": {"wave": 3, "file": "results-100.heap.pb.gz", "inuseBytes": 5, "samples": 1,
		"owners": [{"name": "an owner since renamed", "bytes": 5}]}}`
	if err := os.WriteFile(filepath.Join(dir, "results-100.json"), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	// A run whose profile file is gone keeps what it recorded.
	gone := `{"n": 1000, "heapProfile": {"wave": 2, "file": "results-1000.heap.pb.gz", "inuseBytes": 7, "owners": [{"name": "kept", "bytes": 7}]}}`
	if err := os.WriteFile(filepath.Join(dir, "results-1000.json"), []byte(gone), 0o644); err != nil {
		t.Fatal(err)
	}
	results, err := ReadResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	hp := results[0].HeapProfile
	want := []HeapShare{{"ReplicaSets in the cache, packed", 3 << 20}}
	if hp.Wave != 3 || hp.File != "results-100.heap.pb.gz" || hp.Collected || hp.InuseBytes != 3<<20 || hp.Stacks != 1 || !slices.Equal(hp.Owners, want) {
		t.Errorf("profile read back %+v; want wave 3, not collected, sorted again: %v", hp, want)
	}
	if kept := results[1].HeapProfile; kept.InuseBytes != 7 || len(kept.Owners) != 1 || kept.Owners[0].Name != "kept" {
		t.Errorf("profile without its file %+v; want it as recorded", kept)
	}
	if err := WriteResultPage(dir, results[0]); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(filepath.Join(dir, "results-100.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), "| ReplicaSets in the cache, packed | 3.0 | 100 % |") || strings.Contains(string(page), "since renamed") {
		t.Errorf("page written again names the owners as recorded, not as now:\n%s", page)
	}
	if err := os.WriteFile(filepath.Join(dir, "results-100.heap.pb.gz"), []byte("not a profile"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadResults(dir); err == nil || !strings.Contains(err.Error(), "results-100.heap.pb.gz") {
		t.Errorf("a kept profile that does not parse: err %v, want one naming it", err)
	}
}

// profileOf analyses a profile of the given stacks, as read after wave w of shard.
func profileOf(t *testing.T, w int, shard string, stacks map[string]int64) *HeapProfile {
	t.Helper()
	hp, err := AnalyseHeapProfile(heapProfileOf(t, stacks))
	if err != nil {
		t.Fatal(err)
	}
	hp.Wave, hp.Shard, hp.Collected = w, shard, true
	return hp
}

const (
	packedRS      = "runtime.mallocgc;github.com/false-systems/kulta/internal/controller/rollout.packReplicaSet"
	packedRollout = "runtime.mallocgc;github.com/false-systems/kulta/internal/controller/rollout.packRollout"
	packedSvc     = "runtime.mallocgc;github.com/false-systems/kulta/internal/controller/rollout.packService"
	sdkInit       = "runtime.mallocgc;github.com/cdevents/sdk-go/pkg/api.init.1"
	ownerRS       = "ReplicaSets in the cache, packed"
	ownerRollouts = "Rollouts in the cache, packed (spec and status as JSON)"
	ownerServices = "Services in the cache, packed"
)

func TestHeapGrowthByOwner(t *testing.T) {
	a := profileOf(t, 1, "", map[string]int64{packedRS: 2 << 20, packedRollout: 4 << 20, sdkInit: 6 << 20, packedSvc: 1 << 20})
	b := profileOf(t, 3, "", map[string]int64{packedRS: 5 << 20, packedRollout: 5 << 20, sdkInit: 6 << 20})
	got := HeapGrowth(a, b)
	want := []HeapShare{{ownerRS, 3 << 20}, {ownerRollouts, 1 << 20}, {ownerServices, -(1 << 20)}}
	if !slices.Equal(got, want) {
		t.Errorf("growth %v, want %v: largest gain first, an owner gone as a loss, the unchanged SDK left out", got, want)
	}
	if g := HeapGrowth(b, b); len(g) != 0 {
		t.Errorf("a profile against itself gained %v", g)
	}
}

// TestProfileAfterEachWave runs the runner's read after each of three waves: the earlier waves'
// profiles are kept apart from the last wave's, and one that cannot be read is named without
// losing the others.
func TestProfileAfterEachWave(t *testing.T) {
	answers := [][]byte{
		heapProfileOf(t, map[string]int64{packedRS: 2 << 20}),
		[]byte("not a profile"),
		heapProfileOf(t, map[string]int64{packedRS: 3 << 20}),
	}
	var read atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if _, err := w.Write(answers[read.Add(1)-1]); err != nil {
			t.Error(err)
		}
	}))
	t.Cleanup(srv.Close)
	var log strings.Builder
	r := &runner{cfg: Config{N: 10, Log: &log}, shardKeys: []string{""}, ctrls: []*Controller{{HeapProfileURL: srv.URL + "/debug/pprof/heap?gc=1"}}}
	res := &Result{N: 10, Waves: 3}
	for w := 1; w <= 3; w++ {
		r.profileAfter(context.Background(), res, WaveResult{Wave: w})
	}
	if n := read.Load(); n != 3 {
		t.Errorf("%d profiles read, want one after each wave", n)
	}
	if len(res.EarlierHeapProfiles) != 1 || res.EarlierHeapProfiles[0].Wave != 1 || res.EarlierHeapProfiles[0].InuseBytes != 2<<20 {
		t.Errorf("earlier profiles %+v, want wave 1's alone", res.EarlierHeapProfiles)
	}
	if hp := res.HeapProfile; hp == nil || hp.Wave != 3 || hp.InuseBytes != 3<<20 {
		t.Errorf("last wave's profile %+v, want wave 3's", hp)
	}
	if !strings.HasPrefix(res.HeapProfileError, "after wave 2: parsing a heap profile") || strings.Contains(res.HeapProfileError, ";") {
		t.Errorf("error %q, want wave 2's alone", res.HeapProfileError)
	}
	if !strings.Contains(log.String(), "heap profile after wave 2: parsing") {
		t.Errorf("progress log %q does not name the profile not read", log.String())
	}
	srv.Close()
	r.profileAfter(context.Background(), res, WaveResult{Wave: 3})
	if parts := strings.Split(res.HeapProfileError, "; "); len(parts) != 2 || !strings.HasPrefix(parts[1], "after wave 3: ") {
		t.Errorf("errors %q, want wave 2's then wave 3's", res.HeapProfileError)
	}
}

// TestEveryWavesProfileIsKeptAndCompared: each wave's profile is kept in a file of its own,
// read back and sorted again, and the page sets them side by side with each owner's gain.
func TestEveryWavesProfileIsKeptAndCompared(t *testing.T) {
	dir := t.TempDir()
	res := &Result{N: 1000, Waves: 3, WaveResults: []WaveResult{{Wave: 1}, {Wave: 2}, {Wave: 3}},
		EarlierHeapProfiles: []*HeapProfile{
			profileOf(t, 1, "", map[string]int64{packedRS: 2 << 20, packedRollout: 4 << 20, packedSvc: 1 << 20}),
			profileOf(t, 2, "", map[string]int64{packedRS: 3 << 20, packedRollout: 4 << 20, packedSvc: 1 << 20}),
		},
		HeapProfile: profileOf(t, 3, "", map[string]int64{packedRS: 4 << 20, packedRollout: 5 << 20}),
	}
	if err := WriteResult(dir, Machine{}, res); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"results-1000.wave-1.heap.pb.gz", "results-1000.wave-2.heap.pb.gz", "results-1000.heap.pb.gz"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("profile file: %v", err)
		}
	}
	back, err := ReadResults(dir)
	if err != nil {
		t.Fatal(err)
	}
	hps := back[0].HeapProfiles()
	if len(hps) != 3 || hps[0].File != "results-1000.wave-1.heap.pb.gz" || hps[1].Wave != 2 || hps[2].File != "results-1000.heap.pb.gz" {
		t.Fatalf("profiles read back %+v", hps)
	}
	if hps[0].InuseBytes != 7<<20 || hps[0].raw == nil {
		t.Errorf("wave 1's profile read back %+v, want it sorted again from its file", hps[0])
	}
	page, err := os.ReadFile(filepath.Join(dir, "results-1000.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| held by | wave 1 | wave 2 | wave 3 | wave 1 → 3 |\n|---|---|---|---|---|\n",
		"| the live heap | 7.0 | 8.0 | 9.0 | +2.0 |",
		"| " + ownerRollouts + " | 4.0 | 4.0 | 5.0 | +1.0 |",
		// Held earlier, gone after the last wave: listed after the last wave's owners.
		"| " + ownerRS + " | 2.0 | 3.0 | 4.0 | +2.0 |\n| " + ownerServices + " | 1.0 | 1.0 | 0.0 | -1.0 |",
	} {
		if !strings.Contains(string(page), want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}

	target := growthTarget([]*Result{back[0]}).Detail
	if want := ", live heap 7.0 MiB after wave 1, 9.0 MiB after wave 3 (heap profiles), gained most by: " + ownerRS + " +2.0 MiB; " + ownerRollouts + " +1.0 MiB"; !strings.Contains(target, want) {
		t.Errorf("growth target %q, want %q", target, want)
	}

	// The last wave's profile not read: the earlier ones are still set side by side.
	lastOne := res.HeapProfile
	res.HeapProfile, res.HeapProfileError = nil, "after wave 3: status 500"
	var partial strings.Builder
	writeHeapProfile(&partial, res)
	if s := partial.String(); !strings.Contains(s, "Heap profile not read: after wave 3: status 500.") || !strings.Contains(s, "| the live heap | 7.0 | 8.0 | +1.0 |") {
		t.Errorf("earlier profiles without the last wave's:\n%s", s)
	}
	res.HeapProfile, res.HeapProfileError = lastOne, ""

	// In a sharded run the profiles may come from different processes: not compared.
	res.Shards = 4
	res.EarlierHeapProfiles[0].Shard, res.EarlierHeapProfiles[1].Shard, res.HeapProfile.Shard = "s1", "s2", "s2"
	var b strings.Builder
	writeHeapProfile(&b, res)
	if s := b.String(); strings.Contains(s, "wave 1 → 3") || !strings.Contains(s, "after waves 1, 2, 3 were read from different processes") {
		t.Errorf("profiles of different processes compared:\n%s", s)
	}
	if lead := heapGrowthLead(res); lead != "" {
		t.Errorf("growth lead from different processes: %q", lead)
	}
	res.EarlierHeapProfiles[0].Shard = "s2"
	if lead := heapGrowthLead(res); !strings.Contains(lead, "live heap of shard s2 7.0 MiB after wave 1") {
		t.Errorf("growth lead of one shard %q", lead)
	}
}
