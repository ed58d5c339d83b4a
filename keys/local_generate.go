package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"phix.dev/phix/internal/securefile"
	"strconv"

	"phix.dev/phix/internal/subjects"
)

// PEM block types of the key files.
const (
	pemSignKey = "PRIVATE KEY"
	pemKEMKey  = "HPKE PRIVATE KEY"
	pemKEMID   = "Kem-Id" // PEM header naming the HPKE KEM of a KEM key
)

// GenerateLocal creates the keys of machine name: an Ed25519 identity key
// in keyDir/[SignKeyFile] and an HPKE MLKEM768-X25519 key in
// keyDir/[KEMKeyFile], both mode 0600 in a folder created with mode 0700.
// It then writes the machine's public record, directoryDir/NAME.json.
//
// It is idempotent: existing keys are kept (and checked as in
// [OpenLocal]), and the record is rewritten only if it does not match
// them. Concurrent calls for the same machine agree on one set of keys.
func GenerateLocal(keyDir, directoryDir, name string) error {
	if err := subjects.CheckName(name); err != nil {
		return fmt.Errorf("keys: %v", err)
	}
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	if err := os.MkdirAll(directoryDir, 0o755); err != nil {
		return fmt.Errorf("keys: %w", err)
	}

	sign, err := loadOrCreate(filepath.Join(keyDir, SignKeyFile), newSignKey, loadSignKey)
	if err != nil {
		return err
	}
	kem, err := loadOrCreate(filepath.Join(keyDir, KEMKeyFile), newKEMKey, loadKEMKey)
	if err != nil {
		return err
	}

	rec := newRecord(name, sign.Public().(ed25519.PublicKey), kem.PublicKey()).marshal()
	path := newDirectory(directoryDir).path(name)
	if old, err := readPublicFile(path); err == nil && bytes.Equal(old, rec) {
		return nil
	}
	if err := securefile.Replace(path, rec, 0o644); err != nil {
		return fmt.Errorf("keys: writing directory record: %w", err)
	}
	return nil
}

// loadOrCreate loads the private key at path, or creates it with create
// if there is none. If another process creates it first, that key wins.
func loadOrCreate[K any](path string, create func() (K, []byte, error),
	load func(string) (K, error)) (K, error) {
	k, err := load(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}

	k, encoded, err := create()
	if err != nil {
		return k, err
	}
	err = securefile.WriteNew(path, encoded, 0o600)
	clear(encoded)
	if errors.Is(err, fs.ErrExist) {
		return load(path)
	}
	if err != nil {
		return k, fmt.Errorf("keys: writing %s: %w", path, err)
	}
	return k, nil
}

func newSignKey() (ed25519.PrivateKey, []byte, error) {
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, nil, fmt.Errorf("keys: generating signing key: %v", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, fmt.Errorf("keys: encoding signing key: %v", err)
	}
	defer clear(der)
	return k, pem.EncodeToMemory(&pem.Block{Type: pemSignKey, Bytes: der}), nil
}

func loadSignKey(path string) (ed25519.PrivateKey, error) {
	block, err := readPEM(path, pemSignKey)
	if err != nil {
		return nil, err
	}
	defer clear(block.Bytes)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %v", path, err)
	}
	sk, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("keys: %s: not an Ed25519 key", path)
	}
	return sk, nil
}

func newKEMKey() (hpke.PrivateKey, []byte, error) {
	k, err := wrapKEM.GenerateKey()
	if err != nil {
		return nil, nil, fmt.Errorf("keys: generating KEM key: %v", err)
	}
	seed, err := k.Bytes()
	if err != nil {
		return nil, nil, fmt.Errorf("keys: encoding KEM key: %v", err)
	}
	defer clear(seed)
	return k, pem.EncodeToMemory(&pem.Block{
		Type:    pemKEMKey,
		Headers: map[string]string{pemKEMID: fmt.Sprintf("%#04x", wrapKEM.ID())},
		Bytes:   seed,
	}), nil
}

func loadKEMKey(path string) (hpke.PrivateKey, error) {
	block, err := readPEM(path, pemKEMKey)
	if err != nil {
		return nil, err
	}
	defer clear(block.Bytes)
	id, err := strconv.ParseUint(block.Headers[pemKEMID], 0, 16)
	if err != nil || uint16(id) != wrapKEM.ID() {
		return nil, fmt.Errorf("keys: %s: unsupported KEM %q", path, block.Headers[pemKEMID])
	}
	k, err := wrapKEM.NewPrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %v", path, err)
	}
	return k, nil
}

// readPEM reads the single PEM block of type typ from a private file.
func readPEM(path, typ string) (*pem.Block, error) {
	b, err := ReadPrivateFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	block, rest := pem.Decode(b)
	if block == nil || block.Type != typ || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("keys: %s: want one PEM block %q", path, typ)
	}
	return block, nil
}

func sameKEMKey(a, b hpke.PublicKey) bool {
	return bytes.Equal(a.Bytes(), b.Bytes())
}
