package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/audit"
	"phix.dev/phix/broker"
	"phix.dev/phix/compliance"
	"phix.dev/phix/consumer"
	"phix.dev/phix/identity"
	"phix.dev/phix/internal/cli"
	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/keys"
	"phix.dev/phix/policy"
	"phix.dev/phix/producer"
)

// startSecured starts the default deployment as `phix up` does: the demo
// policy written to DIR/policy.yaml (with idle_timeout replaced by idle
// if not ""), its identities, and a broker with a monitoring endpoint.
func startSecured(t testing.TB, idle string) *deployment {
	t.Helper()
	dir := t.TempDir()
	text := string(policy.Default())
	if idle != "" {
		text = strings.Replace(text, "idle_timeout: 15m", "idle_timeout: "+idle, 1)
	}
	path := filepath.Join(dir, policy.FileName)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := policy.Load(path)
	if err != nil {
		t.Fatalf("policy.Load: %v", err)
	}
	if err := identity.Init(dir, p.Active()); err != nil {
		t.Fatalf("identity.Init: %v", err)
	}
	tlsConf, err := identity.BrokerTLS(dir)
	if err != nil {
		t.Fatalf("identity.BrokerTLS: %v", err)
	}
	b, err := broker.New(broker.Config{StoreDir: dir, Port: -1, MonitorPort: -1,
		TLS: tlsConf, Policy: p})
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	if err := b.Start(withTimeout(t, 30*time.Second)); err != nil {
		t.Fatalf("broker.Start: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	if err := identity.SetURL(dir, b.ClientURL()); err != nil {
		t.Fatalf("identity.SetURL: %v", err)
	}
	return &deployment{dir: dir, b: b}
}

// machineTLS returns name's client TLS configuration.
func (d *deployment) machineTLS(t testing.TB, name string) *tls.Config {
	t.Helper()
	m, err := identity.Load(identity.IdentityDir(d.dir, name))
	if err != nil {
		t.Fatalf("identity.Load(%s): %v", name, err)
	}
	tc, err := m.TLSConfig()
	if err != nil {
		t.Fatalf("TLSConfig(%s): %v", name, err)
	}
	return tc
}

// devCA is the deployment's development CA, read from its data folder, to
// issue certificates `phix up` never would.
type devCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func loadCA(t testing.TB, dir string) *devCA {
	t.Helper()
	cert := readCertFile(t, filepath.Join(dir, "ca", "ca.crt"))
	return &devCA{cert: cert, key: readECKey(t, filepath.Join(dir, "ca", "ca.key"))}
}

func readCertFile(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

func readECKey(t testing.TB, path string) *ecdsa.PrivateKey {
	t.Helper()
	b, err := keys.ReadPrivateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return k.(*ecdsa.PrivateKey)
}

// issue signs a certificate for pub valid from notBefore to notAfter:
// a machine certificate for CN=name, or with server set the broker's.
func (ca *devCA) issue(t testing.TB, name string, server bool, pub *ecdsa.PublicKey,
	notBefore, notAfter time.Time) []byte {
	t.Helper()
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"phix"}},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatalf("x509.CreateCertificate(%s): %v", name, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// reissue replaces certPath, atomically, with a fresh certificate for the
// key in keyPath, as a renewal does, and returns its SHA-256.
func (ca *devCA) reissue(t testing.TB, name string, server bool, certPath, keyPath string) string {
	t.Helper()
	key := readECKey(t, keyPath)
	now := time.Now()
	certPEM := ca.issue(t, name, server, &key.PublicKey, now.Add(-time.Minute), now.Add(time.Hour))
	tmp := certPath + ".new"
	if err := os.WriteFile(tmp, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, certPath); err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	sum := sha256.Sum256(block.Bytes)
	return hex.EncodeToString(sum[:])
}

// dialAs connects to d with tc and no reconnects.
func (d *deployment) dialAs(name string, tc *tls.Config) (*nats.Conn, error) {
	return nats.Connect(d.b.ClientURL(), append(broker.ClientOptions(name, tc),
		nats.NoReconnect(), nats.Timeout(5*time.Second))...)
}

func TestRefusedConnections(t *testing.T) {
	d := startSecured(t, "")
	good := d.machineTLS(t, "lab-feed")
	if nc, err := d.dialAs("lab-feed", good); err != nil {
		t.Fatalf("connecting with lab-feed's identity: %v", err)
	} else {
		nc.Close()
	}

	tls12 := good.Clone()
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12

	other := t.TempDir()
	if err := identity.Init(other, []string{"lab-feed"}); err != nil {
		t.Fatal(err)
	}
	unknownCA := d.machineTLS(t, "lab-feed")
	m, err := identity.Load(identity.IdentityDir(other, "lab-feed"))
	if err != nil {
		t.Fatal(err)
	}
	strangerTLS, err := m.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	unknownCA.GetClientCertificate = strangerTLS.GetClientCertificate

	ca := loadCA(t, d.dir)
	key := readECKey(t, filepath.Join(identity.IdentityDir(d.dir, "lab-feed"), "tls.key"))
	expiredPEM := ca.issue(t, "lab-feed", false, &key.PublicKey,
		time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour))
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	expiredCert, err := tls.X509KeyPair(expiredPEM,
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	expired := good.Clone()
	expired.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &expiredCert, nil
	}

	for name, tc := range map[string]*tls.Config{
		"a TLS 1.2 client":                 tls12,
		"a certificate from an unknown CA": unknownCA,
		"an expired certificate":           expired,
		"no client certificate":            &tls.Config{RootCAs: good.RootCAs, MinVersion: tls.VersionTLS13},
		"a client not starting with TLS":   nil,
	} {
		t.Run(name, func(t *testing.T) {
			var nc *nats.Conn
			var err error
			if tc == nil {
				// nats.go without TLSHandshakeFirst waits for a plaintext
				// INFO that never comes.
				nc, err = nats.Connect(d.b.ClientURL(), nats.Secure(good), nats.NoReconnect(),
					nats.Timeout(2*time.Second))
			} else {
				nc, err = d.dialAs("lab-feed", tc)
			}
			if err == nil {
				nc.Close()
				t.Fatalf("connecting = nil error, want the connection refused")
			}
		})
	}

	t.Run("a plaintext client", func(t *testing.T) {
		u, _ := url.Parse(d.b.ClientURL())
		conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		conn.Write([]byte("CONNECT {\"verbose\":false}\r\nPING\r\n"))
		got, _ := bufio.NewReader(conn).ReadString('\n')
		if got != "" {
			t.Errorf("plaintext CONNECT and PING got %q, want nothing", got)
		}
	})
}

// rawPublishDenied publishes data on subject as m without the producer
// and waits for the broker to report a permission violation.
func rawPublishDenied(t *testing.T, m *machine, subject string) {
	t.Helper()
	var denied atomic.Bool
	m.nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), subject) {
			denied.Store(true)
		}
	})
	if _, err := m.js.Publish(withTimeout(t, 300*time.Millisecond), subject, []byte("x")); err == nil {
		t.Errorf("%s publishing on %s = nil, want an error", m.name, subject)
	}
	waitFor(t, 5*time.Second, denied.Load)
}

func TestPublishOutsideAFlowIsRefused(t *testing.T) {
	d := startSecured(t, "")
	ehr := d.connect(t, "ehr-ingest")
	before := d.storedMessages(t)

	// At the broker: ehr-ingest may send only fhir, and only to billing.
	rawPublishDenied(t, ehr, subjects.Message("ehr-ingest", "billing", "hl7v2"))
	rawPublishDenied(t, ehr, subjects.Message("ehr-ingest", "lab-feed", "fhir"))
	rawPublishDenied(t, d.connect(t, "auditor"), subjects.Message("auditor", "billing", "fhir"))

	// At the source: the producer refuses before sealing or sending.
	p, err := policy.Load(filepath.Join(d.dir, policy.FileName))
	if err != nil {
		t.Fatal(err)
	}
	var sent atomic.Int32
	prod, err := producer.New(ehr.js, ehr.keys, producer.Config{
		Allow:     p.Allow("ehr-ingest"),
		OnPublish: func(producer.PublishEvent) { sent.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = prod.Publish(withTimeout(t, 5*time.Second), []string{"billing", "lab-feed"},
		[]byte(`{"resourceType":"Patient"}`), producer.WithType("fhir", "application/fhir+json"))
	if !errors.Is(err, policy.ErrNotAllowed) {
		t.Errorf("Publish to billing and lab-feed = %v, want %v", err, policy.ErrNotAllowed)
	}
	if n := sent.Load(); n != 0 {
		t.Errorf("producer sent %d copies of a refused message, want 0", n)
	}

	// A producer without the policy check meets the broker's refusal and
	// reports it as such, rather than as a timeout after retries.
	blind, err := producer.New(ehr.js, ehr.keys, producer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = blind.Publish(withTimeout(t, 20*time.Second), []string{"lab-feed"},
		[]byte(`{"resourceType":"Patient"}`), producer.WithType("fhir", "application/fhir+json"))
	if !errors.Is(err, producer.ErrRefused) {
		t.Errorf("Publish to lab-feed without the policy check = %v, want %v", err, producer.ErrRefused)
	}
	if after := d.storedMessages(t); after != before {
		t.Errorf("message stream holds %d messages after refusals, want %d", after, before)
	}
}

func (d *deployment) storedMessages(t testing.TB) uint64 {
	t.Helper()
	info, err := d.b.StreamInfo(withTimeout(t, 5*time.Second), subjects.MessageStream)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestReadingAnotherMachinesFlowIsRefused(t *testing.T) {
	d := startSecured(t, "")
	lab := d.connect(t, "lab-feed")
	p := lab.producer(t)
	if _, err := p.Publish(withTimeout(t, 10*time.Second), []string{"ehr-ingest"},
		[]byte("MSH|^~\\&|SYNTHETIC\r"), producer.WithType("hl7v2", "")); err != nil {
		t.Fatal(err)
	}
	for _, reader := range []string{"billing", "lab-feed", "auditor"} {
		t.Run(reader, func(t *testing.T) {
			m := d.connect(t, reader)
			var denied atomic.Bool
			m.nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				denied.Store(denied.Load() || errors.Is(err, nats.ErrPermissionViolation))
			})
			_, err := m.js.Consumer(withTimeout(t, 300*time.Millisecond), subjects.MessageStream,
				subjects.InboxConsumer("ehr-ingest"))
			if err == nil {
				t.Fatalf("%s opening inbox-ehr-ingest = nil, want an error", reader)
			}
			waitFor(t, 5*time.Second, denied.Load)
		})
	}
	// billing's own inbox does not deliver lab-feed's message to ehr-ingest.
	billing := d.connect(t, "billing")
	cons, err := billing.js.Consumer(withTimeout(t, 5*time.Second), subjects.MessageStream,
		subjects.InboxConsumer("billing"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cons.Next(jetstream.FetchMaxWait(300 * time.Millisecond)); err == nil {
		t.Errorf("billing's inbox delivered a message addressed to ehr-ingest")
	}
}

func TestRevokedMachineIsCutOff(t *testing.T) {
	d := startSecured(t, "")
	billing := d.connect(t, "billing")
	// Its reconnects are refused; that is the point, not noise to print.
	billing.nc.SetErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})
	closed := make(chan struct{})
	billing.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	cons, err := billing.js.Consumer(withTimeout(t, 5*time.Second), subjects.MessageStream,
		subjects.InboxConsumer("billing"))
	if err != nil {
		t.Fatal(err)
	}

	// As `phix revoke` and the running `phix up` do it.
	path := filepath.Join(d.dir, policy.FileName)
	if err := policy.RevokeFile(path, "billing", "synthetic incident", time.Now()); err != nil {
		t.Fatal(err)
	}
	p, err := policy.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.b.SetPolicy(withTimeout(t, 10*time.Second), p); err != nil {
		t.Fatalf("SetPolicy: %v", err)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatalf("billing's live session still open 5s after revocation")
	}
	if _, err := cons.Next(jetstream.FetchMaxWait(300 * time.Millisecond)); err == nil {
		t.Errorf("revoked billing fetched a message")
	}
	if nc, err := d.dialAs("billing", d.machineTLS(t, "billing")); !errors.Is(err, nats.ErrAuthorization) {
		if err == nil {
			nc.Close()
		}
		t.Errorf("connecting as revoked billing = %v, want %v", err, nats.ErrAuthorization)
	}
	// Flows to the revoked machine are refused at the source too.
	if err := p.Allow("lab-feed")("billing", "fhir"); !errors.Is(err, policy.ErrNotAllowed) {
		t.Errorf("Allow(lab-feed)(billing) = %v, want %v", err, policy.ErrNotAllowed)
	}
}

func TestCertificateRotationUnderLoad(t *testing.T) {
	d := startSecured(t, "")
	lab, ehr := d.connect(t, "lab-feed"), d.connect(t, "ehr-ingest")
	p := lab.producer(t)
	ca := loadCA(t, d.dir)
	labDir := identity.IdentityDir(d.dir, "lab-feed")

	ctx, stop := context.WithCancel(withTimeout(t, 60*time.Second))
	var published, failed atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			_, err := p.Publish(withTimeout(t, 10*time.Second), []string{"ehr-ingest"},
				[]byte("MSH|^~\\&|SYNTHETIC|ROTATION\r"), producer.WithType("hl7v2", ""))
			if err != nil {
				failed.Add(1)
				t.Errorf("Publish during rotation: %v", err)
				continue
			}
			published.Add(1)
		}
	})

	var labCert, serverCert string
	for i := range 5 {
		labCert = ca.reissue(t, "lab-feed", false,
			filepath.Join(labDir, "tls.crt"), filepath.Join(labDir, "tls.key"))
		serverCert = ca.reissue(t, "phix broker", true, filepath.Join(d.dir, "broker", "server.crt"),
			filepath.Join(d.dir, "broker", "server.key"))
		// Make the publisher's connection handshake again, with the new
		// certificates on both sides, in the middle of the load.
		if err := lab.nc.ForceReconnect(); err != nil {
			t.Fatalf("ForceReconnect %d: %v", i, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	waitFor(t, 10*time.Second, func() bool { return lab.nc.IsConnected() })
	stop()
	wg.Wait()

	if failed.Load() != 0 || published.Load() == 0 || lab.nc.Stats().Reconnects < 5 {
		t.Fatalf("published %d, failed %d, reconnects %d; want >0, 0, >=5",
			published.Load(), failed.Load(), lab.nc.Stats().Reconnects)
	}
	e, err := d.b.Enforced(withTimeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range e.Sessions {
		if s.Machine == "lab-feed" && s.CertSHA256 != labCert {
			t.Errorf("lab-feed's session uses certificate %s, want the last one issued, %s",
				s.CertSHA256, labCert)
		}
	}
	u, _ := url.Parse(d.b.ClientURL())
	conn, err := tls.Dial("tcp", u.Host, d.machineTLS(t, "lab-feed"))
	if err != nil {
		t.Fatalf("TLS handshake after rotation: %v", err)
	}
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw)
	conn.Close()
	if got := hex.EncodeToString(sum[:]); got != serverCert {
		t.Errorf("broker presents certificate %s, want the last one issued, %s", got, serverCert)
	}

	// Nothing lost: every message arrives exactly once.
	got := 0
	c := ehr.consumer(t, consumer.Config{})
	if err := c.Run(withTimeout(t, 30*time.Second), int(published.Load()),
		func(context.Context, *consumer.Message) error { got++; return nil }); err != nil {
		t.Fatalf("Run after rotation: received %d of %d: %v", got, published.Load(), err)
	}
	t.Logf("%d messages published across 5 certificate rotations, none failed", published.Load())
}

func TestIdleSessionIsLoggedOffAndComesBack(t *testing.T) {
	d := startSecured(t, "1s")
	lab := d.connect(t, "lab-feed")
	disconnected := make(chan struct{}, 1)
	lab.nc.SetDisconnectErrHandler(func(*nats.Conn, error) {
		select {
		case disconnected <- struct{}{}:
		default:
		}
	})
	select {
	case <-disconnected:
	case <-time.After(5 * time.Second):
		t.Fatalf("idle lab-feed still connected 5s after a 1s idle timeout")
	}
	// Work resumes: the library reconnects and the publish goes through.
	if _, err := lab.producer(t).Publish(withTimeout(t, 10*time.Second), []string{"ehr-ingest"},
		[]byte("MSH|^~\\&|SYNTHETIC|IDLE\r"), producer.WithType("hl7v2", "")); err != nil {
		t.Fatalf("Publish after idle logoff: %v", err)
	}
}

func TestDoctor(t *testing.T) {
	d := startSecured(t, "")
	d.connect(t, "lab-feed") // a live session to check
	cfg := compliance.Config{DataDir: d.dir, ClientURL: d.b.ClientURL(), MonitorURL: d.b.MonitorURL()}
	r, err := compliance.Run(withTimeout(t, 60*time.Second), cfg)
	if err != nil {
		t.Fatalf("compliance.Run: %v", err)
	}
	for _, c := range r.Checks {
		if c.Status == compliance.Fail {
			t.Errorf("check %s (%s) failed on the default deployment: %v", c.ID, c.Standard, c.Details)
		}
	}

	// The signed report verifies against the auditor's directory key.
	var out, errOut bytes.Buffer
	report := filepath.Join(t.TempDir(), "report.json")
	args := []string{"doctor", "--data", d.dir, "--url", cfg.ClientURL, "--monitor", cfg.MonitorURL,
		"--out", report}
	if code := cli.Main(args, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("phix doctor = exit %d, want 0:\n%s%s", code, out.String(), errOut.String())
	}
	out.Reset()
	if code := cli.Main([]string{"doctor", "verify", report, "--data", d.dir},
		strings.NewReader(""), &out, &errOut); code != 0 || !strings.Contains(out.String(), "signature valid") {
		t.Errorf("phix doctor verify = exit %d, %q %q; want a valid signature", code, out.String(), errOut.String())
	}

	// Switch one safeguard off: automatic logoff.
	path := filepath.Join(d.dir, policy.FileName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := strings.Replace(string(b), "idle_timeout: 15m", "idle_timeout: off", 1)
	if err := os.WriteFile(path, []byte(off), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := policy.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.b.SetPolicy(withTimeout(t, 10*time.Second), p); err != nil {
		t.Fatalf("SetPolicy: %v", err)
	}
	out.Reset()
	errOut.Reset()
	args = []string{"doctor", "--data", d.dir, "--url", cfg.ClientURL, "--monitor", cfg.MonitorURL}
	code := cli.Main(args, strings.NewReader(""), &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), "164.312(a)(2)(iii) automatic-logoff") {
		t.Errorf("phix doctor with automatic logoff off = exit %d, %q; want a failure naming 164.312(a)(2)(iii)",
			code, errOut.String())
	}
	if !strings.Contains(out.String(), "FAIL  164.312(a)(2)(iii)") {
		t.Errorf("phix doctor output lacks the failed standard:\n%s", out.String())
	}
}

// The audit-trail check verifies the live trail against the broker's audit
// key: with another key in its place, the signed checkpoints no longer
// verify and the check fails naming 164.312(b).
func TestDoctorCatchesAnUnverifiableAuditTrail(t *testing.T) {
	d := startSecured(t, "")
	var out, errOut bytes.Buffer
	export := []string{"audit", "export", "--identity", filepath.Join(d.dir, "identities", "auditor"),
		"--out", filepath.Join(t.TempDir(), "trail.jsonl")}
	if code := cli.Main(export, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("phix audit export = exit %d: %s", code, errOut.String())
	}
	cfg := compliance.Config{DataDir: d.dir, ClientURL: d.b.ClientURL(), MonitorURL: d.b.MonitorURL()}
	if c := auditCheck(t, cfg); c.Status != compliance.Pass {
		t.Fatalf("audit-trail check on an intact trail = %s %v, want pass", c.Status, c.Details)
	}

	other := t.TempDir()
	if _, err := audit.LoadOrCreateSigner(other); err != nil {
		t.Fatal(err)
	}
	forged, err := os.ReadFile(filepath.Join(other, audit.PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.dir, "broker", audit.PublicKeyFile), forged, 0o644); err != nil {
		t.Fatal(err)
	}
	c := auditCheck(t, cfg)
	if c.Status != compliance.Fail || c.Standard != "164.312(b)" {
		t.Errorf("audit-trail check under another key = %s %s %v, want a 164.312(b) failure", c.Status, c.Standard, c.Details)
	}
}

func auditCheck(t *testing.T, cfg compliance.Config) compliance.Check {
	t.Helper()
	r, err := compliance.Run(withTimeout(t, 60*time.Second), cfg)
	if err != nil {
		t.Fatalf("compliance.Run: %v", err)
	}
	for _, c := range r.Checks {
		if c.ID == "audit-trail" {
			return c
		}
	}
	t.Fatal("report has no audit-trail check")
	return compliance.Check{}
}

// On a deployment that uses Vault, a plaintext Vault address fails the
// transmission-security check.
func TestDoctorFailsAPlaintextVaultLink(t *testing.T) {
	d := startSecured(t, "")
	cfg := compliance.Config{DataDir: d.dir, ClientURL: d.b.ClientURL(), MonitorURL: d.b.MonitorURL()}
	for _, tc := range []struct {
		address string
		want    compliance.Status
	}{
		{"http://127.0.0.1:8200", compliance.Fail},
		{"https://vault.example.invalid:8200", compliance.Pass},
	} {
		b, _ := json.Marshal(map[string]string{"address": tc.address})
		if err := os.WriteFile(filepath.Join(d.dir, "vault.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := compliance.Run(withTimeout(t, 60*time.Second), cfg)
		if err != nil {
			t.Fatalf("compliance.Run: %v", err)
		}
		for _, c := range r.Checks {
			if c.ID == "transmission-security" && c.Status != tc.want {
				t.Errorf("transmission-security with Vault at %s = %s %v, want %s", tc.address, c.Status, c.Details, tc.want)
			}
		}
	}
}
