package envelope

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"phix.dev/phix/keys"
)

// random is the source of the per-envelope salt. Only tests replace it, to
// reproduce the known-answer vectors in testdata.
var random io.Reader = rand.Reader

// Signer signs envelopes as the sending machine; [keys.Provider] satisfies
// it. Sign returns the Ed25519 signature of msg and the ID of the key
// version that made it.
//
// The key ID is part of the signed header, so [Seal] must know it before
// signing. A Signer that also has a method
//
//	SigningKeyID(ctx context.Context) (string, error)
//
// naming the key version its next signature will use lets Seal sign once.
// Otherwise Seal signs a first time to learn the key ID and again over the
// header that names it.
type Signer interface {
	Sign(ctx context.Context, msg []byte) (sig []byte, keyID string, err error)
}

// keyIDSigner is the optional extension of [Signer] described there.
type keyIDSigner interface {
	SigningKeyID(ctx context.Context) (string, error)
}

// maxSignAttempts bounds signing retries when the signer's key version
// changes between calls, as during a key rotation.
const maxSignAttempts = 3

// Meta is what the sender says about a message. All of it is signed and
// readable by anyone who can see the envelope, so it must not hold PHI.
type Meta struct {
	// MessageID is a unique ID of up to [MaxMessageIDLen] visible ASCII
	// bytes; the broker de-duplicates on it.
	MessageID string
	// Sender is the sealing machine's name.
	Sender string
	// Recipients names every recipient, in any order, without duplicates.
	Recipients []string
	// Subject is phix.msg.<Sender>.<recipient>.<type> for the one
	// recipient this copy is published to.
	Subject string
	// ContentType is the media type of the plaintext. It is required.
	ContentType string
	// SchemaID optionally identifies the payload schema.
	SchemaID string
	// Created is the sealing time. It is required and must lie between
	// the Unix epoch and the year 2262.
	Created time.Time
}

// Seal encrypts plaintext under a payload key derived from dk and a fresh
// random salt, signs it with s as m.Sender, and returns the canonical
// encoding of a format version 1 envelope carrying the wrapped keys (in
// any order; they are sorted). The caller wraps dk for each reader and
// destroys it. [Prepare] and [SignBatch] write version 2 instead, which
// shares one signature among many envelopes.
//
// Seal seals one copy, for the recipient named in m.Subject. Each
// recipient's copy is sealed separately; they may share dk and wrapped.
//
// Invalid input returns errors wrapping [ErrMalformed],
// [ErrDuplicateRecipient], [ErrTooLarge] or [ErrSubjectMismatch], as
// [Decode] would for the envelope. Errors from s are wrapped.
func Seal(
	ctx context.Context, s Signer, m Meta, dk *keys.DataKey,
	wrapped []WrappedKey, plaintext []byte,
) ([]byte, error) {
	h, wrapped, pk, err := newHeader(Version1, m, dk, wrapped, true, len(plaintext))
	if err != nil {
		return nil, err
	}

	sp, err := sign(ctx, s, h, newAEAD(pk), plaintext)
	if err != nil {
		return nil, err
	}
	return encode(&parts{
		header: sp.header, signature: sp.signature, ciphertext: sp.ciphertext, wrapped: wrapped,
	})
}

// signed is the signed part of an envelope.
type signed struct {
	header, signature, ciphertext []byte
}

// sign fills in the signer key ID, encrypts with the header as associated
// data and signs, retrying while the key ID the signer reports differs
// from the one in the header it signed.
func sign(
	ctx context.Context, s Signer, h *Header, aead cipher.AEAD, plaintext []byte,
) (*signed, error) {
	if k, ok := s.(keyIDSigner); ok {
		id, err := k.SigningKeyID(ctx)
		if err != nil {
			return nil, fmt.Errorf("envelope: getting signing key id: %w", err)
		}
		h.SignerKeyID = id
	}
	for range maxSignAttempts {
		header, err := marshalOptions.Marshal(headerToProto(h))
		if err != nil {
			return nil, fmt.Errorf("envelope: encoding header: %v", err)
		}
		ct := aead.Seal(nil, zeroNonce[:], plaintext, header)
		digest := sha256.Sum256(ct)

		sig, keyID, err := s.Sign(ctx, signedMessage(header, &digest))
		if err != nil {
			return nil, fmt.Errorf("envelope: signing: %w", err)
		}
		if keyID != h.SignerKeyID {
			h.SignerKeyID = keyID
			continue
		}
		if checkToken("header.signer_key_id", keyID, MaxKeyIDLen) != nil {
			return nil, errors.New("envelope: signer returned an unusable key id")
		}
		if len(sig) != SignatureSize {
			return nil, fmt.Errorf("envelope: signer returned a %d-byte signature", len(sig))
		}
		return &signed{header: header, signature: sig, ciphertext: ct}, nil
	}
	return nil, errors.New("envelope: signer key id kept changing while signing")
}

// newHeader validates one copy's metadata, data key and wrapped keys and
// returns its header, with a fresh salt and the key commitment, the
// sorted wrapped keys and the copy's payload key. needWrapped says whether
// the format version requires a wrapped key inline.
func newHeader(version uint32, m Meta, dk *keys.DataKey, wrapped []WrappedKey,
	needWrapped bool, size int) (*Header, []WrappedKey, []byte, error) {
	if size > MaxPlaintextSize {
		return nil, nil, nil, tooLarge("plaintext", MaxPlaintextSize)
	}
	if dk == nil || len(dk.Bytes()) != keys.DataKeySize {
		return nil, nil, nil, errors.New("envelope: sealing with an unusable data key")
	}
	h := &Header{
		Version:     version,
		MessageID:   m.MessageID,
		Sender:      m.Sender,
		Recipients:  slices.Sorted(slices.Values(m.Recipients)),
		Subject:     m.Subject,
		ContentType: m.ContentType,
		SchemaID:    m.SchemaID,
		Created:     m.Created,
		DataKeyID:   dk.ID(),
	}
	if err := checkHeader(h); err != nil {
		return nil, nil, nil, err
	}
	wrapped = sortWrappedKeys(wrapped)
	if err := checkWrappedKeys(wrapped, needWrapped); err != nil {
		return nil, nil, nil, err
	}
	if _, err := io.ReadFull(random, h.Salt[:]); err != nil {
		return nil, nil, nil, fmt.Errorf("envelope: reading random salt: %w", err)
	}
	pk, commitment := derive(dk.Bytes(), &h.Salt)
	h.KeyCommitment = commitment
	return h, wrapped, pk, nil
}
