package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testutil"
)

const (
	// demoNamespace is where objects without a namespace go.
	demoNamespace = "default"
	// goodUpdateImage is the healthy update.
	goodUpdateImage = "nginx:1.28"
	// phaseTimeout bounds each wait for the Rollout.
	phaseTimeout = 3 * time.Minute
)

// phaseResult is what one phase of the demo showed, for the summary.
type phaseResult struct {
	title    string
	outcome  string
	took     time.Duration
	weights  []string
	analysis []string // the metric checks behind the decisions, one line per metric
	decision *kultav1alpha1.Decision
	notes    []string
}

// scenario plays the three phases on a started world.
type scenario struct {
	w       *world
	obs     *observer
	results []phaseResult
}

// play creates the application, updates it to a healthy image and then to badImage, and
// returns what each phase showed and the objects the provider moved the traffic with (empty
// when the demo did not get as far as reading them). It fails when KULTA does not complete the
// first two or does not roll the third back because of its analysis.
func play(ctx context.Context, w *world) (results []phaseResult, via string, err error) {
	s := &scenario{w: w}
	for _, phase := range []func(context.Context) error{s.create, s.updateGood, s.updateBad, s.showPlugin} {
		if err = phase(ctx); err != nil {
			break
		}
	}
	if s.obs != nil {
		via = s.obs.traffic.String()
	}
	return s.results, via, err
}

// create applies the manifests and waits until the first revision is Completed.
func (s *scenario) create(ctx context.Context) error {
	manifest := s.w.provider.manifest
	objs, err := testutil.DecodeManifests(filepath.Join(s.w.root, manifest))
	if err != nil {
		return fmt.Errorf("reading the demo's manifests: %w", err)
	}
	s.banner("1. First release: kubectl apply -f %s", manifest)
	began := time.Now()
	var rollout client.ObjectKey
	cl := s.w.cluster.Client()
	for _, obj := range objs {
		if obj.GetNamespace() == "" {
			obj.SetNamespace(demoNamespace)
		}
		if err := cl.Create(ctx, obj); err != nil {
			return fmt.Errorf("creating %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
		s.w.out.logf("  %s/%s created", strings.ToLower(obj.GetKind()), obj.GetName())
		if obj.GetKind() == "Rollout" {
			rollout = client.ObjectKeyFromObject(obj)
		}
	}
	if err := s.newObserver(ctx, rollout); err != nil {
		return err
	}
	snap, err := s.obs.waitFor(ctx, phaseTimeout, "complete its first revision", completed(1, ""))
	if err != nil {
		return err
	}
	st := snap.rollout.Status
	s.results = append(s.results, phaseResult{
		title: "First release, " + image(snap.rollout), outcome: "Completed", took: time.Since(began),
		weights: s.obs.weights, decision: lastDecision(snap.rollout, decisionMark{}),
		notes: []string{fmt.Sprintf("revision %s is stable with %d ready Pods; no canary steps for a first release", st.StablePodTemplateHash, st.ReadyReplicas)},
	})
	return nil
}

// newObserver sets up the observer of the Rollout key and of the objects its provider splits
// the traffic with.
func (s *scenario) newObserver(ctx context.Context, key client.ObjectKey) error {
	p := s.w.provider
	if key.Name == "" {
		return fmt.Errorf("%s has no Rollout", p.manifest)
	}
	ro := &kultav1alpha1.Rollout{}
	if err := s.w.cluster.Client().Get(ctx, key, ro); err != nil {
		return fmt.Errorf("reading the Rollout %s from %s: %w", key, p.manifest, err)
	}
	traffic, err := p.split(ro)
	if err != nil {
		return fmt.Errorf("%s does not fit the %s provider: %w", p.manifest, p.name, err)
	}
	s.obs = &observer{client: s.w.cluster.Client(), out: s.w.out, rollout: key, traffic: traffic}
	s.w.out.logf("KULTA's %s provider moves the traffic through %s", p.controllerName, traffic)
	return nil
}

// updateGood moves the Rollout to a healthy image and waits until KULTA has completed it.
func (s *scenario) updateGood(ctx context.Context) error {
	before, err := s.obs.look(ctx)
	if err != nil {
		return err
	}
	oldStable := before.rollout.Status.StablePodTemplateHash
	s.banner("2. A healthy update: image %s", goodUpdateImage)
	s.obs.resetWeights(before)
	began := time.Now()
	mark := markDecisions(before.rollout, began)
	generation, err := s.setImage(ctx, goodUpdateImage)
	if err != nil {
		return err
	}
	snap, err := s.obs.waitFor(ctx, phaseTimeout, "complete the update", completed(generation, oldStable))
	if err != nil {
		return err
	}
	s.results = append(s.results, phaseResult{
		title: "Update to " + goodUpdateImage, outcome: "Completed", took: time.Since(began),
		weights: s.obs.weights, analysis: analysisSummary(snap.rollout, mark), decision: lastDecision(snap.rollout, mark),
		notes: []string{fmt.Sprintf("revision %s replaced %s as stable", snap.rollout.Status.StablePodTemplateHash, oldStable)},
	})
	return nil
}

// updateBad moves the Rollout to badImage and waits until KULTA has rolled it back because its
// analysis failed, sent all traffic to stable and scaled the canary down.
func (s *scenario) updateBad(ctx context.Context) error {
	before, err := s.obs.look(ctx)
	if err != nil {
		return err
	}
	stable := before.rollout.Status.StablePodTemplateHash
	s.banner("3. A faulty update: image %s, whose Pods answer %g %% of requests with 500", badImage, badBehaviour.ErrorRatio*100)
	s.obs.resetWeights(before)
	began := time.Now()
	mark := markDecisions(before.rollout, began)
	generation, err := s.setImage(ctx, badImage)
	if err != nil {
		return err
	}
	snap, err := s.obs.waitFor(ctx, phaseTimeout, "fail and roll back", failed(generation))
	if err != nil {
		return err
	}
	rolledBack := time.Since(began)
	rollback := lastDecisionOf(snap.rollout, kultav1alpha1.ActionRollback, mark)
	if rollback == nil {
		return fmt.Errorf("the Rollout failed without a Rollback decision: %s", snap.rollout.Status.Message)
	}
	if got := snap.rollout.Status.StablePodTemplateHash; got != stable {
		return fmt.Errorf("stable revision %s after the rollback, want %s unchanged", got, stable)
	}
	canary := snap.rollout.Status.CurrentPodTemplateHash
	s.w.out.logf("KULTA rolled back on its own (%s: %s); it scales the failed canary down a little later", rollback.Reason, rollback.Message)
	failedAt := time.Now()
	if _, err := s.obs.waitFor(ctx, phaseTimeout, "send all traffic to stable and scale the canary down",
		func(ctx context.Context, snap *snapshot) (bool, error) {
			if snap.weights != "100/0" {
				return false, nil
			}
			replicas, err := s.obs.replicas(ctx, canary)
			return replicas == 0, err
		}); err != nil {
		return err
	}
	s.w.out.logf("  canary ReplicaSet of revision %s scaled to 0", canary)
	s.results = append(s.results, phaseResult{
		title: "Update to " + badImage, outcome: "Rolled back by KULTA", took: rolledBack,
		weights: s.obs.weights, decision: rollback, analysis: analysisSummary(snap.rollout, mark),
		notes: []string{
			fmt.Sprintf("all traffic back on revision %s, which stayed stable", stable),
			fmt.Sprintf("canary revision %s scaled to 0 Pods %s after the rollback", canary, roundDuration(time.Since(failedAt))),
		},
	})
	return nil
}

// showPlugin prints the Rollout as `kubectl kulta get rollout` shows it.
func (s *scenario) showPlugin(ctx context.Context) error {
	s.banner("The Rollout as `kubectl kulta get rollout %s` shows it", s.obs.rollout.Name)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.w.kubectlKulta, "get", "rollout", s.obs.rollout.Name,
		"--namespace", s.obs.rollout.Namespace, "--kubeconfig", s.w.cluster.Kubeconfig())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("running kubectl-kulta get rollout: %w\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		s.w.out.printf("    %s\n", line)
	}
	return nil
}

// banner announces a phase.
func (s *scenario) banner(format string, args ...any) {
	s.w.out.printf("\n")
	s.w.out.logf("== "+format+" ==", args...)
}

// setImage changes the Rollout's image, as the printed kubectl command would, and returns the
// new generation.
func (s *scenario) setImage(ctx context.Context, image string) (int64, error) {
	patch := fmt.Sprintf(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":%q}]`, image)
	s.w.out.logf("kubectl patch rollout.kulta.io %s --type json -p '%s'", s.obs.rollout.Name, patch)
	ro := &kultav1alpha1.Rollout{}
	ro.Namespace, ro.Name = s.obs.rollout.Namespace, s.obs.rollout.Name
	if err := s.w.cluster.Client().Patch(ctx, ro, client.RawPatch(types.JSONPatchType, []byte(patch))); err != nil {
		return 0, fmt.Errorf("setting the image of Rollout %s: %w", s.obs.rollout, err)
	}
	return ro.Generation, nil
}

// completed is done once the Rollout has observed generation and Completed on a stable revision
// other than notHash.
func completed(generation int64, notHash string) func(context.Context, *snapshot) (bool, error) {
	return func(_ context.Context, s *snapshot) (bool, error) {
		st := s.rollout.Status
		return st.ObservedGeneration >= generation && st.Phase == kultav1alpha1.PhaseCompleted &&
			st.StablePodTemplateHash != "" && st.StablePodTemplateHash != notHash &&
			st.StablePodTemplateHash == st.CurrentPodTemplateHash, nil
	}
}

// failed is done once the Rollout has observed generation and Failed.
func failed(generation int64) func(context.Context, *snapshot) (bool, error) {
	return func(_ context.Context, s *snapshot) (bool, error) {
		st := s.rollout.Status
		if st.ObservedGeneration >= generation && st.Phase == kultav1alpha1.PhaseCompleted {
			return false, errors.New("the faulty update Completed: KULTA should have rolled it back")
		}
		return st.ObservedGeneration >= generation && st.Phase == kultav1alpha1.PhaseFailed, nil
	}
}

// image is the Rollout's first container image.
func image(ro *kultav1alpha1.Rollout) string {
	if containers := ro.Spec.Template.Spec.Containers; len(containers) > 0 {
		return containers[0].Image
	}
	return "(no container)"
}

// decisionMark tells the decisions of a phase from those before it.
type decisionMark struct {
	// last is the latest decision before the phase; nil when there was none.
	last *kultav1alpha1.Decision
	// since is when the phase began.
	since time.Time
}

// markDecisions marks the end of ro's decisions before a phase that begins at since.
func markDecisions(ro *kultav1alpha1.Rollout, since time.Time) decisionMark {
	m := decisionMark{since: since}
	if n := len(ro.Status.Decisions); n > 0 {
		m.last = ro.Status.Decisions[n-1].DeepCopy()
	}
	return m
}

// after are ro's decisions after the mark: those that follow the marked decision or, when the
// bounded list has dropped it, those taken at or after the phase began (decisions carry whole
// seconds).
func (m decisionMark) after(ro *kultav1alpha1.Rollout) []kultav1alpha1.Decision {
	ds := ro.Status.Decisions
	if m.last == nil {
		return ds
	}
	for i := len(ds) - 1; i >= 0; i-- {
		d := ds[i]
		if d.Timestamp.Equal(&m.last.Timestamp) && d.Action == m.last.Action && d.Reason == m.last.Reason && d.Message == m.last.Message {
			return ds[i+1:]
		}
	}
	var out []kultav1alpha1.Decision
	for _, d := range ds {
		if !d.Timestamp.Time.Before(m.since.Truncate(time.Second)) {
			out = append(out, d)
		}
	}
	return out
}

// lastDecision is the latest decision after the mark, or nil.
func lastDecision(ro *kultav1alpha1.Rollout, mark decisionMark) *kultav1alpha1.Decision {
	ds := mark.after(ro)
	if len(ds) == 0 {
		return nil
	}
	return &ds[len(ds)-1]
}

// lastDecisionOf is the latest decision with action after the mark, or nil.
func lastDecisionOf(ro *kultav1alpha1.Rollout, action kultav1alpha1.DecisionAction, mark decisionMark) *kultav1alpha1.Decision {
	ds := mark.after(ro)
	for i := len(ds) - 1; i >= 0; i-- {
		if ds[i].Action == action {
			return &ds[i]
		}
	}
	return nil
}

// analysisSummary sums up, metric by metric, the checks behind the decisions after the mark,
// such as "error-rate passed 6 of 6 checks, values 0 to 0.4 (threshold 5)".
func analysisSummary(ro *kultav1alpha1.Rollout, mark decisionMark) []string {
	type tally struct {
		checks, passed, unreadable int
		low, high                  *float64
		threshold                  string
	}
	tallies := map[string]*tally{}
	for _, d := range mark.after(ro) {
		for name, m := range d.Metrics {
			t, seen := tallies[name]
			if !seen {
				t = &tally{}
				tallies[name] = t
			}
			t.checks++
			if m.Passed {
				t.passed++
			}
			if m.Threshold != nil {
				t.threshold = string(*m.Threshold)
			}
			value, err := m.Value.Float64()
			switch {
			case err != nil:
				t.unreadable++
			case t.low == nil:
				t.low, t.high = &value, &value
			default:
				t.low, t.high = ptr.To(min(*t.low, value)), ptr.To(max(*t.high, value))
			}
		}
	}
	var out []string
	for _, name := range slices.Sorted(maps.Keys(tallies)) {
		t := tallies[name]
		line := fmt.Sprintf("%s passed %d of %d checks", name, t.passed, t.checks)
		if t.low != nil {
			line += fmt.Sprintf(", values %g to %g", *t.low, *t.high)
		}
		if t.unreadable > 0 {
			line += fmt.Sprintf(", %d values not numbers", t.unreadable)
		}
		if t.threshold != "" {
			line += " (threshold " + t.threshold + ")"
		}
		out = append(out, line)
	}
	return out
}
