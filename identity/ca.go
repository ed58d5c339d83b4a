package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"phix.dev/phix/internal/securefile"
	"slices"
	"time"

	"phix.dev/phix/keys"
)

// Certificate lifetimes.
const (
	caLifetime     = 5 * 365 * 24 * time.Hour
	serverLifetime = 90 * 24 * time.Hour
	clientLifetime = 30 * 24 * time.Hour

	// backdate is how far before issuance a certificate becomes valid, to
	// tolerate clocks of different hosts that are slightly apart.
	backdate = 5 * time.Minute
)

// organization is the subject organization of every phix certificate.
const organization = "phix"

// brokerCommonName is the subject common name of the broker certificate.
// It is not a valid machine name, so it can never map to a machine.
const brokerCommonName = "phix broker"

func subject(cn string) pkix.Name {
	return pkix.Name{CommonName: cn, Organization: []string{organization}}
}

// authority is the development CA.
type authority struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
}

// profile is a kind of leaf certificate.
type profile struct {
	lifetime time.Duration
	template func(notBefore, notAfter time.Time) *x509.Certificate
	// fits reports whether an existing certificate was issued for this
	// profile, so that a changed profile leads to a new certificate.
	fits func(*x509.Certificate) bool
}

// clientProfile is the certificate of machine name: the common name is
// the machine name and there are no SANs, so the certificate can be used
// for client authentication only and maps to exactly one broker user.
func clientProfile(name string) profile {
	return profile{
		lifetime: clientLifetime,
		template: func(notBefore, notAfter time.Time) *x509.Certificate {
			return &x509.Certificate{
				Subject:               subject(name),
				NotBefore:             notBefore,
				NotAfter:              notAfter,
				KeyUsage:              x509.KeyUsageDigitalSignature,
				ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
				BasicConstraintsValid: true,
			}
		},
		fits: func(c *x509.Certificate) bool {
			return c.Subject.CommonName == name && !hasSANs(c) &&
				slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
		},
	}
}

var (
	brokerDNSNames = []string{"localhost"}
	brokerIPs      = []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
)

// serverProfile is the broker certificate, valid for the loopback
// addresses only.
func serverProfile() profile {
	return profile{
		lifetime: serverLifetime,
		template: func(notBefore, notAfter time.Time) *x509.Certificate {
			return &x509.Certificate{
				Subject:               subject(brokerCommonName),
				NotBefore:             notBefore,
				NotAfter:              notAfter,
				KeyUsage:              x509.KeyUsageDigitalSignature,
				ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
				BasicConstraintsValid: true,
				DNSNames:              brokerDNSNames,
				IPAddresses:           brokerIPs,
			}
		},
		fits: func(c *x509.Certificate) bool {
			return slices.Equal(c.DNSNames, brokerDNSNames) &&
				slices.EqualFunc(c.IPAddresses, brokerIPs, net.IP.Equal) &&
				slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
		},
	}
}

func hasSANs(c *x509.Certificate) bool {
	return len(c.DNSNames)+len(c.IPAddresses)+len(c.EmailAddresses)+len(c.URIs) != 0
}

// ensureCA loads the development CA from dir, creating it if dir holds
// none. A CA certificate without its key is an error rather than a reason
// to start a new CA, because that would silently invalidate every
// certificate issued so far.
func ensureCA(dir string) (*authority, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	certPath, keyPath := filepath.Join(dir, caCertFile), filepath.Join(dir, caKeyFile)
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		certPEM, err = createCA(certPath, keyPath)
	}
	if err != nil {
		return nil, fmt.Errorf("identity: CA: %w", err)
	}
	key, err := loadKey(keyPath)
	if err != nil {
		return nil, fmt.Errorf("identity: CA: %w", err)
	}

	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %v", certPath, err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	switch {
	case !cert.IsCA || !ok:
		return nil, fmt.Errorf("identity: %s is not an ECDSA CA certificate", certPath)
	case !pub.Equal(&key.PublicKey):
		return nil, fmt.Errorf("identity: %s does not match %s", keyPath, certPath)
	case time.Now().After(cert.NotAfter):
		return nil, fmt.Errorf("identity: development CA expired on %s; "+
			"remove %s to start a new one", cert.NotAfter.Format(time.DateOnly), dir)
	}
	return &authority{cert: cert, certPEM: certPEM, key: key}, nil
}

// createCA creates a self-signed CA certificate, and its key if there is
// none yet, and returns the certificate in PEM.
func createCA(certPath, keyPath string) ([]byte, error) {
	key, err := loadOrCreateKey(keyPath)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(),
		Subject:               subject("phix development CA"),
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // issues leaves only
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}

	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	err = securefile.WriteNew(certPath, certPEM, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return os.ReadFile(certPath) // another Init created the CA first
	}
	return certPEM, err
}

// ensureLeaf makes certPath hold a current certificate of profile p for
// the key in keyPath, creating the key if there is none. A renewal keeps
// the key and replaces only the certificate file, atomically, so a reader
// never sees a certificate with the wrong key.
func ensureLeaf(ca *authority, certPath, keyPath string, p profile) error {
	key, err := loadOrCreateKey(keyPath)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	now := time.Now()
	if ca.current(certPath, key, p, now) {
		return nil
	}
	certPEM, err := ca.issue(p.template(now.Add(-backdate), now.Add(p.lifetime)), &key.PublicKey)
	if err != nil {
		return fmt.Errorf("identity: issuing %s: %v", certPath, err)
	}
	if err := securefile.Replace(certPath, certPEM, 0o644); err != nil {
		return fmt.Errorf("identity: writing %s: %w", certPath, err)
	}
	return nil
}

// current reports whether certPath holds a certificate of profile p,
// issued by a for key, with at least a third of its life left at now.
func (a *authority) current(certPath string, key *ecdsa.PrivateKey, p profile, now time.Time) bool {
	b, err := os.ReadFile(certPath)
	if err != nil {
		return false
	}
	c, err := parseCertPEM(b)
	if err != nil || c.CheckSignatureFrom(a.cert) != nil || !p.fits(c) {
		return false
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return false
	}
	life, left := c.NotAfter.Sub(c.NotBefore), c.NotAfter.Sub(now)
	return !now.Before(c.NotBefore) && 3*left >= life
}

// issue signs tmpl for pub and returns the certificate in PEM. NotAfter
// is capped at the CA's own expiry, past which the leaf could not verify.
func (a *authority) issue(tmpl *x509.Certificate, pub *ecdsa.PublicKey) ([]byte, error) {
	tmpl.SerialNumber = newSerial()
	if tmpl.NotAfter.After(a.cert.NotAfter) {
		tmpl.NotAfter = a.cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, pub, a.key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// newSerial returns a random 128-bit serial number (RFC 5280 allows up
// to 20 octets; randomness keeps serials unique without state).
func newSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic("identity: crypto/rand failed: " + err.Error()) // crypto/rand does not fail
	}
	return n.Add(n, big.NewInt(1)) // serials must be positive
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// loadOrCreateKey loads the ECDSA P-256 key in keyPath, or creates it
// with mode 0600 if there is none. If another process creates it first,
// that key wins.
func loadOrCreateKey(path string) (*ecdsa.PrivateKey, error) {
	key, err := loadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	defer clear(der)
	err = securefile.WriteNew(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	if errors.Is(err, fs.ErrExist) {
		return loadKey(path)
	}
	return key, err
}

// loadKey loads an ECDSA P-256 key, refusing a file that group or others
// may access (see [keys.ReadPrivateFile]).
func loadKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := keys.ReadPrivateFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: no PEM private key", path)
	}
	defer clear(block.Bytes)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%s: not an ECDSA P-256 key", path)
	}
	return ek, nil
}
