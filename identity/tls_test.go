package identity

// The handshake tests are internal tests because some need certificates
// that Init never issues (expired, about to expire), made with the
// unexported issuing code.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"phix.dev/phix/internal/securefile"
	"testing"
	"time"
)

func initData(t testing.TB, machines ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := Init(dir, machines); err != nil {
		t.Fatalf("Init(%q) = %v, want nil", machines, err)
	}
	return dir
}

func brokerTLS(t testing.TB, dir string) *tls.Config {
	t.Helper()
	c, err := BrokerTLS(dir)
	if err != nil {
		t.Fatalf("BrokerTLS = %v, want nil", err)
	}
	return c
}

func clientTLS(t testing.TB, dir, name string) *tls.Config {
	t.Helper()
	m, err := Load(IdentityDir(dir, name))
	if err != nil {
		t.Fatalf("Load(%s) = %v, want nil", name, err)
	}
	c, err := m.TLSConfig()
	if err != nil {
		t.Fatalf("TLSConfig(%s) = %v, want nil", name, err)
	}
	return c
}

// handshake runs a TLS handshake over an in-memory pipe and returns the
// server's view of the connection, or the server's error.
func handshake(t testing.TB, server, client *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	sc, cc := net.Pipe()
	t.Cleanup(func() { sc.Close(); cc.Close() })
	deadline := time.Now().Add(10 * time.Second)
	sc.SetDeadline(deadline)
	cc.SetDeadline(deadline)
	client = client.Clone()
	client.ServerName = "localhost"

	clientDone := make(chan struct{})
	go func() {
		defer close(clientDone)
		c := tls.Client(cc, client)
		// In TLS 1.3 the client finishes before the server has checked its
		// certificate; reading waits for the server's verdict.
		if c.Handshake() == nil {
			c.Read(make([]byte, 1))
		}
		cc.Close()
	}()

	s := tls.Server(sc, server)
	err := s.Handshake()
	state := s.ConnectionState()
	s.Close()
	<-clientDone
	return state, err
}

func TestHandshake(t *testing.T) {
	dir := initData(t, "alice")
	state, err := handshake(t, brokerTLS(t, dir), clientTLS(t, dir, "alice"))
	if err != nil {
		t.Fatalf("handshake = %v, want nil", err)
	}
	if state.Version != tls.VersionTLS13 {
		t.Errorf("Version = %#x, want TLS 1.3", state.Version)
	}
	if len(state.PeerCertificates) == 0 {
		t.Fatalf("server saw no client certificate")
	}
	if got := state.PeerCertificates[0].Subject.CommonName; got != "alice" {
		t.Errorf("client CN = %q, want alice", got)
	}
}

func TestHandshakeRefused(t *testing.T) {
	dir := initData(t, "alice")
	other := initData(t, "alice")
	pool, err := loadPool(filepath.Join(dir, caDir, caCertFile))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := ensureCA(filepath.Join(dir, caDir))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		client func() *tls.Config
	}{
		{"certificate from another CA", func() *tls.Config {
			c := clientTLS(t, other, "alice")
			c.RootCAs = pool // trusts the broker, so only the server can refuse
			return c
		}},
		{"TLS 1.2 client", func() *tls.Config {
			c := clientTLS(t, dir, "alice")
			c.MinVersion, c.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
			return c
		}},
		{"no client certificate", func() *tls.Config {
			c := clientTLS(t, dir, "alice")
			c.GetClientCertificate = nil
			return c
		}},
		{"expired client certificate", func() *tls.Config {
			now := time.Now()
			return withCert(t, clientTLS(t, dir, "alice"), ca,
				clientProfile("alice").template(now.Add(-31*24*time.Hour), now.Add(-time.Hour)))
		}},
		{"client certificate not yet valid", func() *tls.Config {
			now := time.Now()
			return withCert(t, clientTLS(t, dir, "alice"), ca,
				clientProfile("alice").template(now.Add(time.Hour), now.Add(24*time.Hour)))
		}},
		{"broker certificate as client certificate", func() *tls.Config {
			now := time.Now()
			return withCert(t, clientTLS(t, dir, "alice"), ca,
				serverProfile().template(now.Add(-time.Hour), now.Add(time.Hour)))
		}},
		{"client certificate with an invalid machine name", func() *tls.Config {
			now := time.Now()
			return withCert(t, clientTLS(t, dir, "alice"), ca,
				clientProfile("Alice.*").template(now.Add(-time.Hour), now.Add(time.Hour)))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state, err := handshake(t, brokerTLS(t, dir), tt.client())
			if err == nil {
				t.Fatalf("handshake = nil (client %v), want error", state.PeerCertificates[0].Subject)
			}
			t.Logf("refused: %v", err)
		})
	}
}

// withCert returns c presenting a new certificate from ca made from tmpl.
func withCert(t testing.TB, c *tls.Config, ca *authority, tmpl *x509.Certificate) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.issue(tmpl, &key.PublicKey)
	if err != nil {
		t.Fatalf("issue = %v, want nil", err)
	}
	block, _ := pem.Decode(certPEM)
	c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: key}, nil
	}
	return c
}

// TestRenewal checks that Init renews a certificate with less than a third
// of its life left, and that TLS configurations made before the renewal
// present the new certificates without being made again.
func TestRenewal(t *testing.T) {
	dir := initData(t, "alice")
	ca, err := ensureCA(filepath.Join(dir, caDir))
	if err != nil {
		t.Fatal(err)
	}
	clientCert := filepath.Join(IdentityDir(dir, "alice"), tlsCertFile)
	serverCert := filepath.Join(dir, brokerDir, serverCertFile)

	// Replace both certificates by ones with a tenth of their life left.
	now := time.Now()
	reissue(t, ca, clientCert, filepath.Join(IdentityDir(dir, "alice"), tlsKeyFile),
		clientProfile("alice").template(now.Add(-27*24*time.Hour), now.Add(3*24*time.Hour)))
	reissue(t, ca, serverCert, filepath.Join(dir, brokerDir, serverKeyFile),
		serverProfile().template(now.Add(-81*24*time.Hour), now.Add(9*24*time.Hour)))
	server, client := brokerTLS(t, dir), clientTLS(t, dir, "alice")
	oldClient, oldServer := readCertFile(t, clientCert), readCertFile(t, serverCert)

	if err := Init(dir, []string{"alice"}); err != nil {
		t.Fatalf("Init = %v, want nil", err)
	}
	newClient, newServer := readCertFile(t, clientCert), readCertFile(t, serverCert)
	if newClient.SerialNumber.Cmp(oldClient.SerialNumber) == 0 ||
		newClient.NotAfter.Before(now.Add(29*24*time.Hour)) {
		t.Errorf("Init kept the client certificate expiring %v, want a renewal", oldClient.NotAfter)
	}
	if newServer.SerialNumber.Cmp(oldServer.SerialNumber) == 0 ||
		newServer.NotAfter.Before(now.Add(89*24*time.Hour)) {
		t.Errorf("Init kept the server certificate expiring %v, want a renewal", oldServer.NotAfter)
	}

	serverSeen := make(chan *x509.Certificate, 1)
	client = client.Clone()
	client.VerifyConnection = func(cs tls.ConnectionState) error {
		serverSeen <- cs.PeerCertificates[0]
		return nil
	}
	state, err := handshake(t, server, client)
	if err != nil {
		t.Fatalf("handshake after renewal = %v, want nil", err)
	}
	if got := state.PeerCertificates[0].SerialNumber; got.Cmp(newClient.SerialNumber) != 0 {
		t.Errorf("client presented serial %v, want renewed %v", got, newClient.SerialNumber)
	}
	if got := (<-serverSeen).SerialNumber; got.Cmp(newServer.SerialNumber) != 0 {
		t.Errorf("server presented serial %v, want renewed %v", got, newServer.SerialNumber)
	}
}

func reissue(t testing.TB, ca *authority, certPath, keyPath string, tmpl *x509.Certificate) {
	t.Helper()
	key, err := loadKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.issue(tmpl, &key.PublicKey)
	if err != nil {
		t.Fatalf("issue = %v, want nil", err)
	}
	if err := securefile.Replace(certPath, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readCertFile(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseCertPEM(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}
