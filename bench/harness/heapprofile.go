package harness

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/google/pprof/profile"
)

// HeapProfile is where a controller process's live heap went, read from its heap profile
// (/debug/pprof/heap?gc=1) after a wave's settle period (after every wave since commit
// 24a9c9f, after the last alone before). The read makes the controller collect first, so the
// profile is what was live then; the wave's and the settle period's figures were taken before
// it, and the next wave starts from the collected heap, as it would after any collection. The Go runtime records about one allocation in every
// SampleRateBytes allocated (runtime.MemProfileRate, 512 KiB by default, which the bench
// leaves as the controller has it) and scales each record up to the bytes it stands for: a
// share of B bytes made of small objects is an estimate with a standard error of about
// √(B × SampleRateBytes), 1.4 MiB on 4 MiB and 3.2 MiB on 20 MiB at the default rate.
type HeapProfile struct {
	// Wave is the wave after whose settle period the profile was read; Shard the process's
	// --shard-key in a sharded run (the process with the highest peak RSS in that wave).
	Wave  int    `json:"wave"`
	Shard string `json:"shard,omitempty"`
	// File is the profile as read, beside the results (go tool pprof reads it).
	File string `json:"file,omitempty"`
	// Collected says the controller collected before the profile was taken (?gc=1). False in
	// the results of commit d8f5ffc, which read the profile the runtime had published, as of
	// up to two collections before the read.
	Collected bool `json:"collectedFirst,omitempty"`
	// SampleRateBytes is the profile's sampling period (runtime.MemProfileRate).
	SampleRateBytes int64 `json:"sampleRateBytes,omitempty"`
	// InuseBytes is the live heap the profile accounts for; Stacks the allocation stacks
	// behind it.
	InuseBytes int64 `json:"inuseBytes"`
	Stacks     int   `json:"stacks"`
	// Owners splits InuseBytes by what holds it (heapOwners), largest first.
	Owners []HeapShare `json:"owners"`
	// Unclaimed are the functions that allocated what no owner claimed, by their nearest
	// frame outside the runtime and the standard library's containers, largest first, at most
	// maxUnclaimed.
	Unclaimed []HeapShare `json:"unclaimed,omitempty"`

	raw []byte
}

// maxUnclaimed is how many functions HeapProfile.Unclaimed lists.
const maxUnclaimed = 10

// HeapShare is a part of the live heap.
type HeapShare struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

// heapOwner names what holds the memory allocated under any of its frames.
type heapOwner struct {
	name   string
	frames []string
}

// heapOwners are the owners a profile's samples are sorted into. A frame matches a function
// whose full name contains it. Owners are tried in order and the first with a frame anywhere
// in a sample's stack takes the sample: the packed objects before the decoding and the
// informers' machinery that call their transforms, KULTA's own structures before the rest of
// its code.
var heapOwners = []heapOwner{
	{"CDEvents SDK: the JSON schemas it compiles when the process starts, and its validators", []string{
		"github.com/cdevents/", "github.com/santhosh-tekuri/jsonschema", "github.com/go-playground/validator",
	}},
	{"/metrics served: a scrape in progress, or its gzip writer and buffers pooled for the next", []string{
		"client_golang/prometheus/promhttp.", "github.com/prometheus/common/expfmt.", "client_golang/prometheus.(*Registry).Gather",
	}},
	{"Rollouts in the cache, packed (spec and status as JSON)", []string{"internal/controller/rollout.packRollout"}},
	{"ReplicaSets in the cache, packed", []string{"internal/controller/rollout.packReplicaSet"}},
	{"Services in the cache, packed", []string{"internal/controller/rollout.packService"}},
	{"routes (and Istio objects) in the cache, trimmed and packed", []string{
		"kulta/providers/internal/objects.Pack", "kulta/providers/internal/objects.CacheTrim",
	}},
	{"KULTA's index of Rollouts by the objects they name", []string{"internal/controller/rollout.(*rolloutIndex)", "internal/controller/rollout.newRolloutIndex"}},
	{"KULTA's per-Rollout metric records", []string{"kulta/internal/metrics.(*rolloutCollector)"}},
	{"metric series kept by client_golang (vectors and their children)", []string{
		"client_golang/prometheus.(*MetricVec)", "client_golang/prometheus.(*metricMap)",
	}},
	{"KULTA's reconciler, providers and recorders (queues, told times and writes, notes, Events waiting to be sent)", []string{
		"github.com/false-systems/kulta/internal/", "github.com/false-systems/kulta/providers/", "github.com/false-systems/kulta/analysis",
	}},
	{"objects decoded from the API server's lists and watches (the metadata the packed objects keep, objects cached whole, lists not yet replaced)", []string{
		"k8s.io/apimachinery/pkg/runtime/serializer", "k8s.io/apimachinery/pkg/watch.(*StreamWatcher)",
		"k8s.io/client-go/rest.Result", "k8s.io/client-go/tools/pager",
	}},
	{"informer stores and indexes, work queues", []string{
		"k8s.io/client-go/tools/cache.", "sigs.k8s.io/controller-runtime/pkg/cache", "sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue",
		"k8s.io/client-go/util/workqueue",
	}},
	{"Prometheus collectors and descriptors", []string{"github.com/prometheus/"}},
	{"API machinery: schemes, REST mappings, discovery", []string{
		"k8s.io/apimachinery/pkg/runtime.", "k8s.io/client-go/restmapper", "k8s.io/client-go/discovery",
		"sigs.k8s.io/controller-runtime/pkg/client/apiutil",
	}},
	{"HTTP/2 and TLS connections (to the API server, and /metrics and probes served)", []string{"golang.org/x/net/http2", "net/http.", "crypto/tls."}},
	{"logging", []string{"go.uber.org/zap", "github.com/go-logr/"}},
	{"package variables made at start by the linked packages' initialisers", []string{"runtime.doInit"}},
	{"the runtime's own (goroutines, scheduler)", []string{
		"runtime.malg", "runtime.schedinit", "runtime.newproc", "runtime.allocm", "runtime.mcommoninit", "runtime.gcBgMarkWorker", "runtime.bgscavenge", "runtime.bgsweep",
	}},
}

// FetchHeapProfile reads a heap profile from url with hc, and returns its bytes as read.
func FetchHeapProfile(ctx context.Context, hc *http.Client, url string) ([]byte, error) {
	return get(ctx, hc, url, "reading")
}

// get is the body of a GET of url with hc; an answer but 200 OK is an error with its start.
// doing names the read in errors ("reading", "scraping").
func get(ctx context.Context, hc *http.Client, url, doing string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("request for %s: %w", url, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", doing, url, err)
	}
	data, rerr := io.ReadAll(resp.Body)
	cerr := resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("%s %s: status %s: %q", doing, url, resp.Status, data[:min(len(data), 200)])
		return nil, errors.Join(err, rerr, cerr)
	}
	if rerr != nil {
		return nil, fmt.Errorf("%s %s: %w", doing, url, rerr)
	}
	if cerr != nil {
		return nil, fmt.Errorf("closing %s: %w", url, cerr)
	}
	return data, nil
}

// AnalyseHeapProfile sorts the live heap of a heap profile (as /debug/pprof/heap serves it)
// into heapOwners.
func AnalyseHeapProfile(data []byte) (*HeapProfile, error) {
	p, err := profile.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parsing a heap profile: %w", err)
	}
	inuse := -1
	for i, st := range p.SampleType {
		if st.Type == "inuse_space" {
			inuse = i
		}
	}
	if inuse < 0 {
		return nil, errors.New("the heap profile has no inuse_space samples")
	}
	owned := make(map[string]int64)
	unclaimed := make(map[string]int64)
	hp := &HeapProfile{raw: data, SampleRateBytes: p.Period}
	for _, s := range p.Sample {
		v := s.Value[inuse]
		if v == 0 {
			continue
		}
		hp.InuseBytes += v
		hp.Stacks++
		frames := sampleFrames(s)
		if owner, ok := ownerOf(frames); ok {
			owned[owner] += v
			continue
		}
		owned[otherOwner] += v
		unclaimed[allocatingFunction(frames)] += v
	}
	hp.Owners = shares(owned, 0)
	hp.Unclaimed = shares(unclaimed, maxUnclaimed)
	return hp, nil
}

// otherOwner takes what no heapOwner claims.
const otherOwner = "other (see the functions below)"

// sampleFrames are the functions of a sample's stack, from the allocation outwards.
func sampleFrames(s *profile.Sample) []string {
	var frames []string
	for _, loc := range s.Location {
		for _, line := range loc.Line {
			if line.Function != nil {
				frames = append(frames, line.Function.Name)
			}
		}
	}
	return frames
}

// ownerOf is the first heapOwner with a frame in frames.
func ownerOf(frames []string) (string, bool) {
	for _, o := range heapOwners {
		for _, want := range o.frames {
			for _, f := range frames {
				if strings.Contains(f, want) {
					return o.name, true
				}
			}
		}
	}
	return "", false
}

// allocatingFunction is the frame nearest the allocation that is not the runtime's, nor one
// of the standard library's containers and encoders that allocate on a caller's behalf.
func allocatingFunction(frames []string) string {
	for _, f := range frames {
		if !allocatesForCaller(f) {
			return f
		}
	}
	if len(frames) == 0 {
		return "(no stack)"
	}
	return frames[len(frames)-1]
}

// allocatesForCaller reports whether function f allocates on behalf of whoever called it.
func allocatesForCaller(f string) bool {
	for _, prefix := range []string{"runtime.", "internal/", "strings.", "bytes.", "bufio.", "encoding/", "reflect.", "sync.", "maps.", "slices."} {
		if strings.HasPrefix(f, prefix) {
			return true
		}
	}
	return false
}

// shares lists m largest first (then by name), at most limit of them when limit is above 0.
func shares(m map[string]int64, limit int) []HeapShare {
	out := make([]HeapShare, 0, len(m))
	for name, b := range m {
		out = append(out, HeapShare{Name: name, Bytes: b})
	}
	slices.SortFunc(out, func(a, b HeapShare) int {
		return cmp.Or(cmp.Compare(b.Bytes, a.Bytes), strings.Compare(a.Name, b.Name))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// HeapGrowth is what each owner held more (negative: less) in profile b than in profile a,
// largest gain first; an owner in only one of them held nothing in the other, and owners that
// held the same are left out. The live heap's own change is b.InuseBytes - a.InuseBytes.
func HeapGrowth(a, b *HeapProfile) []HeapShare {
	delta := make(map[string]int64)
	for _, o := range b.Owners {
		delta[o.Name] += o.Bytes
	}
	for _, o := range a.Owners {
		delta[o.Name] -= o.Bytes
	}
	maps.DeleteFunc(delta, func(_ string, d int64) bool { return d == 0 })
	return shares(delta, 0)
}

// sameProcess says whether profiles were all read from one process (the same shard key;
// always in an unsharded run), so that what they differ by is what that process gained.
func sameProcess(hps []*HeapProfile) bool {
	for _, hp := range hps {
		if hp.Shard != hps[0].Shard {
			return false
		}
	}
	return true
}
