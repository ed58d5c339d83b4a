package fhir_test

import (
	"errors"
	"fmt"
	"testing"

	"phix.dev/phix/fhir"
)

func TestDecimal(t *testing.T) {
	tests := []struct {
		a, b  string
		cmp   int
		scale int // of a
	}{
		{"7.10", "7.1", 0, 2},
		{"0.10000000000000000555", "0.1", 1, 20},
		{"12345678901234567890.0", "12345678901234567000", 1, 1},
		{"1.20E+2", "120", 0, 0},
		{"1.5e-2", "0.015", 0, 3},
		{"-0.000", "0", 0, 3},
		{"-1", "1", -1, 0},
	}
	for _, tc := range tests {
		a, err := fhir.ParseDecimal(tc.a)
		if err != nil {
			t.Fatalf("ParseDecimal(%s) = %v", tc.a, err)
		}
		b, err := fhir.ParseDecimal(tc.b)
		if err != nil {
			t.Fatalf("ParseDecimal(%s) = %v", tc.b, err)
		}
		if got := a.Cmp(b); got != tc.cmp {
			t.Errorf("%s.Cmp(%s) = %d, want %d", tc.a, tc.b, got, tc.cmp)
		}
		if got := a.Scale(); got != tc.scale {
			t.Errorf("%s.Scale() = %d, want %d", tc.a, got, tc.scale)
		}
		if a.String() != tc.a {
			t.Errorf("String() = %s, want %s unchanged", a, tc.a)
		}
	}
	for _, bad := range []string{"", "07", "1.", ".5", "1e", "+1", "1e1001", "NaN", "0x10"} {
		if _, err := fhir.ParseDecimal(bad); !errors.Is(err, fhir.ErrDecimal) {
			t.Errorf("ParseDecimal(%q) = %v, want ErrDecimal", bad, err)
		}
	}
}

func ExampleParseDecimal() {
	a, _ := fhir.ParseDecimal("7.10")
	b, _ := fhir.ParseDecimal("7.1")
	fmt.Println(a, a.Cmp(b), a.Scale())
	// Output: 7.10 0 2
}
