package hl7_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"phix.dev/phix/hl7"
	"phix.dev/phix/internal/testcases"
)

// casesDir returns the shared HL7 v2 and FHIR test inputs.
func casesDir(t testing.TB) string {
	t.Helper()
	return testcases.Dir(t)
}

func loadCase(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(casesDir(t), name))
	if err != nil {
		t.Fatalf("reading case: %v", err)
	}
	return b
}

func mustParse(t testing.TB, raw []byte, opts ...hl7.Option) *hl7.Message {
	t.Helper()
	m, err := hl7.Parse(raw, opts...)
	if err != nil {
		t.Fatalf("Parse = %v, want nil error", err)
	}
	return m
}

// getter is what both messages and segments offer for reading values.
type getter interface{ Get(path string) string }

// checkGets checks pairs of path and wanted decoded value.
func checkGets(t testing.TB, m getter, pairs ...string) {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if got := m.Get(pairs[i]); got != pairs[i+1] {
			t.Errorf("Get(%q) = %q, want %q", pairs[i], got, pairs[i+1])
		}
	}
}

// checkRaws checks pairs of path and wanted value as sent.
func checkRaws(t testing.TB, m *hl7.Message, pairs ...string) {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		if got := m.Raw(pairs[i]); got != pairs[i+1] {
			t.Errorf("Raw(%q) = %q, want %q", pairs[i], got, pairs[i+1])
		}
	}
}

func segmentNames(m *hl7.Message) string {
	var names []string
	for _, s := range m.Segments() {
		names = append(names, s.Name())
	}
	return strings.Join(names, " ")
}

func checkSegments(t testing.TB, m *hl7.Message, want string) {
	t.Helper()
	if got := segmentNames(m); got != want {
		t.Errorf("segments = %q, want %q", got, want)
	}
}

// checkExact checks that the message keeps its input and re-encodes to
// it byte for byte.
func checkExact(t testing.TB, m *hl7.Message, raw []byte) {
	t.Helper()
	if !bytes.Equal(m.Bytes(), raw) {
		t.Errorf("Bytes() differs from the input")
	}
	enc, err := m.Encode()
	if err != nil {
		t.Fatalf("Encode() = %v, want nil error", err)
	}
	if !bytes.Equal(enc, raw) {
		t.Errorf("Encode() = %q, want the input %q", trim(enc), trim(raw))
	}
}

func trim(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// ack builds the acknowledgement of m for cause and parses it back.
func ack(t testing.TB, m *hl7.Message, cause error) (*hl7.Message, []byte) {
	t.Helper()
	raw, err := hl7.Ack(m, cause)
	if err != nil {
		t.Fatalf("Ack = %v, want nil error", err)
	}
	a, err := hl7.Parse(raw)
	if err != nil {
		t.Fatalf("Parse(Ack) = %v, want nil error; ack %q", err, raw)
	}
	return a, raw
}

// checkAck checks MSA-1 and MSA-2 of m's acknowledgement for cause and
// returns it.
func checkAck(t testing.TB, m *hl7.Message, cause error, code, id string) *hl7.Message {
	t.Helper()
	a, _ := ack(t, m, cause)
	checkGets(t, a, "MSA-1", code, "MSA-2", id)
	return a
}

// checkAccepted checks what every acceptable case must satisfy: exact
// bytes, no validation errors, and an AA acknowledgement echoing MSH-10.
func checkAccepted(t testing.TB, m *hl7.Message, raw []byte, id string) *hl7.Message {
	t.Helper()
	checkExact(t, m, raw)
	if err := m.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
	return checkAck(t, m, m.Validate(), "AA", id)
}

func hasWarning(m *hl7.Message, k hl7.WarningKind) bool {
	for _, w := range m.Warnings() {
		if w.Kind == k {
			return true
		}
	}
	return false
}

func checkErr(t testing.TB, err, want error, text string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
	if !strings.Contains(err.Error(), text) {
		t.Errorf("error = %q, want it to contain %q", err, text)
	}
}

// unframe returns the payloads of the MLLP frames in stream.
func unframe(stream []byte) [][]byte {
	var out [][]byte
	for {
		i := bytes.IndexByte(stream, 0x0b)
		if i < 0 {
			return out
		}
		j := bytes.Index(stream[i:], []byte{0x1c, 0x0d})
		if j < 0 {
			return out
		}
		out = append(out, stream[i+1:i+j])
		stream = stream[i+j+2:]
	}
}
