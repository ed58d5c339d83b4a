package fhir

import (
	"errors"
	"math/big"
	"regexp"
	"strconv"
	"strings"
)

// maxExponent bounds the exponent ParseDecimal accepts, so that comparing
// two decimals never builds a number with millions of digits.
const maxExponent = 1000

var decimalRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// ErrDecimal is returned by [ParseDecimal] for text that is not an R4
// decimal or whose exponent is beyond ±1000.
var ErrDecimal = errors.New("fhir: not an R4 decimal")

// Decimal is an R4 decimal kept as its exact text. Comparison is exact
// (arbitrary precision), and the text, which carries the precision the
// sender meant, is never rewritten: 7.10 stays 7.10 although it equals 7.1.
type Decimal struct {
	text string
}

// ParseDecimal returns the decimal written as s, the text of a JSON number.
func ParseDecimal(s string) (Decimal, error) {
	if !decimalRE.MatchString(s) {
		return Decimal{}, ErrDecimal
	}
	if _, exp, ok := strings.Cut(strings.ToLower(s), "e"); ok {
		e, err := strconv.Atoi(exp)
		if err != nil || e > maxExponent || e < -maxExponent {
			return Decimal{}, ErrDecimal
		}
	}
	return Decimal{text: s}, nil
}

// String returns the decimal exactly as it was written.
func (d Decimal) String() string { return d.text }

// Scale returns the number of decimal places the text states: 2 for 7.10,
// 0 for 1.20E+2 (which is 120), 3 for 1.5e-2.
func (d Decimal) Scale() int {
	mant, exp, _ := strings.Cut(strings.ToLower(d.text), "e")
	frac := 0
	if _, f, ok := strings.Cut(mant, "."); ok {
		frac = len(f)
	}
	e, _ := strconv.Atoi(exp)
	return max(0, frac-e)
}

// Cmp compares d and o by value: -1 if d < o, 0 if equal, +1 if d > o.
func (d Decimal) Cmp(o Decimal) int {
	return d.rat().Cmp(o.rat())
}

func (d Decimal) rat() *big.Rat {
	r, ok := new(big.Rat).SetString(d.text)
	if !ok {
		// The zero Decimal, or text that ParseDecimal did not check.
		return new(big.Rat)
	}
	return r
}
