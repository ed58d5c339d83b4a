package hl7_test

import (
	"runtime"
	"strings"
	"testing"

	"phix.dev/phix/hl7"
)

// TestParseMemoryIsBounded checks that hostile shapes of message, such
// as millions of empty fields, segments or blank lines, cost memory in
// proportion to their size and not many times over.
func TestParseMemoryIsBounded(t *testing.T) {
	const size = 4 << 20
	msh := "MSH|^~\\&|A|F|B|H|20250314||ADT^A01|MEM1|P|2.5.1\r"
	tests := []struct {
		name   string
		raw    string
		factor uint64
	}{
		{"empty fields", msh + "PID" + strings.Repeat("|", size), 4},
		{"empty components and repetitions", msh + "PID|" + strings.Repeat("^~&", size/3), 4},
		{"blank lines", msh + strings.Repeat("\r", size), 4},
		{"minimal segments", msh + strings.Repeat("ZZZ\r", size/4), 25},
		{"warnings", msh + strings.Repeat(" ZZZ|\\Zx\\\n\r", size/11), 32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := []byte(tt.raw)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			m, err := hl7.Parse(raw)
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatalf("Parse = %v", err)
			}
			got := after.TotalAlloc - before.TotalAlloc
			t.Logf("Parse of %d bytes allocated %d bytes (%.1fx)", len(raw), got, float64(got)/float64(len(raw)))
			if got > tt.factor*uint64(len(raw)) {
				t.Errorf("Parse of %d bytes allocated %d bytes, want at most %dx", len(raw), got, tt.factor)
			}
			if len(m.Warnings()) > 5 {
				t.Errorf("Warnings() has %d entries, want one per kind", len(m.Warnings()))
			}
			m.Get("PID-3")
		})
	}
}
