// Package keys holds the key material a machine needs to seal and open
// envelopes, behind one interface that a local provider (the embedded
// default) and a Vault transit provider both satisfy.
//
// Only this package touches private keys or a key service. Callers see
// data keys as opaque [DataKey] values that redact themselves when printed.
package keys

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
)

// DataKeySize is the size of a data key, in bytes (AES-256).
const DataKeySize = 32

// Errors returned by providers. Callers branch on them with [errors.Is].
var (
	// ErrUnknownMachine means the named machine has no keys in the directory.
	ErrUnknownMachine = errors.New("keys: unknown machine")
	// ErrUnknownKey means the key version named is not (or no longer) known.
	ErrUnknownKey = errors.New("keys: unknown key version")
	// ErrUnwrap is the one opaque error for a wrapped key that cannot be
	// opened by this machine: not addressed to it, tampered or destroyed.
	ErrUnwrap = errors.New("keys: cannot unwrap data key")
	// ErrInsecureFile means a private key file is readable by others.
	ErrInsecureFile = errors.New("keys: key file is readable by group or others")
)

// Provider is what the envelope needs from a key service, acting as one
// machine identity. Implementations are safe for concurrent use.
type Provider interface {
	// Identity returns the name of the machine this provider acts as.
	Identity() string

	// WrapKey wraps dk so that only recipient can unwrap it. The wrapped
	// form is bound to dk's ID, so it cannot be replayed under another ID.
	WrapKey(ctx context.Context, recipient string, dk *DataKey) ([]byte, error)

	// UnwrapKey opens a data key that was wrapped for this machine under
	// the given data key ID. Every failure to open is [ErrUnwrap].
	UnwrapKey(ctx context.Context, dataKeyID string, wrapped []byte) (*DataKey, error)

	// Sign signs msg with this machine's identity key and returns the
	// signature with the ID of the key version that made it.
	Sign(ctx context.Context, msg []byte) (sig []byte, keyID string, err error)

	// PublicKey returns the Ed25519 public key of machine's identity key
	// version keyID. It returns [ErrUnknownMachine] or [ErrUnknownKey].
	PublicKey(ctx context.Context, machine, keyID string) (ed25519.PublicKey, error)
}

// DataKey is a 256-bit symmetric key with a random public ID. It is not
// comparable and never prints its key bytes. The zero value is unusable.
type DataKey struct {
	_   [0]func() // not comparable
	id  string
	key []byte
}

// NewDataKey returns a fresh random data key with a fresh random ID.
func NewDataKey() *DataKey {
	var id [16]byte
	k := make([]byte, DataKeySize)
	rand.Read(id[:])
	rand.Read(k)
	return &DataKey{id: hex.EncodeToString(id[:]), key: k}
}

// DataKeyFromBytes returns a data key with the given ID holding a copy of key.
// It is for providers that unwrap keys; key must be [DataKeySize] bytes.
func DataKeyFromBytes(id string, key []byte) (*DataKey, error) {
	if len(key) != DataKeySize {
		return nil, ErrUnwrap
	}
	return &DataKey{id: id, key: append([]byte(nil), key...)}, nil
}

// ID returns the data key's public identifier.
func (k *DataKey) ID() string { return k.id }

// Bytes returns the key bytes. The caller must not modify or retain them
// beyond the key's life; they are zeroed by [DataKey.Destroy].
func (k *DataKey) Bytes() []byte { return k.key }

// Destroy zeroes the key bytes. A destroyed key must not be used again.
func (k *DataKey) Destroy() { clear(k.key) }

// String returns the key ID only, so a data key can never be logged.
func (k *DataKey) String() string { return "datakey:" + k.id }

// LogValue implements [slog.LogValuer] and keeps the key bytes out of logs.
func (k *DataKey) LogValue() slog.Value { return slog.StringValue(k.String()) }
