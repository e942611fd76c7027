package analysis

import (
	"errors"
	"math"
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
			msgContain: "more requests per arm would decide",
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
			name: "latency: B is faster",
			metrics: []ExperimentMetric{{Name: "latency-p95", Latency: true, Look: 3,
				HistA: histogramOf(0, 100, 400, 300, 200), HistB: histogramOf(0, 400, 400, 150, 50)}},
			winner: VariantB, reasons: []Reason{ReasonSignificant},
		},
		{
			name: "latency: the same distribution is not significant",
			metrics: []ExperimentMetric{{Name: "latency-p95", Latency: true, Look: 1,
				HistA: histogramOf(0, 100, 400, 300, 200), HistB: histogramOf(0, 100, 400, 300, 200)}},
			reasons: []Reason{ReasonNotSignificant},
		},
		{
			name: "latency: a later look needs stronger evidence",
			metrics: []ExperimentMetric{{Name: "latency-p95", Latency: true, Look: 50,
				HistA: histogramOf(0, 100, 400, 300, 200), HistB: histogramOf(0, 120, 400, 290, 190)}},
			reasons: []Reason{ReasonNotSignificant},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := EvaluateExperiment(tc.metrics, 0.95, 30)
			if err != nil {
				t.Fatal(err)
			}
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

// histogramOf is a latency histogram with bounds 50, 100, 200 and 400 ms and +Inf, from
// per-bucket counts.
func histogramOf(perBucket ...float64) HistogramMeasurement {
	bounds := []float64{0.05, 0.1, 0.2, 0.4, math.Inf(1)}
	h := Histogram{Bounds: bounds[:len(perBucket)], Cumulative: make([]float64, len(perBucket))}
	h.Bounds[len(perBucket)-1] = math.Inf(1)
	running := 0.0
	for i, n := range perBucket {
		running += n
		h.Cumulative[i] = running
	}
	return HistogramMeasurement{Outcome: OutcomeOK, Histogram: h}
}

// A confidence the API server would have rejected never yields a winner.
func TestEvaluateExperimentRejectsBadInput(t *testing.T) {
	metrics := []ExperimentMetric{{Name: "error-rate", A: proportion(500, 5000), B: proportion(100, 5000)}}
	for _, confidence := range []float64{math.NaN(), 0, -0.5, 1, 1.5, math.Inf(1)} {
		if got, err := EvaluateExperiment(metrics, confidence, 30); !errors.Is(err, ErrInvalidInput) || got.Winner != "" {
			t.Errorf("confidence %v: winner %q, error %v; want ErrInvalidInput and no winner", confidence, got.Winner, err)
		}
	}
	if _, err := EvaluateExperiment(metrics, 0.95, -1); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("negative minimum sample: error %v, want ErrInvalidInput", err)
	}
}
