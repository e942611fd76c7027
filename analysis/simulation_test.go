package analysis

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
	"github.com/false-systems/kulta/internal/testutil"
)

// The simulations drive the controller's own decision path, Checker.Analyze and Checker.Compare,
// look after look, against simWorld, a synthetic Prometheus whose counters grow by 1,000
// requests per arm per look. Each trial is one rollout; a decision is the first look at which
// the check fails (or, for an experiment, names a winner). Under the null hypothesis every
// decision is a false one, and its rate after 100 and after 1,000 looks must stay within alpha
// plus three standard errors. Run with -simulation.write to run the long variants and rewrite
// SIMULATION.md.

var simulationWrite = flag.Bool("simulation.write", false, "run the long simulations and write analysis/SIMULATION.md")

const (
	// pathAlpha is 1 - the default confidence level.
	pathAlpha = 1 - DefaultConfidence
	// simRequests is each arm's requests per look.
	simRequests = 1000
	// simInterval is the time between looks.
	simInterval = time.Minute
)

// simStart is when every simulated revision starts receiving traffic.
var simStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// simTrial is the result of one simulated rollout.
type simTrial struct {
	// decidedAt is the look of the first decision (a Fail, or a winner); 0 when none came.
	decidedAt int
	// passedAt is the first look with a Pass verdict; 0 when none came.
	passedAt int
	// reason is the reason of the decision.
	reason string
}

// simScenario is one decision path under one hypothesis.
type simScenario struct {
	name       string
	path       string
	hypothesis string
	// null is true when every decision is a false one.
	null bool
	// run simulates one rollout of at most looks looks.
	run func(t *testing.T, seed uint64, looks int) simTrial
}

// simArm is the traffic of one arm.
type simArm struct {
	errorRate float64
	median    float64 // latency in seconds; 0 for none
}

func (a simArm) load() simLoad {
	l := simLoad{Requests: simRequests, ErrorRate: a.errorRate}
	if a.median > 0 {
		l.Latency = latencyAround(a.median)
	}
	return l
}

// canaryScenario runs a canary whose analysis has the given metric, checked every look with
// the controller's Checker, stable getting as many requests as the canary.
func canaryScenario(metric kultav1alpha1.Metric, stable, canary simArm) func(*testing.T, uint64, int) simTrial {
	return func(t *testing.T, seed uint64, looks int) simTrial {
		world := newSimWorld(seed)
		c := &Checker{DefaultAddress: "http://simulation", NewQuerier: func(string) (Querier, error) { return world, nil }}
		ro := testutil.Rollout("sim", "web")
		ro.Status.StablePodTemplateHash, ro.Status.CurrentPodTemplateHash = "old", "new"
		ro.Status.CurrentStepIndex, ro.Status.CurrentWeight = ptr.To[int32](1), ptr.To[int32](50)
		ro.Status.Decisions = []kultav1alpha1.Decision{{Action: kultav1alpha1.ActionInitialize, Reason: "NewRevision", Timestamp: metav1.NewTime(simStart)}}
		spec := &kultav1alpha1.Analysis{Metrics: []kultav1alpha1.Metric{metric}}
		split := Split{CanaryPercent: 50, Known: true}
		var out simTrial
		for look := 1; look <= looks; look++ {
			now := simStart.Add(time.Duration(look) * simInterval)
			world.add("web-stable", now, stable.load())
			world.add("web-canary", now, canary.load())
			st, err := c.Analyze(context.Background(), ro, spec, split, now)
			if err != nil {
				t.Errorf("look %d: %v", look, err) // Errorf: trials may run on other goroutines
				return out
			}
			ro.Status.Analysis = st
			if st.Verdict == kultav1alpha1.VerdictPass && out.passedAt == 0 {
				out.passedAt = look
			}
			if st.Verdict == kultav1alpha1.VerdictFail {
				out.decidedAt, out.reason = look, st.Reason
				return out
			}
		}
		return out
	}
}

// experimentScenario runs an A/B experiment on one metric, compared every look with the
// controller's Checker.
func experimentScenario(metric string, a, b simArm) func(*testing.T, uint64, int) simTrial {
	return func(t *testing.T, seed uint64, looks int) simTrial {
		world := newSimWorld(seed)
		c := &Checker{DefaultAddress: "http://simulation", NewQuerier: func(string) (Querier, error) { return world, nil }}
		ro := testutil.Rollout("sim", "land", testutil.WithABTesting())
		ro.Status.StablePodTemplateHash, ro.Status.CurrentPodTemplateHash = "old", "new"
		ro.Status.ABExperiment = &kultav1alpha1.ABExperimentStatus{StartedAt: metav1.NewTime(simStart)}
		spec := &kultav1alpha1.ABAnalysis{Metrics: []kultav1alpha1.ABMetric{{Name: metric, Direction: kultav1alpha1.DirectionLower}}}
		for look := 1; look <= looks; look++ {
			now := simStart.Add(time.Duration(look) * simInterval)
			world.add("land-a", now, a.load())
			world.add("land-b", now, b.load())
			exp, err := c.Compare(context.Background(), ro, spec, now)
			if err != nil {
				t.Errorf("look %d: %v", look, err)
				return simTrial{}
			}
			ro.Status.ABExperiment = exp
			if exp.Winner != "" {
				return simTrial{decidedAt: look, reason: "Winner" + string(exp.Winner)}
			}
		}
		return simTrial{}
	}
}

// Metrics of the scenarios. The error-rate threshold is 5 %; with compareToStable alone in
// view, the threshold is set where it never decides.
var (
	errorRateThreshold = kultav1alpha1.Metric{Name: MetricErrorRate, Threshold: "5"}
	errorRateHarm      = kultav1alpha1.Metric{Name: MetricErrorRate, Threshold: "100", CompareToStable: true}
	latencyHarm        = kultav1alpha1.Metric{Name: MetricLatencyP95, Threshold: "100000", CompareToStable: true}
)

// simScenarios are the paths and hypotheses simulated, null ones first.
func simScenarios() []simScenario {
	return []simScenario{
		{name: "ab-null", path: "A/B experiment, error-rate", hypothesis: "A and B both 5 % errors", null: true,
			run: experimentScenario(MetricErrorRate, simArm{errorRate: 0.05}, simArm{errorRate: 0.05})},
		{name: "harm-null", path: "canary vs stable, error-rate", hypothesis: "canary and stable both 5 % errors", null: true,
			run: canaryScenario(errorRateHarm, simArm{errorRate: 0.05}, simArm{errorRate: 0.05})},
		{name: "threshold-boundary", path: "error-rate threshold 5 %", hypothesis: "canary at exactly 5 %", null: true,
			run: canaryScenario(errorRateThreshold, simArm{}, simArm{errorRate: 0.05})},
		{name: "threshold-good-side", path: "error-rate threshold 5 %", hypothesis: "canary at 4.9 %", null: true,
			run: canaryScenario(errorRateThreshold, simArm{}, simArm{errorRate: 0.049})},
		{name: "latency-null", path: "canary vs stable, latency-p95", hypothesis: "same latency (median 100 ms)", null: true,
			run: canaryScenario(latencyHarm, simArm{median: 0.1}, simArm{median: 0.1})},
		{name: "ab-latency-null", path: "A/B experiment, latency-p95", hypothesis: "same latency (median 100 ms)", null: true,
			run: experimentScenario(MetricLatencyP95, simArm{median: 0.1}, simArm{median: 0.1})},
		{name: "ab-worse", path: "A/B experiment, error-rate", hypothesis: "A 5 %, B 6 % errors (A wins)",
			run: experimentScenario(MetricErrorRate, simArm{errorRate: 0.05}, simArm{errorRate: 0.06})},
		{name: "ab-better", path: "A/B experiment, error-rate", hypothesis: "A 5 %, B 4 % errors (B wins)",
			run: experimentScenario(MetricErrorRate, simArm{errorRate: 0.05}, simArm{errorRate: 0.04})},
		{name: "harm-effect", path: "canary vs stable, error-rate", hypothesis: "stable 5 %, canary 6 % errors",
			run: canaryScenario(errorRateHarm, simArm{errorRate: 0.05}, simArm{errorRate: 0.06})},
		{name: "threshold-bad", path: "error-rate threshold 5 %", hypothesis: "canary at 10 % (fails)",
			run: canaryScenario(errorRateThreshold, simArm{}, simArm{errorRate: 0.10})},
		{name: "threshold-just-bad", path: "error-rate threshold 5 %", hypothesis: "canary at 6 % (fails)",
			run: canaryScenario(errorRateThreshold, simArm{}, simArm{errorRate: 0.06})},
		{name: "threshold-good", path: "error-rate threshold 5 %", hypothesis: "canary at 4 % (passes)",
			run: canaryScenario(errorRateThreshold, simArm{}, simArm{errorRate: 0.04})},
		{name: "latency-slower", path: "canary vs stable, latency-p95", hypothesis: "canary 30 % slower (median 130 ms against 100 ms)",
			run: canaryScenario(latencyHarm, simArm{median: 0.1}, simArm{median: 0.13})},
		{name: "ab-latency-faster", path: "A/B experiment, latency-p95", hypothesis: "B 20 % faster (median 80 ms against 100 ms)",
			run: experimentScenario(MetricLatencyP95, simArm{median: 0.1}, simArm{median: 0.08})},
	}
}

// simSummary is a scenario's trials.
type simSummary struct {
	scenario simScenario
	trials   []simTrial
	looks    int
}

// decidedBy is the share of trials decided by look n, and its standard error.
func (s simSummary) decidedBy(n int) (rate, se float64) {
	decided := 0
	for _, tr := range s.trials {
		if tr.decidedAt > 0 && tr.decidedAt <= n {
			decided++
		}
	}
	rate = float64(decided) / float64(len(s.trials))
	return rate, math.Sqrt(rate * (1 - rate) / float64(len(s.trials)))
}

// medianLook is the median look of the trials' decisions (or passes), among those that had one.
func (s simSummary) medianLook(pass bool) (int, int) {
	looks := []int{}
	for _, tr := range s.trials {
		at := tr.decidedAt
		if pass {
			at = tr.passedAt
		}
		if at > 0 {
			looks = append(looks, at)
		}
	}
	if len(looks) == 0 {
		return 0, 0
	}
	slices.Sort(looks)
	return looks[len(looks)/2], len(looks)
}

func runScenario(t *testing.T, sc simScenario, trials, looks int) simSummary {
	out := simSummary{scenario: sc, looks: looks, trials: make([]simTrial, trials)}
	for i := range trials {
		out.trials[i] = sc.run(t, uint64(i+1)*7919, looks)
	}
	return out
}

// TestSimulationFalseDecisions asserts that under the null hypothesis no decision path decides
// more often than alpha plus three standard errors, by 100 looks and by 1,000.
func TestSimulationFalseDecisions(t *testing.T) {
	trials, looks := 200, 1000
	if testing.Short() {
		trials, looks = 40, 100
	}
	for _, sc := range simScenarios() {
		if !sc.null {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			s := runScenario(t, sc, trials, looks)
			bound := pathAlpha + 3*math.Sqrt(pathAlpha*(1-pathAlpha)/float64(trials))
			for _, n := range []int{100, 1000} {
				if n > looks {
					continue
				}
				rate, _ := s.decidedBy(n)
				t.Logf("%s, %s: %.1f%% decided by look %d (%d trials)", sc.path, sc.hypothesis, 100*rate, n, trials)
				if rate > bound {
					t.Errorf("%s, %s: %.1f%% of %d trials decided by look %d, above alpha + 3 SE = %.1f%%",
						sc.path, sc.hypothesis, 100*rate, trials, n, 100*bound)
				}
			}
		})
	}
}

// TestSimulationPower asserts that the alternatives are decided, the right way, within the
// looks a canary lasts.
func TestSimulationPower(t *testing.T) {
	trials, looks := 40, 200
	if testing.Short() {
		trials, looks = 10, 100
	}
	want := map[string]struct {
		reason string
		rate   float64 // share decided by the last look, at least
		pass   bool    // judged on passes instead
	}{
		"ab-worse":          {"WinnerA", 0.9, false},
		"ab-better":         {"WinnerB", 0.9, false},
		"harm-effect":       {string(ReasonWorseThanStable), 0.9, false},
		"threshold-bad":     {string(ReasonThresholdExceeded), 1, false},
		"threshold-good":    {"", 0.9, true},
		"latency-slower":    {string(ReasonSlowerThanStable), 1, false},
		"ab-latency-faster": {"WinnerB", 1, false},
	}
	for _, sc := range simScenarios() {
		w, ok := want[sc.name]
		if !ok {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			s := runScenario(t, sc, trials, looks)
			if w.pass {
				_, passed := s.medianLook(true)
				for _, tr := range s.trials {
					if tr.decidedAt != 0 {
						t.Errorf("%s: a trial failed at look %d (%s)", sc.hypothesis, tr.decidedAt, tr.reason)
					}
				}
				if float64(passed) < w.rate*float64(trials) {
					t.Errorf("%s: %d of %d trials passed in %d looks, want at least %.0f%%", sc.hypothesis, passed, trials, looks, 100*w.rate)
				}
				return
			}
			decided := 0
			for _, tr := range s.trials {
				if tr.decidedAt == 0 {
					continue
				}
				decided++
				if tr.reason != w.reason {
					t.Errorf("%s: decided %s at look %d, want %s", sc.hypothesis, tr.reason, tr.decidedAt, w.reason)
				}
			}
			if float64(decided) < w.rate*float64(trials) {
				t.Errorf("%s: %d of %d trials decided in %d looks, want at least %.0f%%", sc.hypothesis, decided, trials, looks, 100*w.rate)
			}
		})
	}
}

// TestSimulationWrite runs every scenario at length and writes SIMULATION.md; only with
// -simulation.write.
func TestSimulationWrite(t *testing.T) {
	if !*simulationWrite {
		t.Skip("run with -simulation.write to rewrite SIMULATION.md")
	}
	const trials, looks = 1000, 1000
	var b strings.Builder
	fmt.Fprintf(&b, "# Simulated decisions\n\n")
	fmt.Fprintf(&b, "Generated by `go test ./analysis -run TestSimulationWrite -simulation.write -timeout 2h` "+
		"(analysis/simulation_test.go); do not edit by hand.\n\n")
	fmt.Fprintf(&b, "Each trial is one rollout driven through the controller's own decision path (`Checker.Analyze`, "+
		"`Checker.Compare`) against a synthetic Prometheus: %d requests per arm per look, one look a minute, "+
		"%d looks at most, %d seeded trials per row, default settings (confidence 0.95, latency tolerance 10 %%, "+
		"Prometheus' default histogram buckets, log-normal latencies with sigma 0.5). A decision is the first "+
		"failing check, or the first winner of an experiment; under the null hypothesis every decision is a false one. "+
		"The standard error of a rate r is sqrt(r(1-r)/%d).\n\n", simRequests, looks, trials, trials)
	fmt.Fprintf(&b, "| path | hypothesis | decided by look 100 | decided by look 1,000 | median look of a decision | passed (median look) |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|\n")
	scenarios := simScenarios()
	summaries := make([]simSummary, len(scenarios))
	var wg sync.WaitGroup
	for i, sc := range scenarios {
		wg.Go(func() {
			summaries[i] = runScenario(t, sc, trials, looks)
			t.Logf("%s done", sc.name)
		})
	}
	wg.Wait()
	for _, s := range summaries {
		sc := s.scenario
		r100, se100 := s.decidedBy(100)
		r1000, se1000 := s.decidedBy(1000)
		median, n := s.medianLook(false)
		medianText := "-"
		if n > 0 {
			medianText = fmt.Sprintf("%d", median)
		}
		passMedian, passed := s.medianLook(true)
		passText := "-"
		if passed > 0 {
			passText = fmt.Sprintf("%.1f %% (%d)", 100*float64(passed)/float64(trials), passMedian)
		}
		kind := "alternative"
		if sc.null {
			kind = "null"
		}
		fmt.Fprintf(&b, "| %s | %s (%s) | %.1f %% ± %.1f | %.1f %% ± %.1f | %s | %s |\n",
			sc.path, sc.hypothesis, kind, 100*r100, 100*se100, 100*r1000, 100*se1000, medianText, passText)
	}
	if err := os.WriteFile("SIMULATION.md", []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
