package envelope_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/schemas"
)

// prepareN prepares n version 2 copies of the fixture's message, all for
// clinic, with message IDs m-0, m-1, ...; with inline false they carry no
// wrapped keys, as in registry mode.
func (f *fixture) prepareN(t testing.TB, n int, inline bool) []*envelope.Unsigned {
	t.Helper()
	us := make([]*envelope.Unsigned, n)
	for i := range us {
		m := f.meta
		m.MessageID = fmt.Sprintf("m-%d", i)
		var ws []envelope.WrappedKey
		if inline {
			ws = f.wrapped
		}
		u, err := envelope.Prepare(m, f.dk, ws, f.plaintext)
		if err != nil {
			t.Fatalf("Prepare(%s) = %v", m.MessageID, err)
		}
		us[i] = u
	}
	return us
}

func (f *fixture) signBatch(t testing.TB, us []*envelope.Unsigned) [][]byte {
	t.Helper()
	bs, err := envelope.SignBatch(context.Background(), f.signer, us)
	if err != nil {
		t.Fatalf("SignBatch(%d) = %v", len(us), err)
	}
	return bs
}

func TestSignBatchEachEnvelopeVerifiesAlone(t *testing.T) {
	for _, n := range []int{1, 2, 3, 7, 64} {
		t.Run(fmt.Sprintf("%d envelopes", n), func(t *testing.T) {
			f := newFixture(t)
			bs := f.signBatch(t, f.prepareN(t, n, true))
			if f.signer.calls != 1 {
				t.Errorf("signer calls = %d, want 1", f.signer.calls)
			}
			for i, b := range bs {
				pt, st, err := readAs(b, f.meta.Subject, f.signer.public(), "clinic")
				if err != nil || !bytes.Equal(pt, f.plaintext) {
					t.Fatalf("envelope %d: readAs = %q, stopped at %v: %v", i, pt, st, err)
				}
				e, err := envelope.Decode(b)
				if err != nil {
					t.Fatalf("Decode(%d) = %v", i, err)
				}
				h := e.Header()
				if h.Version != envelope.Version2 || h.SignerKeyID != f.signer.keyID ||
					h.MessageID != fmt.Sprintf("m-%d", i) {
					t.Errorf("envelope %d: Header() = version %d, signer %q, id %q; want 2, %q, m-%d",
						i, h.Version, h.SignerKeyID, h.MessageID, f.signer.keyID, i)
				}
				if size, index := e.Batch(); size != uint64(n) || index != uint64(i) {
					t.Errorf("envelope %d: Batch() = %d, %d; want %d, %d", i, size, index, n, i)
				}
			}
		})
	}
}

func TestSignBatchRefuses(t *testing.T) {
	f := newFixture(t)
	if _, err := envelope.SignBatch(context.Background(), f.signer, nil); err == nil {
		t.Errorf("SignBatch(no envelopes) = nil error, want one")
	}
	failing := errors.New("vault sealed")
	_, err := envelope.SignBatch(context.Background(), errSigner{failing}, f.prepareN(t, 2, true))
	if !errors.Is(err, failing) {
		t.Errorf("SignBatch(failing signer) = %v, want it to wrap %v", err, failing)
	}
	bad := &testSigner{priv: f.signer.priv, keyID: "bad key id"}
	if _, err := envelope.SignBatch(context.Background(), bad, f.prepareN(t, 1, true)); err == nil {
		t.Errorf("SignBatch(signer with a key ID holding a space) = nil error, want one")
	}
}

type errSigner struct{ err error }

func (s errSigner) Sign(context.Context, []byte) ([]byte, string, error) { return nil, "", s.err }

func TestVersion2WithoutWrappedKeys(t *testing.T) {
	f := newFixture(t)
	b := f.signBatch(t, f.prepareN(t, 1, false))[0]
	e, err := envelope.Decode(b)
	if err != nil {
		t.Fatalf("Decode(no wrapped keys) = %v", err)
	}
	if err := e.Verify(f.signer.public()); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	if _, ok := e.WrappedKey("clinic"); ok {
		t.Errorf("WrappedKey(clinic) = _, true; want false: the key is in the registry")
	}
	pt, err := e.Open(f.dk)
	if err != nil || !bytes.Equal(pt, f.plaintext) {
		t.Errorf("Open(data key from the registry) = %q, %v; want %q", pt, err, f.plaintext)
	}
	// Adding a key later keeps the signature valid.
	b2, err := e.WithWrappedKeys(f.wrapped)
	if err != nil {
		t.Fatalf("WithWrappedKeys = %v", err)
	}
	if _, st, err := readAs(b2, f.meta.Subject, f.signer.public(), "ward"); err != nil {
		t.Errorf("readAs(after adding keys) stopped at %v: %v", st, err)
	}
}

// TestDecodeRejectsVersion2 builds invalid version 2 envelopes field by
// field.
func TestDecodeRejectsVersion2(t *testing.T) {
	f := newFixture(t)
	batch := f.signBatch(t, f.prepareN(t, 3, true))
	v1 := f.seal(t)
	edit := func(b []byte, fn func(p parsed)) func(*testing.T) []byte {
		return func(t *testing.T) []byte {
			p := parse(t, b)
			fn(p)
			return p.encode(t)
		}
	}
	tests := []struct {
		name  string
		build func(*testing.T) []byte
		want  error
	}{
		{"version 1 with a batch", edit(v1, func(p parsed) {
			p.env.Batch = &schemas.BatchProof{TreeSize: 1}
		}), envelope.ErrMalformed},
		{"version 1 with an envelope signer key ID", edit(v1, func(p parsed) {
			p.env.SignerKeyId = "k"
		}), envelope.ErrMalformed},
		{"version 2 with a header signer key ID", edit(batch[0], func(p parsed) {
			p.hdr.SignerKeyId = "k"
		}), envelope.ErrMalformed},
		{"version 2 without a signer key ID", edit(batch[0], func(p parsed) {
			p.env.SignerKeyId = ""
		}), envelope.ErrMalformed},
		{"version 2 without a batch", edit(batch[0], func(p parsed) {
			p.env.Batch = nil
		}), envelope.ErrMalformed},
		{"tree size zero", edit(batch[0], func(p parsed) {
			p.env.Batch.TreeSize, p.env.Batch.LeafIndex, p.env.Batch.Path = 0, 0, nil
		}), envelope.ErrMalformed},
		{"index at the tree size", edit(batch[2], func(p parsed) {
			p.env.Batch.LeafIndex = 3
		}), envelope.ErrMalformed},
		{"path one hash short", edit(batch[0], func(p parsed) {
			p.env.Batch.Path = p.env.Batch.Path[1:]
		}), envelope.ErrMalformed},
		{"path one hash long", edit(batch[2], func(p parsed) {
			p.env.Batch.Path = append(p.env.Batch.Path, make([]byte, 32))
		}), envelope.ErrMalformed},
		{"a 31-byte hash", edit(batch[0], func(p parsed) {
			p.env.Batch.Path[0] = p.env.Batch.Path[0][:31]
		}), envelope.ErrMalformed},
		{"tree over the limit", edit(batch[0], func(p parsed) {
			p.env.Batch.TreeSize = envelope.MaxBatchSize + 1
		}), envelope.ErrTooLarge},
		{"signer key ID over the limit", edit(batch[0], func(p parsed) {
			p.env.SignerKeyId = repeat('k', envelope.MaxKeyIDLen+1)
		}), envelope.ErrTooLarge},
		{"unknown field in the batch", func(t *testing.T) []byte {
			p := parse(t, batch[0])
			p.env.Batch.ProtoReflect().SetUnknown([]byte{0x22, 0x01, 0x00}) // field 4
			return p.encode(t)
		}, envelope.ErrMalformed},
		{"non-canonical batch (path before size)", func(t *testing.T) []byte {
			p := parse(t, batch[1])
			bp, _ := proto.MarshalOptions{Deterministic: true}.Marshal(p.env.Batch)
			p.env.Batch = nil
			b := p.encode(t)
			// tree_size (field 1) and leaf_index (field 2) come first in
			// bp; move the path entries (field 3) to the front.
			fs := splitFields(t, bp)
			var reordered []rawField
			for _, fl := range fs {
				if fl.num == 3 {
					reordered = append(reordered, fl)
				}
			}
			for _, fl := range fs {
				if fl.num != 3 {
					reordered = append(reordered, fl)
				}
			}
			return append(b, bytesField(6, joinFields(reordered)).raw...)
		}, envelope.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := envelope.Decode(tt.build(t))
			if !errors.Is(err, tt.want) || e != nil {
				t.Errorf("Decode = %v, %v; want nil, %v", e, err, tt.want)
			}
		})
	}
}

// TestBatchProofsAreNotInterchangeable moves proofs and signatures between
// envelopes of a batch and between batches: each still decodes, but none
// verifies.
func TestBatchProofsAreNotInterchangeable(t *testing.T) {
	f := newFixture(t)
	a := f.signBatch(t, f.prepareN(t, 4, true))
	b := f.signBatch(t, f.prepareN(t, 4, true))
	tests := []struct {
		name string
		dst  []byte
		fn   func(dst parsed)
	}{
		{"proof of a sibling", a[0], func(p parsed) { p.env.Batch = parse(t, a[1]).env.Batch }},
		{"signature of another batch", a[0], func(p parsed) { p.env.Signature = parse(t, b[0]).env.Signature }},
		{"proof and signature of another batch", a[0], func(p parsed) {
			o := parse(t, b[0])
			p.env.Batch, p.env.Signature = o.env.Batch, o.env.Signature
		}},
		{"other tree size, same path shape", a[2], func(p parsed) { p.env.Batch.TreeSize = 3 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := parse(t, tt.dst)
			tt.fn(p)
			_, st, err := readAs(p.encode(t), f.meta.Subject, f.signer.public(), "clinic")
			if err == nil || st > stageVerify {
				t.Errorf("readAs = stopped at %v with %v, want a failure by Verify", st, err)
			}
		})
	}
}

func TestVerifierCachesBatchRoots(t *testing.T) {
	f := newFixture(t)
	bs := f.signBatch(t, f.prepareN(t, 5, true))
	v := envelope.NewVerifier(16)
	for i, b := range bs {
		e, err := envelope.Decode(b)
		if err != nil {
			t.Fatalf("Decode(%d) = %v", i, err)
		}
		if err := v.Verify(e, f.signer.public()); err != nil {
			t.Fatalf("Verifier.Verify(%d) = %v", i, err)
		}
		if _, ok := e.WrappedKey("clinic"); !ok {
			t.Errorf("WrappedKey(clinic) after Verifier.Verify = false, want true")
		}
	}
	if got := v.Len(); got != 1 {
		t.Errorf("Verifier.Len() after one batch = %d, want 1", got)
	}

	// A cached root does not let a changed proof, signature or key in.
	other := ed25519.NewKeyFromSeed(seedFor("someone else")).Public().(ed25519.PublicKey)
	tests := []struct {
		name string
		b    []byte
		pub  ed25519.PublicKey
	}{
		{"another signer's key", bs[1], other},
		{"a flipped path bit", flip(t, bs[1], func(p parsed) { p.env.Batch.Path[0][0] ^= 1 }), f.signer.public()},
		{"a flipped signature bit", flip(t, bs[1], func(p parsed) { p.env.Signature[0] ^= 1 }), f.signer.public()},
		{"a flipped ciphertext bit", flip(t, bs[1], func(p parsed) { p.env.Ciphertext[0] ^= 1 }), f.signer.public()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := envelope.Decode(tt.b)
			if err != nil {
				t.Fatalf("Decode = %v", err)
			}
			if err := v.Verify(e, tt.pub); !errors.Is(err, envelope.ErrSignature) {
				t.Errorf("Verifier.Verify = %v, want ErrSignature", err)
			}
		})
	}
}

func flip(t *testing.T, b []byte, fn func(parsed)) []byte {
	t.Helper()
	p := parse(t, b)
	fn(p)
	return p.encode(t)
}
