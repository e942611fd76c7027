package analysis

import (
	"strings"
	"testing"
)

func proportion(events, trials int64) Measurement {
	return Measurement{Outcome: OutcomeOK, Proportion: true, Events: events, Samples: trials, HasSamples: true}
}

func TestEvaluateExperiment(t *testing.T) {
	cases := []struct {
		name       string
		metrics    []ExperimentMetric
		winner     Variant
		reasons    []Reason
		msgContain string
	}{
		{
			name:    "B has fewer errors",
			metrics: []ExperimentMetric{{Name: "error-rate", Direction: LowerIsBetter, A: proportion(500, 5000), B: proportion(100, 5000)}},
			winner:  VariantB, reasons: []Reason{ReasonSignificant},
		},
		{
			name:    "B has more errors: A wins at once",
			metrics: []ExperimentMetric{{Name: "error-rate", Direction: LowerIsBetter, A: proportion(100, 5000), B: proportion(500, 5000)}},
			winner:  VariantA, reasons: []Reason{ReasonSignificant},
		},
		{
			name:    "higher is better",
			metrics: []ExperimentMetric{{Name: "conversion", Direction: HigherIsBetter, A: proportion(100, 5000), B: proportion(500, 5000)}},
			winner:  VariantB, reasons: []Reason{ReasonSignificant},
		},
		{
			name:       "no difference: more requests needed",
			metrics:    []ExperimentMetric{{Name: "error-rate", Direction: LowerIsBetter, MinEffect: 0.01, A: proportion(50, 1000), B: proportion(52, 1000)}},
			reasons:    []Reason{ReasonNotSignificant},
			msgContain: "more requests per arm needed",
		},
		{
			name:    "below the minimum sample",
			metrics: []ExperimentMetric{{Name: "error-rate", A: proportion(1, 10), B: proportion(5, 10)}},
			reasons: []Reason{ReasonBelowMinSample},
		},
		{
			name:    "an arm without traffic",
			metrics: []ExperimentMetric{{Name: "error-rate", A: proportion(0, 0), B: proportion(5, 1000)}},
			reasons: []Reason{ReasonNoTraffic},
		},
		{
			name:    "latency is not a proportion",
			metrics: []ExperimentMetric{{Name: "latency-p95", A: Measurement{Outcome: OutcomeOK, Value: 120, Samples: 1000}, B: Measurement{Outcome: OutcomeOK, Value: 90, Samples: 1000}}},
			reasons: []Reason{ReasonNotProportion},
		},
		{
			name:    "significant but smaller than the effect that matters",
			metrics: []ExperimentMetric{{Name: "error-rate", MinEffect: 0.01, A: proportion(50000, 1000000), B: proportion(47000, 1000000)}},
			reasons: []Reason{ReasonBelowMinEffect},
		},
		{
			name: "B wins only when every metric agrees",
			metrics: []ExperimentMetric{
				{Name: "error-rate", A: proportion(500, 5000), B: proportion(100, 5000)},
				{Name: "timeouts", A: proportion(50, 5000), B: proportion(52, 5000)},
			},
			reasons: []Reason{ReasonSignificant, ReasonNotSignificant},
		},
		{
			name:    "an earlier look's smaller p-value is kept",
			metrics: []ExperimentMetric{{Name: "error-rate", A: proportion(50, 1000), B: proportion(52, 1000), PreviousP: 1e-6}},
			winner:  VariantA, reasons: []Reason{ReasonSignificant},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := EvaluateExperiment(tc.metrics, 0.95, 30)
			if got.Winner != tc.winner {
				t.Errorf("winner %q, want %q (%s)", got.Winner, tc.winner, got.Message)
			}
			if (got.Winner != "") != (got.Reason == "SignificanceReached") {
				t.Errorf("reason %q with winner %q", got.Reason, got.Winner)
			}
			for i, want := range tc.reasons {
				if got.Metrics[i].Reason != want {
					t.Errorf("metric %d reason %q, want %q: %s", i, got.Metrics[i].Reason, want, got.Metrics[i].Message)
				}
				if got.Metrics[i].P < 0 || got.Metrics[i].P > 1 || got.Metrics[i].AdjustedP < got.Metrics[i].P {
					t.Errorf("metric %d: p %v, adjusted %v", i, got.Metrics[i].P, got.Metrics[i].AdjustedP)
				}
			}
			if tc.msgContain != "" && !strings.Contains(got.Message, tc.msgContain) {
				t.Errorf("message %q lacks %q", got.Message, tc.msgContain)
			}
		})
	}
}
