package broker

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"phix.dev/phix/keys"
)

// storeKeySize is the size of the random secret from which nats-server
// derives each stream's AES-256-GCM key, in bytes.
const storeKeySize = 32

// loadStoreKey returns the at-rest key in path, creating the file with a
// fresh random key (mode 0600, in a 0700 directory) if it does not exist.
// A file that group or others may access is refused with an error
// wrapping [keys.ErrInsecureFile], so a leaked backup permission cannot go
// unnoticed. If storeDir is not "" and already holds an encrypted store,
// a missing key is an error: a new key would make that store unreadable.
//
// nats-server takes the key as a string and derives per-stream keys from
// it; the file holds it base64-encoded, so what is read is passed on as
// it is and the raw bytes never exist outside the encoding.
func loadStoreKey(path, storeDir string) (string, error) {
	b, err := keys.ReadPrivateFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if storeDir != "" && storeEncrypted(storeDir) {
			return "", fmt.Errorf("at-rest key %s is missing but the store is encrypted; "+
				"restore the key file", path)
		}
		return createStoreKey(path)
	}
	if err != nil {
		return "", fmt.Errorf("at-rest key: %w", err)
	}
	key := strings.TrimSpace(string(b))
	clear(b)
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(raw) != storeKeySize {
		return "", fmt.Errorf("at-rest key %s: want %d base64-encoded bytes", path, storeKeySize)
	}
	clear(raw)
	return key, nil
}

func createStoreKey(path string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("at-rest key: %w", err)
	}
	raw := make([]byte, storeKeySize)
	rand.Read(raw)
	key := base64.StdEncoding.EncodeToString(raw)
	clear(raw)

	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadStoreKey(path, "") // another process created it first
	}
	if err != nil {
		return "", fmt.Errorf("at-rest key: %w", err)
	}
	_, werr := f.WriteString(key + "\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("at-rest key: writing %s: %w", path, err)
	}
	return key, nil
}

// storeEncrypted reports whether any stream under the JetStream store in
// storeDir has an encrypted meta key (nats-server's meta.key), which it
// writes only for stores encrypted at rest.
func storeEncrypted(storeDir string) bool {
	found := false
	filepath.WalkDir(filepath.Join(storeDir, "jetstream"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "meta.key" {
			found = true
			return fs.SkipAll
		}
		return nil
	})
	return found
}
