package identity

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"phix.dev/phix/keys"
)

// keyPair is a certificate and key on disk that is re-read whenever
// either file changes, so a renewal by [Init] takes effect on the next
// handshake without a restart. It is safe for concurrent use.
type keyPair struct {
	certPath, keyPath string

	mu     sync.Mutex // guards cert, certFI and keyFI
	cert   *tls.Certificate
	certFI fs.FileInfo
	keyFI  fs.FileInfo
}

func newKeyPair(certPath, keyPath string) *keyPair {
	return &keyPair{certPath: certPath, keyPath: keyPath}
}

// load returns the current certificate. It fails closed: if the files
// cannot be read or do not match, the handshake fails rather than
// continuing with a certificate the operator may have meant to replace.
func (p *keyPair) load() (*tls.Certificate, error) {
	// Stat before reading: if a file changes in between, the next load
	// sees a new FileInfo and reads again.
	certFI, err := os.Stat(p.certPath)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	keyFI, err := os.Stat(p.keyPath)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cert != nil && sameFile(p.certFI, certFI) && sameFile(p.keyFI, keyFI) {
		return p.cert, nil
	}
	certPEM, err := os.ReadFile(p.certPath)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	keyPEM, err := keys.ReadPrivateFile(p.keyPath)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	defer clear(keyPEM)
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("identity: %s with %s: %v", p.certPath, p.keyPath, err)
	}
	p.cert, p.certFI, p.keyFI = &c, certFI, keyFI
	return p.cert, nil
}

// loadPool returns a pool holding the CA certificate in path.
func loadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("identity: CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("identity: %s holds no PEM certificate", path)
	}
	return pool, nil
}
