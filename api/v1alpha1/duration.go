package v1alpha1

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// Duration is a length of time written as in KULTA's manifests: one or more numbers each followed
// by a unit, ms, s, m, h or d (a day is 24 hours), such as 30s, 5m, 2h, 1d or 1h30m.
//
// +kubebuilder:validation:MaxLength=64
// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(ms|s|m|h|d))+$')",message="must be a duration such as 30s, 5m, 2h or 1d (units ms, s, m, h, d)"
type Duration string

var durationPart = regexp.MustCompile(`([0-9]+)(ms|s|m|h|d)`)

var durationUnits = map[string]time.Duration{
	"ms": time.Millisecond,
	"s":  time.Second,
	"m":  time.Minute,
	"h":  time.Hour,
	"d":  24 * time.Hour,
}

// Parse returns the length of d. It accepts exactly what the CRD's validation accepts.
func (d Duration) Parse() (time.Duration, error) {
	s := string(d)
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	parts := durationPart.FindAllStringSubmatchIndex(s, -1)
	var total time.Duration
	next := 0
	for _, p := range parts {
		if p[0] != next {
			break
		}
		n, err := strconv.ParseInt(s[p[2]:p[3]], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("duration %q: %w", s, err)
		}
		unit := durationUnits[s[p[4]:p[5]]]
		if n > int64((1<<63-1)/unit) || total > time.Duration(1<<63-1)-time.Duration(n)*unit {
			return 0, fmt.Errorf("duration %q is too long", s)
		}
		total += time.Duration(n) * unit
		next = p[1]
	}
	if next != len(s) {
		return 0, fmt.Errorf("duration %q: want numbers with units ms, s, m, h or d, such as 30s or 1d", s)
	}
	return total, nil
}
