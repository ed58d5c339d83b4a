package envelope

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"slices"
	"strings"
	"sync/atomic"

	"phix.dev/phix/keys"
	"phix.dev/phix/schemas"
)

// Envelope is a decoded envelope of either format version. It is created
// by [Decode] and is immutable apart from remembering a successful
// [Envelope.Verify], so its methods are safe for concurrent use.
type Envelope struct {
	header     []byte // the signed header bytes, exactly as received
	h          Header // header parsed from header
	signature  []byte
	ciphertext []byte
	digest     [sha256.Size]byte // SHA-256 of ciphertext
	wrapped    []WrappedKey      // sorted by recipient
	// signed is what the signature covers: the envelope's signature input
	// in version 1, the batch root message in version 2.
	signed []byte
	// proof is the envelope's place in its signed batch; nil in version 1.
	proof *batchProof
	// deleg is the version 2 delegation to a session key that made the
	// signature; nil when the identity key signed directly.
	deleg *delegation

	// verified is set by a successful Verify and never cleared. Open and
	// WrappedKey refuse to work until it is set.
	verified atomic.Bool
}

// batchProof is a version 2 envelope's inclusion proof.
type batchProof struct {
	size, index uint64
	path        [][HashSize]byte
}

// Header returns a copy of the envelope's header. It is not authenticated
// until [Envelope.Verify] succeeds.
func (e *Envelope) Header() Header {
	h := e.h
	h.Recipients = slices.Clone(e.h.Recipients)
	return h
}

// CheckSubject returns an error wrapping [ErrSubjectMismatch] unless
// arrived, the subject the envelope was delivered on, is the subject its
// header names. This stops a stored copy from being replayed to a
// recipient other than the one it was addressed to. It is meaningful only
// together with a successful [Envelope.Verify], in either order.
func (e *Envelope) CheckSubject(arrived string) error {
	if arrived != e.h.Subject {
		return errSubject("arrived on %q, header names %q", arrived, e.h.Subject)
	}
	return nil
}

// Verify checks the signature with pub, which the caller must look up as
// the key [Header.SignerKeyID] of machine [Header.Sender], never taking a
// key from the envelope or the message. It returns [ErrSignature] if the
// signature does not verify or pub is not an Ed25519 public key.
//
// For an envelope with a delegation, pub must have signed the delegation
// statement, which must name the header's sender and signer key ID and
// cover the header's creation time; the signature is then checked with
// the session key the statement names. Every failure is [ErrSignature].
//
// Verify must succeed before any data key is unwrapped: [Envelope.Open]
// and [Envelope.WrappedKey] refuse to work until it has.
func (e *Envelope) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return ErrSignature
	}
	if e.deleg != nil {
		if !e.deleg.covers(&e.h) || !ed25519.Verify(pub, e.deleg.statement, e.deleg.signature) {
			return ErrSignature
		}
		pub = e.deleg.d.SessionKey
	}
	if !ed25519.Verify(pub, e.signed, e.signature) {
		return ErrSignature
	}
	e.verified.Store(true)
	return nil
}

// Batch returns the number of envelopes the signature covers and this
// envelope's position among them: 1 and 0 for version 1, which signs
// each envelope alone.
func (e *Envelope) Batch() (size, index uint64) {
	if e.proof == nil {
		return 1, 0
	}
	return e.proof.size, e.proof.index
}

// WrappedKey returns a copy of the data key wrapped for recipient, for
// [keys.Provider.UnwrapKey] with [Header.DataKeyID]. It reports false if
// the envelope carries no key for recipient or has not been verified.
func (e *Envelope) WrappedKey(recipient string) ([]byte, bool) {
	if !e.verified.Load() {
		return nil, false
	}
	i, found := slices.BinarySearchFunc(e.wrapped, recipient, func(w WrappedKey, r string) int {
		return strings.Compare(w.Recipient, r)
	})
	if !found {
		return nil, false
	}
	return bytes.Clone(e.wrapped[i].Wrapped), true
}

// WrappedKeys returns a copy of all wrapped keys, sorted by recipient. It
// is for rewrap and grant tooling, which can act without verifying because
// it never sees plaintext; readers use [Envelope.WrappedKey].
func (e *Envelope) WrappedKeys() []WrappedKey {
	ws := make([]WrappedKey, len(e.wrapped))
	for i, w := range e.wrapped {
		ws[i] = WrappedKey{Recipient: w.Recipient, Wrapped: bytes.Clone(w.Wrapped)}
	}
	return ws
}

// Open decrypts the payload with dk, the data key unwrapped from this
// envelope. It returns [ErrUnverified] before a successful
// [Envelope.Verify], and [ErrOpen] for every decryption failure.
func (e *Envelope) Open(dk *keys.DataKey) ([]byte, error) {
	if !e.verified.Load() {
		return nil, ErrUnverified
	}
	pk, err := e.payloadKey(dk)
	if err != nil {
		return nil, err
	}
	pt, err := newAEAD(pk).Open(nil, zeroNonce[:], e.ciphertext, e.header)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// payloadKey checks that dk is the key the signed header commits to and
// returns the payload key. The commitment is what binds the signature to
// one data key: AES-GCM alone is not key-committing, so without it a
// wrapped key (which the signature does not cover) could be swapped for a
// different data key under which a crafted ciphertext also decrypts.
func (e *Envelope) payloadKey(dk *keys.DataKey) ([]byte, error) {
	if dk == nil || len(dk.Bytes()) != keys.DataKeySize || dk.ID() != e.h.DataKeyID {
		return nil, ErrOpen
	}
	pk, commitment := derive(dk.Bytes(), &e.h.Salt)
	if subtle.ConstantTimeCompare(commitment[:], e.h.KeyCommitment[:]) != 1 {
		return nil, ErrOpen
	}
	return pk, nil
}

// WithWrappedKeys returns the envelope re-encoded with its wrapped keys
// replaced by ws (in any order; they are sorted). Everything else is
// unchanged, so the signature stays valid: this is how wrapped keys are
// added or replaced in an envelope. The errors are those of [Decode] for
// the wrapped_keys field; version 1 needs at least one key.
func (e *Envelope) WithWrappedKeys(ws []WrappedKey) ([]byte, error) {
	ws = sortWrappedKeys(ws)
	if err := checkWrappedKeys(ws, e.h.Version == Version1); err != nil {
		return nil, err
	}
	p := &parts{header: e.header, signature: e.signature, ciphertext: e.ciphertext, wrapped: ws}
	if e.proof != nil {
		p.signerKeyID, p.proof = e.h.SignerKeyID, e.proof
	}
	if e.deleg != nil {
		p.delegation = &schemas.Delegation{Statement: e.deleg.statement, Signature: e.deleg.signature}
	}
	return encode(p)
}

// CiphertextDigest returns the SHA-256 digest of the ciphertext, the form
// in which the signature covers it.
func (e *Envelope) CiphertextDigest() [sha256.Size]byte { return e.digest }

// SignedMessage returns the exact bytes the signature covers, so that an
// auditor can check the signature with any Ed25519 implementation. In
// version 1 that is
//
//	"phix/v1/signature\x00" || uint32be(len(header)) || header || SHA-256(ciphertext)
//
// and in version 2 the batch root message that the envelope's inclusion
// proof leads to:
//
//	"phix/v2/batch-root\x00" || uint64be(tree_size) || root
func (e *Envelope) SignedMessage() []byte {
	return bytes.Clone(e.signed)
}
