// Package identity manages machine identities: the data folder layout, a
// development CA, per-machine certificates, and loading an identity folder.
//
// # Data folder
//
//	DIR/ca/ca.crt, ca.key              development CA (ECDSA P-256)
//	DIR/broker/server.crt, server.key  broker certificate (localhost)
//	DIR/directory/NAME.json            public keys of each machine
//	DIR/identities/NAME/               one identity folder per machine
//	DIR/jetstream/                     the broker's message store
//
// An identity folder holds everything one machine needs and nothing of any
// other machine: identity.json, the CA certificate, its client certificate
// and TLS key, and its signing and KEM keys (see [keys.GenerateLocal]).
// Private key files have mode 0600 and are refused if group or others have
// any permission on them.
//
// # Certificates
//
// The development CA is for running phix on one host or a test network;
// it is not a production PKI. Clients are identified by the common name of
// a client certificate that has no SANs and is usable for client
// authentication only, so a machine certificate cannot serve as a server
// certificate and the broker certificate cannot log in as a machine.
// Leaf certificates are short-lived and renewed by [Init] once less than a
// third of their life remains; TLS configurations re-read them from disk,
// so running processes pick up a renewal without restarting.
package identity

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"phix.dev/phix/internal/securefile"
	"slices"

	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/keys"
)

// Names inside a data folder.
const (
	caDir          = "ca"
	caCertFile     = "ca.crt"
	caKeyFile      = "ca.key"
	brokerDir      = "broker"
	serverCertFile = "server.crt"
	serverKeyFile  = "server.key"
	directoryDir   = "directory"
	identitiesDir  = "identities"
	jetStreamDir   = "jetstream"
)

// Names inside an identity folder.
const (
	identityFile = "identity.json"
	tlsCertFile  = "tls.crt"
	tlsKeyFile   = "tls.key"
)

// IdentityDir returns the identity folder of machine name in data folder dir.
func IdentityDir(dir, name string) string {
	return filepath.Join(dir, identitiesDir, name)
}

// DirectoryDir returns the public key directory of data folder dir.
func DirectoryDir(dir string) string { return filepath.Join(dir, directoryDir) }

// JetStreamDir returns the folder of the broker's message store in data
// folder dir. Only ciphertext is ever stored there.
func JetStreamDir(dir string) string { return filepath.Join(dir, jetStreamDir) }

// Init creates or refreshes the data folder dir: the development CA, the
// broker certificate, and an identity folder for each of machines,
// including its keys. It is idempotent: existing CA and keys are kept,
// and only certificates with less than a third of their life left (or
// that no longer match the CA or their key) are issued again, so running
// Init at every start renews certificates.
//
// Machine names must satisfy [subjects.CheckName]. Machines not listed are
// left as they are.
func Init(dir string, machines []string) error {
	for _, m := range machines {
		if err := subjects.CheckName(m); err != nil {
			return fmt.Errorf("identity: %v", err)
		}
	}
	for _, d := range []string{dir, filepath.Join(dir, identitiesDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("identity: %w", err)
		}
	}
	if err := os.MkdirAll(DirectoryDir(dir), 0o755); err != nil {
		return fmt.Errorf("identity: %w", err)
	}

	ca, err := ensureCA(filepath.Join(dir, caDir))
	if err != nil {
		return err
	}
	if err := ensureBroker(ca, filepath.Join(dir, brokerDir)); err != nil {
		return err
	}
	for _, m := range machines {
		if err := ensureMachine(ca, dir, m); err != nil {
			return err
		}
	}
	return nil
}

// Machines returns the names of the identity folders in data folder dir,
// sorted. It returns an error wrapping [fs.ErrNotExist] if dir has not
// been initialised with [Init].
func Machines(dir string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(dir, identitiesDir))
	if err != nil {
		return nil, fmt.Errorf("identity: no data folder at %s: %w", dir, err)
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() || !subjects.ValidName(e.Name()) {
			continue
		}
		_, err := os.Stat(filepath.Join(IdentityDir(dir, e.Name()), identityFile))
		if err == nil {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// SetURL records the broker URL in every identity folder of data folder
// dir, so that machines find the broker from their folder alone.
func SetURL(dir, url string) error {
	names, err := Machines(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		path := filepath.Join(IdentityDir(dir, n), identityFile)
		f, err := readIdentityFile(path)
		if err != nil {
			return err
		}
		f.URL = url
		if err := writeIdentityFile(path, f); err != nil {
			return err
		}
	}
	return nil
}

// identityJSON is the content of identity.json. Paths are relative to the
// identity folder, so the folder can be moved with the data folder.
type identityJSON struct {
	Name      string `json:"name"`
	URL       string `json:"url"`
	CA        string `json:"ca"`
	Directory string `json:"directory"`
}

func readIdentityFile(path string) (*identityJSON, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	var f identityJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("identity: %s: %v", path, err)
	}
	if err := subjects.CheckName(f.Name); err != nil {
		return nil, fmt.Errorf("identity: %s: %v", path, err)
	}
	if f.CA == "" || f.Directory == "" {
		return nil, fmt.Errorf("identity: %s: missing ca or directory", path)
	}
	return &f, nil
}

// writeIdentityFile writes f to path unless path already holds it.
func writeIdentityFile(path string, f *identityJSON) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("identity: %v", err)
	}
	return writeIfChanged(path, append(b, '\n'), 0o644)
}

// writeIfChanged atomically replaces path with data unless it already
// holds exactly data.
func writeIfChanged(path string, data []byte, perm fs.FileMode) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := securefile.Replace(path, data, perm); err != nil {
		return fmt.Errorf("identity: writing %s: %w", path, err)
	}
	return nil
}

// ensureMachine creates or refreshes the identity folder of machine name.
func ensureMachine(ca *authority, dir, name string) error {
	idDir := IdentityDir(dir, name)
	if err := os.MkdirAll(idDir, 0o700); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	if err := writeIfChanged(filepath.Join(idDir, caCertFile), ca.certPEM, 0o644); err != nil {
		return err
	}
	err := ensureLeaf(ca, filepath.Join(idDir, tlsCertFile), filepath.Join(idDir, tlsKeyFile),
		clientProfile(name))
	if err != nil {
		return err
	}
	if err := keys.GenerateLocal(idDir, DirectoryDir(dir), name); err != nil {
		return err
	}

	path := filepath.Join(idDir, identityFile)
	f := &identityJSON{Name: name, CA: caCertFile, Directory: "../../" + directoryDir}
	old, err := readIdentityFile(path)
	switch {
	case err == nil:
		f.URL = old.URL // set by SetURL; Init must not forget it
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	return writeIdentityFile(path, f)
}
