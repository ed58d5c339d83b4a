package broker

import (
	"crypto/tls"
	"time"

	"github.com/nats-io/nats.go"

	"phix.dev/phix/internal/subjects"
)

// ClientReconnectWait is how long a machine's client waits between
// reconnect attempts.
const ClientReconnectWait = 250 * time.Millisecond

// ClientOptions returns the nats.go options a machine's connection to a
// phix broker needs, with tc its client TLS configuration (see
// identity.Machine.TLSConfig):
//
//   - TLS before anything else (nats.TLSHandshakeFirst), because the
//     broker sends nothing in plaintext, not even its INFO line;
//   - the machine's own reply prefix, the only subjects it may subscribe to;
//   - unlimited reconnects, so a session closed by automatic logoff
//     comes back, with a new handshake and authorization, without the
//     application noticing. A machine whose authorization fails twice in
//     a row (revoked, or its certificate refused) stops trying and its
//     connection closes.
//
// Callers may append options; later options override earlier ones.
func ClientOptions(machine string, tc *tls.Config) []nats.Option {
	return []nats.Option{
		nats.Name(machine),
		nats.Secure(tc),
		nats.TLSHandshakeFirst(),
		nats.CustomInboxPrefix(subjects.ReplyPrefix(machine)),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(ClientReconnectWait),
	}
}
