package envelope_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/keys"
	"phix.dev/phix/schemas"
)

// delegCreated is the creation time of the envelopes in these tests.
var delegCreated = time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)

// newTestSession makes a session for machine whose key comes from seed,
// so that tests can make several delegations for one session key.
func newTestSession(t *testing.T, id *testSigner, machine string, seed []byte,
	nb, na time.Time) *envelope.Session {
	t.Helper()
	envelope.SetRandom(t, io.MultiReader(bytes.NewReader(seed), rand.Reader))
	s, err := envelope.NewSession(context.Background(), id, machine, nb, na, "")
	if err != nil {
		t.Fatalf("NewSession(%s) = %v", machine, err)
	}
	return s
}

// delegatedBatch seals copies from sender, created at delegCreated, and
// signs them with s.
func delegatedBatch(t *testing.T, s envelope.Signer, sender string, n int) [][]byte {
	t.Helper()
	dk := keys.NewDataKey()
	var us []*envelope.Unsigned
	for i := range n {
		u, err := envelope.Prepare(envelope.Meta{
			MessageID: "deleg-" + string(rune('a'+i)), Sender: sender,
			Recipients: []string{"clinic"}, Subject: "phix.msg." + sender + ".clinic.result",
			ContentType: "text/plain", Created: delegCreated,
		}, dk, nil, []byte("synthetic"))
		if err != nil {
			t.Fatalf("Prepare = %v", err)
		}
		us = append(us, u)
	}
	bs, err := envelope.SignBatch(context.Background(), s, us)
	if err != nil {
		t.Fatalf("SignBatch = %v", err)
	}
	return bs
}

// withDelegation returns b with its delegation replaced by s's.
func withDelegation(t *testing.T, b []byte, s *envelope.Session, keyID string) []byte {
	t.Helper()
	p := parse(t, b)
	p.env.Delegation = envelope.SessionProto(s)
	if keyID != "" {
		p.env.SignerKeyId = keyID
	}
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(p.env)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDelegatedBatchVerifies(t *testing.T) {
	id := newSigner(seedFor("identity lab"), "vault:v4")
	s := newTestSession(t, id, "lab", seedFor("session"), delegCreated.Add(-time.Hour), delegCreated.Add(time.Hour))
	bs := delegatedBatch(t, s, "lab", 3)
	if id.calls != 2 { // one to learn the key version, one over the statement naming it
		t.Errorf("identity signatures for one session = %d, want 2", id.calls)
	}
	v := envelope.NewVerifier(16)
	for i, b := range bs {
		e, err := envelope.Decode(b)
		if err != nil {
			t.Fatalf("Decode(copy %d) = %v", i, err)
		}
		if h := e.Header(); h.SignerKeyID != "vault:v4" {
			t.Errorf("copy %d: SignerKeyID = %q, want vault:v4", i, h.SignerKeyID)
		}
		d, ok := e.Delegation()
		if !ok || d.Machine != "lab" || !d.SessionKey.Equal(s.Delegation().SessionKey) {
			t.Errorf("copy %d: Delegation() = %+v, %v; want the session's", i, d, ok)
		}
		if err := envelope.NewVerifier(0).Verify(e, id.public()); err != nil {
			t.Errorf("copy %d: Verify(identity key), no cache = %v, want nil", i, err)
		}
		if err := v.Verify(e, id.public()); err != nil {
			t.Errorf("copy %d: Verifier.Verify(identity key) = %v, want nil", i, err)
		}
		if err := e.Verify(s.Delegation().SessionKey); !errors.Is(err, envelope.ErrSignature) {
			t.Errorf("copy %d: Verify(session key) = %v, want ErrSignature", i, err)
		}
	}
	if n := v.Len(); n != 2 { // one delegation and one batch root
		t.Errorf("Verifier.Len() = %d, want 2", n)
	}
}

func TestSignBatchRefusesSessionOutsideValidity(t *testing.T) {
	id := newSigner(seedFor("identity lab"), "vault:v1")
	s := newTestSession(t, id, "lab", seedFor("session"), delegCreated.Add(time.Second), delegCreated.Add(time.Hour))
	u, err := envelope.Prepare(envelope.Meta{
		MessageID: "m1", Sender: "lab", Recipients: []string{"clinic"},
		Subject: "phix.msg.lab.clinic.result", ContentType: "text/plain", Created: delegCreated,
	}, keys.NewDataKey(), nil, []byte("synthetic"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = envelope.SignBatch(context.Background(), s, []*envelope.Unsigned{u})
	if !errors.Is(err, envelope.ErrSessionExpired) {
		t.Errorf("SignBatch(session not yet valid) = %v, want ErrSessionExpired", err)
	}
}

// TestDelegationBinding shows that a delegation verifies only for the
// sender, key version and creation times it names, even when the identity
// key and the session key are the same.
func TestDelegationBinding(t *testing.T) {
	id := newSigner(seedFor("shared identity"), "vault:v1")
	seed := seedFor("session")
	valid := newTestSession(t, id, "lab", seed, delegCreated.Add(-time.Hour), delegCreated.Add(time.Hour))
	b := delegatedBatch(t, valid, "lab", 1)[0]

	tests := []struct {
		name  string
		input []byte
	}{
		{"expired before the envelope was created", withDelegation(t, b,
			newTestSession(t, id, "lab", seed, delegCreated.Add(-2*time.Hour),
				delegCreated.Add(-time.Nanosecond)), "")},
		{"not yet valid when the envelope was created", withDelegation(t, b,
			newTestSession(t, id, "lab", seed, delegCreated.Add(time.Nanosecond), delegCreated.Add(time.Hour)), "")},
		{"delegation for machine lab on a message from ward", withDelegation(t,
			delegatedBatch(t, newTestSession(t, id, "ward", seed, delegCreated.Add(-time.Hour),
				delegCreated.Add(time.Hour)), "ward", 1)[0], valid, "")},
		{"envelope names another key version", withDelegation(t, b, valid, "vault:v2")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := envelope.Decode(tt.input)
			if err != nil {
				t.Fatalf("Decode = %v", err)
			}
			if err := e.Verify(id.public()); !errors.Is(err, envelope.ErrSignature) {
				t.Errorf("Verify = %v, want ErrSignature", err)
			}
			v := envelope.NewVerifier(16)
			good, _ := envelope.Decode(b)
			if err := v.Verify(good, id.public()); err != nil {
				t.Fatalf("Verifier.Verify(valid) = %v", err)
			}
			if err := v.Verify(e, id.public()); !errors.Is(err, envelope.ErrSignature) {
				t.Errorf("Verifier.Verify after a valid one = %v, want ErrSignature", err)
			}
		})
	}
}

// TestDelegationTamper flips every bit of the delegation's statement and
// signature: each flip must fail decoding or verification, also with a
// verifier that has seen the genuine delegation.
func TestDelegationTamper(t *testing.T) {
	id := newSigner(seedFor("identity lab"), "vault:v1")
	s := newTestSession(t, id, "lab", seedFor("session"), delegCreated.Add(-time.Hour), delegCreated.Add(time.Hour))
	b := delegatedBatch(t, s, "lab", 2)[0]
	v := envelope.NewVerifier(16)
	good, _ := envelope.Decode(b)
	if err := v.Verify(good, id.public()); err != nil {
		t.Fatalf("Verifier.Verify(genuine) = %v", err)
	}

	p := parse(t, b)
	fields := map[string]*[]byte{
		"statement": &p.env.Delegation.Statement,
		"signature": &p.env.Delegation.Signature,
	}
	for name, f := range fields {
		orig := bytes.Clone(*f)
		for i := range len(orig) * 8 {
			(*f)[i/8] ^= 1 << (i % 8)
			in, err := proto.MarshalOptions{Deterministic: true}.Marshal(p.env)
			(*f)[i/8] ^= 1 << (i % 8)
			if err != nil {
				t.Fatal(err)
			}
			e, err := envelope.Decode(in)
			if err != nil {
				if !errors.Is(err, envelope.ErrMalformed) {
					t.Errorf("%s bit %d: Decode = %v, want ErrMalformed or a failed Verify", name, i, err)
				}
				continue
			}
			if err := v.Verify(e, id.public()); !errors.Is(err, envelope.ErrSignature) {
				t.Errorf("%s bit %d: Verify = %v, want ErrSignature", name, i, err)
			}
		}
	}
}

func TestDelegationDecodeRules(t *testing.T) {
	id := newSigner(seedFor("identity lab"), "vault:v1")
	s := newTestSession(t, id, "lab", seedFor("session"), delegCreated.Add(-time.Hour), delegCreated.Add(time.Hour))
	b := delegatedBatch(t, s, "lab", 1)[0]
	v1 := sealV1(t)

	tests := []struct {
		name   string
		mutate func(*schemas.Envelope)
		base   []byte
	}{
		{"empty delegation", func(e *schemas.Envelope) { e.Delegation = &schemas.Delegation{} }, b},
		{"short signature", func(e *schemas.Envelope) { e.Delegation.Signature = e.Delegation.Signature[:63] }, b},
		{"trailing statement byte", func(e *schemas.Envelope) {
			e.Delegation.Statement = append(e.Delegation.Statement, 0)
		}, b},
		{"delegation in version 1", func(e *schemas.Envelope) { e.Delegation = envelope.SessionProto(s) }, v1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := parse(t, tt.base)
			tt.mutate(p.env)
			in, err := proto.MarshalOptions{Deterministic: true}.Marshal(p.env)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := envelope.Decode(in); !errors.Is(err, envelope.ErrMalformed) {
				t.Errorf("Decode = %v, want ErrMalformed", err)
			}
		})
	}
}

// sealV1 returns a version 1 envelope from lab to clinic.
func sealV1(t *testing.T) []byte {
	t.Helper()
	dk := keys.NewDataKey()
	b, err := envelope.Seal(context.Background(), newSigner(seedFor("v1"), "k1"), envelope.Meta{
		MessageID: "v1-1", Sender: "lab", Recipients: []string{"clinic"},
		Subject: "phix.msg.lab.clinic.result", ContentType: "text/plain", Created: delegCreated,
	}, dk, []envelope.WrappedKey{{Recipient: "clinic", Wrapped: toyWrap("clinic", dk)}}, []byte("x"))
	if err != nil {
		t.Fatalf("Seal = %v", err)
	}
	return b
}
