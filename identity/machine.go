package identity

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"

	"phix.dev/phix/keys"
)

// Machine is a loaded identity folder: who the machine is, where its
// broker is, and where its certificates and keys live. Loading reads no
// private keys; [Machine.TLSConfig] and [Machine.Keys] do.
type Machine struct {
	// Name is the machine name, the common name of its certificate.
	Name string
	// Dir is the absolute path of the identity folder.
	Dir string
	// URL is the broker URL; empty until [SetURL] has recorded it.
	URL string
	// CAFile is the path of the development CA certificate.
	CAFile string
	// DirectoryDir is the path of the public key directory.
	DirectoryDir string
}

// Load reads the identity folder identityDir. It returns an error
// wrapping [fs.ErrNotExist] if the folder or its identity.json is
// missing.
func Load(identityDir string) (*Machine, error) {
	dir, err := filepath.Abs(identityDir)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("identity: no identity folder at %s: %w", identityDir, err)
	}
	path := filepath.Join(dir, identityFile)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("identity: %s is not an identity folder: %w", identityDir, err)
	}
	f, err := readIdentityFile(path)
	if err != nil {
		return nil, err
	}
	return &Machine{
		Name:         f.Name,
		Dir:          dir,
		URL:          f.URL,
		CAFile:       resolve(dir, f.CA),
		DirectoryDir: resolve(dir, f.Directory),
	}, nil
}

// resolve returns path relative to dir, unless it is absolute.
func resolve(dir, path string) string {
	path = filepath.FromSlash(path)
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

// TLSConfig returns the machine's client TLS configuration: TLS 1.3
// only, trusting the development CA alone, and presenting the machine's
// certificate, re-read from disk whenever it has been renewed. ServerName
// is left empty for the client library to set from the broker URL.
func (m *Machine) TLSConfig() (*tls.Config, error) {
	pool, err := loadPool(m.CAFile)
	if err != nil {
		return nil, err
	}
	kp := newKeyPair(filepath.Join(m.Dir, tlsCertFile), filepath.Join(m.Dir, tlsKeyFile))
	cert, err := kp.load()
	if err != nil {
		return nil, err
	}
	// A certificate copied from another identity folder would connect as
	// that machine and meet only the broker's refusals; say so here.
	if cert.Leaf != nil && cert.Leaf.Subject.CommonName != m.Name {
		return nil, fmt.Errorf("identity: %s holds the certificate of %q, not of %q",
			filepath.Join(m.Dir, tlsCertFile), cert.Leaf.Subject.CommonName, m.Name)
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		RootCAs:    pool,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return kp.load()
		},
	}, nil
}

// Keys opens the machine's local key provider (see [keys.OpenLocal]).
func (m *Machine) Keys() (*keys.Local, error) {
	return keys.OpenLocal(m.Dir, m.DirectoryDir, m.Name)
}
