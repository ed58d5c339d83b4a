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
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/keys"
)

const vectorsV2File = "testdata/vectors-v2.json"

// batchVector is one known-answer test of format version 2: a batch of
// copies signed together. Inputs determine every byte; outputs are what
// Prepare and SignBatch and an independent derivation from
// schemas/envelope-v2.md must produce.
type batchVector struct {
	Name        string        `json:"name"`
	SigningSeed hexBytes      `json:"signing_seed"`
	SignerKeyID string        `json:"signer_key_id"`
	DataKeyID   string        `json:"data_key_id"`
	DataKey     hexBytes      `json:"data_key"`
	Copies      []batchCopy   `json:"copies"`
	Outputs     batchExpected `json:"outputs"`
}

type batchCopy struct {
	Salt        hexBytes     `json:"salt"`
	Meta        vectorMeta   `json:"meta"`
	WrappedKeys []vectorWrap `json:"wrapped_keys"` // empty: keys in the registry
	Plaintext   hexBytes     `json:"plaintext"`
}

type batchExpected struct {
	Root          hexBytes      `json:"root"`
	SignedMessage hexBytes      `json:"signed_message"`
	Signature     hexBytes      `json:"signature"`
	Copies        []copyOutputs `json:"copies"`
}

type copyOutputs struct {
	Header     hexBytes   `json:"header"`
	Ciphertext hexBytes   `json:"ciphertext"`
	LeafHash   hexBytes   `json:"leaf_hash"`
	Path       []hexBytes `json:"path"`
	Envelope   hexBytes   `json:"envelope"`
}

func batchVectorInputs() []batchVector {
	meta := func(id, rcpt string) vectorMeta {
		return vectorMeta{
			MessageID:       id,
			Sender:          "lab",
			Recipients:      []string{"clinic", "ward"},
			Subject:         "phix.msg.lab." + rcpt + ".result",
			ContentType:     "application/fhir+json",
			SchemaID:        "hl7.org/fhir/R4/observation",
			CreatedUnixNano: time.Date(2025, 6, 7, 8, 9, 10, 11, time.UTC).UnixNano(),
		}
	}
	obs := []byte(`{"resourceType":"Observation","id":"synthetic-2","status":"final"}`)
	base := batchVector{
		SigningSeed: seedFor("vector signer lab v2"),
		SignerKeyID: "vault:v3",
		DataKeyID:   "0d9b2f6c1a3e4b5d8c7f6e5d4c3b2a19",
		DataKey:     seedFor("vector data key 2"),
	}
	lone := base
	lone.Name = "a lone message, key in the registry"
	lone.Copies = []batchCopy{{Salt: seedFor("v2 salt 0"), Meta: meta("v2-0001", "clinic"), Plaintext: obs}}

	three := base
	three.Name = "two copies of one message and one of another, signed together"
	three.Copies = []batchCopy{
		{Salt: seedFor("v2 salt 1"), Meta: meta("v2-0002", "clinic"), Plaintext: obs},
		{Salt: seedFor("v2 salt 2"), Meta: meta("v2-0002", "ward"), Plaintext: obs},
		{Salt: seedFor("v2 salt 3"), Meta: meta("v2-0003", "clinic"), Plaintext: []byte{},
			WrappedKeys: []vectorWrap{{Recipient: "clinic", Wrapped: []byte("placeholder inline key")}}},
	}
	return []batchVector{lone, three}
}

// signBatchVector runs Prepare and SignBatch on a vector's inputs, with
// its salts as the only randomness.
func signBatchVector(t *testing.T, v *batchVector) [][]byte {
	t.Helper()
	var salts []byte
	for _, c := range v.Copies {
		salts = append(salts, c.Salt...)
	}
	envelope.SetRandom(t, bytes.NewReader(salts))
	dk, err := keys.DataKeyFromBytes(v.DataKeyID, v.DataKey)
	if err != nil {
		t.Fatalf("DataKeyFromBytes = %v", err)
	}
	var us []*envelope.Unsigned
	for _, c := range v.Copies {
		var ws []envelope.WrappedKey
		for _, w := range c.WrappedKeys {
			ws = append(ws, envelope.WrappedKey{Recipient: w.Recipient, Wrapped: w.Wrapped})
		}
		u, err := envelope.Prepare(envelope.Meta{
			MessageID: c.Meta.MessageID, Sender: c.Meta.Sender, Recipients: c.Meta.Recipients,
			Subject: c.Meta.Subject, ContentType: c.Meta.ContentType, SchemaID: c.Meta.SchemaID,
			Created: time.Unix(0, c.Meta.CreatedUnixNano),
		}, dk, ws, c.Plaintext)
		if err != nil {
			t.Fatalf("Prepare(%s) = %v", c.Meta.MessageID, err)
		}
		us = append(us, u)
	}
	bs, err := envelope.SignBatch(context.Background(), newSigner(v.SigningSeed, v.SignerKeyID), us)
	if err != nil {
		t.Fatalf("SignBatch = %v", err)
	}
	return bs
}

// specMTH is the RFC 9162 Merkle Tree Hash, and specPath the audit path,
// written from the RFC with the standard library only.
func specMTH(leaves [][]byte) []byte {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	h := sha256.Sum256(append(append([]byte{1}, specMTH(leaves[:k])...), specMTH(leaves[k:])...))
	return h[:]
}

func specPath(m int, leaves [][]byte) []hexBytes {
	if len(leaves) == 1 {
		return nil
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	if m < k {
		return append(specPath(m, leaves[:k]), specMTH(leaves[k:]))
	}
	return append(specPath(m-k, leaves[k:]), specMTH(leaves[:k]))
}

// specBatchOutputs computes a vector's outputs from the spec alone and
// checks the envelopes against them.
func specBatchOutputs(t *testing.T, v *batchVector, bs [][]byte) batchExpected {
	t.Helper()
	var out batchExpected
	var leaves [][]byte
	for i, b := range bs {
		p := parse(t, b)
		digest := sha256.Sum256(p.env.Ciphertext)
		in := []byte{0}
		in = append(in, "phix/v2/envelope\x00"...)
		in = binary.BigEndian.AppendUint32(in, uint32(len(p.env.Header)))
		in = append(append(in, p.env.Header...), digest[:]...)
		leaf := sha256.Sum256(in)
		leaves = append(leaves, leaf[:])

		c := v.Copies[i]
		pk, err := hkdf.Key(sha256.New, v.DataKey, c.Salt, "phix/v1/payload-key", 32)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := aes.NewCipher(pk)
		gcm, _ := cipher.NewGCM(block)
		if pt, err := gcm.Open(nil, make([]byte, 12), p.env.Ciphertext, p.env.Header); err != nil ||
			!bytes.Equal(pt, c.Plaintext) {
			t.Errorf("copy %d: AES-256-GCM open with the spec's payload key = %q, %v", i, pt, err)
		}
		out.Copies = append(out.Copies, copyOutputs{
			Header: p.env.Header, Ciphertext: p.env.Ciphertext, LeafHash: leaf[:], Envelope: b,
		})
	}
	for i := range out.Copies {
		out.Copies[i].Path = specPath(i, leaves)
		got := parse(t, bs[i]).env.Batch
		var gotPath []hexBytes
		for _, h := range got.Path {
			gotPath = append(gotPath, h)
		}
		if diff := cmp.Diff(out.Copies[i].Path, gotPath); diff != "" || got.LeafIndex != uint64(i) ||
			got.TreeSize != uint64(len(bs)) {
			t.Errorf("copy %d: batch = size %d index %d; path mismatch (-spec +got):\n%s",
				i, got.TreeSize, got.LeafIndex, diff)
		}
	}
	out.Root = specMTH(leaves)
	msg := []byte("phix/v2/batch-root\x00")
	msg = binary.BigEndian.AppendUint64(msg, uint64(len(bs)))
	out.SignedMessage = append(msg, out.Root...)
	out.Signature = parse(t, bs[0]).env.Signature
	pub := ed25519.NewKeyFromSeed(v.SigningSeed).Public().(ed25519.PublicKey)
	if !ed25519.Verify(pub, out.SignedMessage, out.Signature) {
		t.Errorf("signature does not verify over the spec's root message")
	}
	return out
}

func TestVectorsVersion2(t *testing.T) {
	if *update {
		vs := batchVectorInputs()
		for i := range vs {
			vs[i].Outputs = specBatchOutputs(t, &vs[i], signBatchVector(t, &vs[i]))
		}
		out, err := json.MarshalIndent(vs, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsV2File, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	for _, v := range loadBatchVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			got := specBatchOutputs(t, &v, signBatchVector(t, &v))
			if diff := cmp.Diff(v.Outputs, got); diff != "" {
				t.Errorf("outputs mismatch (-want +got):\n%s", diff)
			}
			pub := ed25519.NewKeyFromSeed(v.SigningSeed).Public().(ed25519.PublicKey)
			dk, _ := keys.DataKeyFromBytes(v.DataKeyID, v.DataKey)
			for i, c := range v.Outputs.Copies {
				e, err := envelope.Decode(c.Envelope)
				if err != nil {
					t.Fatalf("Decode(copy %d) = %v", i, err)
				}
				if got := e.SignedMessage(); !bytes.Equal(got, v.Outputs.SignedMessage) {
					t.Errorf("copy %d: SignedMessage() = %x, want %x", i, got, v.Outputs.SignedMessage)
				}
				if err := e.Verify(pub); err != nil {
					t.Fatalf("copy %d: Verify = %v", i, err)
				}
				if pt, err := e.Open(dk); err != nil || !bytes.Equal(pt, v.Copies[i].Plaintext) {
					t.Errorf("copy %d: Open = %q, %v; want %q", i, pt, err, v.Copies[i].Plaintext)
				}
			}
		})
	}
}

func loadBatchVectors(t testing.TB) []batchVector { return readVectors[batchVector](t, vectorsV2File) }
