package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"phix.dev/phix/internal/subjects"
)

// Defaults applied by [New] to zero [Config] fields.
const (
	DefaultHost            = "127.0.0.1"
	DefaultPort            = 4222
	DefaultMaxPayload      = 9 << 20 // in bytes; above the largest envelope (8.5 MiB)
	DefaultDuplicateWindow = 2 * time.Minute

	// maxPayloadLimit is nats-server's hard ceiling for max_payload, in
	// bytes.
	maxPayloadLimit = 64 << 20
)

// RandomPort asks [New] to listen on a port chosen by the kernel; read the
// result from [Broker.ClientURL] after [Broker.Start].
const RandomPort = -1

// ErrInvalidConfig is returned (wrapped) by [New] when a [Config] field is
// missing or out of range.
var ErrInvalidConfig = errors.New("invalid config")

// Config configures a [Broker]. Zero values mean the documented defaults.
// [New] validates it once and keeps a copy, so changing a Config after New
// has no effect.
type Config struct {
	// StoreDir is the directory under which JetStream keeps its files on
	// disk; nats-server itself adds a "jetstream" subdirectory, so passing
	// the phix data folder yields DIR/jetstream. Required: there is no
	// default, because nats-server would otherwise fall back to a
	// temporary directory and PHI ciphertext would land there.
	StoreDir string

	// Host is the address to listen on. Default [DefaultHost].
	Host string

	// Port is the TCP port to listen on. Zero means [DefaultPort];
	// [RandomPort] (-1) lets the kernel choose.
	Port int

	// TLS is the server-side TLS configuration. It must contain the
	// broker's certificate (Certificates or GetCertificate) and the CA pool
	// that issued machine certificates (ClientCAs). Required. The broker
	// works on a clone and always enforces MinVersion TLS 1.3 and
	// tls.RequireAndVerifyClientCert, whatever the caller set; a
	// GetConfigForClient hook is refused because the config it returns
	// would bypass both.
	TLS *tls.Config

	// Machines lists the machine names allowed to connect. Each must pass
	// [subjects.CheckName]. A machine authenticates with a client
	// certificate whose subject is exactly CN=<name>,O=phix and gets the
	// least-privilege permissions described in the package documentation.
	// At least one machine is required: with no users nats-server would
	// admit any holder of a valid certificate with full permissions.
	Machines []string

	// Logger receives broker and nats-server events. Nil discards them.
	Logger *slog.Logger

	// MaxPayload is the largest message, in bytes, that clients may publish
	// and that the streams accept. Default [DefaultMaxPayload]; at most
	// 64 MiB.
	MaxPayload int

	// DuplicateWindow is how long PHIX_MSGS remembers Nats-Msg-Id headers
	// to drop duplicate publishes. Default [DefaultDuplicateWindow].
	DuplicateWindow time.Duration
}

// withDefaults returns a copy of c with defaults applied and validated.
func (c Config) withDefaults() (Config, error) {
	if c.Host == "" {
		c.Host = DefaultHost
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Machines = append([]string(nil), c.Machines...)

	if err := c.validate(); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return c, nil
}

func (c *Config) validate() error {
	switch {
	case c.StoreDir == "":
		return errors.New("store dir is required")
	case c.Port != RandomPort && (c.Port < 1 || c.Port > 65535):
		return fmt.Errorf("port %d out of range", c.Port)
	case c.MaxPayload < 0 || c.MaxPayload > maxPayloadLimit:
		return fmt.Errorf("max payload %d out of range 1..%d", c.MaxPayload, maxPayloadLimit)
	case c.DuplicateWindow < 0:
		return fmt.Errorf("negative duplicate window %s", c.DuplicateWindow)
	}
	if err := checkTLS(c.TLS); err != nil {
		return err
	}
	return checkMachines(c.Machines)
}

func checkTLS(t *tls.Config) error {
	switch {
	case t == nil:
		return errors.New("tls config is required")
	case t.GetConfigForClient != nil:
		// The config it returns would replace the enforced settings below.
		return errors.New("tls GetConfigForClient is not supported")
	case len(t.Certificates) == 0 && t.GetCertificate == nil:
		return errors.New("tls config has no server certificate")
	case t.ClientCAs == nil:
		// Nil would make crypto/tls verify clients against system roots.
		return errors.New("tls config has no client CAs")
	case t.MaxVersion != 0 && t.MaxVersion < tls.VersionTLS13:
		return errors.New("tls max version is below TLS 1.3")
	}
	return nil
}

func checkMachines(names []string) error {
	if len(names) == 0 {
		return errors.New("no machines")
	}
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if err := subjects.CheckName(n); err != nil {
			return fmt.Errorf("machine: %v", err)
		}
		if seen[n] {
			return fmt.Errorf("duplicate machine %q", n)
		}
		seen[n] = true
	}
	return nil
}

// serverTLS returns the clone of t that the server uses, with the
// non-negotiable settings forced: TLS 1.3 only, and a client certificate
// chained to ClientCAs on every connection, since the certificate is the
// only credential a machine has.
func serverTLS(t *tls.Config) *tls.Config {
	s := t.Clone()
	s.MinVersion = tls.VersionTLS13
	s.ClientAuth = tls.RequireAndVerifyClientCert
	return s
}

// quarantineHeadroom is how many bytes of headers, beyond MaxPayload, a
// quarantined copy of a message may carry.
const quarantineHeadroom = 64 << 10
