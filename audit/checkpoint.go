package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Origin names the log in every checkpoint body, so a signature made for
// a phix audit checkpoint can never be taken for anything else.
const Origin = "phix audit trail v1"

// Checkpoint commits to the first Size records of the trail: Root is the
// RFC 6962 Merkle tree hash of their leaves. Signature is Ed25519 by the
// audit key KeyID over [Checkpoint.SignedBody].
type Checkpoint struct {
	Size      uint64    `json:"size"`
	Root      []byte    `json:"root"`
	Time      time.Time `json:"time"`
	KeyID     string    `json:"key_id"`
	Signature []byte    `json:"signature"`

	// Frontier is the writer's compact Merkle range over the first Size
	// leaves, for resuming after a restart without reading the whole
	// trail. It is not signed: the verifier ignores it and recomputes
	// every root from the records.
	Frontier [][]byte `json:"frontier,omitempty"`
}

// SignedBody returns the exact bytes the signature covers, in the style of
// a transparency-log checkpoint note:
//
//	phix audit trail v1\n<size>\n<base64 root>\n<time, RFC 3339 UTC, ns>\n
func (c *Checkpoint) SignedBody() []byte {
	s := Origin + "\n" +
		strconv.FormatUint(c.Size, 10) + "\n" +
		base64.StdEncoding.EncodeToString(c.Root) + "\n" +
		c.Time.UTC().Format(time.RFC3339Nano) + "\n"
	return []byte(s)
}

// ErrCheckpointSignature means a checkpoint's signature does not verify
// under the audit public key, or names another key.
var ErrCheckpointSignature = errors.New("audit: bad checkpoint signature")

// VerifySignature checks c's signature under pub.
func (c *Checkpoint) VerifySignature(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize || c.KeyID != KeyID(pub) {
		return ErrCheckpointSignature
	}
	if !ed25519.Verify(pub, c.SignedBody(), c.Signature) {
		return ErrCheckpointSignature
	}
	return nil
}

// KeyID returns the ID of an audit public key: the first 8 bytes of its
// SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Signer holds the broker's audit signing key. It is not comparable and
// never prints the key.
type Signer struct {
	_   [0]func()
	key ed25519.PrivateKey
	id  string
}

// NewSigner returns a signer for key.
func NewSigner(key ed25519.PrivateKey) (*Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("audit: signing key is %d bytes, want %d", len(key), ed25519.PrivateKeySize)
	}
	return &Signer{key: key, id: KeyID(key.Public().(ed25519.PublicKey))}, nil
}

// Public returns the audit public key.
func (s *Signer) Public() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// KeyID returns the key's ID, as recorded in checkpoints.
func (s *Signer) KeyID() string { return s.id }

// String names the key by its ID only.
func (s *Signer) String() string { return "audit-key:" + s.id }

// sign sets c's key ID and signature.
func (s *Signer) sign(c *Checkpoint) {
	c.KeyID = s.id
	c.Signature = ed25519.Sign(s.key, c.SignedBody())
}
