package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
)

// HKDF info strings and the signature context of format version 1
// (schemas/envelope-v1.md, "Key derivation" and "Signature"). Changing any
// of them is a new format version.
const (
	infoPayloadKey    = "phix/v1/payload-key"
	infoKeyCommitment = "phix/v1/key-commitment"
	signatureContext  = "phix/v1/signature\x00"
)

// zeroNonce is the AES-GCM nonce of every envelope. A fixed nonce is safe
// because the payload key is used once: it is derived from the data key
// and a fresh 32-byte random salt, so two envelopes share a payload key
// only if their salts collide (probability about n²/2²⁵⁷ for n envelopes
// under one data key).
var zeroNonce [12]byte

// derive returns the AES-256 payload key and the key commitment for a data
// key and salt. Both come from one HKDF-Extract with distinct info strings,
// so publishing the commitment reveals nothing about the payload key.
func derive(dataKey []byte, salt *[SaltSize]byte) (
	payloadKey []byte, commitment [CommitmentSize]byte,
) {
	prk, err := hkdf.Extract(sha256.New, dataKey, salt[:])
	if err != nil {
		panic("envelope: hkdf extract: " + err.Error()) // fixed hash, cannot fail
	}
	payloadKey = expand(prk, infoPayloadKey, 32)
	copy(commitment[:], expand(prk, infoKeyCommitment, CommitmentSize))
	return payloadKey, commitment
}

func expand(prk []byte, info string, n int) []byte {
	out, err := hkdf.Expand(sha256.New, prk, info, n)
	if err != nil {
		// Only an output over 255 hash blocks fails; n is a constant.
		panic("envelope: hkdf expand: " + err.Error())
	}
	return out
}

// newAEAD returns AES-256-GCM under a 32-byte payload key.
func newAEAD(payloadKey []byte) cipher.AEAD {
	block, err := aes.NewCipher(payloadKey)
	if err != nil {
		panic("envelope: " + err.Error()) // derive always returns 32 bytes
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("envelope: " + err.Error())
	}
	return aead
}

// signedMessage returns the signature input:
//
//	"phix/v1/signature\x00" || uint32be(len(header)) || header || digest
//
// The length prefix makes the split between header and digest unambiguous
// even though the digest has a fixed size; the context string keeps an
// envelope signature from being valid for any other message the identity
// key signs.
func signedMessage(header []byte, digest *[sha256.Size]byte) []byte {
	m := make([]byte, 0, len(signatureContext)+4+len(header)+len(digest))
	m = append(m, signatureContext...)
	m = binary.BigEndian.AppendUint32(m, uint32(len(header)))
	m = append(m, header...)
	return append(m, digest[:]...)
}
