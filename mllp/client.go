package mllp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"phix.dev/phix/hl7"
)

// Defaults for [ClientConfig] fields left zero.
const (
	DefaultDialTimeout = 10 * time.Second
	DefaultAckTimeout  = time.Minute
	DefaultMaxAckSize  = 1 << 20
)

// maxStaleAcks is how many acknowledgements of other messages Send skips
// while waiting for its own: late ACKs of a message that timed out, or
// application ACKs that follow a commit ACK in enhanced mode.
const maxStaleAcks = 16

// ClientConfig configures a [Client]. The zero value of every field but
// Addr selects the documented default.
type ClientConfig struct {
	// Addr is the receiver's host:port. Required.
	Addr string
	// TLS, if set, is used to connect over TLS; nil means plain TCP.
	TLS *tls.Config
	// DialTimeout bounds connecting. Zero means [DefaultDialTimeout].
	DialTimeout time.Duration
	// AckTimeout bounds waiting for an acknowledgement when the caller's
	// context has no deadline. Zero means [DefaultAckTimeout].
	AckTimeout time.Duration
	// MaxAckSize is the largest acknowledgement read, in bytes. Zero
	// means [DefaultMaxAckSize].
	MaxAckSize int
}

// Ack is a receiver's acknowledgement of one message.
type Ack struct {
	Code      hl7.AckCode  // MSA-1
	ControlID string       // MSA-2: the acknowledged message's MSH-10
	Message   *hl7.Message // the whole acknowledgement
}

// NackError reports an acknowledgement that did not accept the message.
// It carries codes only: the receiver's error text may quote the message.
type NackError struct {
	Code      hl7.AckCode // MSA-1: AE, AR, CE or CR
	ControlID string      // MSA-2
	Errors    []string    // ERR-3.1 codes (HL7 table 0357), in order
}

func (e *NackError) Error() string {
	return fmt.Sprintf("mllp: message %s not accepted: %s %v", e.ControlID, e.Code, e.Errors)
}

// Client sends messages to one MLLP receiver over a connection it opens
// on first use and reopens after any failure. It is safe for concurrent
// use; messages are sent one at a time. Close releases the connection.
type Client struct {
	cfg ClientConfig

	mu   sync.Mutex // held for a whole exchange
	conn net.Conn   // guarded by mu; nil when not connected
	r    *Reader    // guarded by mu
}

// NewClient validates cfg and returns a client. It does not connect.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Addr == "" {
		return nil, errors.New("mllp: no address")
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	if cfg.MaxAckSize == 0 {
		cfg.MaxAckSize = DefaultMaxAckSize
	}
	if cfg.DialTimeout < 0 || cfg.AckTimeout < 0 || cfg.MaxAckSize < 0 {
		return nil, errors.New("mllp: negative timeout or size")
	}
	return &Client{cfg: cfg}, nil
}

// Send frames msg, sends it and waits for the receiver's acknowledgement
// of it, matched by MSA-2 to msg's MSH-10. It returns the Ack when the
// receiver accepted the message (AA or CA) and a [*NackError] when it
// refused it. Any other error leaves it unknown whether the receiver got
// the message; the connection is then closed so the next Send starts
// clean, and sending again may deliver a duplicate, as MLLP is
// at-least-once.
func (c *Client) Send(ctx context.Context, msg []byte) (*Ack, error) {
	h, err := hl7.ParseHeader(msg)
	if err != nil {
		return nil, fmt.Errorf("mllp: message header unreadable: %w", err)
	}
	id := h.Raw("MSH-10")
	if id == "" {
		return nil, errors.New("mllp: message has no MSH-10 control id")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.AckTimeout)
		defer cancel()
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	reused := c.conn != nil
	ack, err := c.exchangeLocked(ctx, msg, id)
	if err != nil && reused && ctx.Err() == nil && !isNack(err) && !errors.Is(err, context.DeadlineExceeded) {
		// The receiver may have closed an idle connection; that is no
		// reason to fail the message. Try once on a fresh connection.
		ack, err = c.exchangeLocked(ctx, msg, id)
	}
	return ack, err
}

func isNack(err error) bool {
	var n *NackError
	return errors.As(err, &n)
}

// exchangeLocked sends msg and reads acknowledgements until the one for
// id. c.mu must be held.
func (c *Client) exchangeLocked(ctx context.Context, msg []byte, id string) (*Ack, error) {
	if err := c.connectLocked(ctx); err != nil {
		return nil, err
	}
	conn := c.conn
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if err := NewWriter(conn).WriteFrame(msg); err != nil {
		c.closeLocked()
		return nil, fmt.Errorf("mllp: sending %s: %w", id, contextErr(ctx, err))
	}
	for range maxStaleAcks {
		ack, err := c.readAckLocked()
		if err != nil {
			c.closeLocked()
			return nil, fmt.Errorf("mllp: waiting for ack of %s: %w", id, contextErr(ctx, err))
		}
		if ack.ControlID != id {
			continue
		}
		if !ack.Code.Accepted() {
			return nil, nackError(ack)
		}
		return ack, nil
	}
	c.closeLocked()
	return nil, fmt.Errorf("mllp: no ack of %s among %d received", id, maxStaleAcks)
}

func (c *Client) connectLocked(ctx context.Context) error {
	if c.conn != nil {
		return nil
	}
	d := &net.Dialer{Timeout: c.cfg.DialTimeout}
	var conn net.Conn
	var err error
	if c.cfg.TLS != nil {
		td := &tls.Dialer{NetDialer: d, Config: c.cfg.TLS}
		conn, err = td.DialContext(ctx, "tcp", c.cfg.Addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", c.cfg.Addr)
	}
	if err != nil {
		return fmt.Errorf("mllp: connecting to %s: %w", c.cfg.Addr, err)
	}
	c.conn, c.r = conn, NewReader(conn, c.cfg.MaxAckSize)
	return nil
}

func (c *Client) readAckLocked() (*Ack, error) {
	raw, err := c.r.ReadFrame()
	if err != nil {
		return nil, err
	}
	m, err := hl7.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("unreadable ack: %w", err)
	}
	if m.Segment("MSA", 1) == nil {
		return nil, errors.New("ack has no MSA segment")
	}
	return &Ack{Code: hl7.AckCode(m.Get("MSA-1")), ControlID: m.Raw("MSA-2"), Message: m}, nil
}

func nackError(a *Ack) *NackError {
	e := &NackError{Code: a.Code, ControlID: a.ControlID}
	for _, s := range a.Message.All("ERR") {
		e.Errors = append(e.Errors, s.Get("3.1"))
	}
	return e
}

// contextErr prefers the context's error to the deadline error it
// caused; the connection's deadline can fire a moment before the
// context's own timer.
func contextErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if dl, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return err
}

func (c *Client) closeLocked() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.r = nil, nil
	}
}

// Close closes the client's connection, if any. The client may still be
// used; it reconnects on the next Send.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked()
	return nil
}
