package envelope

import "crypto/ed25519"

// Format versions this package reads. [Seal] writes Version1; [Prepare]
// with [SignBatch] writes Version2, which signs batches of envelopes with
// one signature over a Merkle root (schemas/envelope-v2.md).
const (
	Version1 = 1
	Version2 = 2
)

// Limits of format versions 1 and 2. They are part of the format (see
// schemas/envelope-v1.md, "Limits", and envelope-v2.md): an envelope over
// any of them is rejected by every reader, so writers must not exceed
// them either.
const (
	// MaxCiphertextSize is the largest ciphertext, in bytes, tag included.
	MaxCiphertextSize = 8 << 20

	// MaxPlaintextSize is the largest payload [Seal] accepts, in bytes:
	// the ciphertext limit less the AES-GCM tag.
	MaxPlaintextSize = MaxCiphertextSize - TagSize

	// MaxEnvelopeSize is the largest encoded envelope, in bytes. It leaves
	// 512 KiB above the ciphertext limit, more than the worst case of the
	// header, signature and a full list of wrapped keys (about 270 KiB), so
	// any envelope within the field limits fits, before and after rewrap.
	// The broker's maximum payload must be at least this.
	MaxEnvelopeSize = MaxCiphertextSize + 512<<10

	// MaxHeaderSize is the largest encoded header, in bytes. Headers within
	// the field limits stay under 4 KiB; this bounds parsing work only.
	MaxHeaderSize = 8 << 10

	// MaxNameLen is the longest machine name, in bytes (one subject token).
	MaxNameLen = 63

	// MaxRecipients is the most recipients one header may list.
	MaxRecipients = 32

	// MaxWrappedKeys is the most wrapped keys one envelope may carry. It
	// is twice MaxRecipients to leave room for grants to other readers.
	// Version 1 needs at least one; version 2 may carry none.
	MaxWrappedKeys = 64

	// MaxBatchSize is the most envelopes one version 2 signature covers,
	// so an inclusion proof has at most 16 hashes.
	MaxBatchSize = 1 << 16

	// HashSize is the size of a Merkle tree node hash, in bytes (SHA-256).
	HashSize = 32

	// MaxWrappedKeySize is the largest wrapped data key, in bytes. A hybrid
	// ML-KEM-768+X25519 wrap is about 1.2 KiB.
	MaxWrappedKeySize = 4096

	// MaxSubjectLen is the longest subject, in bytes.
	MaxSubjectLen = 255

	// MaxContentTypeLen is the longest content type, in bytes.
	MaxContentTypeLen = 255

	// MaxSchemaIDLen is the longest schema ID, in bytes.
	MaxSchemaIDLen = 255

	// MaxMessageIDLen is the longest message ID, in bytes.
	MaxMessageIDLen = 64

	// MaxKeyIDLen is the longest data key ID or signer key ID, in bytes.
	MaxKeyIDLen = 128

	// SaltSize is the size of the per-envelope HKDF salt, in bytes.
	SaltSize = 32

	// CommitmentSize is the size of the data key commitment, in bytes.
	CommitmentSize = 32

	// SignatureSize is the size of the Ed25519 signature, in bytes.
	SignatureSize = ed25519.SignatureSize

	// TagSize is the size of the AES-GCM authentication tag, in bytes.
	TagSize = 16
)
