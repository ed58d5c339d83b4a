package broker_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/broker"
	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/keys"
	"phix.dev/phix/policy"
)

// testPolicy lets alice send notes to bob; mallory takes part in no
// flow and carol is the auditor.
const testPolicy = `version: 1
machines:
  - name: alice
  - name: bob
  - name: mallory
  - name: carol
flows:
  - from: alice
    to: [bob]
    types: [note]
auditors: [carol]
keys:
  rotation_period: 90d
sessions:
  idle_timeout: 15m
retention:
  messages: 30d
  quarantine: 90d
  audit: 6y
`

func parsePolicy(t testing.TB, text string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("test policy", []byte(text))
	if err != nil {
		t.Fatalf("policy.Parse() = %v, want nil", err)
	}
	return p
}

// newPolicyEnv starts a broker enforcing policyText, logging JSON to log
// if it is not nil.
func newPolicyEnv(t testing.TB, policyText string, log *syncBuffer) *env {
	t.Helper()
	e := &env{pki: newTestPKI(t), dir: t.TempDir(), policy: parsePolicy(t, policyText)}
	if log != nil {
		e.logger = slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	e.broker = e.start(t)
	return e
}

func TestPolicyPermissions(t *testing.T) {
	e := newPolicyEnv(t, testPolicy, nil)
	alice, bob, mallory, carol := e.connect(t, "alice"), e.connect(t, "bob"),
		e.connect(t, "mallory"), e.connect(t, "carol")
	allowed := subjects.Message("alice", "bob", "note")
	publish(t, alice, allowed, "sealed-1")
	if got := fetchOne(t, bob, "bob"); string(got.Data()) != "sealed-1" {
		t.Errorf("bob's Fetch() = %q, want %q", got.Data(), "sealed-1")
	}

	pub := func(c *client, subj string) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := c.js.Publish(ctx, subj, []byte("forged"))
			return err
		}
	}
	consumer := func(c *client, name string) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := c.js.Consumer(ctx, subjects.MessageStream, name)
			return err
		}
	}
	tests := []struct {
		name   string
		who    *client
		op     func(context.Context) error
		denied string
	}{
		{"a type outside the flow", alice, pub(alice, "phix.msg.alice.bob.fhir"), "phix.msg.alice.bob.fhir"},
		{"a recipient outside the flow", alice, pub(alice, "phix.msg.alice.mallory.note"), "phix.msg.alice.mallory.note"},
		{"a recipient sending back", bob, pub(bob, "phix.msg.bob.alice.note"), "phix.msg.bob.alice.note"},
		{"a machine in no flow", mallory, pub(mallory, "phix.msg.mallory.bob.note"), "phix.msg.mallory.bob.note"},
		{"a sender quarantining", alice, pub(alice, subjects.Quarantine("alice")), "phix.quarantine.alice"},
		{"a sender reading an inbox", alice, consumer(alice, "inbox-alice"), "$JS.API.CONSUMER.INFO.PHIX_MSGS.inbox-alice"},
		{"reading another machine's flow", mallory, consumer(mallory, "inbox-bob"), "$JS.API.CONSUMER.INFO.PHIX_MSGS.inbox-bob"},
		{"the auditor publishing a message", carol, pub(carol, allowed), allowed},
		{"the auditor reading an inbox", carol, consumer(carol, "inbox-bob"), "$JS.API.CONSUMER.INFO.PHIX_MSGS.inbox-bob"},
		{"a recipient getting messages by sequence", bob, func(ctx context.Context) error {
			_, err := bob.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET.PHIX_MSGS", []byte(`{"seq":1}`))
			return err
		}, "$JS.API.STREAM.MSG.GET.PHIX_MSGS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(ctxFor(t, 250*time.Millisecond)); err == nil {
				t.Errorf("%s = nil, want an error", tt.denied)
			}
			tt.who.wantViolation(t, tt.denied)
		})
	}

	t.Run("the auditor reads both streams", func(t *testing.T) {
		carol := e.connect(t, "carol") // without the violations above
		ctx := ctxFor(t, 10*time.Second)
		s, err := carol.js.Stream(ctx, subjects.MessageStream)
		if err != nil {
			t.Fatalf("carol Stream(%s) = %v, want nil", subjects.MessageStream, err)
		}
		m, err := s.GetMsg(ctx, 1)
		if err != nil || string(m.Data) != "sealed-1" || m.Subject != allowed {
			t.Errorf("carol GetMsg(1) = %v, %v; want %s sealed-1", m, err, allowed)
		}
		if _, err := carol.js.Stream(ctx, subjects.QuarantineStream); err != nil {
			t.Errorf("carol Stream(%s) = %v, want nil", subjects.QuarantineStream, err)
		}
		if err := carol.nc.Publish(subjects.AuditReport("carol"), []byte("record")); err != nil {
			t.Errorf("carol Publish(%s) = %v, want nil", subjects.AuditReport("carol"), err)
		}
		carol.wantNoErrors(t)
	})
}

func TestEnforcedMatchesPolicy(t *testing.T) {
	e := newPolicyEnv(t, testPolicy, nil)
	e.connect(t, "alice")
	got, err := e.broker.Enforced(ctxFor(t, 10*time.Second))
	if err != nil {
		t.Fatalf("Enforced() = %v, want nil", err)
	}
	if diff := cmp.Diff(e.policy.BrokerUsers(), got.Users); diff != "" {
		t.Errorf("Enforced().Users mismatch (-policy +enforced):\n%s", diff)
	}
	if diff := cmp.Diff(e.policy.InboxConsumers(), got.Consumers); diff != "" {
		t.Errorf("Enforced().Consumers mismatch (-policy +enforced):\n%s", diff)
	}
	want := []broker.StreamLimits{
		{Name: subjects.MessageStream, MaxAge: policy.Duration(30 * policy.Day)},
		{Name: subjects.QuarantineStream, MaxAge: policy.Duration(90 * policy.Day)},
	}
	if diff := cmp.Diff(want, got.Streams); diff != "" {
		t.Errorf("Enforced().Streams mismatch (-want +got):\n%s", diff)
	}
	if got.StoreCipher != "aes" || got.IdleTimeout.D() != 15*time.Minute ||
		got.MinTLSVersion != "TLS 1.3" || !got.TLSHandshakeFirst {
		t.Errorf("Enforced() = cipher %s, idle %s, min %s, handshake first %v; "+
			"want aes, 15m, TLS 1.3, true",
			got.StoreCipher, got.IdleTimeout, got.MinTLSVersion, got.TLSHandshakeFirst)
	}
	if len(got.Sessions) != 1 || got.Sessions[0].Machine != "alice" ||
		got.Sessions[0].TLSVersion != "1.3" || got.Sessions[0].SPKISHA256 == "" {
		t.Errorf("Enforced().Sessions = %+v, want alice over TLS 1.3 with its key", got.Sessions)
	}
}

func TestSetPolicyAppliesToLiveSessions(t *testing.T) {
	e := newPolicyEnv(t, testPolicy, nil)
	alice, mallory := e.connect(t, "alice"), e.connect(t, "mallory")

	// mallory may now send notes to bob; alice no longer may.
	next := parsePolicy(t, strings.Replace(testPolicy, "from: alice", "from: mallory", 1))
	if err := e.broker.SetPolicy(ctxFor(t, 10*time.Second), next); err != nil {
		t.Fatalf("SetPolicy() = %v, want nil", err)
	}
	publish(t, mallory, subjects.Message("mallory", "bob", "note"), "sealed")
	subj := subjects.Message("alice", "bob", "note")
	if _, err := alice.js.Publish(ctxFor(t, 250*time.Millisecond), subj, []byte("x")); err == nil {
		t.Errorf("alice Publish(%s) after SetPolicy = nil, want an error", subj)
	}
	alice.wantViolation(t, subj)
	if !alice.nc.IsConnected() {
		t.Errorf("alice was disconnected by a policy change that kept her machine")
	}

	got, err := e.broker.Enforced(ctxFor(t, 10*time.Second))
	if err != nil {
		t.Fatalf("Enforced() = %v, want nil", err)
	}
	wantFilters := []string{subjects.Message("mallory", "bob", "note")}
	if len(got.Consumers) != 1 || !cmp.Equal(got.Consumers[0].Filters, wantFilters) {
		t.Errorf("Enforced().Consumers = %+v, want inbox-bob filtered on %v", got.Consumers, wantFilters)
	}
}

func TestRevokeClosesLiveSession(t *testing.T) {
	var log syncBuffer
	e := newPolicyEnv(t, testPolicy, &log)
	bob := e.connect(t, "bob")
	closed := make(chan struct{})
	bob.nc.SetClosedHandler(func(*nats.Conn) { close(closed) })

	if err := e.broker.Revoke(ctxFor(t, 10*time.Second), "bob", "key compromised"); err != nil {
		t.Fatalf("Revoke(bob) = %v, want nil", err)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatalf("bob's live connection is still open 5s after Revoke")
	}
	if _, err := e.dial("bob", e.pki.clientTLS(e.pki.machineCert(t, "bob"))); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("connecting as revoked bob = %v, want %v", err, nats.ErrAuthorization)
	}
	wantLog(t, &log, "machine cut off",
		map[string]any{"machine": "bob", "reason": "revoked", "sessions_closed": 1.0})
	wantLog(t, &log, "session closed", map[string]any{"machine": "bob", "reason": "revoked"})
	e.connect(t, "alice") // others are unaffected

	if err := e.broker.Revoke(ctxFor(t, 5*time.Second), "nobody", ""); !errors.Is(err, policy.ErrUnknownMachine) {
		t.Errorf("Revoke(nobody) = %v, want %v", err, policy.ErrUnknownMachine)
	}
}

func TestIdleLogoff(t *testing.T) {
	var log syncBuffer
	e := newPolicyEnv(t, strings.Replace(testPolicy, "idle_timeout: 15m", "idle_timeout: 1s", 1), &log)
	idle := e.connect(t, "mallory")
	disconnected := make(chan struct{}, 1)
	idle.nc.SetDisconnectErrHandler(func(*nats.Conn, error) {
		select {
		case disconnected <- struct{}{}:
		default:
		}
	})

	// alice keeps working through the library's options, which reconnect.
	alice := e.connectWith(t, "alice", broker.ClientOptions("alice",
		e.pki.clientTLS(e.pki.machineCert(t, "alice")))...)
	subj := subjects.Message("alice", "bob", "note")
	begin := time.Now()
	for time.Since(begin) < 2500*time.Millisecond {
		publish(t, alice, subj, "sealed")
		time.Sleep(200 * time.Millisecond)
	}
	if n := alice.nc.Stats().Reconnects; n != 0 {
		t.Errorf("busy alice reconnected %d times, want 0", n)
	}
	select {
	case <-disconnected:
	case <-time.After(5 * time.Second):
		t.Fatalf("idle mallory still connected 5s after a 1s idle timeout")
	}
	wantLog(t, &log, "session closed", map[string]any{"machine": "mallory", "reason": "idle timeout"})

	// After idling, alice's next publish goes through on a new session.
	waitFor(t, func() error {
		if alice.nc.Stats().Reconnects == 0 {
			return errors.New("alice has not been logged off yet")
		}
		return nil
	})
	publish(t, alice, subj, "sealed after logoff")
}

// connectWith connects as name with exactly opts, recording asynchronous
// errors.
func (e *env) connectWith(t testing.TB, name string, opts ...nats.Option) *client {
	t.Helper()
	errs := &errLog{}
	opts = append(opts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		errs.add(err)
	}))
	nc, err := nats.Connect(e.broker.ClientURL(), opts...)
	if err != nil {
		t.Fatalf("connecting as %s = %v, want nil", name, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream.New() = %v, want nil", err)
	}
	return &client{nc: nc, js: js, errs: errs}
}

// wantLog waits until log holds a record with message msg and every one
// of attrs.
func wantLog(t testing.TB, log *syncBuffer, msg string, attrs map[string]any) {
	t.Helper()
	waitFor(t, func() error {
		for _, line := range strings.Split(string(log.Bytes()), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != msg {
				continue
			}
			match := true
			for k, v := range attrs {
				match = match && rec[k] == v
			}
			if match {
				return nil
			}
		}
		return fmt.Errorf("no log record %q with %v", msg, attrs)
	})
}

func TestStoreEncryptedAtRest(t *testing.T) {
	e := newPolicyEnv(t, testPolicy, nil)
	publish(t, e.connect(t, "alice"), subjects.Message("alice", "bob", "note"), "sealed")
	e.broker.Close()

	keyFile := filepath.Join(e.dir, "broker", "jetstream.key")
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("Stat(%s) = %v, %v; want mode 0600", keyFile, fi, err)
	}
	for _, s := range []string{subjects.MessageStream, subjects.QuarantineStream} {
		meta := filepath.Join(e.dir, "jetstream", "$G", "streams", s, "meta.key")
		if _, err := os.Stat(meta); err != nil {
			t.Errorf("Stat(%s) = %v, want the stream's encrypted key", meta, err)
		}
	}

	cfg := func() broker.Config {
		return broker.Config{StoreDir: e.dir, Port: broker.RandomPort,
			TLS: e.pki.serverTLS(t), Policy: e.policy}
	}
	if err := os.Chmod(keyFile, 0o640); err != nil {
		t.Fatal(err)
	}
	if b, err := broker.New(cfg()); !errors.Is(err, keys.ErrInsecureFile) {
		if err == nil {
			b.Close()
		}
		t.Errorf("New() with a group-readable key file = %v, want %v", err, keys.ErrInsecureFile)
	}
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	if b, err := broker.New(cfg()); err == nil || !strings.Contains(err.Error(), "store is encrypted") {
		if err == nil {
			b.Close()
		}
		t.Errorf("New() without the key of an encrypted store = %v, want an error", err)
	}
}

func TestMonitorEndpoint(t *testing.T) {
	e := &env{pki: newTestPKI(t), dir: t.TempDir(), policy: parsePolicy(t, testPolicy),
		monitor: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "metrics for %s", broker.PeerMachine(r))
		})}
	e.broker = e.start(t)
	base := e.broker.MonitorURL()
	if !strings.HasPrefix(base, "https://127.0.0.1:") {
		t.Fatalf("MonitorURL() = %q, want https://127.0.0.1:port", base)
	}
	get := func(tc *tls.Config, path string) (int, string, error) {
		hc := &http.Client{Timeout: 5 * time.Second,
			Transport: &http.Transport{TLSClientConfig: tc}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get(base + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	as := func(name string) *tls.Config { return e.pki.clientTLS(e.pki.machineCert(t, name)) }

	tests := []struct {
		name, path string
		tls        *tls.Config
		code       int
		body       string
	}{
		{"health", "/healthz", as("bob"), 200, "ok\n"},
		{"readiness", "/readyz", as("bob"), 200, "ready\n"},
		{"enforced policy for the auditor", "/v1/enforced", as("carol"), 200, `"policy": "test policy"`},
		{"enforced policy for others", "/v1/enforced", as("alice"), 403, "auditors only"},
		{"handler from the config", "/metrics", as("alice"), 200, "metrics for alice"},
	}
	for _, tt := range tests {
		code, body, err := get(tt.tls, tt.path)
		if err != nil || code != tt.code || !strings.Contains(body, tt.body) {
			t.Errorf("%s: GET %s = %d %q, %v; want %d %q", tt.name, tt.path, code, body, err, tt.code, tt.body)
		}
	}

	tls12 := as("bob")
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	for name, tc := range map[string]*tls.Config{
		"TLS 1.2":               tls12,
		"no client certificate": e.pki.clientTLS(),
		"unknown CA":            e.pki.clientTLS(newTestPKI(t).machineCert(t, "bob")),
	} {
		if code, _, err := get(tc, "/healthz"); err == nil {
			t.Errorf("GET /healthz with %s = %d, want the connection refused", name, code)
		}
	}
	// net/http answers a plaintext request to a TLS listener with a fixed
	// 400 and closes; nothing is served.
	resp, err := http.Get("http" + strings.TrimPrefix(base, "https") + "/healthz")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(b), "ok") {
			t.Errorf("plaintext GET /healthz = %s %q, want the request refused", resp.Status, b)
		}
	}
}

// TestNoActiveMachineAdmitsNobody checks that revoking every machine
// leaves no user at all without opening the broker: to nats-server, no
// users would mean no authorization.
func TestNoActiveMachineAdmitsNobody(t *testing.T) {
	e := newPolicyEnv(t, testPolicy, nil)
	for _, m := range []string{"alice", "bob", "mallory", "carol"} {
		if err := e.broker.Revoke(ctxFor(t, 10*time.Second), m, "test"); err != nil {
			t.Fatalf("Revoke(%s) = %v, want nil", m, err)
		}
	}
	c, err := e.dial("alice", e.pki.clientTLS(e.pki.machineCert(t, "alice")))
	if !errors.Is(err, nats.ErrAuthorization) {
		if err == nil {
			c.nc.Close()
		}
		t.Errorf("connecting with every machine revoked = %v, want %v", err, nats.ErrAuthorization)
	}
}
