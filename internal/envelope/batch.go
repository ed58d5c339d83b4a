package envelope

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"phix.dev/phix/keys"
	"phix.dev/phix/schemas"
)

// Unsigned is a version 2 envelope that is encrypted but not yet signed:
// [SignBatch] signs many of them at once. It holds no key material and is
// safe to pass between goroutines, but must be signed only once.
type Unsigned struct {
	header     []byte
	ciphertext []byte
	digest     [sha256.Size]byte
	wrapped    []WrappedKey
	leaf       [HashSize]byte
	sender     string
	created    time.Time
}

// CiphertextDigest returns the SHA-256 digest of the ciphertext.
func (u *Unsigned) CiphertextDigest() [sha256.Size]byte { return u.digest }

// Prepare encrypts plaintext for the copy described by m, as [Seal] does,
// into a format version 2 envelope that [SignBatch] then signs. Version 2
// may carry no wrapped keys at all, when readers fetch them from the
// wrapped-key registry. The caller destroys dk.
//
// Invalid input returns errors wrapping [ErrMalformed],
// [ErrDuplicateRecipient], [ErrTooLarge] or [ErrSubjectMismatch], as
// [Decode] would for the envelope.
func Prepare(m Meta, dk *keys.DataKey, wrapped []WrappedKey, plaintext []byte) (*Unsigned, error) {
	h, wrapped, pk, err := newHeader(Version2, m, dk, wrapped, false, len(plaintext))
	if err != nil {
		return nil, err
	}
	header, err := marshalOptions.Marshal(headerToProto(h))
	if err != nil {
		return nil, fmt.Errorf("envelope: encoding header: %v", err)
	}
	u := &Unsigned{
		header:     header,
		ciphertext: newAEAD(pk).Seal(nil, zeroNonce[:], plaintext, header),
		wrapped:    wrapped,
		sender:     h.Sender,
		created:    h.Created,
	}
	u.digest = sha256.Sum256(u.ciphertext)
	u.leaf = leafHash(u.header, &u.digest)
	return u, nil
}

// SignBatch signs us, at most [MaxBatchSize] envelopes from [Prepare], with
// one call to s: it builds an RFC 6962 Merkle tree over the envelopes,
// signs its root and size, and returns each envelope's canonical encoding,
// in input order, with the signature, the signer's key ID and the
// envelope's inclusion proof. Each envelope verifies on its own. A lone
// envelope is a tree of one, with an empty proof.
//
// When s is a [*Session], the session key signs and each envelope carries
// the session's delegation; an envelope of another sender, or created
// outside the delegation's validity, fails the batch with
// [ErrSessionExpired] or an error wrapping [ErrMalformed].
//
// Errors from s are wrapped; nothing is returned for any envelope then.
func SignBatch(ctx context.Context, s Signer, us []*Unsigned) ([][]byte, error) {
	if len(us) == 0 || len(us) > MaxBatchSize {
		return nil, fmt.Errorf("envelope: batch of %d envelopes, want 1 to %d", len(us), MaxBatchSize)
	}
	var deleg *schemas.Delegation
	if ss, ok := s.(*Session); ok {
		for _, u := range us {
			if u.sender != ss.d.Machine {
				return nil, malformed("session of %q signing for sender %q", ss.d.Machine, u.sender)
			}
			if !ss.covers(u.created) {
				return nil, ErrSessionExpired
			}
		}
		deleg = ss.proto()
	}
	leaves := make([][HashSize]byte, len(us))
	for i, u := range us {
		leaves[i] = u.leaf
	}
	root, paths := merkleTree(leaves)
	size := uint64(len(us))

	sig, keyID, err := s.Sign(ctx, rootMessage(size, &root))
	if err != nil {
		return nil, fmt.Errorf("envelope: signing: %w", err)
	}
	if checkToken("signer_key_id", keyID, MaxKeyIDLen) != nil {
		return nil, errors.New("envelope: signer returned an unusable key id")
	}
	if len(sig) != SignatureSize {
		return nil, fmt.Errorf("envelope: signer returned a %d-byte signature", len(sig))
	}

	out := make([][]byte, len(us))
	for i, u := range us {
		out[i], err = encode(&parts{
			header: u.header, signature: sig, ciphertext: u.ciphertext, wrapped: u.wrapped,
			signerKeyID: keyID,
			proof:       &batchProof{size: size, index: uint64(i), path: paths[i]},
			delegation:  deleg,
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
