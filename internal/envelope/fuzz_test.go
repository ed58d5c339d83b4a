package envelope_test

import (
	"bytes"
	"errors"
	"testing"

	"phix.dev/phix/internal/envelope"
)

// FuzzDecode checks that Decode never panics, fails only with the
// package's error classes, and accepts nothing but canonical encodings of
// either version: whatever it accepts re-encodes to the input byte for
// byte.
func FuzzDecode(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add([]byte(v.Outputs.Envelope))
	}
	for _, v := range loadBatchVectors(f) {
		for _, c := range v.Outputs.Copies {
			f.Add([]byte(c.Envelope))
		}
	}
	for _, v := range loadDelegationVectors(f) {
		for _, c := range v.Batch.Outputs.Copies {
			f.Add([]byte(c.Envelope))
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00})

	classes := []error{
		envelope.ErrVersion, envelope.ErrMalformed, envelope.ErrDuplicateRecipient,
		envelope.ErrTooLarge, envelope.ErrSubjectMismatch,
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := envelope.Decode(b)
		if err != nil {
			for _, c := range classes {
				if errors.Is(err, c) {
					return
				}
			}
			t.Fatalf("Decode = %v, which wraps none of the documented errors", err)
		}

		out, err := e.WithWrappedKeys(e.WrappedKeys())
		if err != nil {
			t.Fatalf("re-encoding an accepted envelope = %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("accepted envelope re-encodes differently:\n in  %x\n out %x", b, out)
		}
		h := e.Header()
		if err := e.CheckSubject(h.Subject); err != nil {
			t.Fatalf("CheckSubject(own subject) = %v", err)
		}
		m := e.SignedMessage()
		switch h.Version {
		case envelope.Version1:
			if !bytes.Contains(m, headerOf(t, b)) {
				t.Fatalf("SignedMessage() does not contain the header bytes")
			}
		case envelope.Version2:
			if !bytes.HasPrefix(m, []byte("phix/v2/batch-root\x00")) || len(m) != 19+8+32 {
				t.Fatalf("SignedMessage() = %x, not a batch root message", m)
			}
		default:
			t.Fatalf("Decode accepted version %d", h.Version)
		}
	})
}

func headerOf(t *testing.T, b []byte) []byte {
	t.Helper()
	return parse(t, b).env.Header
}
