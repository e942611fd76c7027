package analysis

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

var checkTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// okMeasurement is a usable error-rate measurement with the given value and sample count.
func okMeasurement(value float64, samples int64) Measurement {
	return Measurement{
		Metric: MetricErrorRate, Outcome: OutcomeOK, Value: value,
		Samples: samples, HasSamples: true, Window: time.Minute, At: checkTime,
	}
}

// failedMeasurement is a measurement without a value.
func failedMeasurement(outcome Outcome, err error) Measurement {
	return Measurement{Metric: MetricErrorRate, Outcome: outcome, Err: err, Window: time.Minute, At: checkTime}
}

func TestEvaluateThreshold(t *testing.T) {
	lower := ThresholdSpec{Metric: MetricErrorRate, Threshold: 5}
	higher := ThresholdSpec{Metric: "success-rate", Threshold: 99, Direction: HigherIsBetter}
	queryErr := errors.Join(ErrQuery, errors.New("connection refused"))
	tests := []struct {
		name        string
		spec        ThresholdSpec
		m           Measurement
		prev        CheckState
		wantResult  Result
		wantReason  Reason
		wantState   CheckState
		wantMessage []string
	}{
		{"within threshold", lower, okMeasurement(0.5, 2000), CheckState{},
			ResultPass, ReasonWithinThreshold, CheckState{LastChecked: checkTime},
			[]string{"error-rate", "0.5", "at most 5", "2000 samples", "within threshold"}},
		{"equal to threshold passes", lower, okMeasurement(5, 2000), CheckState{},
			ResultPass, ReasonWithinThreshold, CheckState{LastChecked: checkTime}, nil},
		{"zero errors with traffic passes", lower, okMeasurement(0, 150), CheckState{},
			ResultPass, ReasonWithinThreshold, CheckState{LastChecked: checkTime}, []string{"= 0 "}},
		{"zero errors pass a zero threshold", ThresholdSpec{Metric: MetricErrorRate}, okMeasurement(0, 150), CheckState{},
			ResultPass, ReasonWithinThreshold, CheckState{LastChecked: checkTime}, nil},
		{"pass resets failures and errors", lower, okMeasurement(1, 2000), CheckState{Failures: 2, Errors: 2},
			ResultPass, ReasonWithinThreshold, CheckState{LastChecked: checkTime}, nil},
		{"exceeded fails at once by default", lower, okMeasurement(10.02, 2000), CheckState{},
			ResultFail, ReasonThresholdExceeded, CheckState{Failures: 1, LastChecked: checkTime},
			[]string{"error-rate = 10.02", "at most 5", "2000 samples", "threshold exceeded"}},
		{"exceeded before failureThreshold is inconclusive",
			ThresholdSpec{Metric: MetricErrorRate, Threshold: 5, FailureThreshold: 3}, okMeasurement(10, 2000), CheckState{Failures: 1},
			ResultInconclusive, ReasonThresholdExceeded, CheckState{Failures: 2, LastChecked: checkTime},
			[]string{"2 of 3 consecutive failing checks"}},
		{"exceeded at failureThreshold fails",
			ThresholdSpec{Metric: MetricErrorRate, Threshold: 5, FailureThreshold: 3}, okMeasurement(10, 2000), CheckState{Failures: 2},
			ResultFail, ReasonThresholdExceeded, CheckState{Failures: 3, LastChecked: checkTime},
			[]string{"3 consecutive check(s)"}},
		{"higher is better passes above", higher, okMeasurement(99.5, 500), CheckState{},
			ResultPass, ReasonWithinThreshold, CheckState{LastChecked: checkTime}, []string{"at least 99"}},
		{"higher is better fails below", higher, okMeasurement(98, 500), CheckState{},
			ResultFail, ReasonThresholdExceeded, CheckState{Failures: 1, LastChecked: checkTime}, []string{"success-rate = 98", "at least 99"}},
		{"below min sample never passes",
			ThresholdSpec{Metric: MetricErrorRate, Threshold: 5, MinSampleSize: 30}, okMeasurement(0, 12), CheckState{Failures: 1},
			ResultInconclusive, ReasonBelowMinSample, CheckState{Failures: 1, LastChecked: checkTime},
			[]string{"12 samples", "minimum sample size 30"}},
		{"below min sample does not fail either",
			ThresholdSpec{Metric: MetricErrorRate, Threshold: 5, MinSampleSize: 30}, okMeasurement(50, 12), CheckState{},
			ResultInconclusive, ReasonBelowMinSample, CheckState{LastChecked: checkTime}, nil},
		{"at min sample counts",
			ThresholdSpec{Metric: MetricErrorRate, Threshold: 5, MinSampleSize: 30}, okMeasurement(1, 30), CheckState{},
			ResultPass, ReasonWithinThreshold, CheckState{LastChecked: checkTime}, nil},
		{"unknown sample count with a minimum",
			ThresholdSpec{Metric: "custom", Threshold: 5, MinSampleSize: 30},
			Measurement{Metric: "custom", Outcome: OutcomeOK, Value: 1, At: checkTime}, CheckState{},
			ResultInconclusive, ReasonBelowMinSample, CheckState{LastChecked: checkTime}, []string{"sample count unknown"}},
		{"unknown sample count without a minimum passes",
			ThresholdSpec{Metric: "custom", Threshold: 5},
			Measurement{Metric: "custom", Outcome: OutcomeOK, Value: 1, At: checkTime}, CheckState{},
			ResultPass, ReasonWithinThreshold, CheckState{LastChecked: checkTime}, nil},
		{"no traffic", lower, failedMeasurement(OutcomeNoTraffic, ErrNoTraffic), CheckState{Failures: 1, Errors: 2},
			ResultInconclusive, ReasonNoTraffic, CheckState{Failures: 1, LastChecked: checkTime}, []string{"no traffic"}},
		{"no data", lower, failedMeasurement(OutcomeNoData, ErrNoData), CheckState{},
			ResultInconclusive, ReasonNoData, CheckState{LastChecked: checkTime}, []string{"no data"}},
		{"invalid value outcome", lower, failedMeasurement(OutcomeInvalidValue, ErrInvalidValue), CheckState{},
			ResultInconclusive, ReasonInvalidValue, CheckState{LastChecked: checkTime}, nil},
		{"NaN value despite OK", lower, okMeasurement(math.NaN(), 100), CheckState{},
			ResultInconclusive, ReasonInvalidValue, CheckState{LastChecked: checkTime}, []string{"NaN"}},
		{"infinite value despite OK", lower, okMeasurement(math.Inf(1), 100), CheckState{},
			ResultInconclusive, ReasonInvalidValue, CheckState{LastChecked: checkTime}, nil},
		{"measurement never gathered", lower, Measurement{}, CheckState{},
			ResultInconclusive, ReasonNoData, CheckState{}, []string{"not gathered"}},
		{"first query error", lower, failedMeasurement(OutcomeQueryError, queryErr), CheckState{Failures: 1},
			ResultInconclusive, ReasonQueryError, CheckState{Failures: 1, Errors: 1, LastChecked: checkTime},
			[]string{"query error 1 of 3", "connection refused"}},
		{"query error at the default limit", lower, failedMeasurement(OutcomeQueryError, queryErr), CheckState{Errors: 2},
			ResultFail, ReasonConsecutiveErrors, CheckState{Errors: 3, LastChecked: checkTime},
			[]string{"3 consecutive query errors"}},
		{"query error at a custom limit", ThresholdSpec{Metric: MetricErrorRate, Threshold: 5, ErrorLimit: 1},
			failedMeasurement(OutcomeQueryError, queryErr), CheckState{},
			ResultFail, ReasonConsecutiveErrors, CheckState{Errors: 1, LastChecked: checkTime}, nil},
		{"provider unavailable holds without counting", lower, failedMeasurement(OutcomeUnavailable, queryErr), CheckState{Failures: 1, Errors: 2},
			ResultInconclusive, ReasonProviderUnavailable, CheckState{Failures: 1, Errors: 2, LastChecked: checkTime},
			[]string{"provider unavailable", "connection refused"}},
		{"multiple series counts as a query error", lower, failedMeasurement(OutcomeMultipleSeries, ErrMultipleSeries), CheckState{},
			ResultInconclusive, ReasonMultipleSeries, CheckState{Errors: 1, LastChecked: checkTime}, nil},
		{"multiple series at the limit", lower, failedMeasurement(OutcomeMultipleSeries, ErrMultipleSeries), CheckState{Errors: 2},
			ResultFail, ReasonConsecutiveErrors, CheckState{Errors: 3, LastChecked: checkTime}, nil},
		{"NaN threshold", ThresholdSpec{Metric: "x", Threshold: math.NaN()}, okMeasurement(1, 100), CheckState{},
			ResultInconclusive, ReasonInvalidSpec, CheckState{LastChecked: checkTime}, nil},
		{"unknown direction", ThresholdSpec{Metric: "x", Direction: "sideways"}, okMeasurement(1, 100), CheckState{},
			ResultInconclusive, ReasonInvalidSpec, CheckState{LastChecked: checkTime}, nil},
		{"negative failure threshold", ThresholdSpec{Metric: "x", FailureThreshold: -1}, okMeasurement(1, 100), CheckState{},
			ResultInconclusive, ReasonInvalidSpec, CheckState{LastChecked: checkTime}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, state := EvaluateThreshold(tt.spec, tt.m, tt.prev)
			if got.Result != tt.wantResult || got.Reason != tt.wantReason {
				t.Errorf("verdict = %s/%s, want %s/%s (%s)", got.Result, got.Reason, tt.wantResult, tt.wantReason, got.Message)
			}
			if state != tt.wantState {
				t.Errorf("state = %+v, want %+v", state, tt.wantState)
			}
			for _, part := range tt.wantMessage {
				if !strings.Contains(got.Message, part) {
					t.Errorf("message %q does not contain %q", got.Message, part)
				}
			}
			if got.Metric == "" {
				t.Errorf("verdict names no metric")
			}
		})
	}
}

func TestEvaluateThresholdSequence(t *testing.T) {
	// failureThreshold 2: a gap without data neither breaks nor extends a run of failures, a
	// pass breaks it.
	spec := ThresholdSpec{Metric: MetricErrorRate, Threshold: 5, FailureThreshold: 2}
	steps := []struct {
		m    Measurement
		want Result
	}{
		{okMeasurement(9, 100), ResultInconclusive},
		{failedMeasurement(OutcomeNoData, ErrNoData), ResultInconclusive},
		{okMeasurement(9, 100), ResultFail},
		{okMeasurement(1, 100), ResultPass},
		{okMeasurement(9, 100), ResultInconclusive},
	}
	var state CheckState
	for i, step := range steps {
		var v Verdict
		v, state = EvaluateThreshold(spec, step.m, state)
		if v.Result != step.want {
			t.Fatalf("step %d: %s (%s), want %s", i, v.Result, v.Message, step.want)
		}
	}
}

func TestQueryErrorsNeverPass(t *testing.T) {
	spec := ThresholdSpec{Metric: MetricErrorRate, Threshold: 5}
	m := failedMeasurement(OutcomeQueryError, ErrQuery)
	var state CheckState
	want := []Result{ResultInconclusive, ResultInconclusive, ResultFail, ResultFail}
	for i, w := range want {
		var v Verdict
		v, state = EvaluateThreshold(spec, m, state)
		if v.Result != w {
			t.Fatalf("check %d: %s/%s, want %s", i+1, v.Result, v.Reason, w)
		}
	}
	// A successful query resets the error count.
	_, state = EvaluateThreshold(spec, okMeasurement(0, 100), state)
	if state.Errors != 0 {
		t.Fatalf("errors after success = %d, want 0", state.Errors)
	}
}

func TestCheckStateJSON(t *testing.T) {
	state := CheckState{Failures: 2, Errors: 1, LastChecked: checkTime}
	data, err := json.Marshal(state)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"failures":2,"errors":1,"lastChecked":"2026-03-01T12:00:00Z"}`
	if string(data) != want {
		t.Fatalf("JSON = %s, want %s", data, want)
	}
	var back CheckState
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !back.LastChecked.Equal(state.LastChecked) || back.Failures != 2 || back.Errors != 1 {
		t.Fatalf("round trip = %+v, want %+v", back, state)
	}
	empty, err := json.Marshal(CheckState{})
	if err != nil {
		t.Fatal(err)
	}
	if string(empty) != "{}" {
		t.Fatalf("empty state JSON = %s, want {}", empty)
	}
}

func TestCheckStateDue(t *testing.T) {
	state := CheckState{LastChecked: checkTime}
	tests := []struct {
		name  string
		state CheckState
		now   time.Time
		want  bool
	}{
		{"never checked", CheckState{}, checkTime, true},
		{"too early", state, checkTime.Add(59 * time.Second), false},
		{"exactly due", state, checkTime.Add(time.Minute), true},
		{"late", state, checkTime.Add(5 * time.Minute), true},
	}
	for _, tt := range tests {
		if got := tt.state.Due(tt.now, time.Minute); got != tt.want {
			t.Errorf("%s: Due = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestInWarmup(t *testing.T) {
	start := checkTime
	tests := []struct {
		name      string
		stepStart time.Time
		now       time.Time
		warmup    time.Duration
		want      bool
	}{
		{"no warmup", start, start, 0, false},
		{"negative warmup", start, start, -time.Minute, false},
		{"just started", start, start.Add(10 * time.Second), time.Minute, true},
		{"warmup over", start, start.Add(time.Minute), time.Minute, false},
		{"long after", start, start.Add(time.Hour), time.Minute, false},
		{"clock behind the start", start, start.Add(-time.Second), time.Minute, true},
		{"start not recorded", time.Time{}, start, time.Minute, true},
	}
	for _, tt := range tests {
		if got := InWarmup(tt.stepStart, tt.now, tt.warmup); got != tt.want {
			t.Errorf("%s: InWarmup = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestWarmupVerdict(t *testing.T) {
	v := WarmupVerdict(MetricLatencyP95, checkTime, checkTime.Add(20*time.Second), time.Minute)
	if v.Result != ResultInconclusive || v.Reason != ReasonWarmingUp {
		t.Fatalf("verdict = %s/%s, want Inconclusive/WarmingUp", v.Result, v.Reason)
	}
	if !strings.Contains(v.Message, "latency-p95") || !strings.Contains(v.Message, "40s of 1m0s left") {
		t.Fatalf("message = %q", v.Message)
	}
	unknown := WarmupVerdict(MetricLatencyP95, time.Time{}, checkTime, time.Minute)
	if !strings.Contains(unknown.Message, "1m0s of 1m0s left") {
		t.Fatalf("message without a start = %q", unknown.Message)
	}
}

func TestCombine(t *testing.T) {
	pass := Verdict{Metric: "a", Result: ResultPass, Reason: ReasonWithinThreshold, Message: "a fine"}
	inconclusive := Verdict{Metric: "b", Result: ResultInconclusive, Reason: ReasonNoTraffic, Message: "b no traffic"}
	fail := Verdict{Metric: "c", Result: ResultFail, Reason: ReasonThresholdExceeded, Message: "c too high"}
	errorFail := Verdict{Metric: "d", Result: ResultFail, Reason: ReasonConsecutiveErrors, Message: "d unreachable"}
	tests := []struct {
		name       string
		verdicts   []Verdict
		wantResult Result
		wantReason Reason
	}{
		{"none", nil, ResultInconclusive, ReasonNoData},
		{"all pass", []Verdict{pass, pass}, ResultPass, ReasonWithinThreshold},
		{"one inconclusive", []Verdict{pass, inconclusive}, ResultInconclusive, ReasonNoTraffic},
		{"one fail", []Verdict{pass, inconclusive, fail}, ResultFail, ReasonThresholdExceeded},
		{"first fail gives the reason", []Verdict{errorFail, fail}, ResultFail, ReasonConsecutiveErrors},
		{"unknown result is not a pass", []Verdict{pass, {Metric: "x", Result: "Maybe"}}, ResultInconclusive, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Combine(tt.verdicts)
			if got.Result != tt.wantResult || got.Reason != tt.wantReason {
				t.Fatalf("Combine = %s/%s, want %s/%s", got.Result, got.Reason, tt.wantResult, tt.wantReason)
			}
			for _, v := range tt.verdicts {
				if !strings.Contains(got.Message, v.Message) {
					t.Errorf("message %q does not list %q", got.Message, v.Message)
				}
			}
		})
	}
	if got := Combine([]Verdict{pass, fail}).Message; got != "[Pass] a fine; [Fail] c too high" {
		t.Errorf("message = %q", got)
	}
}

func TestFormatValue(t *testing.T) {
	tests := map[float64]string{0: "0", 0.49975: "0.4998", 10.0227: "10.02", 24.25: "24.25", 123456.7: "123457", -3: "-3"}
	for v, want := range tests {
		if got := formatValue(v); got != want {
			t.Errorf("formatValue(%v) = %q, want %q", v, got, want)
		}
	}
}

// errorRate is a cumulative error-rate measurement: events of trials, in percent.
func errorRate(events, trials int64) Measurement {
	return Measurement{
		Metric: MetricErrorRate, Outcome: OutcomeOK, Proportion: true, Scale: 100,
		Value: 100 * float64(events) / float64(trials), Events: events, Samples: trials, HasSamples: true, At: checkTime,
	}
}

// A proportion with a confidence is judged on evidence: it fails only when the rate is shown past
// the threshold, passes only when shown within it, and otherwise says how many more requests
// would decide it. minSampleSize still comes first, and failureThreshold counts decided checks.
func TestEvaluateThresholdSequential(t *testing.T) {
	spec := ThresholdSpec{Metric: MetricErrorRate, Threshold: 5, Confidence: 0.95}
	for _, tc := range []struct {
		name     string
		spec     func(ThresholdSpec) ThresholdSpec
		m        Measurement
		prev     CheckState
		result   Result
		reason   Reason
		failures int32
		message  string
	}{
		{name: "4 % of 20,000 is shown within 5 %", m: errorRate(800, 20000), prev: CheckState{Failures: 1},
			result: ResultPass, reason: ReasonWithinThreshold, message: "shown within the threshold"},
		{name: "4 % of 1,000 is not yet shown either way", m: errorRate(40, 1000),
			result: ResultInconclusive, reason: ReasonInsufficientEvidence, message: "more requests would decide it"},
		{name: "10 % of 1,000 is shown past 5 %", m: errorRate(100, 1000),
			result: ResultFail, reason: ReasonThresholdExceeded, failures: 1, message: "confidence sequence [7.22"},
		{name: "6 % of 100 is noise, not a failure", m: errorRate(6, 100),
			result: ResultInconclusive, reason: ReasonInsufficientEvidence},
		{name: "no errors in 500 requests passes", m: errorRate(0, 500),
			result: ResultPass, reason: ReasonWithinThreshold},
		{name: "failureThreshold counts decided checks", spec: func(s ThresholdSpec) ThresholdSpec { s.FailureThreshold = 2; return s },
			m: errorRate(100, 1000), result: ResultInconclusive, reason: ReasonThresholdExceeded, failures: 1, message: "1 of 2"},
		{name: "an undecided check keeps the failure count", spec: func(s ThresholdSpec) ThresholdSpec { s.FailureThreshold = 2; return s },
			m: errorRate(6, 100), prev: CheckState{Failures: 1}, result: ResultInconclusive, reason: ReasonInsufficientEvidence, failures: 1},
		{name: "minSampleSize comes first", spec: func(s ThresholdSpec) ThresholdSpec { s.MinSampleSize = 2000; return s },
			m: errorRate(100, 1000), result: ResultInconclusive, reason: ReasonBelowMinSample},
		{name: "higher is better: 99 % success shown above 95 %", spec: func(s ThresholdSpec) ThresholdSpec {
			s.Threshold, s.Direction = 95, HigherIsBetter
			return s
		}, m: errorRate(9900, 10000), result: ResultPass, reason: ReasonWithinThreshold},
		{name: "higher is better: 90 % success shown below 95 %", spec: func(s ThresholdSpec) ThresholdSpec {
			s.Threshold, s.Direction = 95, HigherIsBetter
			return s
		}, m: errorRate(900, 1000), result: ResultFail, reason: ReasonThresholdExceeded, failures: 1},
		{name: "a threshold of 0 fails on the first error", spec: func(s ThresholdSpec) ThresholdSpec { s.Threshold = 0; return s },
			m: errorRate(1, 1000), result: ResultFail, reason: ReasonThresholdExceeded, failures: 1},
		{name: "a threshold above 100 % passes plainly", spec: func(s ThresholdSpec) ThresholdSpec { s.Threshold = 150; return s },
			m: errorRate(1000, 1000), result: ResultPass, reason: ReasonWithinThreshold},
	} {
		s := spec
		if tc.spec != nil {
			s = tc.spec(s)
		}
		v, next := EvaluateThreshold(s, tc.m, tc.prev)
		if v.Result != tc.result || v.Reason != tc.reason || next.Failures != tc.failures || !strings.Contains(v.Message, tc.message) {
			t.Errorf("%s: %s %s failures %d (%s); want %s %s failures %d containing %q",
				tc.name, v.Result, v.Reason, next.Failures, v.Message, tc.result, tc.reason, tc.failures, tc.message)
		}
	}
	if err := (ThresholdSpec{Threshold: 5, Confidence: 1}).Validate(); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("confidence 1: %v, want ErrInvalidInput", err)
	}
}
