package envelope_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/keys"
)

const vectorsDelegationFile = "testdata/vectors-delegation.json"

// delegationVector is a known-answer test of delegated signing: a batch
// signed by a session key whose delegation an identity key signed. The
// batch part reuses the version 2 vector with the session key as signer.
type delegationVector struct {
	Name          string             `json:"name"`
	IdentitySeed  hexBytes           `json:"identity_seed"`
	Machine       string             `json:"machine"`
	NotBeforeNano int64              `json:"not_before_unix_nano"`
	NotAfterNano  int64              `json:"not_after_unix_nano"`
	Batch         batchVector        `json:"batch"` // signing_seed is the session key's seed
	Outputs       delegationExpected `json:"outputs"`
}

type delegationExpected struct {
	SessionPublicKey    hexBytes `json:"session_public_key"`
	Statement           hexBytes `json:"statement"`
	DelegationSignature hexBytes `json:"delegation_signature"`
}

func delegationVectorInputs() []delegationVector {
	b := batchVectorInputs()[1]
	b.Name = "three copies signed by a session key"
	b.SigningSeed = seedFor("vector session key lab")
	b.SignerKeyID = "vault:v3"
	created := time.Unix(0, b.Copies[0].Meta.CreatedUnixNano)
	return []delegationVector{{
		Name:          "one-hour delegation from lab's identity key version 3",
		IdentitySeed:  seedFor("vector signer lab v2"),
		Machine:       "lab",
		NotBeforeNano: created.Add(-5 * time.Minute).UnixNano(),
		NotAfterNano:  created.Add(55 * time.Minute).UnixNano(),
		Batch:         b,
	}}
}

// signDelegationVector makes the session and signs the batch with it, the
// session seed and then the salts being the only randomness.
func signDelegationVector(t *testing.T, v *delegationVector) ([][]byte, *envelope.Session) {
	t.Helper()
	rnd := bytes.Clone(v.Batch.SigningSeed)
	for _, c := range v.Batch.Copies {
		rnd = append(rnd, c.Salt...)
	}
	envelope.SetRandom(t, bytes.NewReader(rnd))
	id := newSigner(v.IdentitySeed, v.Batch.SignerKeyID)
	s, err := envelope.NewSession(context.Background(), id, v.Machine,
		time.Unix(0, v.NotBeforeNano), time.Unix(0, v.NotAfterNano), v.Batch.SignerKeyID)
	if err != nil {
		t.Fatalf("NewSession = %v", err)
	}
	dk, _ := keys.DataKeyFromBytes(v.Batch.DataKeyID, v.Batch.DataKey)
	var us []*envelope.Unsigned
	for _, c := range v.Batch.Copies {
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
	bs, err := envelope.SignBatch(context.Background(), s, us)
	if err != nil {
		t.Fatalf("SignBatch = %v", err)
	}
	return bs, s
}

// specDelegation computes the statement from schemas/envelope-v2.md and
// checks the identity key's signature of it.
func specDelegation(t *testing.T, v *delegationVector, bs [][]byte) delegationExpected {
	t.Helper()
	sessionPub := ed25519.NewKeyFromSeed(v.Batch.SigningSeed).Public().(ed25519.PublicKey)
	st := []byte("phix/v2/delegation\x00")
	st = append(append(st, byte(len(v.Machine))), v.Machine...)
	st = append(append(st, byte(len(v.Batch.SignerKeyID))), v.Batch.SignerKeyID...)
	st = append(st, sessionPub...)
	st = binary.BigEndian.AppendUint64(st, uint64(v.NotBeforeNano))
	st = binary.BigEndian.AppendUint64(st, uint64(v.NotAfterNano))
	out := delegationExpected{SessionPublicKey: hexBytes(sessionPub), Statement: st}
	for i, b := range bs {
		p := parse(t, b)
		if p.env.Delegation == nil || !bytes.Equal(p.env.Delegation.Statement, st) {
			t.Errorf("copy %d: statement differs from the spec's", i)
			continue
		}
		out.DelegationSignature = p.env.Delegation.Signature
	}
	idPub := ed25519.NewKeyFromSeed(v.IdentitySeed).Public().(ed25519.PublicKey)
	if !ed25519.Verify(idPub, st, out.DelegationSignature) {
		t.Errorf("delegation signature does not verify over the spec's statement")
	}
	return out
}

func TestVectorsDelegation(t *testing.T) {
	if *update {
		vs := delegationVectorInputs()
		for i := range vs {
			bs, _ := signDelegationVector(t, &vs[i])
			vs[i].Batch.Outputs = specBatchOutputs(t, &vs[i].Batch, bs)
			vs[i].Outputs = specDelegation(t, &vs[i], bs)
		}
		out, err := json.MarshalIndent(vs, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsDelegationFile, append(out, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range loadDelegationVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			bs, _ := signDelegationVector(t, &v)
			if diff := cmp.Diff(v.Batch.Outputs, specBatchOutputs(t, &v.Batch, bs)); diff != "" {
				t.Errorf("batch outputs mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(v.Outputs, specDelegation(t, &v, bs)); diff != "" {
				t.Errorf("delegation outputs mismatch (-want +got):\n%s", diff)
			}
			idPub := ed25519.NewKeyFromSeed(v.IdentitySeed).Public().(ed25519.PublicKey)
			for i, c := range v.Batch.Outputs.Copies {
				e, err := envelope.Decode(c.Envelope)
				if err != nil {
					t.Fatalf("Decode(copy %d) = %v", i, err)
				}
				if err := e.Verify(idPub); err != nil {
					t.Errorf("copy %d: Verify(identity key) = %v, want nil", i, err)
				}
			}
		})
	}
}

func loadDelegationVectors(t testing.TB) []delegationVector {
	return readVectors[delegationVector](t, vectorsDelegationFile)
}
