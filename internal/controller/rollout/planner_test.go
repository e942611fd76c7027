package rollout

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/revision"
	"github.com/false-systems/kulta/internal/testutil"
	"github.com/false-systems/kulta/providers"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// world is a simulated cluster for the planner: ReplicaSets whose Pods turn ready on the next
// tick (as a kubelet would), Services pinned to revisions, and routes with weights.
type world struct {
	t        *testing.T
	ro       *kultav1alpha1.Rollout
	now      time.Time
	start    time.Time
	revs     map[string]*Revision
	names    map[string]string // hash -> rev1, rev2 ... in order of appearance
	services map[string]string
	route    string
	header   string
	headers  map[string]string // the header and mirror routes the routes carry, by managed name: "" or "mirror N%"
	kubelet  bool              // false: Pods never turn ready
	slow     map[string]bool   // by revision name: its Pods do not turn ready
	problem  *Problem
	weights  *providers.Weights
	rejected bool // true: the routes' parents do not accept them
	// verdict, when set, is what each due analysis reports, as the reconciler's check would.
	verdict kultav1alpha1.Verdict
	// workload is the Deployment the Rollout adopts; nil without spec.workloadRef.
	workload *Workload
	// podsPerTick, when above zero, is how many more Pods of each ReplicaSet and of the
	// workload turn ready per tick; zero: all of them at once.
	podsPerTick int32
	// refuse lists the webhook types whose webhooks answer no (503); the others say yes.
	refuse map[kultav1alpha1.WebhookType]bool
	// rollback makes the rollback webhooks answer yes when polled.
	rollback bool
	// calls are the webhook calls of the last tick, for its trace line.
	calls  []string
	lines  []string
	events []Event // every Event the plans asked for, in order
}

func newWorld(t *testing.T, ro *kultav1alpha1.Rollout) *world {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return &world{
		t: t, ro: ro, now: start, start: start, kubelet: true,
		revs: map[string]*Revision{}, names: map[string]string{}, services: map[string]string{},
		route: "-", header: "-", headers: map[string]string{}, slow: map[string]bool{},
	}
}

func (w *world) hash() string {
	h, err := revision.Hash(&w.ro.Spec.Template, 0)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, ok := w.names[h]; !ok {
		w.names[h] = fmt.Sprintf("rev%d", len(w.names)+1)
	}
	return h
}

// tick reconciles once, applies the plan to the world, logs a trace line, then lets `after`
// pass.
func (w *world) tick(note string, after time.Duration) {
	hash := w.hash()
	due := AnalysisDue(w.ro, w.now)
	last := w.ro.Status.Analysis
	if w.verdict != "" && due {
		w.ro.Status.Analysis = &kultav1alpha1.AnalysisStatus{
			Revision:  w.ro.Status.CurrentPodTemplateHash,
			StepIndex: w.ro.Status.CurrentStepIndex,
			Verdict:   w.verdict,
			Reason:    "Simulated",
			Message:   "error-rate " + string(w.verdict),
			CheckedAt: metav1.NewTime(w.now),
			Metrics: []kultav1alpha1.MetricStatus{{
				Name: "error-rate", Verdict: w.verdict, Value: ptr.To[kultav1alpha1.Decimal]("12.5"), Threshold: ptr.To[kultav1alpha1.Decimal]("5"),
			}},
		}
	}
	if hooks := WebhooksOf(w.ro, kultav1alpha1.WebhookRollout); len(hooks) > 0 && due {
		// As the reconciler's analysis does: the rollout webhooks are called with each check.
		result := w.ro.Status.Analysis
		if result == nil || !result.CheckedAt.Time.Equal(w.now) {
			result = &kultav1alpha1.AnalysisStatus{Revision: w.ro.Status.CurrentPodTemplateHash, StepIndex: copyInt32(w.ro.Status.CurrentStepIndex),
				Verdict: kultav1alpha1.VerdictPass, CheckedAt: metav1.NewTime(w.now)}
		}
		w.ro.Status.Analysis = last // the check before this one, whose counters carry on
		JudgeRolloutHooks(w.ro, result, w.answer(hooks), w.now)
		w.ro.Status.Analysis = result
	}
	obs := Observation{Rollout: w.ro.DeepCopy(), Now: w.now, Hash: hash, Revisions: map[string]*Revision{}, Problem: w.problem}
	if w.rollback && RollbackPollDue(obs.Rollout, hash) {
		obs.Rollback = &w.answer(WebhooksOf(w.ro, kultav1alpha1.WebhookRollback))[0]
	}
	if trafficRouting(w.ro) != nil {
		obs.Traffic = &providers.Verification{Weights: w.weights, Accepted: !w.rejected}
		if w.rejected {
			obs.Traffic.Message = "HTTPRoute default/web generation 2 is not yet accepted by parent Gateway default/public"
		}
	}
	for h, r := range w.revs {
		c := *r
		c.ScaleDownAt = scaleDownTime(&w.ro.Status, h) // as observe reads it
		obs.Revisions[h] = &c
	}
	if w.workload != nil {
		c := *w.workload
		obs.Workload = &c
	}
	var asked []string
	plan := ComputeWithGates(&obs, func(req GateRequest, _ kultav1alpha1.RolloutStatus) []WebhookAnswer {
		answers := w.answer(WebhooksOf(w.ro, req.Type))
		asked = append(asked, fmt.Sprintf("%s@%d:%t", req.Type, req.Step, answers[0].OK))
		return answers
	})
	if plan.PostRollout != "" {
		asked = append(asked, "post-rollout:"+plan.PostRollout)
		RecordPostRollout(&plan.Status, hash, plan.PostRollout, w.answer(WebhooksOf(w.ro, kultav1alpha1.WebhookPostRollout)), w.now)
	}
	w.calls = asked
	w.events = append(w.events, plan.Events...)
	// As the reconciler does, leave out the status write that only says the weights just
	// written are on their way: the next tick starts from the status stored before.
	next := w.ro.DeepCopy()
	next.Status = plan.Status
	next.Status.ObservedGeneration = w.ro.Generation
	kept := shifted(obs, plan) && transientAfterOwnWrite(obs.Rollout, next, plan)
	write := "folded"
	if !kept {
		write = "none"
		if !equality.Semantic.DeepEqual(obs.Rollout.Status, next.Status) {
			write = "patch"
		}
	}
	w.apply(hash, plan, kept)
	w.log(note, plan, write)
	w.now = w.now.Add(after)
}

func (w *world) apply(hash string, plan Plan, keepStatus bool) {
	for h, n := range plan.Replicas {
		r := w.revs[h]
		if r == nil {
			r = &Revision{Hash: h, Name: w.names[h], Number: int64(len(w.revs) + 1)}
			w.revs[h] = r
		}
		r.Replicas = n
	}
	for _, h := range plan.Delete {
		delete(w.revs, h)
	}
	for svc, h := range plan.Services {
		w.services[svc] = w.names[h]
	}
	if plan.Weights != nil {
		w.route = fmt.Sprintf("%d/%d", plan.Weights.Stable, plan.Weights.Canary)
		w.weights = ptr.To(*plan.Weights)
	}
	for _, name := range plan.RemoveHeaderRoutes {
		delete(w.headers, name)
	}
	for _, hr := range plan.HeaderRoutes {
		w.headers[hr.Name] = ""
		if hr.Mirror != nil {
			w.headers[hr.Name] = fmt.Sprintf("mirror %d%%", *hr.Mirror)
		}
	}
	w.header = "-"
	if len(w.headers) > 0 {
		var parts []string
		for _, name := range slices.Sorted(maps.Keys(w.headers)) {
			if kind := w.headers[name]; kind != "" {
				name += " (" + kind + ")"
			}
			parts = append(parts, name)
		}
		w.header = strings.Join(parts, ",")
	}
	for _, key := range plan.Consume {
		delete(w.ro.Annotations, key)
	}
	if !keepStatus {
		w.ro.Status = plan.Status
		w.ro.Status.ObservedGeneration = w.ro.Generation // as the reconciler writes it
	}
	if d := w.workload; d != nil && plan.Workload != nil {
		if d.Adopted == nil {
			d.Adopted = ptr.To(plan.Workload.Adopted)
		}
		d.Replicas = plan.Workload.Replicas
	}
	// The kubelet: Pods follow spec.replicas by the next tick (podsPerTick more at a time when
	// set).
	for h, r := range w.revs {
		r.Pods = r.Replicas
		if (w.kubelet && !w.slow[w.names[h]]) || r.Ready > r.Replicas {
			r.Ready = w.readyNext(r.Ready, r.Replicas)
			r.Available = r.Ready
		}
	}
	if d := w.workload; d != nil {
		d.Available = w.readyNext(d.Available, d.Replicas)
	}
	_ = hash
}

// answer is what hooks say: 503 for the types in w.refuse, 200 for the others; for rollback
// webhooks, 200 only while w.rollback.
func (w *world) answer(hooks []kultav1alpha1.Webhook) []WebhookAnswer {
	out := make([]WebhookAnswer, 0, len(hooks))
	for _, h := range hooks {
		ok := !w.refuse[h.Type]
		if h.Type == kultav1alpha1.WebhookRollback {
			ok = w.rollback
		}
		a := WebhookAnswer{Name: h.Name, OK: ok, Message: "HTTP 200"}
		if !ok {
			a.Message = "HTTP 503: not yet"
		}
		out = append(out, a)
	}
	return out
}

// readyNext is how many of want Pods are ready a tick after ready were.
func (w *world) readyNext(ready, want int32) int32 {
	if w.podsPerTick <= 0 || ready >= want {
		return want
	}
	return min(want, ready+w.podsPerTick)
}

// log appends the trace line of a tick; write is what became of its status: "patch" (written),
// "folded" (left to the next reconcile) or "none" (nothing changed, nothing written).
func (w *world) log(note string, plan Plan, write string) {
	st := w.ro.Status
	var revs []string
	for h, r := range w.revs {
		revs = append(revs, fmt.Sprintf("%s=%d", w.names[h], r.Replicas))
	}
	sort.Strings(revs)
	var svcs []string
	for s, name := range w.services {
		svcs = append(svcs, s+"->"+name)
	}
	sort.Strings(svcs)
	step := "-"
	if st.CurrentStepIndex != nil {
		step = fmt.Sprint(*st.CurrentStepIndex)
	}
	var events []string
	for _, e := range plan.Events {
		events = append(events, e.Reason)
	}
	routed := "-"
	for _, c := range st.Conditions {
		if c.Type == kultav1alpha1.ConditionTrafficRouted {
			routed = string(c.Status) + "/" + c.Reason
		}
	}
	requeue := plan.RequeueAfter
	if write == "folded" && (requeue == 0 || requeue > DefaultFoldedStatusBound) {
		requeue = DefaultFoldedStatusBound // as the reconciler bounds it by default
	}
	line := fmt.Sprintf("t=%-5s %-22s %-10s routed=%s phase=%-13s step=%s weight=%d stable=%s rs[%s] svc[%s] route=%s header=%s requeue=%s",
		w.now.Sub(w.start).String(), note, w.kstatus(), routed, st.Phase, step, ptr.Deref(st.CurrentWeight, 0), w.names[st.StablePodTemplateHash],
		strings.Join(revs, " "), strings.Join(svcs, " "), w.route, w.header, requeue)
	if d := w.workload; d != nil {
		line += fmt.Sprintf(" deploy=%d/%d", d.Available, d.Replicas)
		if d.Adopted != nil {
			line += fmt.Sprintf("(adopted %d)", *d.Adopted)
		}
	}
	if len(events) > 0 {
		line += " events=" + strings.Join(events, ",")
	}
	if len(st.ScaleDowns) > 0 {
		var marks []string
		for _, sd := range st.ScaleDowns {
			marks = append(marks, fmt.Sprintf("%s@t+%s", w.names[sd.PodTemplateHash], sd.At.Sub(w.start)))
		}
		line += " scale-down=" + strings.Join(marks, ",")
	}
	if len(w.calls) > 0 {
		line += " webhooks=" + strings.Join(w.calls, ",")
	}
	if len(plan.Consume) > 0 {
		line += " consumed=" + strings.Join(plan.Consume, ",")
	}
	if !plan.DueAt.IsZero() {
		line += " due=t+" + plan.DueAt.Sub(w.start).String()
	}
	if write != "none" {
		line += " status-write=" + write
	}
	w.lines = append(w.lines, strings.TrimRight(line, " "))
}

// kstatus is what kstatus (Flux, kubectl wait style tools) makes of the Rollout now.
func (w *world) kstatus() string {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(w.ro)
	if err != nil {
		w.t.Fatal(err)
	}
	res, err := kstatus.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		w.t.Fatal(err)
	}
	return res.Status.String()
}

func (w *world) annotate(key string) {
	if w.ro.Annotations == nil {
		w.ro.Annotations = map[string]string{}
	}
	w.ro.Annotations[key] = "true"
}

func (w *world) setImage(image string) {
	w.ro.Spec.Template.Spec.Containers[0].Image = image
	w.ro.Generation++
}

// settle reconciles until the phase is Completed (or n ticks pass), a second apart.
func (w *world) settle(note string, n int) {
	for range n {
		w.tick(note, time.Second)
		if w.ro.Status.Phase == kultav1alpha1.PhaseCompleted {
			return
		}
	}
}

func (w *world) golden(name string) {
	w.t.Helper()
	got := strings.Join(w.lines, "\n") + "\n"
	path := filepath.Join("testdata", "sequences", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			w.t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		w.t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if got != string(want) {
		w.t.Errorf("sequence differs from %s (run `go test ./internal/controller/rollout -run %s -update` and review the diff):\n got:\n%s\nwant:\n%s", path, w.t.Name(), got, want)
	}
}

func canaryRollout(opts ...testutil.RolloutOption) *kultav1alpha1.Rollout {
	ro := testutil.Rollout("default", "web", append([]testutil.RolloutOption{
		testutil.WithReplicas(4),
		testutil.WithHTTPRoute("web"),
	}, opts...)...)
	ro.Generation = 1
	ro.Spec.ProgressDeadlineSeconds = ptr.To[int32](600)
	ro.Spec.RevisionHistoryLimit = ptr.To[int32](2)
	return ro
}

func TestCanarySequences(t *testing.T) {
	steps := testutil.WithCanarySteps(testutil.Weight(20), testutil.PauseFor("30s"), testutil.Weight(50), testutil.PauseUntilPromoted(), testutil.Weight(100))
	cases := map[string]func(w *world){
		"canary-happy-path": func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary ready", time.Second)
			w.tick("route at 20%", 10*time.Second)
			w.tick("pausing", 20*time.Second)
			w.tick("pause over", time.Second)
			w.tick("weight 50 ready", time.Second)
			w.tick("route at 50%", time.Minute)
			w.tick("still paused", time.Second)
			w.annotate(kultav1alpha1.PromoteAnnotation)
			w.tick("promote", time.Second)
			w.tick("weight 100 ready", time.Second)
			w.tick("route at 100%", time.Second)
			w.tick("full scale ready", time.Second)
			w.tick("steady", 30*time.Second)
			w.tick("scale-down delay over", time.Second)
		},
		"canary-abort-and-retry": func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary ready", time.Second)
			w.annotate(kultav1alpha1.AbortAnnotation)
			w.tick("abort", 10*time.Second)
			w.tick("aborted", 25*time.Second)
			w.tick("scale-down delay over", time.Second)
			w.annotate(kultav1alpha1.RetryAnnotation)
			w.tick("retry", time.Second)
			w.tick("canary ready again", time.Second)
		},
		"canary-abort-then-new-image": func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary ready", time.Second)
			w.annotate(kultav1alpha1.AbortAnnotation)
			w.tick("abort", 10*time.Second)
			w.setImage("nginx:1.29")
			w.tick("fixed image", time.Second)
			w.tick("fixed canary ready", time.Second)
			w.tick("route at 20%", 10*time.Second)
			w.tick("pausing", 20*time.Second)
			w.tick("aborted revision scaled down", time.Second)
		},
		"canary-new-template-mid-rollout": func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary ready", time.Second)
			w.setImage("nginx:1.29")
			w.tick("newer image", time.Second)
			w.tick("new canary ready", 30*time.Second)
			w.tick("scale-down delay over", time.Second)
		},
		"canary-template-reverted": func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary ready", time.Second)
			w.setImage("nginx:1.27")
			w.tick("reverted", time.Second)
			w.tick("steady", time.Second)
		},
		"canary-progress-deadline": func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.kubelet = false
			w.tick("new image", 5*time.Minute)
			w.tick("still not ready", 5*time.Minute)
			w.tick("deadline passed", 31*time.Second)
			w.tick("scaled down", time.Second)
		},
		"canary-paused-by-spec": func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.ro.Spec.Paused = true
			w.tick("paused", 20*time.Minute)
			w.tick("still paused", time.Second)
			w.ro.Spec.Paused = false
			w.tick("resumed", time.Second)
			w.tick("canary ready", time.Second)
		},
		"canary-full-promotion": func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary ready", time.Second)
			w.ro.Annotations = map[string]string{kultav1alpha1.PromoteAnnotation: "full"}
			w.tick("promote full", time.Second)
			w.tick("full scale ready", time.Second)
		},
		"canary-route-not-accepted": func(w *world) {
			w.settle("install", 5)
			w.rejected = true
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("route not accepted", time.Minute)
			w.rejected = false
			w.tick("route accepted", time.Second)
		},
		"canary-stalled-then-recovers": func(w *world) {
			w.settle("install", 5)
			w.problem = &Problem{Reason: "ServiceNotFound", Message: `Service "web-canary" not found`}
			w.setImage("nginx:1.28")
			w.tick("service missing", time.Minute)
			w.problem = nil
			w.tick("service created", time.Second)
			w.tick("canary ready", time.Second)
		},
	}
	for name, script := range cases {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, canaryRollout(steps))
			script(w)
			w.golden(name)
		})
	}
}

// toQuarter installs the first revision and takes a new one through the setCanaryScale
// sequences' first steps: two Pods with no traffic, a pause, then 25 % of the traffic.
func toQuarter(w *world) {
	w.settle("install", 5)
	w.setImage("nginx:1.28")
	w.tick("new image", time.Second)
	w.tick("2 Pods ready", time.Second)
	w.tick("no traffic yet", 30*time.Second)
	w.tick("pause over", time.Second)
	w.tick("route at 25%", time.Second)
}

// TestCanaryScaleSequences walks setCanaryScale steps: Pods before any traffic, a canary
// smaller or larger than its weight gives it, back to the weight's share, and the paths users
// hit next: a scale of no Pods with weight on it, an abort and a fix, Pods that do not start.
func TestCanaryScaleSequences(t *testing.T) {
	steps := testutil.WithCanarySteps(
		testutil.ScaleCanaryTo(2), testutil.PauseFor("30s"), // two Pods, no traffic: smoke tests
		testutil.Weight(25), testutil.ScaleCanaryTo(1), testutil.PauseFor("1m"), // a quarter of the traffic on one Pod
		testutil.ScaleCanaryPercent(75), testutil.PauseUntilPromoted(),
		testutil.ScaleCanaryWithWeight(), testutil.Weight(50), testutil.Weight(100))
	cases := map[string]struct {
		steps  testutil.RolloutOption
		script func(w *world)
	}{
		"canary-scale-happy-path": {steps, func(w *world) {
			toQuarter(w)
			w.tick("scaled to 1", time.Minute)
			w.tick("pause over", time.Second)
			w.tick("scaled to 3", time.Second)
			w.tick("paused", time.Minute)
			w.annotate(kultav1alpha1.PromoteAnnotation)
			w.tick("promote", time.Second)
			w.tick("weight 50 ready", time.Second)
			w.tick("route at 50%", time.Second)
			w.tick("weight 100 ready", time.Second)
			w.tick("route at 100%", time.Second)
			w.tick("steady", time.Second)
		}},
		"canary-scale-abort-then-new-image": {steps, func(w *world) {
			toQuarter(w)
			w.tick("scaled to 1", time.Second)
			w.annotate(kultav1alpha1.AbortAnnotation)
			w.tick("abort", time.Second)
			w.setImage("nginx:1.29")
			w.tick("fixed image", time.Second)
			w.tick("2 fixed Pods ready", 30*time.Second)
			w.tick("pause over", time.Second)
			w.tick("route at 25%", time.Second)
		}},
		"canary-scale-pods-not-ready": {steps, func(w *world) {
			toQuarter(w)
			w.tick("scaled to 1", time.Minute)
			w.kubelet = false
			w.tick("pause over", time.Second)
			w.tick("3 Pods wanted", 5*time.Minute)
			w.tick("still 1 ready", 5*time.Minute)
			w.tick("deadline passed", 31*time.Second)
			w.tick("scaled down", time.Second)
		}},
		// Without setCanaryScale, spec.replicas 0 moves the weights as it always did.
		"canary-zero-replicas-without-scale": {testutil.WithCanarySteps(testutil.Weight(20), testutil.Weight(100)), func(w *world) {
			w.ro.Spec.Replicas = ptr.To[int32](0)
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("route at 20%", time.Second)
			w.tick("route at 100%", time.Second)
			w.tick("promoted", time.Second)
		}},
		"canary-scale-zero-holds-traffic": {testutil.WithCanarySteps(testutil.ScaleCanaryTo(0), testutil.Weight(20), testutil.Weight(100)), func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("no Pods for 20%", 5*time.Minute)
			w.tick("still none", 5*time.Minute)
			w.tick("deadline passed", time.Second)
		}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, canaryRollout(c.steps))
			c.script(w)
			w.golden(name)
		})
	}
}

func TestCanaryWithoutRoutingScalesByRatio(t *testing.T) {
	ro := canaryRollout(testutil.WithCanarySteps(testutil.Weight(25), testutil.PauseFor("1m"), testutil.Weight(75), testutil.PauseFor("1m")))
	ro.Spec.Strategy.Canary.TrafficRouting = nil
	w := newWorld(t, ro)
	w.settle("install", 5)
	w.setImage("nginx:1.28")
	w.tick("new image", time.Second)
	w.tick("canary ready", time.Second)
	w.tick("stable shrinks", time.Minute)
	w.tick("weight 75", time.Second)
	w.tick("canary ready", time.Second)
	w.tick("stable shrinks", time.Minute)
	w.tick("finish", time.Second)
	w.tick("promoted", time.Second)
	w.golden("canary-no-routing")
}

func TestBlueGreenSequences(t *testing.T) {
	cases := map[string]struct {
		opt    func(*kultav1alpha1.BlueGreenStrategy)
		script func(w *world)
	}{
		"bluegreen-manual": {
			opt: func(*kultav1alpha1.BlueGreenStrategy) {},
			script: func(w *world) {
				w.settle("install", 5)
				w.setImage("nginx:1.28")
				w.tick("new image", time.Second)
				w.tick("preview ready", time.Minute)
				w.tick("waiting", time.Second)
				w.annotate(kultav1alpha1.PromoteAnnotation)
				w.tick("promote", 30*time.Second)
				w.tick("delay over", time.Second)
			},
		},
		"bluegreen-auto": {
			opt: func(bg *kultav1alpha1.BlueGreenStrategy) {
				bg.AutoPromotionEnabled = ptr.To(true)
				bg.AutoPromotionSeconds = ptr.To[int32](60)
				bg.ScaleDownDelaySeconds = ptr.To[int32](10)
			},
			script: func(w *world) {
				w.settle("install", 5)
				w.setImage("nginx:1.28")
				w.tick("new image", time.Second)
				w.tick("preview ready", time.Minute)
				w.tick("auto promotion", 10*time.Second)
				w.tick("delay over", time.Second)
			},
		},
		"bluegreen-abort": {
			opt: func(*kultav1alpha1.BlueGreenStrategy) {},
			script: func(w *world) {
				w.settle("install", 5)
				w.setImage("nginx:1.28")
				w.tick("new image", time.Second)
				w.tick("preview ready", time.Second)
				w.annotate(kultav1alpha1.AbortAnnotation)
				w.tick("abort", 30*time.Second)
				w.tick("delay over", time.Second)
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ro := canaryRollout(testutil.WithBlueGreen(tc.opt))
			w := newWorld(t, ro)
			tc.script(w)
			w.golden(name)
		})
	}
}

func TestABTestingSequences(t *testing.T) {
	cases := map[string]func(w *world){
		"abtesting-conclude-and-promote": func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("variant B ready", time.Hour)
			w.annotate(kultav1alpha1.ConcludeExperimentAnnotation)
			w.tick("conclude", time.Second)
			w.annotate(kultav1alpha1.PromoteAnnotation)
			w.tick("promote", time.Second)
			w.tick("steady", time.Second)
		},
		"abtesting-new-image-mid-experiment": func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("variant B ready", time.Minute)
			w.slow["rev3"] = true
			w.setImage("nginx:1.29")
			w.tick("newer image", 10*time.Second)
			w.tick("new B starting", 10*time.Second)
			w.slow["rev3"] = false
			w.tick("new B ready", time.Second)
			w.tick("experimenting", 30*time.Second)
			w.tick("old B gone", time.Second)
		},
		"abtesting-max-duration": func(w *world) {
			w.ro.Spec.Strategy.ABTesting.MaxDuration = ptr.To[kultav1alpha1.Duration]("1d")
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("variant B ready", 24*time.Hour)
			w.tick("max duration", time.Second)
		},
		"abtesting-significance-b-wins": func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("variant B ready", time.Hour)
			w.ro.Status.ABExperiment.Winner = kultav1alpha1.VariantB
			w.ro.Status.ABExperiment.Message = "error-rate: B is better"
			w.tick("B significantly better", time.Second)
			w.tick("waiting for promotion", time.Second)
			w.annotate(kultav1alpha1.PromoteAnnotation)
			w.tick("promote", time.Second)
		},
		"abtesting-variant-a-wins": func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("variant B ready", time.Minute)
			w.ro.Status.ABExperiment.ConcludedAt = ptr.To(w.ro.Status.ABExperiment.StartedAt)
			w.ro.Status.ABExperiment.Winner = kultav1alpha1.VariantA
			w.tick("A won", 30*time.Second)
			w.tick("delay over", time.Second)
		},
	}
	for name, script := range cases {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, canaryRollout(testutil.WithABTesting()))
			w.ro.Spec.Strategy.ABTesting.TrafficRouting = &kultav1alpha1.TrafficRouting{GatewayAPI: &kultav1alpha1.GatewayAPIRouting{HTTPRoute: "web"}}
			script(w)
			w.golden(name)
		})
	}
}

func TestSimpleSequences(t *testing.T) {
	cases := map[string]func(w *world){
		"simple-rolling-update": func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			for i := range 8 {
				w.tick(fmt.Sprintf("roll %d", i), time.Second)
			}
		},
		"simple-progress-deadline": func(w *world) {
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.kubelet = false
			w.tick("new image", 10*time.Minute)
			w.tick("deadline passed", 31*time.Second)
			w.tick("scaled down", time.Second)
		},
	}
	for name, script := range cases {
		t.Run(name, func(t *testing.T) {
			ro := canaryRollout(testutil.WithSimple(nil))
			ro.Spec.MaxSurge = nil
			w := newWorld(t, ro)
			script(w)
			w.golden(name)
		})
	}
}

func TestCanaryReplicas(t *testing.T) {
	for _, tc := range []struct{ total, weight, want int32 }{
		{4, 0, 0}, {4, 1, 1}, {4, 20, 1}, {4, 25, 1}, {4, 26, 2}, {4, 50, 2}, {4, 100, 4},
		{10, 33, 4}, {1, 1, 1}, {0, 50, 0}, {3, 99, 3},
	} {
		if got := canaryReplicas(tc.total, tc.weight); got != tc.want {
			t.Errorf("canaryReplicas(%d, %d) = %d, want %d", tc.total, tc.weight, got, tc.want)
		}
	}
}

func TestHistoryBeyondLimitIsDeleted(t *testing.T) {
	ro := canaryRollout(testutil.WithCanarySteps(testutil.Weight(100)))
	ro.Spec.RevisionHistoryLimit = ptr.To[int32](1)
	w := newWorld(t, ro)
	w.settle("install", 5)
	for i, image := range []string{"nginx:1.28", "nginx:1.29", "nginx:1.30"} {
		w.setImage(image)
		w.settle(fmt.Sprintf("image %d", i), 5)
		w.tick("scale-down delay", 31*time.Second)
		w.tick("scale down", time.Second)
	}
	w.tick("history trimmed", time.Second)
	var names []string
	for h := range w.revs {
		names = append(names, w.names[h])
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "rev3,rev4" {
		t.Errorf("revisions left %v, want the stable rev4 and one old (rev3)", names)
	}
}

func withAnalysis(policy kultav1alpha1.FailurePolicy) testutil.RolloutOption {
	return func(ro *kultav1alpha1.Rollout) {
		a := &kultav1alpha1.Analysis{
			FailurePolicy:  policy,
			WarmupDuration: ptr.To[kultav1alpha1.Duration]("10s"),
			Metrics: []kultav1alpha1.Metric{{
				Name: "error-rate", Threshold: "5", Interval: ptr.To[kultav1alpha1.Duration]("30s"),
			}},
		}
		switch s := ro.Spec.Strategy; {
		case s.Canary != nil:
			s.Canary.Analysis = a
		case s.BlueGreen != nil:
			s.BlueGreen.Analysis = a
		case s.Simple != nil:
			s.Simple.Analysis = a
		}
	}
}

func TestAnalysisSequences(t *testing.T) {
	steps := testutil.WithCanarySteps(testutil.Weight(20), testutil.PauseFor("30s"), testutil.Weight(100))
	cases := map[string]struct {
		ro     *kultav1alpha1.Rollout
		script func(w *world)
	}{
		"canary-analysis-pass": {canaryRollout(steps, withAnalysis(kultav1alpha1.FailurePolicyRollback)), func(w *world) {
			w.verdict = kultav1alpha1.VerdictPass
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary ready", 10*time.Second)
			w.tick("warm-up over", time.Second)
			w.tick("pause, warming up", 10*time.Second)
			w.tick("pause, analysed", 30*time.Second)
			w.tick("pause over", time.Second)
			w.tick("weight 100 ready", 10*time.Second)
			w.tick("analysed", time.Second)
			w.tick("promoted", time.Second)
		}},
		"canary-analysis-fail-rollback": {canaryRollout(steps, withAnalysis(kultav1alpha1.FailurePolicyRollback)), func(w *world) {
			w.verdict = kultav1alpha1.VerdictPass
			w.settle("install", 5)
			w.verdict = kultav1alpha1.VerdictFail
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary ready", 10*time.Second)
			w.tick("analysis fails", 30*time.Second)
			w.tick("scaled down", time.Second)
		}},
		"canary-analysis-rollback-then-new-image": {canaryRollout(steps, withAnalysis(kultav1alpha1.FailurePolicyRollback)), func(w *world) {
			w.verdict = kultav1alpha1.VerdictPass
			w.settle("install", 5)
			w.verdict = kultav1alpha1.VerdictFail
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary ready", 10*time.Second)
			w.tick("analysis fails", 5*time.Second)
			w.verdict = kultav1alpha1.VerdictPass
			w.setImage("nginx:1.29")
			w.tick("fixed image", time.Second)
			w.tick("fixed canary ready", 10*time.Second)
			w.tick("warm-up over", time.Second)
			w.tick("pause, warming up", 10*time.Second)
			w.tick("pause, analysed", 30*time.Second)
			w.tick("pause over", time.Second)
			w.tick("weight 100 ready", 10*time.Second)
			w.tick("analysed", time.Second)
			w.tick("promoted", time.Second)
		}},
		"canary-analysis-fail-pause": {canaryRollout(steps, withAnalysis(kultav1alpha1.FailurePolicyPause)), func(w *world) {
			w.settle("install", 5)
			w.verdict = kultav1alpha1.VerdictFail
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary ready", 10*time.Second)
			w.tick("analysis fails", time.Minute)
			w.tick("still paused", time.Second)
			w.annotate(kultav1alpha1.PromoteAnnotation)
			w.tick("promoted past it", time.Second)
		}},
		"canary-analysis-inconclusive": {canaryRollout(steps, withAnalysis(kultav1alpha1.FailurePolicyRollback)), func(w *world) {
			w.settle("install", 5)
			w.verdict = kultav1alpha1.VerdictInconclusive
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary ready", 10*time.Second)
			w.tick("no traffic", 30*time.Second)
			w.tick("still none", 30*time.Second)
			w.verdict = kultav1alpha1.VerdictPass
			w.tick("traffic arrives", time.Second)
		}},
		"canary-analysis-undecided-rollback": {canaryRollout(steps, withAnalysis(kultav1alpha1.FailurePolicyRollback)), func(w *world) {
			w.settle("install", 5)
			w.verdict = kultav1alpha1.VerdictInconclusive
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary ready", 10*time.Second)
			w.tick("no traffic", 5*time.Minute)
			w.tick("still none", 5*time.Minute)
			w.tick("deadline passed", 31*time.Second)
			w.tick("scaled down", time.Second)
		}},
		"canary-analysis-undecided-pause": {canaryRollout(steps, withAnalysis(kultav1alpha1.FailurePolicyPause)), func(w *world) {
			w.settle("install", 5)
			w.verdict = kultav1alpha1.VerdictInconclusive
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary ready", 10*time.Second)
			w.tick("no traffic", 10*time.Minute)
			w.tick("deadline passed", time.Minute)
			w.tick("held", time.Second)
			w.verdict = kultav1alpha1.VerdictPass
			w.tick("traffic arrives", time.Second)
			w.tick("pause over", 30*time.Second)
			w.tick("weight 100 ready", 10*time.Second)
		}},
		"canary-analysis-undecided-continue": {canaryRollout(steps, withAnalysis(kultav1alpha1.FailurePolicyContinue)), func(w *world) {
			w.settle("install", 5)
			w.verdict = kultav1alpha1.VerdictInconclusive
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary ready", 10*time.Second)
			w.tick("no traffic", 10*time.Minute)
			w.tick("deadline passed", time.Second)
			w.tick("pausing", 30*time.Second)
			w.tick("pause over", time.Second)
		}},
		"canary-no-analyzer": {canaryRollout(steps, withAnalysis(kultav1alpha1.FailurePolicyRollback)), func(w *world) {
			// No verdict ever arrives (no Prometheus configured): the wait is bounded too.
			w.settle("install", 5)
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("canary ready", 10*time.Second)
			w.tick("waiting", 10*time.Minute)
			w.tick("deadline passed", 31*time.Second)
			w.tick("scaled down", time.Second)
		}},
		"simple-rollback-slow-stable": {canaryRollout(testutil.WithSimple(nil), withAnalysis(kultav1alpha1.FailurePolicyRollback)), func(w *world) {
			// Stable's Pods take long to start again: the failed revision keeps serving until
			// they are available.
			w.settle("install", 5)
			w.verdict = kultav1alpha1.VerdictFail
			w.setImage("nginx:1.28")
			for i := range 8 {
				w.tick(fmt.Sprintf("roll %d", i), time.Second)
			}
			w.slow["rev1"] = true
			w.tick("warm-up over", 10*time.Second)
			w.tick("analysis fails", 30*time.Second)
			w.tick("stable starting", 30*time.Second)
			w.tick("stable still starting", 30*time.Second)
			if n := strings.Count(w.ro.Status.Message, "keeps"); n != 1 {
				w.t.Errorf("while stable starts, the message says once why the failed revision stays; it says so %d times: %s", n, w.ro.Status.Message)
			}
			w.slow["rev1"] = false
			w.tick("stable ready", time.Second)
			w.tick("failed revision gone", time.Second)
			if strings.Contains(w.ro.Status.Message, "keeps") {
				w.t.Errorf("message %q still explains a wait that is over", w.ro.Status.Message)
			}
		}},
		"bluegreen-analysis-fail-rollback": {canaryRollout(testutil.WithBlueGreen(func(bg *kultav1alpha1.BlueGreenStrategy) {
			bg.AutoPromotionEnabled = ptr.To(true)
		}), withAnalysis(kultav1alpha1.FailurePolicyRollback)), func(w *world) {
			w.settle("install", 5)
			w.verdict = kultav1alpha1.VerdictFail
			w.setImage("nginx:1.28")
			w.tick("new image", time.Second)
			w.tick("preview ready", 10*time.Second)
			w.tick("analysis fails", 30*time.Second)
			w.tick("scaled down", time.Second)
		}},
		"simple-analysis-fail-rollback": {canaryRollout(testutil.WithSimple(nil), withAnalysis(kultav1alpha1.FailurePolicyRollback)), func(w *world) {
			w.settle("install", 5)
			w.verdict = kultav1alpha1.VerdictFail
			w.setImage("nginx:1.28")
			for i := range 8 {
				w.tick(fmt.Sprintf("roll %d", i), time.Second)
			}
			w.tick("warm-up over", 10*time.Second)
			w.tick("analysis fails", 30*time.Second)
			w.tick("scaled down", time.Second)
			w.tick("old back", time.Second)
		}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, tc.ro)
			tc.script(w)
			w.golden(name)
		})
	}
}

func TestAnalysisDecisionsCarryEvidence(t *testing.T) {
	w := newWorld(t, canaryRollout(testutil.WithCanarySteps(testutil.Weight(20), testutil.Weight(100)), withAnalysis(kultav1alpha1.FailurePolicyRollback)))
	w.settle("install", 5)
	w.verdict = kultav1alpha1.VerdictFail
	w.setImage("nginx:1.28")
	w.tick("new image", time.Second)
	w.tick("canary ready", 10*time.Second)
	w.tick("analysis fails", time.Second)
	decisions := w.ro.Status.Decisions
	last := decisions[len(decisions)-1]
	if last.Action != kultav1alpha1.ActionRollback || last.Reason != "AnalysisFailed" {
		t.Fatalf("last decision %s/%s, want Rollback/AnalysisFailed", last.Action, last.Reason)
	}
	snap, ok := last.Metrics["error-rate"]
	if !ok || snap.Value != "12.5" || snap.Threshold == nil || *snap.Threshold != "5" || snap.Passed {
		t.Errorf("decision evidence %+v, want error-rate 12.5 against 5, failed", last.Metrics)
	}
}

// TestOnePromotionEndsOnePause checks that a promote annotation ends only the pause it was set
// for, even when the next pause is reached in the same reconcile.
func TestOnePromotionEndsOnePause(t *testing.T) {
	ro := canaryRollout(testutil.WithReplicas(2), testutil.WithCanarySteps(
		testutil.Weight(25), testutil.PauseUntilPromoted(), testutil.Weight(50), testutil.PauseUntilPromoted(), testutil.Weight(75)))
	ro.Spec.Strategy.Canary.TrafficRouting = nil
	w := newWorld(t, ro)
	w.settle("install", 5)
	w.setImage("nginx:1.28")
	w.tick("new image", time.Second)
	w.tick("paused at 1", time.Second)
	w.annotate(kultav1alpha1.PromoteAnnotation)
	w.tick("promote", time.Second)
	if got := ptr.Deref(w.ro.Status.CurrentStepIndex, -1); got != 3 {
		t.Fatalf("after one promotion the canary is at step %d, want 3 (the next pause)", got)
	}
	if w.ro.Status.Phase != kultav1alpha1.PhasePaused {
		t.Errorf("phase %s, want Paused", w.ro.Status.Phase)
	}
}
