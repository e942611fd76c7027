package v1alpha1

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// Decimal is a number that keeps the exact text it was written with. Existing manifests carry
// thresholds and confidence levels as YAML numbers (`threshold: 5.0`), so the schema type is
// number; Go code keeps the decimal text so that no float rounding happens in the API types, and
// the arithmetic is done in package analysis.
//
// +kubebuilder:validation:Type=number
type Decimal string

// NewDecimal formats f as a Decimal with the fewest digits that read back as f.
func NewDecimal(f float64) Decimal {
	return Decimal(strconv.FormatFloat(f, 'g', -1, 64))
}

// Float64 parses the decimal. An empty Decimal is an error, as is one that is not finite.
func (d Decimal) Float64() (float64, error) {
	if d == "" {
		return 0, fmt.Errorf("empty decimal")
	}
	f, err := strconv.ParseFloat(string(d), 64)
	if err != nil {
		return 0, fmt.Errorf("decimal %q: %w", string(d), err)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("decimal %q is not a finite number", string(d))
	}
	return f, nil
}

// MarshalJSON writes the decimal as a JSON number.
func (d Decimal) MarshalJSON() ([]byte, error) {
	if d == "" {
		return []byte("0"), nil
	}
	if _, err := d.Float64(); err != nil {
		return nil, err
	}
	return []byte(d), nil
}

// UnmarshalJSON reads a JSON number. A quoted number is accepted too, for clients that send
// numbers as strings; anything else is an error.
func (d *Decimal) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return fmt.Errorf("decimal: %w", err)
		}
		data = []byte(s)
	}
	var n json.Number
	if err := json.Unmarshal(data, &n); err != nil {
		return fmt.Errorf("decimal %s: %w", string(data), err)
	}
	parsed := Decimal(n.String())
	if _, err := parsed.Float64(); err != nil {
		return err
	}
	*d = parsed
	return nil
}
