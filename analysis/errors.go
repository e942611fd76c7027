package analysis

import (
	"errors"
	"fmt"
	"math"
)

// Sentinel errors returned (wrapped) by the functions in this package. Test
// for them with errors.Is.
var (
	// ErrNoTraffic means no arm saw any trials or samples: there is no data
	// to evaluate. This differs from zero events with traffic, which is data
	// (a proportion of 0).
	ErrNoTraffic = errors.New("no traffic")

	// ErrEmptyArm means one arm (or sample) has no trials or observations
	// while the other has some.
	ErrEmptyArm = errors.New("empty arm")

	// ErrInvalidCounts means a count is negative or an event count exceeds
	// its trial count.
	ErrInvalidCounts = errors.New("invalid counts")

	// ErrInvalidInput means a non-count argument is unusable: NaN or
	// infinite values, a probability outside its range, slices of the wrong
	// length, or an unknown Alternative.
	ErrInvalidInput = errors.New("invalid input")
)

// Alternative names the alternative hypothesis of a test.
//
// Throughout the package, A is the control (baseline) and B is the
// experiment (canary). In functions that take two samples x and y, x plays
// the role of B and y the role of A.
type Alternative int

const (
	// TwoSided tests whether B differs from A in either direction.
	TwoSided Alternative = iota
	// Greater tests whether B is larger than A (for example, the canary's
	// error rate is higher than the baseline's).
	Greater
	// Less tests whether B is smaller than A.
	Less
)

// String returns the name of the alternative.
func (a Alternative) String() string {
	switch a {
	case TwoSided:
		return "two-sided"
	case Greater:
		return "greater"
	case Less:
		return "less"
	default:
		return fmt.Sprintf("Alternative(%d)", int(a))
	}
}

// validate reports ErrInvalidInput for an Alternative outside the declared
// constants.
func (a Alternative) validate() error {
	switch a {
	case TwoSided, Greater, Less:
		return nil
	default:
		return fmt.Errorf("%w: unknown alternative %d", ErrInvalidInput, int(a))
	}
}

// checkOpenUnit reports ErrInvalidInput unless v is a finite number strictly
// between 0 and 1. name is used in the message.
func checkOpenUnit(name string, v float64) error {
	if math.IsNaN(v) || v <= 0 || v >= 1 {
		return fmt.Errorf("%w: %s must be strictly between 0 and 1, got %v", ErrInvalidInput, name, v)
	}
	return nil
}

// checkFinite reports ErrInvalidInput if any value is NaN or infinite.
func checkFinite(name string, values []float64) error {
	for i, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: %s[%d] is %v", ErrInvalidInput, name, i, v)
		}
	}
	return nil
}
