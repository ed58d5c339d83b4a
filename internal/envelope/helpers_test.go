package envelope_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/keys"
	"phix.dev/phix/schemas"
)

// testSigner signs with a fixed Ed25519 key and reports a fixed key ID.
type testSigner struct {
	priv  ed25519.PrivateKey
	keyID string
	calls int
}

func (s *testSigner) Sign(_ context.Context, msg []byte) ([]byte, string, error) {
	s.calls++
	return ed25519.Sign(s.priv, msg), s.keyID, nil
}

func (s *testSigner) public() ed25519.PublicKey { return s.priv.Public().(ed25519.PublicKey) }

func newSigner(seed []byte, keyID string) *testSigner {
	return &testSigner{priv: ed25519.NewKeyFromSeed(seed), keyID: keyID}
}

// seedFor returns a deterministic 32-byte seed or key for a label.
func seedFor(label string) []byte {
	s := sha256.Sum256([]byte("phix envelope test/" + label))
	return s[:]
}

// toyWrap stands in for a key provider: it XORs the data key with a pad
// derived from the recipient's name. It has no integrity at all, which is
// the point: a tampered wrapped key unwraps to a different data key, and
// only the envelope's key commitment can catch that.
func toyWrap(recipient string, dk *keys.DataKey) []byte {
	pad := seedFor("wrap/" + recipient)
	out := make([]byte, len(pad))
	for i := range out {
		out[i] = dk.Bytes()[i] ^ pad[i]
	}
	return out
}

var errToyUnwrap = errors.New("toy unwrap: wrong length")

func toyUnwrap(recipient, dataKeyID string, wrapped []byte) (*keys.DataKey, error) {
	pad := seedFor("wrap/" + recipient)
	if len(wrapped) != len(pad) {
		return nil, errToyUnwrap
	}
	k := make([]byte, len(pad))
	for i := range k {
		k[i] = wrapped[i] ^ pad[i]
	}
	return keys.DataKeyFromBytes(dataKeyID, k)
}

var errNoKey = errors.New("no wrapped key for reader")

// stage names the step of [readAs] that failed.
type stage int

const (
	stageDecode stage = iota
	stageSubject
	stageVerify
	stageUnwrap
	stageOpen
	stageDone
)

func (s stage) String() string {
	return [...]string{"Decode", "CheckSubject", "Verify", "unwrap", "Open", "done"}[s]
}

// readAs runs the reader's verification order of the package doc as
// machine reader and returns the plaintext, or the stage and error at
// which it stopped.
func readAs(b []byte, arrived string, pub ed25519.PublicKey, reader string) ([]byte, stage, error) {
	e, err := envelope.Decode(b)
	if err != nil {
		return nil, stageDecode, err
	}
	if err := e.CheckSubject(arrived); err != nil {
		return nil, stageSubject, err
	}
	if err := e.Verify(pub); err != nil {
		return nil, stageVerify, err
	}
	w, ok := e.WrappedKey(reader)
	if !ok {
		return nil, stageUnwrap, errNoKey
	}
	dk, err := toyUnwrap(reader, e.Header().DataKeyID, w)
	if err != nil {
		return nil, stageUnwrap, err
	}
	pt, err := e.Open(dk)
	if err != nil {
		return nil, stageOpen, err
	}
	return pt, stageDone, nil
}

// fixture is one valid message from lab to clinic and ward.
type fixture struct {
	signer    *testSigner
	dk        *keys.DataKey
	meta      envelope.Meta
	wrapped   []envelope.WrappedKey
	plaintext []byte
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	dk, err := keys.DataKeyFromBytes("dk-fixture-0001", seedFor("data key"))
	if err != nil {
		t.Fatalf("DataKeyFromBytes = %v", err)
	}
	f := &fixture{
		signer: newSigner(seedFor("signer lab"), "lab-sign-v1"),
		dk:     dk,
		meta: envelope.Meta{
			MessageID:   "msg-0001",
			Sender:      "lab",
			Recipients:  []string{"ward", "clinic"},
			Subject:     "phix.msg.lab.clinic.result",
			ContentType: "application/fhir+json",
			SchemaID:    "fhir-r4/Observation",
			Created:     time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC),
		},
		plaintext: []byte(`{"resourceType":"Observation","status":"final","note":"synthetic"}`),
	}
	for _, r := range []string{"ward", "clinic"} {
		f.wrapped = append(f.wrapped, envelope.WrappedKey{Recipient: r, Wrapped: toyWrap(r, dk)})
	}
	return f
}

func (f *fixture) seal(t testing.TB) []byte {
	t.Helper()
	b, err := envelope.Seal(context.Background(), f.signer, f.meta, f.dk, f.wrapped, f.plaintext)
	if err != nil {
		t.Fatalf("Seal = %v", err)
	}
	return b
}

// parsed is an envelope split into its generated messages, for tests that
// build invalid envelopes field by field.
type parsed struct {
	env *schemas.Envelope
	hdr *schemas.Header
}

func parse(t testing.TB, b []byte) parsed {
	t.Helper()
	p := parsed{env: new(schemas.Envelope), hdr: new(schemas.Header)}
	if err := proto.Unmarshal(b, p.env); err != nil {
		t.Fatalf("proto.Unmarshal(envelope) = %v", err)
	}
	if err := proto.Unmarshal(p.env.Header, p.hdr); err != nil {
		t.Fatalf("proto.Unmarshal(header) = %v", err)
	}
	return p
}

// encode re-encodes canonically, header included.
func (p parsed) encode(t testing.TB) []byte {
	t.Helper()
	opts := proto.MarshalOptions{Deterministic: true}
	h, err := opts.Marshal(p.hdr)
	if err != nil {
		t.Fatalf("Marshal(header) = %v", err)
	}
	p.env.Header = h
	b, err := opts.Marshal(p.env)
	if err != nil {
		t.Fatalf("Marshal(envelope) = %v", err)
	}
	return b
}

func repeat(c byte, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

// names returns n distinct valid machine names that sort as generated.
func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}
