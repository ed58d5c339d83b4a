package broker_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/broker"
	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/policy"
)

var machines = []string{"alice", "bob", "mallory"}

// env is a running broker with its PKI.
type env struct {
	pki    *testPKI
	broker *broker.Broker
	dir    string
	logger *slog.Logger   // nil: discard
	policy *policy.Policy // nil: the demo machines
	// monitor, if set, enables the monitoring endpoint with this handler
	// for paths the broker does not serve.
	monitor http.Handler
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{pki: newTestPKI(t), dir: t.TempDir()}
	e.broker = e.start(t)
	return e
}

// start starts a broker on e.dir; the caller may Close it early, and
// Cleanup closes it again harmlessly.
func (e *env) start(t testing.TB) *broker.Broker {
	t.Helper()
	cfg := broker.Config{
		StoreDir: e.dir,
		Port:     broker.RandomPort,
		TLS:      e.pki.serverTLS(t),
		Policy:   e.policy,
		Logger:   e.logger,
	}
	if e.policy == nil {
		cfg.Machines = machines
	}
	if e.monitor != nil {
		cfg.MonitorPort, cfg.Monitor = broker.RandomPort, e.monitor
	}
	b, err := broker.New(cfg)
	if err != nil {
		t.Fatalf("broker.New() = %v, want nil", err)
	}
	t.Cleanup(func() { b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		t.Fatalf("Start() = %v, want nil", err)
	}
	return b
}

// client is a machine's connection.
type client struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	errs *errLog
}

// errLog records the server's asynchronous errors, such as permission
// violations, for concurrent subtests to inspect.
type errLog struct {
	mu   sync.Mutex // guards errs
	errs []error
}

func (l *errLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *errLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.errs)
}

func (e *env) connect(t testing.TB, name string) *client {
	t.Helper()
	c, err := e.dial(name, e.pki.clientTLS(e.pki.machineCert(t, name)))
	if err != nil {
		t.Fatalf("connecting as %s = %v, want nil", name, err)
	}
	t.Cleanup(c.nc.Close)
	return c
}

func (e *env) dial(name string, tc *tls.Config) (*client, error) {
	errs := &errLog{}
	nc, err := nats.Connect(e.broker.ClientURL(),
		nats.Secure(tc),
		nats.TLSHandshakeFirst(),
		nats.CustomInboxPrefix(subjects.ReplyPrefix(name)),
		nats.NoReconnect(),
		nats.Timeout(5*time.Second),
		nats.PermissionErrOnSubscribe(true),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			errs.add(err)
		}))
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &client{nc: nc, js: js, errs: errs}, nil
}

// wantViolation waits for the server to report a permission violation
// naming subject.
func (c *client) wantViolation(t testing.TB, subject string) {
	t.Helper()
	waitFor(t, func() error {
		for _, err := range c.errs.all() {
			if errors.Is(err, nats.ErrPermissionViolation) &&
				strings.Contains(err.Error(), `"`+subject+`"`) {
				return nil
			}
		}
		return fmt.Errorf("no permission violation for %q", subject)
	})
}

// wantNoErrors fails if the server reported any asynchronous error.
func (c *client) wantNoErrors(t testing.TB) {
	t.Helper()
	if err := c.nc.Flush(); err != nil {
		t.Fatalf("Flush() = %v, want nil", err)
	}
	if errs := c.errs.all(); len(errs) > 0 {
		t.Errorf("asynchronous errors %v, want none", errs)
	}
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// fetchOne pulls one message through machine's inbox consumer.
func fetchOne(t testing.TB, c *client, machine string) jetstream.Msg {
	t.Helper()
	ctx := ctxFor(t, 10*time.Second)
	cons, err := c.js.Consumer(ctx, subjects.MessageStream, subjects.InboxConsumer(machine))
	if err != nil {
		t.Fatalf("Consumer(%s) = %v, want nil", subjects.InboxConsumer(machine), err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatalf("Fetch(1) = %v, want nil", err)
	}
	msg, ok := <-batch.Messages()
	if !ok {
		t.Fatalf("Fetch(1) delivered nothing (err %v), want a message", batch.Error())
	}
	return msg
}

func publish(t testing.TB, c *client, subject, data string,
	opts ...jetstream.PublishOpt) *jetstream.PubAck {
	t.Helper()
	ack, err := c.js.Publish(ctxFor(t, 10*time.Second), subject, []byte(data), opts...)
	if err != nil {
		t.Fatalf("Publish(%s) = %v, want nil", subject, err)
	}
	return ack
}

func TestPublishFetchAck(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.connect(t, "alice"), e.connect(t, "bob")
	subj := subjects.Message("alice", "bob", "note")

	ack := publish(t, alice, subj, "sealed-1", jetstream.WithMsgID("m1"))
	if ack.Stream != subjects.MessageStream || ack.Duplicate {
		t.Errorf("Publish(%s) = %+v, want a new message in %s", subj, ack, subjects.MessageStream)
	}
	if dup := publish(t, alice, subj, "sealed-1", jetstream.WithMsgID("m1")); !dup.Duplicate {
		t.Errorf("Publish(%s) again with the same ID = %+v, want Duplicate", subj, dup)
	}

	msg := fetchOne(t, bob, "bob")
	if msg.Subject() != subj || string(msg.Data()) != "sealed-1" {
		t.Errorf("Fetch() = %s %q, want %s %q", msg.Subject(), msg.Data(), subj, "sealed-1")
	}
	if err := msg.DoubleAck(ctxFor(t, 5*time.Second)); err != nil {
		t.Errorf("DoubleAck() = %v, want nil", err)
	}

	// The Messages iterator and a plain Ack need nothing beyond Fetch.
	publish(t, alice, subj, "sealed-2")
	cons, err := bob.js.Consumer(ctxFor(t, 5*time.Second), subjects.MessageStream, "inbox-bob")
	if err != nil {
		t.Fatalf("Consumer(inbox-bob) = %v, want nil", err)
	}
	it, err := cons.Messages()
	if err != nil {
		t.Fatalf("Messages() = %v, want nil", err)
	}
	defer it.Stop()
	next, err := it.Next(jetstream.NextMaxWait(5 * time.Second))
	if err != nil {
		t.Fatalf("Next() = %v, want nil", err)
	}
	if string(next.Data()) != "sealed-2" {
		t.Errorf("Next() = %q, want %q", next.Data(), "sealed-2")
	}
	if err := next.Ack(); err != nil {
		t.Errorf("Ack() = %v, want nil", err)
	}
	waitFor(t, func() error {
		info, err := cons.Info(ctxFor(t, 5*time.Second))
		if err != nil {
			return err
		}
		if info.NumAckPending != 0 || info.NumPending != 0 {
			return fmt.Errorf("ack pending %d, pending %d, want 0, 0",
				info.NumAckPending, info.NumPending)
		}
		return nil
	})

	// Quarantine is a plain JetStream publish on the machine's own subject.
	q := nats.NewMsg(subjects.Quarantine("bob"))
	q.Header.Set(subjects.HeaderReason, "test")
	q.Data = []byte("sealed-1")
	qack, err := bob.js.PublishMsg(ctxFor(t, 5*time.Second), q)
	if err != nil {
		t.Fatalf("PublishMsg(%s) = %v, want nil", q.Subject, err)
	}
	if qack.Stream != subjects.QuarantineStream {
		t.Errorf("PublishMsg(%s) stream = %s, want %s",
			q.Subject, qack.Stream, subjects.QuarantineStream)
	}
	info, err := e.broker.StreamInfo(ctxFor(t, 5*time.Second), subjects.QuarantineStream)
	if err != nil || info.State.Msgs != 1 {
		t.Errorf("StreamInfo(%s) = %v, %v; want 1 message", subjects.QuarantineStream, info, err)
	}

	alice.wantNoErrors(t)
	bob.wantNoErrors(t)
}

func TestOtherMachineDenied(t *testing.T) {
	e := newEnv(t)
	alice, bob, mallory := e.connect(t, "alice"), e.connect(t, "bob"), e.connect(t, "mallory")
	publish(t, alice, subjects.Message("alice", "bob", "note"), "sealed-for-bob")

	request := func(subject, body string) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := mallory.nc.RequestWithContext(ctx, subject, []byte(body))
			return err
		}
	}
	tests := []struct {
		name   string
		op     func(context.Context) error
		denied string
	}{
		{
			name: "look up another machine's inbox consumer",
			op: func(ctx context.Context) error {
				_, err := mallory.js.Consumer(ctx, subjects.MessageStream, "inbox-bob")
				return err
			},
			denied: "$JS.API.CONSUMER.INFO.PHIX_MSGS.inbox-bob",
		},
		{
			name:   "pull from another machine's inbox consumer",
			op:     request("$JS.API.CONSUMER.MSG.NEXT.PHIX_MSGS.inbox-bob", `{"batch":1}`),
			denied: "$JS.API.CONSUMER.MSG.NEXT.PHIX_MSGS.inbox-bob",
		},
		{
			name:   "ack on another machine's inbox consumer",
			op:     request("$JS.ACK.PHIX_MSGS.inbox-bob.1.1.1.0.0", "+ACK"),
			denied: "$JS.ACK.PHIX_MSGS.inbox-bob.1.1.1.0.0",
		},
		{
			name: "create a consumer",
			op: func(ctx context.Context) error {
				cfg := jetstream.ConsumerConfig{
					Durable:       "steal",
					FilterSubject: subjects.InboxFilter("bob"),
				}
				_, err := mallory.js.CreateOrUpdateConsumer(ctx, subjects.MessageStream, cfg)
				return err
			},
			denied: "$JS.API.CONSUMER.CREATE.PHIX_MSGS.steal.phix.msg.*.bob.*",
		},
		{
			name: "create a stream",
			op: func(ctx context.Context) error {
				_, err := mallory.js.CreateStream(ctx,
					jetstream.StreamConfig{Name: "STEAL", Subjects: []string{"steal.>"}})
				return err
			},
			denied: "$JS.API.STREAM.CREATE.STEAL",
		},
		{
			name: "look up a stream",
			op: func(ctx context.Context) error {
				_, err := mallory.js.Stream(ctx, subjects.MessageStream)
				return err
			},
			denied: "$JS.API.STREAM.INFO.PHIX_MSGS",
		},
		{
			name:   "get a message through the API",
			op:     request("$JS.API.STREAM.MSG.GET.PHIX_MSGS", `{"seq":1}`),
			denied: "$JS.API.STREAM.MSG.GET.PHIX_MSGS",
		},
		{
			name:   "get a message directly",
			op:     request("$JS.API.DIRECT.GET.PHIX_MSGS", `{"seq":1}`),
			denied: "$JS.API.DIRECT.GET.PHIX_MSGS",
		},
		{
			name: "read account info",
			op: func(ctx context.Context) error {
				_, err := mallory.js.AccountInfo(ctx)
				return err
			},
			denied: "$JS.API.INFO",
		},
		{
			name: "publish under another machine's name",
			op: func(ctx context.Context) error {
				subj := subjects.Message("alice", "bob", "note")
				_, err := mallory.js.Publish(ctx, subj, []byte("forged"))
				return err
			},
			denied: "phix.msg.alice.bob.note",
		},
		{
			name: "publish to another machine's quarantine",
			op: func(ctx context.Context) error {
				_, err := mallory.js.Publish(ctx, subjects.Quarantine("bob"), []byte("forged"))
				return err
			},
			denied: "phix.quarantine.bob",
		},
	}
	t.Run("request", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				// The server drops a denied publish without answering, so
				// the request can only time out; keep that short.
				if err := tt.op(ctxFor(t, 250*time.Millisecond)); err == nil {
					t.Errorf("%s = nil, want an error", tt.denied)
				}
				mallory.wantViolation(t, tt.denied)
			})
		}
	})

	for _, subj := range []string{
		">",
		"phix.msg.>",
		subjects.Message("alice", "bob", "note"),
		subjects.ReplyPrefix("bob") + ".>",
		"_INBOX.>",
		"$JS.ACK.PHIX_MSGS.inbox-bob.>",
	} {
		t.Run("subscribe to "+subj, func(t *testing.T) {
			sub, err := mallory.nc.SubscribeSync(subj)
			if err != nil {
				t.Fatalf("SubscribeSync(%s) = %v, want nil until the server answers", subj, err)
			}
			defer sub.Unsubscribe()
			if _, err := sub.NextMsg(5 * time.Second); !errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("SubscribeSync(%s).NextMsg() = %v, want %v",
					subj, err, nats.ErrPermissionViolation)
			}
		})
	}

	// Nothing was taken from or forged into bob's inbox.
	msg := fetchOne(t, bob, "bob")
	if string(msg.Data()) != "sealed-for-bob" {
		t.Errorf("bob's Fetch() = %q, want %q", msg.Data(), "sealed-for-bob")
	}
	info, err := msg.Metadata()
	if err != nil {
		t.Fatalf("Metadata() = %v, want nil", err)
	}
	if info.NumDelivered != 1 || info.NumPending != 0 {
		t.Errorf("bob's message delivered %d times with %d pending, want 1 and 0",
			info.NumDelivered, info.NumPending)
	}
}

func TestRefusedConnections(t *testing.T) {
	e := newEnv(t)
	p := e.pki
	stranger := newTestPKI(t)
	// cert issues a client-side certificate for CN=alice,O=org,OU=ou.
	cert := func(org, ou string, eku x509.ExtKeyUsage) tls.Certificate {
		name := pkix.Name{CommonName: "alice", Organization: []string{org}}
		if ou != "" {
			name.OrganizationalUnit = []string{ou}
		}
		return p.issue(t, name, eku, nil, nil)
	}
	tls12 := p.clientTLS(p.machineCert(t, "alice"))
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	untrusted := p.clientTLS(stranger.machineCert(t, "alice"))

	tests := []struct {
		name    string
		tls     *tls.Config
		wantErr error // nil: any error
	}{
		{name: "TLS 1.2 client", tls: tls12},
		{name: "certificate from an unknown CA", tls: untrusted},
		{name: "no client certificate", tls: p.clientTLS()},
		{
			name: "server certificate used as a client certificate",
			tls:  p.clientTLS(cert("phix", "", x509.ExtKeyUsageServerAuth)),
		},
		{
			name:    "machine not in the config",
			tls:     p.clientTLS(p.machineCert(t, "eve")),
			wantErr: nats.ErrAuthorization,
		},
		{
			name:    "other organization",
			tls:     p.clientTLS(cert("other", "", x509.ExtKeyUsageClientAuth)),
			wantErr: nats.ErrAuthorization,
		},
		{
			name:    "extra subject attribute",
			tls:     p.clientTLS(cert("phix", "x", x509.ExtKeyUsageClientAuth)),
			wantErr: nats.ErrAuthorization,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := e.dial("alice", tt.tls)
			if err == nil {
				c.nc.Close()
				t.Fatalf("connecting = nil, want an error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("connecting = %v, want %v", err, tt.wantErr)
			}
		})
	}

	t.Run("plaintext client", func(t *testing.T) {
		if err := plaintextPing(t, e.broker.ClientURL()); err == nil {
			t.Errorf("plaintext CONNECT and PING = PONG, want the connection refused")
		}
	})
}

// plaintextPing speaks the NATS protocol without TLS and returns nil only
// if the server answers PING with PONG. The broker sends nothing before
// the TLS handshake, so the client speaks first, as a client that ignores
// the missing INFO would.
func plaintextPing(t testing.TB, clientURL string) error {
	t.Helper()
	u, err := url.Parse(clientURL)
	if err != nil {
		t.Fatalf("url.Parse(%s) = %v, want nil", clientURL, err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatalf("net.Dial(%s) = %v, want nil", u.Host, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))

	if _, err := conn.Write([]byte("CONNECT {\"verbose\":false}\r\nPING\r\n")); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.HasPrefix(line, "PONG") {
			return nil
		}
	}
}

// TestNoPlaintextBeforeHandshake checks that the broker starts every
// connection with the TLS handshake and sends nothing, not even its INFO
// line, to a client that has not begun one.
func TestNoPlaintextBeforeHandshake(t *testing.T) {
	e := newEnv(t)
	u, err := url.Parse(e.broker.ClientURL())
	if err != nil {
		t.Fatalf("url.Parse(%s) = %v, want nil", e.broker.ClientURL(), err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatalf("net.Dial(%s) = %v, want nil", u.Host, err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, err := conn.Read(make([]byte, 1024)); n != 0 {
		t.Errorf("Read() before a handshake = %d bytes, %v; want nothing", n, err)
	}
}

func TestRestartKeepsMessages(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.connect(t, "alice"), e.connect(t, "bob")
	subj := subjects.Message("alice", "bob", "note")
	publish(t, alice, subj, "sealed-1")
	publish(t, alice, subj, "sealed-2")
	if err := fetchOne(t, bob, "bob").DoubleAck(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatalf("DoubleAck() = %v, want nil", err)
	}
	if err := e.broker.Close(); err != nil {
		t.Fatalf("Close() = %v, want nil", err)
	}

	e.broker = e.start(t)
	bob = e.connect(t, "bob")
	msg := fetchOne(t, bob, "bob")
	if string(msg.Data()) != "sealed-2" {
		t.Errorf("Fetch() after restart = %q, want %q (the unacked message)", msg.Data(), "sealed-2")
	}
	meta, err := msg.Metadata()
	if err != nil {
		t.Fatalf("Metadata() = %v, want nil", err)
	}
	if meta.Sequence.Stream != 2 {
		t.Errorf("stream sequence after restart = %d, want 2", meta.Sequence.Stream)
	}
}

func TestStartAndCloseLifecycle(t *testing.T) {
	e := newEnv(t)
	if err := e.broker.Start(ctxFor(t, 5*time.Second)); !errors.Is(err, broker.ErrAlreadyStarted) {
		t.Errorf("second Start() = %v, want %v", err, broker.ErrAlreadyStarted)
	}
	if !strings.HasPrefix(e.broker.ClientURL(), "tls://127.0.0.1:") {
		t.Errorf("ClientURL() = %q, want tls://127.0.0.1:port", e.broker.ClientURL())
	}
	for range 2 {
		if err := e.broker.Close(); err != nil {
			t.Errorf("Close() = %v, want nil", err)
		}
	}
	if err := e.broker.Start(ctxFor(t, 5*time.Second)); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Start() after Close = %v, want %v", err, broker.ErrClosed)
	}
}

func TestCloseWithoutStart(t *testing.T) {
	p := newTestPKI(t)
	b, err := broker.New(broker.Config{StoreDir: t.TempDir(), Port: broker.RandomPort,
		TLS: p.serverTLS(t), Machines: []string{"alice"}})
	if err != nil {
		t.Fatalf("New() = %v, want nil", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close() = %v, want nil", err)
	}
	if err := b.Start(ctxFor(t, 5*time.Second)); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Start() after Close = %v, want %v", err, broker.ErrClosed)
	}
}

func TestStartFailsFastWhenPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("net.Listen() = %v, want nil", err)
	}
	defer l.Close()
	p := newTestPKI(t)
	b, err := broker.New(broker.Config{StoreDir: t.TempDir(), Port: l.Addr().(*net.TCPAddr).Port,
		TLS: p.serverTLS(t), Machines: []string{"alice"}})
	if err != nil {
		t.Fatalf("New() = %v, want nil", err)
	}
	defer b.Close()

	// nats-server reports the failure through its logger's Fatalf; Start
	// must turn that into an error rather than wait for ctx.
	err = b.Start(ctxFor(t, 20*time.Second))
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Start() on a taken port = %v, want a listen error", err)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	p := newTestPKI(t)
	valid := func() broker.Config {
		return broker.Config{StoreDir: t.TempDir(), TLS: p.serverTLS(t), Machines: []string{"alice"}}
	}
	tests := []struct {
		name   string
		modify func(*broker.Config)
	}{
		{"no store dir", func(c *broker.Config) { c.StoreDir = "" }},
		{"no TLS", func(c *broker.Config) { c.TLS = nil }},
		{"no server certificate", func(c *broker.Config) { c.TLS.Certificates = nil }},
		{"no client CAs", func(c *broker.Config) { c.TLS.ClientCAs = nil }},
		{"TLS capped below 1.3", func(c *broker.Config) { c.TLS.MaxVersion = tls.VersionTLS12 }},
		{"per-client TLS config", func(c *broker.Config) {
			c.TLS.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
				return nil, nil
			}
		}},
		{"no machines", func(c *broker.Config) { c.Machines = nil }},
		{"invalid machine name", func(c *broker.Config) { c.Machines = []string{"Alice.x"} }},
		{"duplicate machine", func(c *broker.Config) { c.Machines = []string{"alice", "alice"} }},
		{"port out of range", func(c *broker.Config) { c.Port = 70000 }},
		{"negative max payload", func(c *broker.Config) { c.MaxPayload = -1 }},
		{"max payload over 64 MiB", func(c *broker.Config) { c.MaxPayload = 65 << 20 }},
		{"negative duplicate window", func(c *broker.Config) { c.DuplicateWindow = -time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.modify(&cfg)
			b, err := broker.New(cfg)
			if err == nil {
				b.Close()
			}
			if !errors.Is(err, broker.ErrInvalidConfig) {
				t.Errorf("New() = %v, want %v", err, broker.ErrInvalidConfig)
			}
		})
	}
}

func TestLogsThroughSlog(t *testing.T) {
	var buf syncBuffer
	e := &env{pki: newTestPKI(t), dir: t.TempDir(),
		logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	e.broker = e.start(t)
	alice := e.connect(t, "alice")
	publish(t, alice, subjects.Message("alice", "bob", "note"), "sealed-payload-marker")
	if err := e.broker.Close(); err != nil {
		t.Fatalf("Close() = %v, want nil", err)
	}

	msgs := map[string]int{}
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		var rec struct {
			Msg       string
			Component string
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line %s: %v", line, err)
		}
		msgs[rec.Msg]++
		if rec.Msg != strings.ToLower(rec.Msg) {
			t.Errorf("log message %q, want lowercase", rec.Msg)
		}
		if strings.HasPrefix(rec.Msg, "nats server") && rec.Component != "nats-server" {
			t.Errorf("log line %s has component %q, want nats-server", line, rec.Component)
		}
	}
	for _, want := range []string{"broker started", "broker stopped", "nats server log"} {
		if msgs[want] == 0 {
			t.Errorf("log messages %v, want %q", msgs, want)
		}
	}
	if bytes.Contains(buf.Bytes(), []byte("sealed-payload-marker")) {
		t.Errorf("logs contain a message payload, want none")
	}
}

// syncBuffer is a bytes.Buffer that the server's goroutines may write
// concurrently.
type syncBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// waitFor polls cond until it returns nil or ten seconds pass.
func waitFor(t testing.TB, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after 10s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
