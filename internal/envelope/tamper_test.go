package envelope_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"phix.dev/phix/internal/envelope"
)

// region is a byte range of an encoded envelope.
type region struct {
	name       string
	start, end int
	owner      string // for wrapped-key regions, the recipient they belong to
}

// regions maps an envelope's top-level fields: the tag and length bytes of
// each field, its value, and inside each wrapped key its recipient and
// wrapped bytes.
func regions(t *testing.T, b []byte) []region {
	t.Helper()
	var rs []region
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 || typ != protowire.BytesType {
			t.Fatalf("unexpected field at offset %d", off)
		}
		v, m := protowire.ConsumeBytes(b[off+n:])
		if m < 0 {
			t.Fatalf("bad length at offset %d", off)
		}
		valStart := off + n + m - len(v)
		rs = append(rs, region{name: fmt.Sprintf("field %d tag+length", num), start: off, end: valStart})
		switch num {
		case 1:
			rs = append(rs, region{name: "header", start: valStart, end: valStart + len(v)})
		case 2:
			rs = append(rs, region{name: "signature", start: valStart, end: valStart + len(v)})
		case 3:
			rs = append(rs, region{name: "ciphertext", start: valStart, end: valStart + len(v)})
		case 4:
			rs = append(rs, wrappedRegions(t, v, valStart)...)
		case 5:
			rs = append(rs, region{name: "signer key id", start: valStart, end: valStart + len(v)})
		case 6:
			rs = append(rs, region{name: "batch", start: valStart, end: valStart + len(v)})
		}
		off += n + m
	}
	return rs
}

func wrappedRegions(t *testing.T, v []byte, base int) []region {
	t.Helper()
	var owner string
	var rs []region
	for off := 0; off < len(v); {
		num, _, n := protowire.ConsumeTag(v[off:])
		val, m := protowire.ConsumeBytes(v[off+n:])
		if n < 0 || m < 0 {
			t.Fatalf("bad wrapped key at offset %d", base+off)
		}
		valStart := base + off + n + m - len(val)
		rs = append(rs, region{name: "wrapped key tag+length", start: base + off, end: valStart})
		if num == 1 {
			owner = string(val)
			rs = append(rs, region{name: "wrapped key recipient", start: valStart, end: valStart + len(val)})
		} else {
			rs = append(rs, region{name: "wrapped key bytes", start: valStart, end: valStart + len(val)})
		}
		off += n + m
	}
	for i := range rs {
		rs[i].owner = owner
	}
	return rs
}

// TestTamper flips every bit of a sealed envelope, one at a time, and runs
// the full reader pipeline for each reader holding a wrapped key.
//
// Outside the wrapped keys every flip must stop every reader. The
// signature and ciphertext must fail exactly at Verify. A flip in a
// wrapped key's bytes is not signed, so Decode and Verify pass and the
// other readers are unaffected; its owner must then fail at Open with
// ErrOpen, which is the key commitment rejecting the unwrapped key.
func TestTamper(t *testing.T) {
	f := newFixture(t)
	b := f.seal(t)
	rs := regions(t, b)
	covered := 0
	for _, r := range rs {
		covered += r.end - r.start
	}
	if covered != len(b) {
		t.Fatalf("regions cover %d of %d bytes", covered, len(b))
	}

	readers := []string{"clinic", "ward"}
	tampered := make([]byte, len(b))
	for _, r := range rs {
		for i := r.start; i < r.end; i++ {
			for bit := range 8 {
				copy(tampered, b)
				tampered[i] ^= 1 << bit
				for _, reader := range readers {
					_, st, err := readAs(tampered, f.meta.Subject, f.signer.public(), reader)
					if err := checkTamper(r, reader, st, err); err != nil {
						t.Errorf("flip byte %d bit %d (%s), reader %s: %v", i, bit, r.name, reader, err)
					}
				}
			}
		}
	}
}

// checkTamper says what is wrong with the outcome of reading an envelope
// with one bit flipped in region r, or returns nil.
func checkTamper(r region, reader string, st stage, err error) error {
	switch {
	case r.name == "signature" || r.name == "ciphertext":
		if st != stageVerify || !errors.Is(err, envelope.ErrSignature) {
			return fmt.Errorf("stopped at %v with %v, want %v with %v",
				st, err, stageVerify, envelope.ErrSignature)
		}
	case r.name == "wrapped key bytes" && r.owner == reader:
		if st != stageOpen || err != envelope.ErrOpen {
			return fmt.Errorf("stopped at %v with %v, want %v with exactly %v",
				st, err, stageOpen, envelope.ErrOpen)
		}
	case r.name == "wrapped key bytes":
		if err != nil {
			return fmt.Errorf("another reader's key was tampered, but read failed at %v: %v", st, err)
		}
	case r.owner != "" && r.owner != reader && st > stageVerify:
		// Renaming or reframing another reader's key may leave this
		// reader's own key intact; it must then still read correctly.
		if err != nil {
			return fmt.Errorf("stopped at %v with %v after Verify passed", st, err)
		}
	case err == nil:
		return fmt.Errorf("tampered envelope read successfully")
	}
	return nil
}

// TestTamperVersion2 flips every bit of the middle envelope of a signed
// batch of three and reads it as a real reader does, looking the public
// key up by the signer key ID the envelope names. Every flip outside the
// wrapped keys must stop the reader by Verify at the latest; the signer
// key ID is not itself signed, but a changed ID names a key the
// signature does not verify under (here: no key at all).
func TestTamperVersion2(t *testing.T) {
	f := newFixture(t)
	b := f.signBatch(t, f.prepareN(t, 3, true))[1]
	rs := regions(t, b)
	covered := 0
	for _, r := range rs {
		covered += r.end - r.start
	}
	if covered != len(b) {
		t.Fatalf("regions cover %d of %d bytes", covered, len(b))
	}
	lookup := func(keyID string) (ed25519.PublicKey, error) {
		if keyID != f.signer.keyID {
			return nil, errUnknownKey
		}
		return f.signer.public(), nil
	}

	tampered := make([]byte, len(b))
	for _, r := range rs {
		for i := r.start; i < r.end; i++ {
			for bit := range 8 {
				copy(tampered, b)
				tampered[i] ^= 1 << bit
				for _, reader := range []string{"clinic", "ward"} {
					_, st, err := readByKeyID(tampered, f.meta.Subject, lookup, reader)
					if r.name == "signer key id" && st == stageVerify && errors.Is(err, errUnknownKey) {
						continue
					}
					if err := checkTamper(r, reader, st, err); err != nil {
						t.Errorf("flip byte %d bit %d (%s), reader %s: %v", i, bit, r.name, reader, err)
					}
				}
			}
		}
	}
}

var errUnknownKey = errors.New("no such signer key")

// readByKeyID is [readAs] with the public key looked up by the signer key
// ID the envelope names.
func readByKeyID(b []byte, arrived string, lookup func(string) (ed25519.PublicKey, error),
	reader string) ([]byte, stage, error) {
	e, err := envelope.Decode(b)
	if err != nil {
		return nil, stageDecode, err
	}
	pub, err := lookup(e.Header().SignerKeyID)
	if err != nil {
		return nil, stageVerify, err
	}
	return readAs(b, arrived, pub, reader)
}
