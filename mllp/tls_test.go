package mllp_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"phix.dev/phix/mllp"
)

// testPKI is a throwaway CA for the TLS tests.
type testPKI struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

var (
	pkiOnce sync.Once
	pki     testPKI
)

func testCA(t testing.TB) testPKI {
	t.Helper()
	pkiOnce.Do(func() {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mllp test CA"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		cert, _ := x509.ParseCertificate(der)
		pool := x509.NewCertPool()
		pool.AddCert(cert)
		pki = testPKI{cert: cert, key: key, pool: pool}
	})
	return pki
}

// testCert issues a certificate for name, usable by servers on 127.0.0.1
// and by clients.
func testCert(t testing.TB, name string) tls.Certificate {
	t.Helper()
	ca := testCA(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestMutualTLS(t *testing.T) {
	ca := testCA(t)
	rec := &recorder{}
	ts := startServer(t, mllp.ServerConfig{Handler: rec.handle, TLS: &tls.Config{
		MinVersion: tls.VersionTLS13, ClientAuth: tls.RequireAndVerifyClientCert,
		Certificates: []tls.Certificate{testCert(t, "phix")}, ClientCAs: ca.pool,
	}})
	msg := loadCase(t, "39-adt-a01.hl7")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	good, _ := mllp.NewClient(mllp.ClientConfig{Addr: ts.addr, TLS: &tls.Config{
		MinVersion: tls.VersionTLS13, RootCAs: ca.pool, Certificates: []tls.Certificate{testCert(t, "feed")},
	}})
	defer good.Close()
	ack, err := good.Send(ctx, msg)
	if err != nil || ack.Code != "AA" || ack.ControlID != "ADT0000101" {
		t.Fatalf("Send over mutual TLS = %v, %v; want AA for ADT0000101", ack, err)
	}

	anon, _ := mllp.NewClient(mllp.ClientConfig{Addr: ts.addr, TLS: &tls.Config{
		MinVersion: tls.VersionTLS13, RootCAs: ca.pool,
	}})
	defer anon.Close()
	if _, err := anon.Send(ctx, msg); err == nil {
		t.Error("Send without a client certificate succeeded, want refusal")
	}
	plain, _ := mllp.NewClient(mllp.ClientConfig{Addr: ts.addr, AckTimeout: time.Second})
	defer plain.Close()
	if _, err := plain.Send(ctx, msg); err == nil {
		t.Error("Send over plain TCP to a TLS server succeeded, want failure")
	}
	if n := len(rec.got()); n != 1 {
		t.Errorf("handler got %d messages, want 1", n)
	}
}
