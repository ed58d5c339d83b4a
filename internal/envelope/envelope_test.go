package envelope_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/keys"
)

func TestRoundTrip(t *testing.T) {
	f := newFixture(t)
	b := f.seal(t)

	for _, reader := range []string{"clinic", "ward"} {
		pt, st, err := readAs(b, f.meta.Subject, f.signer.public(), reader)
		if err != nil {
			t.Fatalf("readAs(%s) stopped at %v: %v", reader, st, err)
		}
		if !bytes.Equal(pt, f.plaintext) {
			t.Errorf("readAs(%s) = %q, want %q", reader, pt, f.plaintext)
		}
	}

	e, err := envelope.Decode(b)
	if err != nil {
		t.Fatalf("Decode = %v", err)
	}
	h := e.Header()
	want := envelope.Header{
		Version:       envelope.Version1,
		MessageID:     f.meta.MessageID,
		Sender:        f.meta.Sender,
		Recipients:    []string{"clinic", "ward"},
		Subject:       f.meta.Subject,
		ContentType:   f.meta.ContentType,
		SchemaID:      f.meta.SchemaID,
		Created:       f.meta.Created,
		DataKeyID:     f.dk.ID(),
		KeyCommitment: h.KeyCommitment,
		Salt:          h.Salt,
		SignerKeyID:   "lab-sign-v1",
	}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("Header() mismatch (-want +got):\n%s", diff)
	}
}

func TestSealFreshSalt(t *testing.T) {
	f := newFixture(t)
	a, b := f.seal(t), f.seal(t)
	ea, err := envelope.Decode(a)
	if err != nil {
		t.Fatalf("Decode = %v", err)
	}
	eb, err := envelope.Decode(b)
	if err != nil {
		t.Fatalf("Decode = %v", err)
	}
	if ea.Header().Salt == eb.Header().Salt {
		t.Errorf("two Seal calls used the same salt %x", ea.Header().Salt)
	}
	if ea.CiphertextDigest() == eb.CiphertextDigest() {
		t.Errorf("two Seal calls produced the same ciphertext")
	}
}

func TestHeaderIsACopy(t *testing.T) {
	e, err := envelope.Decode(newFixture(t).seal(t))
	if err != nil {
		t.Fatalf("Decode = %v", err)
	}
	h := e.Header()
	h.Recipients[0] = "mallory"
	if got := e.Header().Recipients[0]; got != "clinic" {
		t.Errorf("after editing a copy, Header().Recipients[0] = %q, want %q", got, "clinic")
	}
}

func TestWrongSubject(t *testing.T) {
	f := newFixture(t)
	b := f.seal(t)
	for _, arrived := range []string{
		"phix.msg.lab.ward.result",   // another recipient's inbox
		"phix.msg.lab.clinic.report", // another type
		"phix.msg.evil.clinic.result",
		"",
	} {
		_, st, err := readAs(b, arrived, f.signer.public(), "clinic")
		if !errors.Is(err, envelope.ErrSubjectMismatch) || st != stageSubject {
			t.Errorf("readAs on %q = %v, %v; want %v, %v",
				arrived, st, err, stageSubject, envelope.ErrSubjectMismatch)
		}
	}
}

func TestWrongSignerKey(t *testing.T) {
	f := newFixture(t)
	b := f.seal(t)
	other := newSigner(seedFor("signer evil"), "lab-sign-v1").public()
	for name, pub := range map[string][]byte{
		"other key": other,
		"short key": other[:31],
		"nil key":   nil,
	} {
		_, st, err := readAs(b, f.meta.Subject, pub, "clinic")
		if !errors.Is(err, envelope.ErrSignature) || st != stageVerify {
			t.Errorf("%s: readAs = %v, %v; want %v, %v",
				name, st, err, stageVerify, envelope.ErrSignature)
		}
	}
}

func TestWrongDataKey(t *testing.T) {
	f := newFixture(t)
	e, err := envelope.Decode(f.seal(t))
	if err != nil {
		t.Fatalf("Decode = %v", err)
	}
	if err := e.Verify(f.signer.public()); err != nil {
		t.Fatalf("Verify = %v", err)
	}

	sameID, _ := keys.DataKeyFromBytes(f.dk.ID(), seedFor("another data key"))
	sameBytes, _ := keys.DataKeyFromBytes("dk-other", f.dk.Bytes())
	destroyed, _ := keys.DataKeyFromBytes(f.dk.ID(), f.dk.Bytes())
	destroyed.Destroy()
	tests := []struct {
		name string
		dk   *keys.DataKey
	}{
		{"another key under the same id", sameID},
		{"the right key under another id", sameBytes},
		{"a destroyed key", destroyed},
		{"a fresh key", keys.NewDataKey()},
		{"a nil key", nil},
		{"the zero key", new(keys.DataKey)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pt, err := e.Open(tt.dk)
			if err != envelope.ErrOpen || pt != nil {
				t.Errorf("Open = %q, %v; want nil, exactly %v", pt, err, envelope.ErrOpen)
			}
		})
	}
}

func TestOpenNeedsVerify(t *testing.T) {
	f := newFixture(t)
	e, err := envelope.Decode(f.seal(t))
	if err != nil {
		t.Fatalf("Decode = %v", err)
	}
	if _, err := e.Open(f.dk); !errors.Is(err, envelope.ErrUnverified) {
		t.Errorf("Open before Verify = %v, want %v", err, envelope.ErrUnverified)
	}
	if w, ok := e.WrappedKey("clinic"); ok {
		t.Errorf("WrappedKey before Verify = %x, true; want false", w)
	}
	if err := e.Verify(newSigner(seedFor("signer evil"), "x").public()); err == nil {
		t.Fatalf("Verify(wrong key) = nil, want %v", envelope.ErrSignature)
	}
	if _, err := e.Open(f.dk); !errors.Is(err, envelope.ErrUnverified) {
		t.Errorf("Open after failed Verify = %v, want %v", err, envelope.ErrUnverified)
	}

	if err := e.Verify(f.signer.public()); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	if _, ok := e.WrappedKey("auditor"); ok {
		t.Errorf("WrappedKey(auditor) reported a key the envelope lacks")
	}
	if _, err := e.Open(f.dk); err != nil {
		t.Errorf("Open after Verify = %v", err)
	}
}

func TestWithWrappedKeys(t *testing.T) {
	f := newFixture(t)
	b := f.seal(t)
	e, err := envelope.Decode(b)
	if err != nil {
		t.Fatalf("Decode = %v", err)
	}

	same, err := e.WithWrappedKeys(e.WrappedKeys())
	if err != nil {
		t.Fatalf("WithWrappedKeys(unchanged) = %v", err)
	}
	if !bytes.Equal(same, b) {
		t.Errorf("WithWrappedKeys(unchanged) differs from the sealed envelope")
	}

	// A grant: the auditor gets a key; the list is given out of order.
	granted := append(e.WrappedKeys(), envelope.WrappedKey{Recipient: "auditor", Wrapped: toyWrap("auditor", f.dk)})
	g, err := e.WithWrappedKeys(granted)
	if err != nil {
		t.Fatalf("WithWrappedKeys(grant) = %v", err)
	}
	for _, reader := range []string{"auditor", "clinic", "ward"} {
		pt, st, err := readAs(g, f.meta.Subject, f.signer.public(), reader)
		if err != nil || !bytes.Equal(pt, f.plaintext) {
			t.Errorf("after grant, readAs(%s) = %q, %v, %v; want %q", reader, pt, st, err, f.plaintext)
		}
	}

	eg, err := envelope.Decode(g)
	if err != nil {
		t.Fatalf("Decode(granted) = %v", err)
	}
	if !bytes.Equal(eg.SignedMessage(), e.SignedMessage()) {
		t.Errorf("grant changed the signed message")
	}

	dup := append(e.WrappedKeys(), e.WrappedKeys()[0])
	if _, err := e.WithWrappedKeys(dup); !errors.Is(err, envelope.ErrDuplicateRecipient) {
		t.Errorf("WithWrappedKeys(duplicate) = %v, want %v", err, envelope.ErrDuplicateRecipient)
	}
	if _, err := e.WithWrappedKeys(nil); !errors.Is(err, envelope.ErrMalformed) {
		t.Errorf("WithWrappedKeys(nil) = %v, want %v", err, envelope.ErrMalformed)
	}
}

// TestWrappedKeySwap replaces clinic's wrapped key with a well-formed wrap
// of a different data key under the same ID, as a rewrap agent could.
// Decode and Verify pass, because wrapped keys are not signed; the key
// commitment is what stops it.
func TestWrappedKeySwap(t *testing.T) {
	f := newFixture(t)
	e, err := envelope.Decode(f.seal(t))
	if err != nil {
		t.Fatalf("Decode = %v", err)
	}
	other, _ := keys.DataKeyFromBytes(f.dk.ID(), seedFor("swapped data key"))
	swapped, err := e.WithWrappedKeys([]envelope.WrappedKey{
		{Recipient: "clinic", Wrapped: toyWrap("clinic", other)},
		{Recipient: "ward", Wrapped: toyWrap("ward", f.dk)},
	})
	if err != nil {
		t.Fatalf("WithWrappedKeys = %v", err)
	}

	_, st, err := readAs(swapped, f.meta.Subject, f.signer.public(), "clinic")
	if err != envelope.ErrOpen || st != stageOpen {
		t.Errorf("readAs(clinic) after swap = %v, %v; want %v, %v", st, err, stageOpen, envelope.ErrOpen)
	}
	if _, _, err := readAs(swapped, f.meta.Subject, f.signer.public(), "ward"); err != nil {
		t.Errorf("readAs(ward) after swapping clinic's key = %v, want nil", err)
	}
}

// countingSigner reports a new key ID every time it signs when rotate is
// set, as if its key rotated between every two calls.
type countingSigner struct {
	*testSigner
	rotate bool
}

func (s *countingSigner) Sign(ctx context.Context, msg []byte) ([]byte, string, error) {
	sig, id, err := s.testSigner.Sign(ctx, msg)
	if s.rotate {
		id = id + "-" + string(rune('a'+s.calls))
	}
	return sig, id, err
}

type aheadSigner struct{ *testSigner }

func (s aheadSigner) SigningKeyID(context.Context) (string, error) { return s.keyID, nil }

func TestSealSignerKeyID(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	plain := newSigner(seedFor("signer lab"), "lab-sign-v1")
	if _, err := envelope.Seal(ctx, plain, f.meta, f.dk, f.wrapped, f.plaintext); err != nil {
		t.Fatalf("Seal = %v", err)
	}
	if plain.calls != 2 {
		t.Errorf("Seal with a plain Signer signed %d times, want 2", plain.calls)
	}

	ahead := aheadSigner{newSigner(seedFor("signer lab"), "lab-sign-v1")}
	b, err := envelope.Seal(ctx, ahead, f.meta, f.dk, f.wrapped, f.plaintext)
	if err != nil {
		t.Fatalf("Seal = %v", err)
	}
	if ahead.calls != 1 {
		t.Errorf("Seal with SigningKeyID signed %d times, want 1", ahead.calls)
	}
	if _, _, err := readAs(b, f.meta.Subject, f.signer.public(), "clinic"); err != nil {
		t.Errorf("readAs after one-shot signing = %v", err)
	}

	rot := &countingSigner{testSigner: newSigner(seedFor("signer lab"), "v"), rotate: true}
	if _, err := envelope.Seal(ctx, rot, f.meta, f.dk, f.wrapped, f.plaintext); err == nil {
		t.Errorf("Seal with an ever-rotating signer = nil error, want one")
	}

	empty := newSigner(seedFor("signer lab"), "")
	if _, err := envelope.Seal(ctx, empty, f.meta, f.dk, f.wrapped, f.plaintext); err == nil {
		t.Errorf("Seal with a signer reporting no key id = nil error, want one")
	}
}

type failingSigner struct{}

var errSignerDown = errors.New("signer down")

func (failingSigner) Sign(context.Context, []byte) ([]byte, string, error) {
	return nil, "", errSignerDown
}

func TestSealRejects(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name   string
		edit   func(m *envelope.Meta)
		signer envelope.Signer
		want   error
	}{
		{"a signer error", nil, failingSigner{}, errSignerDown},
		{"no message id", func(m *envelope.Meta) { m.MessageID = "" }, nil, envelope.ErrMalformed},
		{"a message id with a space", func(m *envelope.Meta) {
			m.MessageID = "a b"
		}, nil, envelope.ErrMalformed},
		{"an invalid sender", func(m *envelope.Meta) {
			m.Sender = "Lab"
		}, nil, envelope.ErrMalformed},
		{"no recipients", func(m *envelope.Meta) {
			m.Recipients = nil
		}, nil, envelope.ErrMalformed},
		{"a duplicate recipient", func(m *envelope.Meta) {
			m.Recipients = []string{"clinic", "ward", "clinic"}
		}, nil, envelope.ErrDuplicateRecipient},
		{"a subject for another sender", func(m *envelope.Meta) {
			m.Subject = "phix.msg.ward.clinic.result"
		}, nil, envelope.ErrSubjectMismatch},
		{"a subject for a non-recipient", func(m *envelope.Meta) {
			m.Subject = "phix.msg.lab.home.result"
		}, nil, envelope.ErrSubjectMismatch},
		{"a subject that is not a message subject", func(m *envelope.Meta) {
			m.Subject = "phix.msg.lab.clinic"
		}, nil, envelope.ErrMalformed},
		{"no content type", func(m *envelope.Meta) {
			m.ContentType = ""
		}, nil, envelope.ErrMalformed},
		{"a content type with a newline", func(m *envelope.Meta) {
			m.ContentType = "text/plain\n"
		}, nil, envelope.ErrMalformed},
		{"no created time", func(m *envelope.Meta) {
			m.Created = time.Time{}
		}, nil, envelope.ErrMalformed},
		{"a created time at the epoch", func(m *envelope.Meta) {
			m.Created = time.Unix(0, 0)
		}, nil, envelope.ErrMalformed},
		{"a created time past 2262", func(m *envelope.Meta) {
			m.Created = time.Date(2263, 1, 1, 0, 0, 0, 0, time.UTC)
		}, nil, envelope.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := f.meta
			if tt.edit != nil {
				tt.edit(&m)
			}
			s := tt.signer
			if s == nil {
				s = f.signer
			}
			_, err := envelope.Seal(context.Background(), s, m, f.dk, f.wrapped, f.plaintext)
			if !errors.Is(err, tt.want) {
				t.Errorf("Seal = %v, want %v", err, tt.want)
			}
		})
	}

	ctx := context.Background()
	if _, err := envelope.Seal(ctx, f.signer, f.meta, nil, f.wrapped, f.plaintext); err == nil {
		t.Errorf("Seal(nil data key) = nil error, want one")
	}
	_, err := envelope.Seal(ctx, f.signer, f.meta, f.dk, nil, f.plaintext)
	if !errors.Is(err, envelope.ErrMalformed) {
		t.Errorf("Seal(no wrapped keys) = %v, want %v", err, envelope.ErrMalformed)
	}
}
