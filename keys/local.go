package keys

import (
	"context"
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"phix.dev/phix/internal/subjects"
)

// Files of a local key folder. Both hold private keys and must have mode
// 0600; the folder itself is created with mode 0700.
const (
	// SignKeyFile holds the machine's Ed25519 identity key (PKCS #8, PEM).
	SignKeyFile = "sign.key"
	// KEMKeyFile holds the machine's HPKE MLKEM768-X25519 private key.
	KEMKeyFile = "kem.key"
)

// The HPKE suite (RFC 9180) used to wrap data keys: the X-Wing hybrid of
// ML-KEM-768 and X25519 from draft-ietf-hpke-pq, so a wrapped key stays
// confidential unless both ML-KEM and X25519 are broken.
var (
	wrapKEM  = hpke.MLKEM768X25519()
	wrapKDF  = hpke.HKDFSHA256()
	wrapAEAD = hpke.AES256GCM()
)

// wrapLabel starts the HPKE info of every wrapped data key.
const wrapLabel = "phix/v1/wrap"

// Local is the embedded key provider: private keys in files of a key
// folder, public keys of all machines in a shared directory folder (see
// [GenerateLocal]). It is safe for concurrent use, not comparable, and
// never prints its keys.
type Local struct {
	_      [0]func() // not comparable
	name   string
	sign   ed25519.PrivateKey
	signID string
	kem    hpke.PrivateKey
	dir    *directory
}

var _ Provider = (*Local)(nil)

// OpenLocal opens the local provider of machine name, whose private keys
// are in keyDir and whose public record, like every other machine's, is
// in directoryDir. It returns an error wrapping [ErrInsecureFile] if a
// private key file is accessible by group or others, and refuses keys
// that do not match the machine's own directory record, since other
// machines would then wrap to, or verify against, keys it does not hold.
func OpenLocal(keyDir, directoryDir, name string) (*Local, error) {
	if err := subjects.CheckName(name); err != nil {
		return nil, fmt.Errorf("keys: %v", err)
	}
	sign, err := loadSignKey(filepath.Join(keyDir, SignKeyFile))
	if err != nil {
		return nil, err
	}
	kem, err := loadKEMKey(filepath.Join(keyDir, KEMKeyFile))
	if err != nil {
		return nil, err
	}

	l := &Local{
		name:   name,
		sign:   sign,
		signID: signingKeyID(sign.Public().(ed25519.PublicKey)),
		kem:    kem,
		dir:    newDirectory(directoryDir),
	}
	own, err := l.dir.lookup(name)
	if err != nil {
		return nil, err
	}
	if own.signID != l.signID || !sameKEMKey(own.kemPub, kem.PublicKey()) {
		return nil, fmt.Errorf("keys: directory record of %q does not match the keys in %s",
			name, keyDir)
	}
	return l, nil
}

// Identity implements [Provider].
func (l *Local) Identity() string { return l.name }

// WrapKey implements [Provider] with HPKE base mode to the recipient's
// public key from the directory. The HPKE info binds the recipient's name
// and dk's ID, so a wrapped key opens only for that recipient under that
// ID. It returns an error wrapping [ErrUnknownMachine] for a recipient
// without a directory record.
func (l *Local) WrapKey(ctx context.Context, recipient string, dk *DataKey) ([]byte, error) {
	if dk == nil || len(dk.key) != DataKeySize {
		return nil, errors.New("keys: wrapping an invalid data key")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	info, ok := wrapInfo(recipient, dk.id)
	if !ok {
		return nil, errors.New("keys: data key id too long")
	}
	e, err := l.dir.lookup(recipient)
	if err != nil {
		return nil, err
	}
	wrapped, err := hpke.Seal(e.kemPub, wrapKDF, wrapAEAD, info, dk.key)
	if err != nil {
		return nil, fmt.Errorf("keys: wrapping data key for %q: %v", recipient, err)
	}
	return wrapped, nil
}

// UnwrapKey implements [Provider].
func (l *Local) UnwrapKey(ctx context.Context, dataKeyID string, wrapped []byte) (*DataKey, error) {
	info, ok := wrapInfo(l.name, dataKeyID)
	if !ok {
		return nil, ErrUnwrap
	}
	k, err := hpke.Open(l.kem, wrapKDF, wrapAEAD, info, wrapped)
	if err != nil {
		// Which check failed is nobody's business: one opaque error.
		return nil, ErrUnwrap
	}
	defer clear(k)
	return DataKeyFromBytes(dataKeyID, k)
}

// Sign implements [Provider] with Ed25519 (RFC 8032).
func (l *Local) Sign(ctx context.Context, msg []byte) ([]byte, string, error) {
	return ed25519.Sign(l.sign, msg), l.signID, nil
}

// SigningKeyID returns the ID of the key [Local.Sign] signs with, so that
// a sealer can name it in the signed header and sign only once.
func (l *Local) SigningKeyID(context.Context) (string, error) { return l.signID, nil }

// PublicKey implements [Provider], reading the machine's record from the
// directory.
func (l *Local) PublicKey(ctx context.Context, machine, keyID string) (ed25519.PublicKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	e, err := l.dir.lookup(machine)
	if err != nil {
		return nil, err
	}
	if keyID != e.signID {
		return nil, fmt.Errorf("%w %q of machine %q", ErrUnknownKey, keyID, machine)
	}
	return append(ed25519.PublicKey(nil), e.signPub...), nil
}

// String returns the machine name only, so a provider never prints keys.
func (l *Local) String() string { return "keys.Local(" + l.name + ")" }

// GoString is [Local.String], so %#v does not print keys either.
func (l *Local) GoString() string { return l.String() }

// LogValue implements [slog.LogValuer] and keeps the keys out of logs.
func (l *Local) LogValue() slog.Value { return slog.StringValue(l.String()) }

// wrapInfo returns the HPKE info for a data key wrapped to recipient:
//
//	"phix/v1/wrap" 0x00 u16(len(recipient)) recipient u16(len(id)) id
//
// Length prefixes keep the encoding unambiguous for any ID. It reports
// false if a field is longer than 65535 bytes.
func wrapInfo(recipient, dataKeyID string) ([]byte, bool) {
	if len(recipient) > 0xffff || len(dataKeyID) > 0xffff {
		return nil, false
	}
	b := make([]byte, 0, len(wrapLabel)+5+len(recipient)+len(dataKeyID))
	b = append(append(b, wrapLabel...), 0)
	b = binary.BigEndian.AppendUint16(b, uint16(len(recipient)))
	b = append(b, recipient...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(dataKeyID)))
	b = append(b, dataKeyID...)
	return b, true
}
