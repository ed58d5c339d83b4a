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
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"phix.dev/phix/fhir"
)

// testPKI writes a CA and a server certificate for 127.0.0.1 into dir and
// returns a function that issues client certificates with a given common
// name from the same CA.
func testPKI(t *testing.T, dir string) func(name string) tls.Certificate {
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

	serial := int64(2)
	return func(name string) tls.Certificate {
		serial++
		der, key := leaf(name, x509.ExtKeyUsageClientAuth, serial)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestBridgeServesTLS13WithClientCertificates(t *testing.T) {
	dir := t.TempDir()
	clientCert := testPKI(t, dir)("ehr-sender")
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
	for _, name := range []string{"identity", "to", "listen", "tls-cert", "tls-key", "client-ca", "allow", "lenient"} {
		if cmd.Flags().Lookup(name) == nil {
			t.Errorf("flag --%s missing", name)
		}
	}
}

// counter is a FHIR publish function that counts what it stores and the
// client names it stores them for.
type counter struct {
	mu      sync.Mutex
	clients []string // guarded by mu
}

func (c *counter) publish(ctx context.Context, _ string, _ []byte) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clients = append(c.clients, requestClient(ctx))
	return fmt.Sprintf("m%d", len(c.clients)), nil
}

func (c *counter) published() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.clients)
}

func TestBridgeFHIRAllowsOnlyListedClients(t *testing.T) {
	dir := t.TempDir()
	issue := testPKI(t, dir)
	tlsConf, err := bridgeTLS(filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatalf("bridgeTLS: %v", err)
	}
	e := &env{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	allow := allowedClients("ehr-sender", "lab-feed")
	tlsConf.VerifyConnection = verifyClientName(e.log, allow)
	var c counter
	h, err := fhir.NewHandler(fhir.Config{Publish: c.publish})
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveBridge(ctx, e, ln, "/fhir", requireClient(e.log, allow, h), tlsConf) }()
	defer func() {
		cancel()
		<-done
	}()

	roots := x509.NewCertPool()
	pemCA, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	roots.AppendCertsFromPEM(pemCA)
	base := "https://" + ln.Addr().String() + "/fhir"
	client := func(name string) *http.Client {
		conf := &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{issue(name)}}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: conf}, Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	post := func(c *http.Client, url, body string) (int, error) {
		res, err := c.Post(url, "application/fhir+json", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode, nil
	}

	sender := client("ehr-sender")
	if got, err := post(sender, base+"/Patient", `{"resourceType":"Patient"}`); err != nil || got != http.StatusAccepted {
		t.Errorf("POST /fhir/Patient as ehr-sender = %d, %v; want 202", got, err)
	}
	batch := `{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Patient"},` +
		`"request":{"method":"POST","url":"Patient"}}]}`
	if got, err := post(sender, base, batch); err != nil || got/100 != 2 {
		t.Errorf("POST /fhir (no trailing slash) as ehr-sender = %d, %v; want 2xx", got, err)
	}
	if got, want := c.published(), []string{"ehr-sender", "ehr-sender"}; !slices.Equal(got, want) {
		t.Fatalf("published for %q, want %q", got, want)
	}

	for _, name := range []string{"billing", "lab-feed"} {
		if got, err := post(client(name), base+"/Patient", `{"resourceType":"Patient"}`); err == nil {
			t.Errorf("POST /fhir/Patient as %s = %d, want a TLS failure", name, got)
		}
	}
	if got := c.published(); len(got) != 2 {
		t.Errorf("published for %q after refused clients, want only the 2 earlier posts", got)
	}
}

func TestRequireClientRefusesUnlistedNames(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var served bool
	h := requireClient(log, []string{"lab-feed"}, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		served = true
	}))
	tests := []struct {
		name string
		tls  *tls.ConnectionState
	}{
		{"plain HTTP", nil},
		{"no client certificate", &tls.ConnectionState{}},
		{"another machine", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{
			{Subject: pkix.Name{CommonName: "billing"}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/Patient", strings.NewReader("{}"))
			r.TLS = tc.tls
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), `"forbidden"`) {
				t.Errorf("requireClient = %d %s, want 403 with a forbidden OperationOutcome", rec.Code, rec.Body)
			}
			if served {
				t.Error("requireClient passed a refused request to the handler")
			}
		})
	}
}

func TestAllowedClientsDefaultsToSelf(t *testing.T) {
	if got := allowedClients("", "lab-feed"); !slices.Equal(got, []string{"lab-feed"}) {
		t.Errorf(`allowedClients("", "lab-feed") = %q, want [lab-feed]`, got)
	}
	if got := allowedClients("ehr, lis", "lab-feed"); !slices.Equal(got, []string{"ehr", "lis"}) {
		t.Errorf(`allowedClients("ehr, lis", "lab-feed") = %q, want [ehr lis]`, got)
	}
}
