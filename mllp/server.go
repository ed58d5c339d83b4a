package mllp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"phix.dev/phix/hl7"
)

// Server receives HL7 v2 messages over MLLP, hands each to its [Handler]
// and acknowledges it. Messages on one connection are processed and
// acknowledged in order; connections are served concurrently.
type Server struct {
	cfg   ServerConfig
	log   *slog.Logger
	stats stats
	warn  limiter
}

// NewServer validates cfg and returns a server.
func NewServer(cfg ServerConfig) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Server{
		cfg: cfg, log: cfg.Logger,
		stats: stats{warnings: make(map[hl7.WarningKind]int64)},
		warn:  limiter{every: time.Minute, last: make(map[string]time.Time)},
	}, nil
}

// Serve accepts connections on ln until ctx is done, then shuts down
// gracefully: it stops accepting, lets each connection finish the message
// it is processing and send its acknowledgement, closes the connections,
// and returns nil. It closes ln. It returns an error if accepting fails
// for another reason.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.cfg.TLS != nil {
		ln = tls.NewListener(ln, s.cfg.TLS)
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	s.log.Info("mllp listening", "addr", ln.Addr().String(), "tls", s.cfg.TLS != nil)

	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				s.log.Info("mllp stopping", "addr", ln.Addr().String())
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			ln.Close()
			return fmt.Errorf("mllp: accepting: %w", err)
		}
		s.stats.connections.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, c)
		}()
	}
}

// serverConn is one accepted connection. Its read deadline is moved
// forward before every read, and to the past once the server shuts down;
// mu orders the two so a shutdown is never overwritten.
type serverConn struct {
	net.Conn
	ctx  context.Context
	idle time.Duration
	mu   sync.Mutex // serialises deadline changes against shutdown
}

// Read reads with the idle timeout as deadline, and fails at once after
// shutdown.
func (c *serverConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if err := c.ctx.Err(); err != nil {
		c.mu.Unlock()
		return 0, err
	}
	c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	c.mu.Unlock()
	return c.Conn.Read(p)
}

func (c *serverConn) interrupt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Conn.SetReadDeadline(time.Unix(1, 0))
}

func (s *Server) serveConn(ctx context.Context, nc net.Conn) {
	c := &serverConn{Conn: nc, ctx: ctx, idle: s.cfg.IdleTimeout}
	stop := context.AfterFunc(ctx, c.interrupt)
	defer stop()
	defer nc.Close()
	log := s.log.With("remote", nc.RemoteAddr().String())
	if tc, ok := nc.(*tls.Conn); ok {
		if err := s.handshake(ctx, tc, log); err != nil {
			return
		}
		if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
			ctx = context.WithValue(ctx, clientNameKey{}, certs[0].Subject.CommonName)
		}
	}
	log.Debug("mllp connection opened")

	ss := &session{s: s, nc: nc, w: NewWriter(nc), log: log}
	r := NewReader(c, s.cfg.MaxMessageSize)
	for {
		before := r.Discarded()
		frame, err := r.ReadFrame()
		if n := r.Discarded() - before; n > 0 {
			s.stats.discarded.Add(n)
			s.warnf(log, "discarded", "discarded bytes outside MLLP frames", "bytes", n)
		}
		var tooBig *FrameTooLargeError
		switch {
		case errors.As(err, &tooBig):
			ss.refuseLarge(tooBig)
		case err != nil:
			s.connEnded(ctx, err, log)
			return
		default:
			ss.handleFrame(ctx, frame)
		}
	}
}

// clientNameKey is the context key of the client certificate's common
// name, as returned by [ClientName].
type clientNameKey struct{}

// ClientName returns the common name of the verified client certificate
// of the connection a [Handler] call serves, or "" over plain TCP.
func ClientName(ctx context.Context) string {
	name, _ := ctx.Value(clientNameKey{}).(string)
	return name
}

func (s *Server) handshake(ctx context.Context, tc *tls.Conn, log *slog.Logger) error {
	hctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		s.warnf(log, "handshake", "mllp tls handshake failed", "err", err)
		return err
	}
	if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
		log.Debug("mllp client authenticated", "subject", certs[0].Subject.CommonName)
	}
	return nil
}

func (s *Server) connEnded(ctx context.Context, err error, log *slog.Logger) {
	switch {
	case errors.Is(err, io.EOF):
		log.Debug("mllp connection closed by peer")
	case ctx.Err() != nil:
		log.Debug("mllp connection closed for shutdown")
	case errors.Is(err, os.ErrDeadlineExceeded):
		log.Debug("mllp connection idle, closing", "idle", s.cfg.IdleTimeout)
	default:
		log.Info("mllp connection ended", "err", err)
	}
}

// session is what handling the frames of one connection needs.
type session struct {
	s   *Server
	nc  net.Conn
	w   *Writer
	log *slog.Logger
}

// handleFrame parses, validates and hands over one message, then
// acknowledges it. The acknowledgement is sent only after the handler
// returned, so an AA or CA means the message is stored.
func (ss *session) handleFrame(ctx context.Context, raw []byte) {
	start := time.Now()
	ss.s.stats.frames.Add(1)
	m, err := hl7.Parse(raw, ss.s.cfg.parseOptions()...)
	if err != nil {
		if errors.Is(err, hl7.ErrBatch) {
			err = &hl7.Error{
				Code: hl7.CodeUnsupportedType, Reject: true, Err: hl7.ErrBatch,
				Reason: "FHS batch files not accepted on MLLP endpoint",
			}
		}
		h, _ := hl7.ParseHeader(raw)
		ss.reply(h, err, int64(len(raw)), start)
		return
	}
	ss.s.noteWarnings(m, ss.log)
	if err := m.Validate(); err != nil {
		ss.reply(m, err, int64(len(raw)), start)
		return
	}
	ss.reply(m, ss.s.callHandler(ctx, raw, m), int64(len(raw)), start)
}

// callHandler runs the handler on a context that survives shutdown but
// not the handler timeout, and turns a panic into a refusal.
func (s *Server) callHandler(ctx context.Context, raw []byte, m *hl7.Message) (err error) {
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.HandlerTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("mllp handler panicked", "control_id", m.ControlID(), "panic", fmt.Sprint(p))
			err = errors.New("mllp: handler panicked")
		}
	}()
	return s.cfg.Handler(hctx, raw, m)
}

// refuseLarge acknowledges an oversized frame with AR, using the control
// ID from its first bytes.
func (ss *session) refuseLarge(e *FrameTooLargeError) {
	ss.s.stats.frames.Add(1)
	h, _ := hl7.ParseHeader(e.Head)
	cause := &hl7.Error{
		Code: hl7.CodeApplication, Reject: true, Err: hl7.ErrTooLarge,
		Reason: fmt.Sprintf("message exceeds %d bytes", e.Limit),
	}
	ss.reply(h, cause, e.Size, time.Now())
}

// reply sends the acknowledgement of m (nil if unreadable) for outcome
// cause and logs the outcome: never the payload, only ids and reasons.
func (ss *session) reply(m *hl7.Message, cause error, size int64, start time.Time) {
	code := hl7.AckCodeFor(m, cause)
	ss.s.stats.count(code)
	id := ""
	if m != nil {
		id = m.ControlID()
	}
	attrs := []any{"control_id", id, "ack", string(code), "bytes", size, "took", time.Since(start)}
	if cause != nil {
		ss.s.warnf(ss.log, "refused:"+string(code), "mllp message refused", append(attrs, "reason", cause.Error())...)
	} else {
		ss.log.Debug("mllp message accepted", attrs...)
	}
	ack, err := hl7.Ack(m, cause)
	if err != nil {
		ss.log.Error("mllp building ack", "control_id", id, "err", err)
		return
	}
	ss.nc.SetWriteDeadline(time.Now().Add(ss.s.cfg.WriteTimeout))
	if err := ss.w.WriteFrame(ack); err != nil {
		ss.log.Info("mllp sending ack", "control_id", id, "err", err)
	}
}

func (s *Server) noteWarnings(m *hl7.Message, log *slog.Logger) {
	for _, w := range m.Warnings() {
		s.stats.warn(w.Kind)
		s.warnf(log, "parse:"+string(w.Kind), "hl7 message repaired", "control_id", m.ControlID(),
			"kind", string(w.Kind), "detail", w.Text)
	}
}

// warnf logs at Warn level at most once per minute per key, and at Debug
// level otherwise, so a feed that repeats a fault cannot flood the log.
func (s *Server) warnf(log *slog.Logger, key, msg string, attrs ...any) {
	if n, ok := s.warn.allow(key); ok {
		if n > 0 {
			attrs = append(attrs, "suppressed", n)
		}
		log.Warn(msg, attrs...)
		return
	}
	log.Debug(msg, attrs...)
}

// limiter lets one event per key through per interval and counts the
// rest.
type limiter struct {
	every time.Duration
	mu    sync.Mutex
	last  map[string]time.Time // guarded by mu
	held  map[string]int       // guarded by mu; suppressed since last
}

func (l *limiter) allow(key string) (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held == nil {
		l.held = make(map[string]int)
	}
	now := time.Now()
	if t, seen := l.last[key]; seen && now.Sub(t) < l.every {
		l.held[key]++
		return 0, false
	}
	n := l.held[key]
	l.last[key], l.held[key] = now, 0
	return n, true
}

// Stats counts what a [Server] has done since it was created.
type Stats struct {
	Connections int64 // connections accepted
	Frames      int64 // frames received, including refused ones
	Accepted    int64 // acknowledged AA or CA
	Errored     int64 // acknowledged AE or CE
	Rejected    int64 // acknowledged AR or CR
	// DiscardedBytes counts bytes outside frames that were skipped.
	DiscardedBytes int64
	// Warnings counts parse repairs by kind.
	Warnings map[hl7.WarningKind]int64
}

type stats struct {
	connections, frames, accepted, errored, rejected, discarded atomic.Int64

	mu       sync.Mutex
	warnings map[hl7.WarningKind]int64 // guarded by mu
}

func (st *stats) count(code hl7.AckCode) {
	switch code {
	case hl7.AckAccept, hl7.CommitAccept:
		st.accepted.Add(1)
	case hl7.AckError, hl7.CommitError:
		st.errored.Add(1)
	default:
		st.rejected.Add(1)
	}
}

func (st *stats) warn(k hl7.WarningKind) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.warnings[k]++
}

// Stats returns a snapshot of the server's counters. It is safe to call
// concurrently with Serve.
func (s *Server) Stats() Stats {
	st := &s.stats
	st.mu.Lock()
	w := make(map[hl7.WarningKind]int64, len(st.warnings))
	for k, v := range st.warnings {
		w[k] = v
	}
	st.mu.Unlock()
	return Stats{
		Connections: st.connections.Load(), Frames: st.frames.Load(),
		Accepted: st.accepted.Load(), Errored: st.errored.Load(), Rejected: st.rejected.Load(),
		DiscardedBytes: st.discarded.Load(), Warnings: w,
	}
}
