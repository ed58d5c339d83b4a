package hl7_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"phix.dev/phix/hl7"
)

// FuzzParse checks that no input makes the parser panic, that every
// message it accepts re-encodes to exactly its input, and that reading,
// validating and acknowledging any accepted or refused input works.
func FuzzParse(f *testing.F) {
	dir := os.Getenv("PHIX_CASES")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "cases", "hl7fhir")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.hl7"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil || len(b) > 4096 {
			continue
		}
		f.Add(b)
		for _, fr := range unframe(b) {
			f.Add(fr)
		}
	}
	f.Add([]byte(strings.Join(segs, "\r")))
	f.Add([]byte(strings.Join(segs, "\n")))
	f.Add([]byte(withDelims('#', "$%*!")))
	f.Add([]byte("MSH|^~&|A\rPID|1||\\X41\\\\Zq\\&x\r"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := hl7.Parse(raw)
		if err != nil {
			if len(hl7.Errors(err)) == 0 {
				t.Fatalf("Parse error %v is not an *hl7.Error", err)
			}
			h, _ := hl7.ParseHeader(raw)
			if _, err := hl7.Ack(h, err); err != nil {
				t.Fatalf("Ack of refused input = %v", err)
			}
			hl7.ParseFile(raw)
			return
		}
		enc, err := m.Encode()
		if err != nil || !bytes.Equal(enc, raw) {
			t.Fatalf("Encode() = %q, %v; want the input %q", enc, err, raw)
		}
		for _, p := range []string{"MSH-9.2", "PID-3[2].5", "OBX(2)-5", "PID-11.1.2", "MSH-7"} {
			m.Get(p)
			m.Raw(p)
			m.Time(p)
		}
		for _, s := range m.Segments() {
			for i := 1; i <= s.Len(); i++ {
				s.Reps(i)
			}
		}
		if _, err := hl7.Ack(m, m.Validate()); err != nil {
			t.Fatalf("Ack = %v", err)
		}
	})
}
