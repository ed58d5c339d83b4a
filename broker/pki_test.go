package broker_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// testPKI is a throwaway development CA following the phix certificate
// profile: ECDSA P-256 everywhere, machines as CN=NAME,O=phix with the
// client-auth EKU and no SANs, the broker with SANs 127.0.0.1 and
// localhost.
type testPKI struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(t),
		Subject:               pkix.Name{CommonName: "phix test ca", Organization: []string{"phix"}},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("x509.CreateCertificate(ca) = %v, want nil", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("x509.ParseCertificate(ca) = %v, want nil", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testPKI{cert: cert, key: key, pool: pool}
}

// issue signs a leaf certificate for subject and returns it with its key.
func (p *testPKI) issue(t testing.TB, subject pkix.Name, eku x509.ExtKeyUsage,
	ips []net.IP, dns []string) tls.Certificate {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(t),
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{eku},
		IPAddresses:  ips,
		DNSNames:     dns,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatalf("x509.CreateCertificate(%s) = %v, want nil", subject, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serverTLS returns the broker side: its certificate and the CA pool.
func (p *testPKI) serverTLS(t testing.TB) *tls.Config {
	t.Helper()
	cert := p.issue(t, pkix.Name{CommonName: "phix broker", Organization: []string{"phix"}},
		x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"})
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: p.pool}
}

// machineCert issues a client certificate for subject CN=name,O=phix.
func (p *testPKI) machineCert(t testing.TB, name string) tls.Certificate {
	t.Helper()
	return p.issue(t, pkix.Name{CommonName: name, Organization: []string{"phix"}},
		x509.ExtKeyUsageClientAuth, nil, nil)
}

// clientTLS returns a machine's side, trusting p for the broker.
func (p *testPKI) clientTLS(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: p.pool, Certificates: certs, MinVersion: tls.VersionTLS13}
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("ecdsa.GenerateKey() = %v, want nil", err)
	}
	return key
}

func newSerial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		t.Fatalf("rand.Int() = %v, want nil", err)
	}
	return n
}
