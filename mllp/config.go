package mllp

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"time"

	"phix.dev/phix/hl7"
)

// Handler processes one received message: raw is the frame's payload
// exactly as received, msg its parsed and validated form. The server
// acknowledges the message as accepted only if Handler returns nil, so a
// Handler that stores the message must return only once it is safely
// stored. An [*hl7.Error] return is reported as such in the ACK; any other
// error is acknowledged as a storage failure (AR, or CE in enhanced mode)
// without its text. ctx ends after [ServerConfig.HandlerTimeout]; it is
// not cancelled by server shutdown, so a message in progress completes.
type Handler func(ctx context.Context, raw []byte, msg *hl7.Message) error

// Defaults for [ServerConfig] fields left zero.
const (
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultHandlerTimeout = time.Minute
	DefaultWriteTimeout   = 30 * time.Second
)

// ServerConfig configures a [Server]. The zero value of every field but
// Handler selects the documented default.
type ServerConfig struct {
	// Handler is called for every message that parses and validates.
	// Required.
	Handler Handler

	// Logger receives connection events and refusals, never payloads.
	// nil discards them.
	Logger *slog.Logger

	// MaxMessageSize is the largest message accepted, in bytes; larger
	// ones are refused with AR "message exceeds N bytes" without being
	// buffered. Zero means [hl7.DefaultMaxSize] (16 MiB).
	MaxMessageSize int

	// IdleTimeout closes a connection that sends nothing for this long.
	// Zero means [DefaultIdleTimeout].
	IdleTimeout time.Duration

	// HandlerTimeout bounds one Handler call. Zero means
	// [DefaultHandlerTimeout].
	HandlerTimeout time.Duration

	// WriteTimeout bounds writing one acknowledgement. Zero means
	// [DefaultWriteTimeout].
	WriteTimeout time.Duration

	// TLS, if set, makes the server accept only TLS connections. It must
	// require TLS 1.3 and verified client certificates
	// (tls.RequireAndVerifyClientCert): HL7 feeds carry PHI, and a feed is
	// identified by its certificate. Set its VerifyConnection to admit only
	// some certificates; the Handler learns the admitted name from
	// [ClientName]. nil means plain TCP.
	TLS *tls.Config

	// Strict refuses messages that lenient parsing would repair: no CR
	// segment terminators, blank segments, a short MSH-2.
	Strict bool

	// DefaultCharset is the character set of messages with an empty
	// MSH-18 (see [hl7.WithDefaultCharset]); "" means UTF-8.
	DefaultCharset string
}

func (c ServerConfig) withDefaults() (ServerConfig, error) {
	if c.Handler == nil {
		return c, errors.New("mllp: no handler")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = hl7.DefaultMaxSize
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = DefaultHandlerTimeout
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxMessageSize < 0 || c.IdleTimeout < 0 || c.HandlerTimeout < 0 || c.WriteTimeout < 0 {
		return c, errors.New("mllp: negative size or timeout")
	}
	if t := c.TLS; t != nil {
		if t.MinVersion < tls.VersionTLS13 || t.ClientAuth != tls.RequireAndVerifyClientCert {
			return c, errors.New("mllp: TLS config must require TLS 1.3 and verified client certificates")
		}
		if len(t.Certificates) == 0 && t.GetCertificate == nil && t.GetConfigForClient == nil {
			return c, errors.New("mllp: TLS config has no server certificate")
		}
	}
	if _, err := hl7.LookupCharset(c.DefaultCharset); err != nil {
		return c, errors.New("mllp: unsupported default charset")
	}
	return c, nil
}

func (c ServerConfig) parseOptions() []hl7.Option {
	opts := []hl7.Option{hl7.WithMaxSize(c.MaxMessageSize)}
	if c.Strict {
		opts = append(opts, hl7.WithStrict())
	}
	if c.DefaultCharset != "" {
		opts = append(opts, hl7.WithDefaultCharset(c.DefaultCharset))
	}
	return opts
}
