package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	"strings"
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
		rolloutPack = "github.com/false-systems/kulta/internal/controller/rollout.packRollout"
		reflector   = "k8s.io/client-go/tools/cache.(*Reflector).watchHandler"
	)
	data := heapProfileOf(t, map[string]int64{
		// A Rollout packed by the cache's transform, called from the reflector: the packed
		// object owns it, not the decoding that called it.
		"runtime.mallocgc;encoding/json.Marshal;" + rolloutPack + ";" + reflector: 3 << 20,
		// Metadata decoded from a watch, kept by a packed object.
		"runtime.mallocgc;k8s.io/apimachinery/pkg/runtime/serializer/protobuf.(*Serializer).Decode;k8s.io/apimachinery/pkg/watch.(*StreamWatcher).receive": 2 << 20,
		"runtime.mallocgc;github.com/santhosh-tekuri/jsonschema/v6.(*Compiler).Compile;github.com/cdevents/sdk-go/pkg/api.init.1;runtime.doInit1":          5 << 20,
		"runtime.mallocgc;compress/flate.NewWriter;github.com/prometheus/common/expfmt.NewEncoder.func7;" +
			"github.com/prometheus/client_golang/prometheus/promhttp.HandlerForTransactional.func1": 1 << 20,
		// Nobody's: named by the first frame outside the runtime and the containers.
		"runtime.mallocgc;runtime.makeslice;strings.(*Builder).grow;example.com/lib.render;main.main": 1 << 19,
		"runtime.mallocgc;example.com/lib.other":                                                      1 << 18,
		// Freed: counted nowhere.
		"runtime.mallocgc;example.com/lib.freed": 0,
	})
	hp, err := AnalyseHeapProfile(data)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(11<<20 + 1<<19 + 1<<18); hp.InuseBytes != want || hp.Samples != 6 {
		t.Errorf("in use %d in %d samples, want %d in 6", hp.InuseBytes, hp.Samples, want)
	}
	got := map[string]int64{}
	for _, o := range hp.Owners {
		got[o.Name] = o.Bytes
	}
	want := map[string]int64{
		heapOwners[0].name: 5 << 20, // CDEvents
		heapOwners[1].name: 1 << 20, // /metrics being served
		heapOwners[2].name: 3 << 20, // Rollouts packed
		"objects decoded from the API server's lists and watches (the metadata packed objects keep, lists not yet replaced)": 2 << 20,
		otherOwner: 1<<19 + 1<<18,
	}
	if len(got) != len(want) {
		t.Errorf("owners %v, want %v", got, want)
	}
	for name, b := range want {
		if got[name] != b {
			t.Errorf("%q holds %d, want %d (all: %v)", name, got[name], b, got)
		}
	}
	if hp.Owners[0].Name != heapOwners[0].name {
		t.Errorf("largest owner %q, want the CDEvents SDK first", hp.Owners[0].Name)
	}
	if len(hp.Unclaimed) != 2 || hp.Unclaimed[0] != (HeapShare{"example.com/lib.render", 1 << 19}) || hp.Unclaimed[1] != (HeapShare{"example.com/lib.other", 1 << 18}) {
		t.Errorf("unclaimed %v, want lib.render then lib.other", hp.Unclaimed)
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
	old := runtime.MemProfileRate
	runtime.MemProfileRate = 4096
	t.Cleanup(func() { runtime.MemProfileRate = old; retained = nil })
	retainForProfile(64) // 4 MiB
	// A heap profile is as of the collection before the last one.
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
	if i := topReplica(w, keys); i != 1 {
		t.Errorf("top replica %d, want 1 (the first of the highest)", i)
	}
	if i := topReplica(WaveResult{}, []string{""}); i != 0 {
		t.Errorf("unsharded: %d, want 0", i)
	}
	_, _, replicas := replicaMemory(keys, []Window{{PeakRSS: 5}, {PeakRSS: 9}, {PeakRSS: 9}}, make([]Window, 3))
	if i := topReplica(WaveResult{Replicas: replicas}, keys); i != 1 {
		t.Errorf("top replica of replicaMemory's list %d, want 1, the process whose windows the results give", i)
	}
}

func TestWriteResultKeepsTheHeapProfile(t *testing.T) {
	data := heapProfileOf(t, map[string]int64{"runtime.mallocgc;github.com/false-systems/kulta/internal/controller/rollout.packService": 2 << 20})
	hp, err := AnalyseHeapProfile(data)
	if err != nil {
		t.Fatal(err)
	}
	hp.Wave, hp.Shard = 2, "s3"
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
		"| Services in the cache, packed | 2.1 | 100 % |",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results page lacks %q:\n%s", want, md)
		}
	}

	var b strings.Builder
	writeHeapProfile(&b, &Result{HeapProfileError: "reading http://x: status 404"})
	if !strings.Contains(b.String(), "Heap profile: not read (reading http://x: status 404)") {
		t.Errorf("a profile not read: %q", b.String())
	}
	b.Reset()
	writeHeapProfile(&b, &Result{})
	if b.String() != "" {
		t.Errorf("results from before profiles were read: %q, want nothing", b.String())
	}
}

func TestRSSTargetNamesWhereTheHeapGoes(t *testing.T) {
	hp := &HeapProfile{Wave: 3, InuseBytes: 30e6, Owners: []HeapShare{
		{"CDEvents", 7e6}, {"Rollouts", 6e6}, {"routes", 5e6}, {"logging", 1e6},
	}}
	r := &Result{N: 1000, WaveResults: []WaveResult{{Wave: 3, During: Window{PeakRSS: 90 * mib}}}, HeapProfile: hp}
	got := rssTarget([]*Result{r}, 1000, 100*mib).Detail
	want := ", live heap after wave 3 30.0 MB (heap profile), the most of it held by: CDEvents 7.0 MB; Rollouts 6.0 MB; routes 5.0 MB"
	if !strings.Contains(got, want) || strings.Contains(got, "logging") {
		t.Errorf("RSS target %q; want the three largest owners: %q", got, want)
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
