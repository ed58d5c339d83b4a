package envelope

import (
	"crypto/ed25519"
	"crypto/sha256"
	"testing"
	"time"

	"phix.dev/phix/keys"
)

// TestCommitmentBindsDataKey plays a dishonest sender: the header commits
// to data key k1, but the payload is encrypted under the payload key of
// k2, and a reader is handed k2 through its (unsigned) wrapped key. The
// signature is valid and AES-GCM alone would open the payload; only the
// commitment check stops the reader from accepting a plaintext that the
// signed header did not commit to. Against real GCM the same check stops
// a single ciphertext crafted to open under two keys.
func TestCommitmentBindsDataKey(t *testing.T) {
	k1, _ := keys.DataKeyFromBytes("dk-1", make32(1))
	k2, _ := keys.DataKeyFromBytes("dk-1", make32(2)) // same ID, other bytes
	priv := ed25519.NewKeyFromSeed(make32(3))

	h := Header{
		Version:     Version1,
		MessageID:   "m-1",
		Sender:      "lab",
		Recipients:  []string{"clinic"},
		Subject:     "phix.msg.lab.clinic.result",
		ContentType: "text/plain",
		Created:     time.Unix(1, 0),
		DataKeyID:   k1.ID(),
		Salt:        [SaltSize]byte(make32(4)),
		SignerKeyID: "lab-v1",
	}
	_, h.KeyCommitment = derive(k1.Bytes(), &h.Salt)
	header, err := marshalOptions.Marshal(headerToProto(&h))
	if err != nil {
		t.Fatal(err)
	}
	pk2, _ := derive(k2.Bytes(), &h.Salt)
	ct := newAEAD(pk2).Seal(nil, zeroNonce[:], []byte("second story"), header)
	digest := sha256.Sum256(ct)
	sig := ed25519.Sign(priv, signedMessage(header, &digest))
	b, err := encode(&parts{header: header, signature: sig, ciphertext: ct,
		wrapped: []WrappedKey{{Recipient: "clinic", Wrapped: []byte("k2")}}})
	if err != nil {
		t.Fatal(err)
	}

	e, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode = %v", err)
	}
	if err := e.Verify(priv.Public().(ed25519.PublicKey)); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	if _, err := newAEAD(pk2).Open(nil, zeroNonce[:], e.ciphertext, e.header); err != nil {
		t.Fatalf("AEAD open under k2 = %v; the test needs it to succeed", err)
	}
	if _, err := e.payloadKey(k2); err != ErrOpen {
		t.Errorf("payloadKey(k2) = %v, want %v from the commitment check", err, ErrOpen)
	}
	if pt, err := e.Open(k2); err != ErrOpen {
		t.Errorf("Open(k2) = %q, %v; want nil, %v", pt, err, ErrOpen)
	}
}

func make32(b byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}
