package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"phix.dev/phix/internal/subjects"
)

// recordVersion is the version of the directory record format.
const recordVersion = 1

// dirRecord is the public directory entry of one machine, stored as
// DIR/NAME.json. It holds public keys only and is readable by everyone.
type dirRecord struct {
	Version    int           `json:"version"`
	Name       string        `json:"name"`
	SigningKey signingRecord `json:"signing_key"`
	KEMKey     kemRecord     `json:"kem_key"`
}

// signingRecord is a machine's Ed25519 identity key.
type signingRecord struct {
	ID        string `json:"id"`
	PublicKey []byte `json:"public_key"`
}

// kemRecord is a machine's HPKE public key with the suite it is used
// with, as RFC 9180 identifiers, so that a reader refuses a suite it does
// not implement instead of wrapping to the wrong algorithm.
type kemRecord struct {
	KEM       uint16 `json:"kem_id"`
	KDF       uint16 `json:"kdf_id"`
	AEAD      uint16 `json:"aead_id"`
	PublicKey []byte `json:"public_key"`
}

// dirEntry is a parsed, checked directory record.
type dirEntry struct {
	signID  string
	signPub ed25519.PublicKey
	kemPub  hpke.PublicKey
}

// signingKeyID returns the ID of an Ed25519 public key. It is derived from
// the key, so it cannot name a different key than the one it was made for.
func signingKeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ed25519:" + hex.EncodeToString(sum[:8])
}

func newRecord(name string, signPub ed25519.PublicKey, kemPub hpke.PublicKey) *dirRecord {
	return &dirRecord{
		Version:    recordVersion,
		Name:       name,
		SigningKey: signingRecord{ID: signingKeyID(signPub), PublicKey: signPub},
		KEMKey: kemRecord{
			KEM:       wrapKEM.ID(),
			KDF:       wrapKDF.ID(),
			AEAD:      wrapAEAD.ID(),
			PublicKey: kemPub.Bytes(),
		},
	}
}

func (r *dirRecord) marshal() []byte {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		panic("keys: marshaling directory record: " + err.Error()) // only plain types
	}
	return append(b, '\n')
}

// parseRecord strictly decodes and checks the record of machine name.
func parseRecord(name string, b []byte) (*dirEntry, error) {
	var r dirRecord
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data")
	}

	switch {
	case r.Version != recordVersion:
		return nil, fmt.Errorf("version %d, want %d", r.Version, recordVersion)
	case r.Name != name:
		// A record copied under another name must not stand in for it.
		return nil, fmt.Errorf("record names %q", r.Name)
	case len(r.SigningKey.PublicKey) != ed25519.PublicKeySize:
		return nil, errors.New("bad signing key size")
	case r.SigningKey.ID != signingKeyID(r.SigningKey.PublicKey):
		return nil, errors.New("signing key id does not match its key")
	case r.KEMKey.KEM != wrapKEM.ID() || r.KEMKey.KDF != wrapKDF.ID() ||
		r.KEMKey.AEAD != wrapAEAD.ID():
		return nil, fmt.Errorf("unsupported HPKE suite %#04x/%#04x/%#04x",
			r.KEMKey.KEM, r.KEMKey.KDF, r.KEMKey.AEAD)
	}
	kemPub, err := wrapKEM.NewPublicKey(r.KEMKey.PublicKey)
	if err != nil {
		return nil, errors.New("bad KEM public key")
	}
	return &dirEntry{
		signID:  r.SigningKey.ID,
		signPub: ed25519.PublicKey(r.SigningKey.PublicKey),
		kemPub:  kemPub,
	}, nil
}

// directory reads machines' public records from a folder. It caches
// parsed records and re-reads a record whenever its file changes, so new
// machines and regenerated keys are picked up without a restart.
type directory struct {
	dir string

	mu    sync.Mutex // guards cache
	cache map[string]dirCached
}

type dirCached struct {
	fi fs.FileInfo
	e  *dirEntry
}

func newDirectory(dir string) *directory {
	return &directory{dir: dir, cache: make(map[string]dirCached)}
}

func (d *directory) path(name string) string {
	return filepath.Join(d.dir, name+".json")
}

// lookup returns the record of machine name, or an error wrapping
// [ErrUnknownMachine] if the directory has none.
func (d *directory) lookup(name string) (*dirEntry, error) {
	// The name becomes a file name: refuse anything that could walk out of
	// the directory before touching the file system.
	if !subjects.ValidName(name) {
		return nil, fmt.Errorf("%w %q", ErrUnknownMachine, name)
	}
	path := d.path(name)

	d.mu.Lock()
	defer d.mu.Unlock()
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		delete(d.cache, name)
		return nil, fmt.Errorf("%w %q", ErrUnknownMachine, name)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: directory: %w", err)
	}
	if c, ok := d.cache[name]; ok && sameFile(c.fi, fi) {
		return c.e, nil
	}

	b, err := readPublicFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %q", ErrUnknownMachine, name)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: directory: %w", err)
	}
	e, err := parseRecord(name, b)
	if err != nil {
		return nil, fmt.Errorf("keys: directory record %s: %v", path, err)
	}
	d.cache[name] = dirCached{fi: fi, e: e}
	return e, nil
}

// sameFile reports whether b describes the same unchanged file as a.
// Records are replaced by rename, which gives the file a new inode, so
// this holds even if a rewrite lands within the modification time's
// resolution.
func sameFile(a, b fs.FileInfo) bool {
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}
