package main

import (
	"bytes"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

// at is a whole second after a fixed time, as decisions carry their timestamps.
func at(second int) metav1.Time {
	return metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC).Add(time.Duration(second) * time.Second))
}

// decision is a decision at second with action and, when value is set, an error-rate snapshot.
func decision(second int, action kultav1alpha1.DecisionAction, value string, passed bool) kultav1alpha1.Decision {
	d := kultav1alpha1.Decision{Timestamp: at(second), Action: action, Reason: string(action) + "Reason"}
	if value != "" {
		d.Metrics = map[string]kultav1alpha1.MetricSnapshot{"error-rate": {
			Value: kultav1alpha1.Decimal(value), Threshold: ptr.To(kultav1alpha1.Decimal("5")), Passed: passed,
		}}
	}
	return d
}

func rolloutWith(decisions ...kultav1alpha1.Decision) *kultav1alpha1.Rollout {
	return &kultav1alpha1.Rollout{Status: kultav1alpha1.RolloutStatus{Decisions: decisions}}
}

func actions(ds []kultav1alpha1.Decision) []kultav1alpha1.DecisionAction {
	var out []kultav1alpha1.DecisionAction
	for _, d := range ds {
		out = append(out, d.Action)
	}
	return out
}

func TestDecisionMarkAfter(t *testing.T) {
	previous := decision(10, kultav1alpha1.ActionComplete, "0", true)
	// The phase's first decision falls in the same second as the previous phase's last one.
	before := rolloutWith(decision(9, kultav1alpha1.ActionStepAdvance, "0", true), previous)
	mark := markDecisions(before, at(10).Add(300*time.Millisecond))
	cases := []struct {
		name string
		ro   *kultav1alpha1.Rollout
		mark decisionMark
		want []kultav1alpha1.DecisionAction
	}{{
		name: "after the marked decision, even in the same second",
		ro:   rolloutWith(before.Status.Decisions[0], previous, decision(10, kultav1alpha1.ActionInitialize, "", false), decision(16, kultav1alpha1.ActionRollback, "10", false)),
		mark: mark,
		want: []kultav1alpha1.DecisionAction{kultav1alpha1.ActionInitialize, kultav1alpha1.ActionRollback},
	}, {
		name: "the marked decision was dropped: by time",
		ro:   rolloutWith(decision(10, kultav1alpha1.ActionInitialize, "", false), decision(16, kultav1alpha1.ActionRollback, "10", false)),
		mark: mark,
		want: []kultav1alpha1.DecisionAction{kultav1alpha1.ActionInitialize, kultav1alpha1.ActionRollback},
	}, {
		name: "no decisions before the phase",
		ro:   rolloutWith(decision(1, kultav1alpha1.ActionComplete, "", false)),
		mark: decisionMark{},
		want: []kultav1alpha1.DecisionAction{kultav1alpha1.ActionComplete},
	}, {
		name: "nothing new",
		ro:   before,
		mark: mark,
		want: nil,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := actions(tc.mark.after(tc.ro)); !slices.Equal(got, tc.want) {
				t.Errorf("after: %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAnalysisSummary(t *testing.T) {
	ro := rolloutWith(
		decision(1, kultav1alpha1.ActionInitialize, "", false),
		decision(2, kultav1alpha1.ActionStepAdvance, "0", true),
		decision(3, kultav1alpha1.ActionPause, "0.5", true),
		decision(8, kultav1alpha1.ActionRollback, "10", false),
		decision(9, kultav1alpha1.ActionRollback, "not-a-number", false),
	)
	got := analysisSummary(ro, decisionMark{})
	want := []string{"error-rate passed 2 of 4 checks, values 0 to 10, 1 values not numbers (threshold 5)"}
	if !slices.Equal(got, want) {
		t.Errorf("analysisSummary: %q, want %q", got, want)
	}
	if got := analysisSummary(rolloutWith(), decisionMark{}); got != nil {
		t.Errorf("analysisSummary without decisions: %q, want nothing", got)
	}
}

func TestDescribe(t *testing.T) {
	ro := &kultav1alpha1.Rollout{
		Spec: kultav1alpha1.RolloutSpec{Strategy: kultav1alpha1.RolloutStrategy{Canary: &kultav1alpha1.CanaryStrategy{
			Steps: make([]kultav1alpha1.CanaryStep, 4),
		}}},
		Status: kultav1alpha1.RolloutStatus{
			Phase: kultav1alpha1.PhasePaused, CurrentStepIndex: ptr.To[int32](1), CurrentWeight: ptr.To[int32](20),
			StablePodTemplateHash: "aaa", CurrentPodTemplateHash: "bbb", Message: "Step 1: paused for 5s",
			Analysis: &kultav1alpha1.AnalysisStatus{Revision: "bbb", Verdict: kultav1alpha1.VerdictPass, Reason: "WithinThreshold",
				Metrics: []kultav1alpha1.MetricStatus{{Name: "error-rate", Value: ptr.To(kultav1alpha1.Decimal("0.5")),
					Threshold: ptr.To(kultav1alpha1.Decimal("5")), SampleSize: ptr.To[int64](120)}}},
		},
	}
	got := describe(&snapshot{rollout: ro, weights: "80/20"})
	want := "Paused       step 1/4  weight 20%  route stable/canary 80/20  stable aaa  canary bbb  " +
		"analysis Pass WithinThreshold [error-rate 0.5 (threshold 5), 120 requests]  | Step 1: paused for 5s"
	if got != want {
		t.Errorf("describe:\n got %q\nwant %q", got, want)
	}
}

func TestParseOptions(t *testing.T) {
	cases := []struct {
		name    string
		env     string
		args    []string
		want    int
		wantErr string
	}{
		{name: "default", want: defaultPrometheusPort},
		{name: "environment", env: "9191", want: 9191},
		{name: "flag over environment", env: "9191", args: []string{"--prometheus-port", "0"}, want: 0},
		{name: "environment not a number", env: "ninety", wantErr: prometheusPortEnv + `="ninety" is not a port number`},
		{name: "out of range", args: []string{"--prometheus-port", "-1"}, wantErr: "--prometheus-port -1 is not a port number"},
		{name: "stray argument", args: []string{"now"}, wantErr: `unexpected arguments ["now"]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(prometheusPortEnv, tc.env)
			t.Setenv(providerEnv, "")
			var stderr bytes.Buffer
			opts, err := parseOptions(tc.args, newConsole(&stderr))
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one saying %q", err, tc.wantErr)
			case tc.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.wantErr == "" && opts.prometheusPort != tc.want:
				t.Errorf("port %d, want %d", opts.prometheusPort, tc.want)
			}
		})
	}
}

func TestParseOptionsProvider(t *testing.T) {
	const accepted = "accepted values: gatewayapi, istio, nginx"
	cases := []struct {
		name    string
		env     string
		args    []string
		want    string // the provider's controller name
		wantErr string
	}{
		{name: "default", want: "gatewayAPI"},
		{name: "environment", env: "istio", want: "istio"},
		{name: "environment, the controller's spelling", env: "gatewayAPI", want: "gatewayAPI"},
		{name: "flag", args: []string{"--provider", "nginx"}, want: "nginx"},
		{name: "flag over environment", env: "istio", args: []string{"--provider=NGINX"}, want: "nginx"},
		{name: "environment unknown", env: "traefik",
			wantErr: providerEnv + `="traefik" is not a traffic provider the demo knows; ` + accepted},
		{name: "environment unknown, flag set", env: "linkerd", args: []string{"--provider", "istio"},
			wantErr: providerEnv + `="linkerd" is not a traffic provider`},
		{name: "flag unknown", env: "istio", args: []string{"--provider", "traefik"},
			wantErr: `--provider "traefik" is not a traffic provider the demo knows; ` + accepted},
		{name: "flag empty", args: []string{"--provider="}, wantErr: `--provider "" is not a traffic provider`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(prometheusPortEnv, "")
			t.Setenv(providerEnv, tc.env)
			var stderr bytes.Buffer
			opts, err := parseOptions(tc.args, newConsole(&stderr))
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one saying %q", err, tc.wantErr)
			case tc.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.wantErr == "" && opts.provider.controllerName != tc.want:
				t.Errorf("provider %q, want %q", opts.provider.controllerName, tc.want)
			}
		})
	}
}

// TestProvidersAreComplete: every provider has what the demo uses of it, and a manifest of its
// own.
func TestProvidersAreComplete(t *testing.T) {
	manifests := map[string]bool{}
	for _, p := range trafficProviders {
		if p.name == "" || p.controllerName == "" || p.title == "" || p.manifest == "" || p.resources == "" || p.dataPlane == "" || p.split == nil {
			t.Errorf("provider %+v misses a field", p)
		}
		if manifests[p.manifest] {
			t.Errorf("two providers apply %s", p.manifest)
		}
		manifests[p.manifest] = true
	}
	if p := mustProvider(t, defaultProvider); p.manifest != "examples/demo/web.yaml" {
		t.Errorf("the default provider applies %s, want examples/demo/web.yaml", p.manifest)
	}
}

func TestPrintSummaryNamesTheProvider(t *testing.T) {
	var buf bytes.Buffer
	out := newConsole(&buf)
	results := []phaseResult{{title: "Update to nginx:1.28", outcome: "Completed", took: 12 * time.Second,
		weights: []string{"100/0", "80/20", "50/50", "100/0"}}}
	printSummary(out, mustProvider(t, providerIstio), "VirtualService default/web, route primary", results, nil)
	want := "\nSummary (traffic moved by KULTA's istio provider, Istio: VirtualService default/web, route primary)\n" +
		"  1. Update to nginx:1.28: Completed in 12s\n" +
		"       route stable/canary weights: 100/0 -> 80/20 -> 50/50 -> 100/0\n"
	if got := buf.String(); got != want {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
	buf.Reset()
	printSummary(out, mustProvider(t, providerNGINX), "", nil, errors.New("no cluster"))
	if got := buf.String(); !strings.Contains(got, "Summary (traffic moved by KULTA's nginx provider, ingress-nginx)\n") ||
		!strings.Contains(got, "1. did not finish: no cluster") {
		t.Errorf("summary of a demo that ended early:\n%s", got)
	}
}

func TestListenPrometheusPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := taken.Close(); err != nil {
			t.Error(err)
		}
	}()
	port := taken.Addr().(*net.TCPAddr).Port
	l, err := listenPrometheusPort(port)
	if err == nil {
		closeErr := l.Close()
		t.Fatalf("listening on a taken port succeeded (closing it: %v)", closeErr)
	}
	for _, want := range []string{"127.0.0.1:" + strconv.Itoa(port) + " is already in use", "--prometheus-port", prometheusPortEnv} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
