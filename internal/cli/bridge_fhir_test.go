package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate into dir and returns the client's TLS certificate.
func testPKI(t *testing.T, dir string) tls.Certificate {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	writePEM(t, filepath.Join(dir, "ca.crt"), "CERTIFICATE", caDER)

	leaf := func(name string, usage x509.ExtKeyUsage, serial int64) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	srvDER, srvKey := leaf("bridge", x509.ExtKeyUsageServerAuth, 2)
	writePEM(t, filepath.Join(dir, "server.crt"), "CERTIFICATE", srvDER)
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	writePEM(t, filepath.Join(dir, "server.key"), "EC PRIVATE KEY", keyDER)

	cliDER, cliKey := leaf("ehr-sender", x509.ExtKeyUsageClientAuth, 3)
	return tls.Certificate{Certificate: [][]byte{cliDER}, PrivateKey: cliKey}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestBridgeServesTLS13WithClientCertificates(t *testing.T) {
	dir := t.TempDir()
	clientCert := testPKI(t, dir)
	tlsConf, err := bridgeTLS(filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatalf("bridgeTLS: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	stub := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, r.URL.Path)
	})
	go func() { done <- serveBridge(ctx, e, ln, "/fhir", stub, tlsConf) }()

	roots := x509.NewCertPool()
	pemCA, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	roots.AppendCertsFromPEM(pemCA)
	get := func(conf *tls.Config) (*http.Response, error) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: conf}, Timeout: 10 * time.Second}
		return c.Post("https://"+ln.Addr().String()+"/fhir/Patient", "application/fhir+json", strings.NewReader("{}"))
	}

	res, err := get(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientCert}})
	if err != nil {
		t.Fatalf("request with a client certificate: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted || string(body) != "/Patient" || res.TLS.Version != tls.VersionTLS13 {
		t.Errorf("status %d, path %q, TLS %x; want 202 at /Patient over TLS 1.3", res.StatusCode, body, res.TLS.Version)
	}
	if _, err := get(&tls.Config{RootCAs: roots}); err == nil {
		t.Error("request without a client certificate succeeded, want a TLS failure")
	}
	if _, err := get(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientCert},
		MaxVersion: tls.VersionTLS12}); err == nil {
		t.Error("TLS 1.2 request succeeded, want a TLS failure")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serveBridge after cancel = %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serveBridge did not stop")
	}
}

func TestBridgeFHIRFlags(t *testing.T) {
	e := &env{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cmd := newBridgeFHIR(e)
	cmd.SetArgs(nil)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "required flag") {
		t.Fatalf("bridge fhir without flags = %v, want a required-flag error", err)
	}
	for _, name := range []string{"identity", "to", "listen", "tls-cert", "tls-key", "client-ca", "lenient"} {
		if cmd.Flags().Lookup(name) == nil {
			t.Errorf("flag --%s missing", name)
		}
	}
}
