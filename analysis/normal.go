package analysis

import (
	"math"

	"gonum.org/v1/gonum/mathext"
)

// NormalTwoSidedP returns the two-sided tail probability of the standard
// normal distribution, 2*Phi(-|z|).
//
// It is computed as erfc(|z|/sqrt(2)), which keeps full relative precision
// far into the tail: z = 9 gives about 2.257e-19 rather than 0. It returns
// NaN for NaN input and 0 for infinite z.
func NormalTwoSidedP(z float64) float64 {
	return math.Erfc(math.Abs(z) / math.Sqrt2)
}

// NormalUpperTail returns P(Z > z) = 1 - Phi(z) for a standard normal Z,
// computed as erfc(z/sqrt(2))/2 so that large positive z does not underflow
// early. It returns NaN for NaN input.
func NormalUpperTail(z float64) float64 {
	return 0.5 * math.Erfc(z/math.Sqrt2)
}

// NormalQuantile returns the z such that Phi(z) = p for the standard normal
// distribution. It returns -Inf for p = 0, +Inf for p = 1 and NaN for p
// outside [0, 1] or NaN.
func NormalQuantile(p float64) float64 {
	if math.IsNaN(p) || p < 0 || p > 1 {
		return math.NaN()
	}
	return mathext.NormalQuantile(p)
}

// normalPValue returns the p-value of a standard normal statistic z for the
// alternative alt, where large positive z is evidence for Greater. alt must
// be valid.
func normalPValue(z float64, alt Alternative) float64 {
	switch alt {
	case Greater:
		return NormalUpperTail(z)
	case Less:
		return NormalUpperTail(-z)
	default:
		return NormalTwoSidedP(z)
	}
}
