package envelope_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/keys"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const vectorsFile = "testdata/vectors.json"

// hexBytes is a byte string written as lowercase hex in JSON.
type hexBytes []byte

func (h hexBytes) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

func (h *hexBytes) UnmarshalText(b []byte) error {
	v, err := hex.DecodeString(string(b))
	*h = v
	return err
}

// vector is one known-answer test. Inputs determine the envelope fully;
// outputs are what Seal and an independent derivation from
// schemas/envelope-v1.md must produce.
type vector struct {
	Name string `json:"name"`

	// Inputs.
	SigningSeed hexBytes       `json:"signing_seed"` // Ed25519 seed (RFC 8032)
	SignerKeyID string         `json:"signer_key_id"`
	DataKeyID   string         `json:"data_key_id"`
	DataKey     hexBytes       `json:"data_key"`
	Salt        hexBytes       `json:"salt"`
	Meta        vectorMeta     `json:"meta"`
	WrappedKeys []vectorWrap   `json:"wrapped_keys"` // opaque placeholders
	Plaintext   hexBytes       `json:"plaintext"`
	Outputs     vectorExpected `json:"outputs"`
}

type vectorMeta struct {
	MessageID       string   `json:"message_id"`
	Sender          string   `json:"sender"`
	Recipients      []string `json:"recipients"`
	Subject         string   `json:"subject"`
	ContentType     string   `json:"content_type"`
	SchemaID        string   `json:"schema_id"`
	CreatedUnixNano int64    `json:"created_unix_nano"`
}

type vectorWrap struct {
	Recipient string   `json:"recipient"`
	Wrapped   hexBytes `json:"wrapped"`
}

type vectorExpected struct {
	PayloadKey    hexBytes `json:"payload_key"`
	KeyCommitment hexBytes `json:"key_commitment"`
	Header        hexBytes `json:"header"`
	Ciphertext    hexBytes `json:"ciphertext"`
	SignedMessage hexBytes `json:"signed_message"`
	Signature     hexBytes `json:"signature"`
	Envelope      hexBytes `json:"envelope"`
}

func loadVectors(t testing.TB) []vector { return readVectors[vector](t, vectorsFile) }

// readVectors reads a non-empty list of known-answer vectors from path.
func readVectors[V any](t testing.TB, path string) []V {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading vectors: %v", err)
	}
	var vs []V
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	if len(vs) == 0 {
		t.Fatalf("%s holds no vectors", path)
	}
	return vs
}

// vectorInputs are the cases written by -update.
func vectorInputs() []vector {
	lab := vectorMeta{
		MessageID:       "0192f5a4-0001",
		Sender:          "lab",
		Recipients:      []string{"clinic"},
		Subject:         "phix.msg.lab.clinic.result",
		ContentType:     "application/fhir+json",
		CreatedUnixNano: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC).UnixNano(),
	}
	multi := lab
	multi.MessageID = "0192f5a4-0002"
	multi.Recipients = []string{"ward", "clinic", "pharmacy"}
	multi.SchemaID = "hl7.org/fhir/R4/observation"
	multiWard := multi
	multiWard.Subject = "phix.msg.lab.ward.result"
	empty := lab
	empty.MessageID = "0192f5a4-0003"
	empty.ContentType = "application/octet-stream"

	wraps := func(rs ...string) []vectorWrap {
		var ws []vectorWrap
		for _, r := range rs {
			ws = append(ws, vectorWrap{Recipient: r, Wrapped: []byte("placeholder wrapped key for " + r)})
		}
		return ws
	}
	base := vector{
		SigningSeed: seedFor("vector signer lab"),
		SignerKeyID: "lab-ed25519-v1",
		DataKeyID:   "8f1c2a0e5b7d4c3e9a6b1d0f2e4c6a8b",
		DataKey:     seedFor("vector data key 1"),
	}
	with := func(name, saltLabel string, m vectorMeta, ws []vectorWrap, pt string) vector {
		v := base
		v.Name, v.Salt, v.Meta, v.WrappedKeys, v.Plaintext = name, seedFor(saltLabel), m, ws, []byte(pt)
		return v
	}
	obs := `{"resourceType":"Observation","id":"synthetic-1","status":"final",` +
		`"code":{"text":"synthetic glucose"},"valueQuantity":{"value":5.4,"unit":"mmol/L"}}`
	return []vector{
		with("one recipient", "salt 1", lab, wraps("clinic"), obs),
		with("three recipients and a grant, copy for clinic", "salt 2", multi,
			wraps("ward", "auditor", "clinic", "pharmacy"), obs),
		with("three recipients and a grant, copy for ward", "salt 3", multiWard,
			wraps("ward", "auditor", "clinic", "pharmacy"), obs),
		with("empty payload", "salt 4", empty, wraps("clinic"), ""),
	}
}

// sealVector runs Seal on a vector's inputs, with its salt as the only
// randomness.
func sealVector(t *testing.T, v *vector) []byte {
	t.Helper()
	envelope.SetRandom(t, bytes.NewReader(v.Salt))
	dk, err := keys.DataKeyFromBytes(v.DataKeyID, v.DataKey)
	if err != nil {
		t.Fatalf("DataKeyFromBytes = %v", err)
	}
	m := envelope.Meta{
		MessageID:   v.Meta.MessageID,
		Sender:      v.Meta.Sender,
		Recipients:  v.Meta.Recipients,
		Subject:     v.Meta.Subject,
		ContentType: v.Meta.ContentType,
		SchemaID:    v.Meta.SchemaID,
		Created:     time.Unix(0, v.Meta.CreatedUnixNano),
	}
	var ws []envelope.WrappedKey
	for _, w := range v.WrappedKeys {
		ws = append(ws, envelope.WrappedKey{Recipient: w.Recipient, Wrapped: w.Wrapped})
	}
	s := newSigner(v.SigningSeed, v.SignerKeyID)
	b, err := envelope.Seal(context.Background(), s, m, dk, ws, v.Plaintext)
	if err != nil {
		t.Fatalf("Seal = %v", err)
	}
	return b
}

// specOutputs computes a vector's outputs from the spec with the standard
// library alone, independently of the package's own derivation code.
func specOutputs(t *testing.T, v *vector, b []byte) vectorExpected {
	t.Helper()
	e, err := envelope.Decode(b)
	if err != nil {
		t.Fatalf("Decode(Seal output) = %v", err)
	}
	p := parse(t, b)

	pk, err := hkdf.Key(sha256.New, v.DataKey, v.Salt, "phix/v1/payload-key", 32)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := hkdf.Key(sha256.New, v.DataKey, v.Salt, "phix/v1/key-commitment", 32)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(p.env.Ciphertext)
	msg := []byte("phix/v1/signature\x00")
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(p.env.Header)))
	msg = append(append(msg, p.env.Header...), digest[:]...)

	if got := e.SignedMessage(); !bytes.Equal(got, msg) {
		t.Errorf("SignedMessage() = %x, want %x", got, msg)
	}
	if got := e.CiphertextDigest(); got != digest {
		t.Errorf("CiphertextDigest() = %x, want %x", got, digest)
	}
	pub := ed25519.NewKeyFromSeed(v.SigningSeed).Public().(ed25519.PublicKey)
	if !ed25519.Verify(pub, msg, p.env.Signature) {
		t.Errorf("signature does not verify over the spec's signature input")
	}
	block, _ := aes.NewCipher(pk)
	gcm, _ := cipher.NewGCM(block)
	pt, err := gcm.Open(nil, make([]byte, 12), p.env.Ciphertext, p.env.Header)
	if err != nil || !bytes.Equal(pt, v.Plaintext) {
		t.Errorf("AES-256-GCM open with the spec's payload key = %q, %v; want %q", pt, err, v.Plaintext)
	}
	return vectorExpected{
		PayloadKey:    pk,
		KeyCommitment: kc,
		Header:        p.env.Header,
		Ciphertext:    p.env.Ciphertext,
		SignedMessage: msg,
		Signature:     p.env.Signature,
		Envelope:      b,
	}
}

func TestVectors(t *testing.T) {
	if *update {
		vs := vectorInputs()
		for i := range vs {
			b := sealVector(t, &vs[i])
			vs[i].Outputs = specOutputs(t, &vs[i], b)
		}
		out, err := json.MarshalIndent(vs, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(vectorsFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsFile, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			b := sealVector(t, &v)
			got := specOutputs(t, &v, b)
			if diff := cmp.Diff(v.Outputs, got); diff != "" {
				t.Errorf("outputs mismatch (-want +got):\n%s", diff)
			}

			e, err := envelope.Decode(v.Outputs.Envelope)
			if err != nil {
				t.Fatalf("Decode(vector) = %v", err)
			}
			pub := ed25519.NewKeyFromSeed(v.SigningSeed).Public().(ed25519.PublicKey)
			if err := e.Verify(pub); err != nil {
				t.Fatalf("Verify = %v", err)
			}
			h := e.Header()
			if !bytes.Equal(h.KeyCommitment[:], v.Outputs.KeyCommitment) {
				t.Errorf("Header().KeyCommitment = %x, want %x", h.KeyCommitment, v.Outputs.KeyCommitment)
			}
			dk, _ := keys.DataKeyFromBytes(v.DataKeyID, v.DataKey)
			pt, err := e.Open(dk)
			if err != nil || !bytes.Equal(pt, v.Plaintext) {
				t.Errorf("Open = %q, %v; want %q", pt, err, v.Plaintext)
			}
		})
	}
}
