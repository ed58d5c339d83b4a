package broker

import (
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/policy"
)

// Enforced is what a running broker enforces, for comparison with the
// policy file (`phix policy check`) and for the compliance self-test.
// Users and the idle timeout are what the broker last gave nats-server;
// consumers, streams and sessions are read live.
type Enforced struct {
	// Policy is the name (file) of the applied policy; "" in demo mode.
	Policy string `json:"policy"`

	// Users are the machine users exactly as given to nats-server.
	Users []policy.BrokerUser `json:"users"`

	// KeyAdmins are the key administrators of [Config].KeyAdmins, which
	// the policy does not list.
	KeyAdmins []policy.BrokerUser `json:"key_admins,omitempty"`

	// Consumers are the inbox consumers present in the message stream,
	// including those of machines no longer allowed to read them.
	Consumers []policy.InboxConsumer `json:"consumers"`

	Streams []StreamLimits `json:"streams"`

	// IdleTimeout is the automatic logoff timeout; zero means off.
	IdleTimeout policy.Duration `json:"idle_timeout"`

	// StoreCipher is the JetStream at-rest cipher: "aes" or "none".
	StoreCipher string `json:"store_cipher"`

	// MinTLSVersion is the lowest TLS version any listener accepts.
	MinTLSVersion string `json:"min_tls_version"`

	// TLSHandshakeFirst reports that the client port starts with the TLS
	// handshake, so nothing is sent in plaintext.
	TLSHandshakeFirst bool `json:"tls_handshake_first"`

	// ClientVerify reports that every client must present a certificate
	// chained to the configured CAs.
	ClientVerify bool `json:"client_verify"`

	Sessions []Session `json:"sessions"`
}

// StreamLimits is the retention of one stream.
type StreamLimits struct {
	Name   string          `json:"name"`
	MaxAge policy.Duration `json:"max_age"`
}

// Session is one live machine connection.
type Session struct {
	Machine      string    `json:"machine"`
	CID          uint64    `json:"cid"`
	TLSVersion   string    `json:"tls_version"`
	TLSFirst     bool      `json:"tls_first"`
	SPKISHA256   string    `json:"spki_sha256"` // of the client certificate's key
	CertSHA256   string    `json:"cert_sha256"`
	Start        time.Time `json:"start"`
	LastActivity time.Time `json:"last_activity"`
}

// Enforced reports what the broker enforces now. It returns [ErrClosed]
// before Start or after Close.
func (b *Broker) Enforced(ctx context.Context) (*Enforced, error) {
	a := b.currentAccess()
	b.mu.Lock()
	js := b.js
	b.mu.Unlock()
	if a == nil || js == nil || !b.running() {
		return nil, ErrClosed
	}
	users, admins := b.enforcedUsers(a)
	e := &Enforced{
		Users:             users,
		KeyAdmins:         admins,
		IdleTimeout:       policy.Duration(a.idle),
		StoreCipher:       "none",
		MinTLSVersion:     tls.VersionName(serverTLS(b.cfg.TLS).MinVersion),
		TLSHandshakeFirst: true,
		ClientVerify:      true,
		Sessions:          b.machineSessions(),
	}
	if a.policy != nil {
		e.Policy = a.policy.Name()
	}
	if b.storeKey != "" {
		e.StoreCipher = "aes"
	}
	var err error
	if e.Consumers, err = inboxConsumers(ctx, js); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	for _, name := range []string{subjects.MessageStream, subjects.QuarantineStream} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("broker: stream %s: %w", name, err)
		}
		cfg := s.CachedInfo().Config
		e.Streams = append(e.Streams, StreamLimits{Name: name, MaxAge: policy.Duration(cfg.MaxAge)})
	}
	return e, nil
}

// inboxConsumers lists the inbox consumers of the message stream.
func inboxConsumers(ctx context.Context, js jetstream.JetStream) ([]policy.InboxConsumer, error) {
	s, err := js.Stream(ctx, subjects.MessageStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", subjects.MessageStream, err)
	}
	var out []policy.InboxConsumer
	lister := s.ListConsumers(ctx)
	for ci := range lister.Info() {
		m, ok := strings.CutPrefix(ci.Name, subjects.InboxConsumer(""))
		if !ok {
			continue
		}
		out = append(out, policy.InboxConsumer{
			Machine: m, Stream: subjects.MessageStream, Durable: ci.Name,
			Filters: consumerFilters(ci.Config),
		})
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("listing consumers: %w", err)
	}
	slices.SortFunc(out, func(x, y policy.InboxConsumer) int { return strings.Compare(x.Machine, y.Machine) })
	return out, nil
}

// machineSessions lists the live machine connections.
func (b *Broker) machineSessions() []Session {
	var out []Session
	for _, ci := range b.sessions("") {
		m := machineOf(ci.AuthorizedUser)
		if m == "" {
			continue
		}
		s := Session{
			Machine: m, CID: ci.Cid, TLSVersion: ci.TLSVersion, TLSFirst: ci.TLSFirst,
			Start: ci.Start, LastActivity: ci.LastActivity,
		}
		if len(ci.TLSPeerCerts) > 0 {
			s.SPKISHA256 = ci.TLSPeerCerts[0].SubjectPKISha256
			s.CertSHA256 = ci.TLSPeerCerts[0].CertSha256
		}
		out = append(out, s)
	}
	return out
}

// enforcedUsers returns the users of a exactly as [Broker.serverOptions]
// gives them to nats-server, machines and key administrators apart, so
// that grants added outside package policy show up as drift.
func (b *Broker) enforcedUsers(a *access) (machines, admins []policy.BrokerUser) {
	for _, u := range b.serverOptions(a).Users {
		m := machineOf(u.Username)
		if m == "" || u.Permissions == nil {
			continue
		}
		bu := policy.BrokerUser{
			Machine:   m,
			Publish:   allowList(u.Permissions.Publish),
			Subscribe: allowList(u.Permissions.Subscribe),
		}
		if slices.Contains(b.cfg.KeyAdmins, m) {
			admins = append(admins, bu)
		} else {
			machines = append(machines, bu)
		}
	}
	return machines, admins
}

// allowList returns the subjects p allows; a deny-all permission allows
// none.
func allowList(p *server.SubjectPermission) []string {
	if p == nil {
		return nil
	}
	return slices.Clone(p.Allow)
}
