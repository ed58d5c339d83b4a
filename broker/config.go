package broker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/policy"
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

	// Policy is the access policy the broker enforces: its users, their
	// subject permissions, the inbox consumers, the idle timeout and the
	// stream retention are all derived from it (see package policy).
	// Exactly one of Policy and Machines must be set. [Broker.SetPolicy]
	// replaces it while running.
	Policy *policy.Policy

	// Machines is the policy-less demo mode: it lists the machine names
	// allowed to connect, and every machine may send any type to every
	// machine, with no idle logoff and no retention limit. Each name must
	// pass [subjects.CheckName]. Exactly one of Policy and Machines must
	// be set.
	//
	// Deprecated: set Policy, which grants only the flows a machine needs.
	Machines []string

	// KeyAdmins names the identities (certificate CN=<name>,O=phix) that
	// administer the wrapped-key registry: rewrap, grant and destroy data
	// keys (package registry). They are not machines: they may not send or
	// receive messages, only read and change registry entries and read
	// stored messages by sequence. A name may not also be a machine.
	KeyAdmins []string

	// StoreKeyFile is the file holding the key that encrypts the
	// JetStream store at rest (AES-256-GCM, under the sealed payloads). It
	// must be readable by its owner only ([keys.ErrInsecureFile]
	// otherwise); [New] creates it with a random key if it does not exist.
	// The key is never written to any configuration. Default
	// StoreDir/broker/jetstream.key.
	StoreKeyFile string

	// MonitorPort is the TCP port, on Host, of the HTTPS monitoring
	// endpoint: TLS 1.3 with a client certificate from TLS.ClientCAs, the
	// same as the client port. Zero means no monitoring endpoint;
	// [RandomPort] lets the kernel choose (see [Broker.MonitorURL]).
	MonitorPort int

	// Monitor, if set, serves every monitoring request that the broker's
	// own endpoints (/healthz, /readyz, /v1/enforced) do not, such as
	// /metrics. Requests reach it only over mutually authenticated TLS;
	// [PeerMachine] names the client.
	Monitor http.Handler

	// Audit configures the audit trail; the zero value is the default.
	Audit AuditConfig

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
	if c.StoreKeyFile == "" && c.StoreDir != "" {
		c.StoreKeyFile = filepath.Join(c.StoreDir, "broker", "jetstream.key")
	}
	c.Machines = append([]string(nil), c.Machines...)
	c.KeyAdmins = append([]string(nil), c.KeyAdmins...)

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
	case c.MonitorPort != RandomPort && (c.MonitorPort < 0 || c.MonitorPort > 65535):
		return fmt.Errorf("monitor port %d out of range", c.MonitorPort)
	}
	if err := checkTLS(c.TLS); err != nil {
		return err
	}
	if err := checkKeyAdmins(c); err != nil { // registry.go
		return err
	}
	switch {
	case c.Policy != nil && len(c.Machines) > 0:
		return errors.New("both policy and machines are set")
	case c.Policy != nil:
		return c.Policy.Validate()
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
