package v1alpha1_test

import (
	"encoding/json"
	"testing"
	"time"

	kultav1alpha1 "github.com/false-systems/kulta/api/v1alpha1"
)

func TestDurationParse(t *testing.T) {
	valid := map[string]time.Duration{
		"30s":    30 * time.Second,
		"5m":     5 * time.Minute,
		"2h":     2 * time.Hour,
		"1d":     24 * time.Hour,
		"7d":     7 * 24 * time.Hour,
		"500ms":  500 * time.Millisecond,
		"1h30m":  90 * time.Minute,
		"1d12h":  36 * time.Hour,
		"0s":     0,
		"90s":    90 * time.Second,
		"10m30s": 10*time.Minute + 30*time.Second,
	}
	for in, want := range valid {
		got, err := kultav1alpha1.Duration(in).Parse()
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if got != want {
			t.Errorf("Parse(%q) = %v, want %v", in, got, want)
		}
	}
	for _, in := range []string{"", "10", "5x", "1 minute", "m5", "1.5h", "-1s", "1h ", "99999999999999999999d", "106752d"} {
		if got, err := kultav1alpha1.Duration(in).Parse(); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", in, got)
		}
	}
}

func TestDecimalJSON(t *testing.T) {
	type holder struct {
		V kultav1alpha1.Decimal `json:"v"`
	}
	for in, want := range map[string]kultav1alpha1.Decimal{
		`{"v":5.0}`:    "5.0",
		`{"v":0.95}`:   "0.95",
		`{"v":5}`:      "5",
		`{"v":"2.5"}`:  "2.5",
		`{"v":1e-3}`:   "1e-3",
		`{"v": -0.25}`: "-0.25",
	} {
		var h holder
		if err := json.Unmarshal([]byte(in), &h); err != nil {
			t.Errorf("Unmarshal(%s): %v", in, err)
			continue
		}
		if h.V != want {
			t.Errorf("Unmarshal(%s) = %q, want %q", in, h.V, want)
		}
		out, err := json.Marshal(h)
		if err != nil {
			t.Errorf("Marshal(%q): %v", h.V, err)
			continue
		}
		if string(out) != `{"v":`+string(want)+`}` {
			t.Errorf("Marshal(%q) = %s: the exact decimal text must survive", h.V, out)
		}
	}
	for _, in := range []string{`{"v":"abc"}`, `{"v":true}`, `{"v":"NaN"}`, `{"v":"Inf"}`, `{"v":{}}`} {
		var h holder
		if err := json.Unmarshal([]byte(in), &h); err == nil {
			t.Errorf("Unmarshal(%s) = %q, want an error", in, h.V)
		}
	}
	if f, err := kultav1alpha1.NewDecimal(0.1 + 0.2).Float64(); err != nil || f != 0.1+0.2 {
		t.Errorf("NewDecimal round trip = %v, %v", f, err)
	}
	if _, err := kultav1alpha1.Decimal("").Float64(); err == nil {
		t.Error("empty decimal must not parse")
	}
}

func TestStrategyServices(t *testing.T) {
	port := int32(8080)
	cases := map[string]struct {
		strategy kultav1alpha1.RolloutStrategy
		want     kultav1alpha1.StrategyServices
	}{
		"canary, default port": {
			strategy: kultav1alpha1.RolloutStrategy{Canary: &kultav1alpha1.CanaryStrategy{StableService: "s", CanaryService: "c"}},
			want:     kultav1alpha1.StrategyServices{Stable: "s", Canary: "c", Port: 80, Field: "spec.strategy.canary"},
		},
		"blue-green": {
			strategy: kultav1alpha1.RolloutStrategy{BlueGreen: &kultav1alpha1.BlueGreenStrategy{ActiveService: "a", PreviewService: "p", Port: &port}},
			want:     kultav1alpha1.StrategyServices{Stable: "a", Canary: "p", Port: 8080, Field: "spec.strategy.blueGreen"},
		},
		"A/B": {
			strategy: kultav1alpha1.RolloutStrategy{ABTesting: &kultav1alpha1.ABTestingStrategy{VariantAService: "a", VariantBService: "b"}},
			want:     kultav1alpha1.StrategyServices{Stable: "a", Canary: "b", Port: 80, Field: "spec.strategy.abTesting"},
		},
		"simple has none": {
			strategy: kultav1alpha1.RolloutStrategy{Simple: &kultav1alpha1.SimpleStrategy{}},
			want:     kultav1alpha1.StrategyServices{Field: "spec.strategy.simple"},
		},
	}
	for name, tc := range cases {
		if got := tc.strategy.Services(); got != tc.want {
			t.Errorf("%s: Services() = %+v, want %+v", name, got, tc.want)
		}
	}
}
