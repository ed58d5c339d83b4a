package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"phix.dev/phix/keys"
)

// File names of the audit key pair inside its folder (DIR/broker).
const (
	KeyFile       = "audit.key" // PKCS #8 private key, mode 0600
	PublicKeyFile = "audit.pub" // PKIX public key, for auditors
)

// LoadOrCreateSigner loads the audit key from dir, creating it (0600) on
// first use, and writes the public key beside it (0644) so it can be
// handed to auditors. A key file that group or others can access is
// refused with an error wrapping [keys.ErrInsecureFile].
func LoadOrCreateSigner(dir string) (*Signer, error) {
	path := filepath.Join(dir, KeyFile)
	b, err := keys.ReadPrivateFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createKey(dir); err != nil {
			return nil, err
		}
		b, err = keys.ReadPrivateFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("audit: reading key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("audit: %s is not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("audit: parsing %s: %v", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("audit: %s is not an Ed25519 key", path)
	}
	s, err := NewSigner(priv)
	if err != nil {
		return nil, err
	}
	// The public file is rewritten from the private key each time, so a
	// replaced public file cannot mislead an auditor for long.
	if err := writePublicKey(filepath.Join(dir, PublicKeyFile), s.Public()); err != nil {
		return nil, err
	}
	return s, nil
}

func createKey(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("audit: generating key: %v", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("audit: encoding key: %v", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, KeyFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return fmt.Errorf("audit: writing key: %w", err)
	}
	return f.Close()
}

func writePublicKey(path string, pub ed25519.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("audit: encoding public key: %v", err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if old, err := os.ReadFile(path); err == nil && string(old) == string(b) {
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// ReadPublicKey reads an audit public key written by [LoadOrCreateSigner].
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return ParsePublicKey(b)
}

// ParsePublicKey parses a PEM "PUBLIC KEY" holding an Ed25519 key.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("audit: not a PEM public key")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("audit: parsing public key: %v", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, errors.New("audit: public key is not Ed25519")
	}
	return pub, nil
}
