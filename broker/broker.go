package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// Errors returned by [Broker.Start].
var (
	ErrClosed         = errors.New("broker: closed")
	ErrAlreadyStarted = errors.New("broker: already started")
)

var _ io.Closer = (*Broker)(nil)

// startTimeout bounds Start when the caller's context has no deadline.
const startTimeout = 2 * time.Minute

// tlsTimeout is how long a client has to finish the TLS handshake, in
// seconds (nats-server's unit).
const tlsTimeout = 2

// Broker is an embedded nats-server with JetStream, configured for phix.
// Create it with [New], run it with [Broker.Start] and stop it with
// [Broker.Close]. Its methods are safe for concurrent use.
type Broker struct {
	cfg Config
	log *slog.Logger
	srv *server.Server
	// admin signs the in-process admin connection; adminPub is its user.
	admin    nkeys.KeyPair
	adminPub string
	fatal    chan string // first fatal nats-server error, buffered 1
	// ev is the audit trail wiring (events.go), set by New.
	ev *events
	// tls is the enforced server TLS configuration, shared by the client
	// and monitoring listeners and kept identical across reloads.
	tls *tls.Config
	// storeKey is the JetStream at-rest key, held only because nats-server
	// needs it again in the options of every reload.
	storeKey string
	// policyChanged wakes the idle sweep when the timeout may have
	// changed; buffered 1.
	policyChanged chan struct{}
	// stop ends the background loops started by Start; loops is done when
	// they have returned.
	stop  context.CancelFunc
	loops sync.WaitGroup

	// closeMu serializes Close calls.
	closeMu sync.Mutex

	// reloadMu serializes SetPolicy calls, so two reloads cannot
	// interleave their option and consumer changes.
	reloadMu sync.Mutex

	// js is the in-process admin connection's JetStream context, kept
	// open after provisioning so the broker can report on its streams
	// without any credential remaining in memory or on disk. Set by Start.
	js jetstream.JetStream
	nc *nats.Conn

	mu sync.Mutex // guards started, ready, closed, acc, mon, js and nc
	// started is set by the first Start call; a Broker starts once.
	started bool
	// ready is set when Start has succeeded.
	ready  bool
	closed bool
	// acc is what the broker enforces now.
	acc *access
	// mon is the monitoring endpoint; nil if there is none.
	mon *monitor
}

// New validates cfg and prepares a broker; it does not listen yet. Errors
// from validation wrap [ErrInvalidConfig]. The caller must call
// [Broker.Close] to release the server, even if Start is never called.
func New(cfg Config) (*Broker, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	admin, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("broker: creating admin key: %v", err)
	}
	pub, err := admin.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("broker: creating admin key: %v", err)
	}

	storeKey, err := loadStoreKey(c.StoreKeyFile, c.StoreDir)
	if err != nil {
		admin.Wipe()
		return nil, fmt.Errorf("broker: %w", err)
	}

	b := &Broker{
		cfg:           c,
		log:           c.Logger,
		admin:         admin,
		adminPub:      pub,
		fatal:         make(chan string, 1),
		tls:           serverTLS(c.TLS),
		storeKey:      storeKey,
		policyChanged: make(chan struct{}, 1),
		acc:           accessFrom(c),
	}
	opts := b.serverOptions(b.acc)
	srv, err := server.NewServer(opts)
	if err != nil {
		admin.Wipe()
		return nil, fmt.Errorf("broker: configuring nats server: %v", err)
	}
	b.srv = srv
	srv.SetLoggerV2(b.watchViolations(&natsLogger{log: c.Logger, fatal: b.onFatal}), opts.Debug, false, false)
	return b, nil
}

// serverOptions translates the validated Config and access a into
// nats-server options. It is called again for every reload, so it must
// return the same values for everything nats-server cannot reload.
func (b *Broker) serverOptions(a *access) *server.Options {
	c := b.cfg
	return &server.Options{
		Host: c.Host,
		Port: c.Port,
		// The server admits a little more than the message stream does, so
		// that a refused message of the largest size still fits in the
		// quarantine stream together with its reason headers.
		MaxPayload: int32(c.MaxPayload + quarantineHeadroom),
		// An embedded library must not take over the process's signals.
		NoSigs: true,

		JetStream:              true,
		StoreDir:               c.StoreDir,
		DisableJetStreamBanner: true,
		// Encryption at rest under the sealed payloads, so that stream
		// metadata (subjects, headers, sequence state) is not in the clear
		// on disk either. AES-GCM: hardware-accelerated and the cheaper of
		// nats-server's two ciphers here.
		JetStreamCipher: server.AES,
		JetStreamKey:    b.storeKey,

		// A TLSConfig without AllowNonTLS makes TLS mandatory for every
		// network client; TLSVerify and TLSMap make the verified
		// certificate the client's identity. TLSHandshakeFirst (with no
		// fallback delay) starts every connection with the TLS handshake:
		// the server sends nothing, not even INFO, before it.
		TLSConfig:         b.tls,
		TLSTimeout:        tlsTimeout,
		TLSVerify:         true,
		TLSMap:            true,
		TLSHandshakeFirst: true,

		Users: append(a.serverUsers(), keyAdminUsers(c.KeyAdmins)...),
		// The admin nkey user also keeps authorization required when a
		// policy has no active machine: without any user nats-server
		// would admit every holder of a valid certificate.
		Nkeys: []*server.NkeyUser{adminUser(b.adminPub)},

		// Debug output names connections and subjects, never payloads.
		// Trace stays off: it logs message bodies.
		Debug: c.Logger.Enabled(context.Background(), slog.LevelDebug),
	}
}

func (b *Broker) onFatal(msg string) {
	select {
	case b.fatal <- msg:
	default:
	}
}

// Start starts the server, waits until it accepts connections, and creates
// or updates the streams and the machines' inbox consumers. If ctx has no
// deadline, Start gives up after two minutes. On error the server is shut
// down; the Broker cannot be started again, but Close is still safe.
// Start returns [ErrClosed] after Close and [ErrAlreadyStarted] on a
// second call.
func (b *Broker) Start(ctx context.Context) error {
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return ErrClosed
	case b.started:
		b.mu.Unlock()
		return ErrAlreadyStarted
	}
	b.started = true
	b.mu.Unlock()

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	begin := time.Now()

	err := b.start(ctx)
	// The admin key is needed only for provisioning; wiping it here, on
	// the goroutine that signed with it, leaves no admin secret behind.
	b.admin.Wipe()
	if err != nil {
		return fmt.Errorf("broker: starting: %w", err)
	}
	a := b.currentAccess()
	b.log.LogAttrs(ctx, slog.LevelInfo, "broker started",
		slog.String("url", b.ClientURL()),
		slog.String("monitor_url", b.MonitorURL()),
		slog.Int("machines", len(a.users)),
		slog.Duration("idle_timeout", a.idle),
		slog.Duration("took", time.Since(begin)))
	return nil
}

func (b *Broker) start(ctx context.Context) error {
	// nats-server's Start blocks while JetStream recovers its store, so
	// run it aside and keep ctx in control of the wait.
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.srv.Start()
	}()

	err := b.waitReady(ctx)
	if err == nil && !b.srv.JetStreamEnabled() {
		err = errors.New("jetstream is not enabled")
	}
	if err == nil {
		err = b.provision(ctx)
	}
	if err == nil {
		err = b.startEvents(ctx)
	}
	if err == nil {
		err = b.startMonitor()
	}
	if err != nil {
		b.stopEvents()
		if b.nc != nil {
			b.nc.Close()
		}
		b.srv.Shutdown()
		// Return only once nothing touches StoreDir any more, so that a
		// caller may retry with a new Broker on the same directory.
		<-done
		b.srv.WaitForShutdown()
		return err
	}

	loopCtx, stop := context.WithCancel(context.Background())
	b.mu.Lock()
	b.ready, b.stop = true, stop
	b.mu.Unlock()
	b.loops.Go(func() { b.runIdleLogoff(loopCtx) })
	return nil
}

// waitReady polls until the client listener is up, nats-server reports a
// fatal error, or ctx ends.
func (b *Broker) waitReady(ctx context.Context) error {
	for {
		if b.srv.ReadyForConnections(50 * time.Millisecond) {
			return nil
		}
		select {
		case msg := <-b.fatal:
			return fmt.Errorf("nats server: %s", msg)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
	}
}

// ClientURL returns the URL clients connect to, tls://host:port. With
// [RandomPort] the port is known only once Start has returned; before
// that ClientURL returns "".
func (b *Broker) ClientURL() string {
	port := b.cfg.Port
	if a, ok := b.srv.Addr().(*net.TCPAddr); ok {
		port = a.Port
	}
	if port == RandomPort {
		return ""
	}
	return "tls://" + net.JoinHostPort(b.cfg.Host, strconv.Itoa(port))
}

// Close shuts the server down, closing every client connection, and waits
// until JetStream has flushed and released StoreDir. Calling Close again
// does nothing. The error is always nil today; it is there so that future
// shutdown failures can be reported.
func (b *Broker) Close() error {
	// closeMu makes a concurrent second Close wait for the first; mu is
	// released before waiting, because the background loops take it.
	b.closeMu.Lock()
	defer b.closeMu.Unlock()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	started, stop, mon, nc := b.started, b.stop, b.mon, b.nc
	b.mu.Unlock()

	if !started {
		b.admin.Wipe()
	}
	if stop != nil {
		stop()
		b.loops.Wait()
	}
	if mon != nil {
		mon.close()
	}
	b.stopEvents()
	if nc != nil {
		nc.Close()
	}
	b.srv.Shutdown()
	b.srv.WaitForShutdown()
	if started {
		b.log.LogAttrs(context.Background(), slog.LevelInfo, "broker stopped")
	}
	return nil
}

// StreamInfo reports the state of one of the broker's streams, such as
// [subjects.QuarantineStream], so an operator can see what is held there.
// It returns [ErrClosed] before Start or after Close.
func (b *Broker) StreamInfo(ctx context.Context, name string) (*jetstream.StreamInfo, error) {
	b.mu.Lock()
	js, closed := b.js, b.closed
	b.mu.Unlock()
	if js == nil || closed {
		return nil, ErrClosed
	}
	s, err := js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("broker: stream %s: %w", name, err)
	}
	return s.Info(ctx)
}
