package broker

import (
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"

	"phix.dev/phix/internal/subjects"
)

// certOrg is the organization every machine certificate carries.
const certOrg = "phix"

// adminInbox is the reply prefix of the broker's own in-process
// connection. The underscore makes it an invalid machine name, so it can
// never equal some machine's [subjects.ReplyPrefix].
const adminInbox = "_INBOX._admin"

// userName is the nats user a machine's certificate maps to.
//
// With TLSMap, nats-server first tries e-mail, DNS and URI SANs as user
// names; machine certificates have none, so it parses the certificate's
// raw subject as an LDAP DN and compares it, attribute by attribute, with
// each user name parsed as a DN (see checkClientTLSCertSubject in
// nats-server/server/auth.go). A certificate issued for
// Subject{CommonName: name, Organization: ["phix"]} matches exactly
// "CN=name,O=phix"; a certificate with any extra attribute (OU, a second O)
// does not, because the DN comparison requires the same number of RDNs.
func userName(machine string) string {
	return "CN=" + machine + ",O=" + certOrg
}

// machineUser returns the nats user for machine, with no password: the
// verified client certificate is the only credential. Only standard (TCP)
// client connections may use it.
func machineUser(machine string) *server.User {
	return &server.User{
		Username:    userName(machine),
		Permissions: machinePermissions(machine),
		AllowedConnectionTypes: map[string]struct{}{
			jwt.ConnectionTypeStandard: {},
		},
	}
}

// machinePermissions is the demo least-privilege policy for machine m.
// Every list is an allow list, so everything not named is denied: other
// machines' subjects and inboxes, stream and consumer management, direct
// and API message gets, account info and every other JetStream API.
//
// The JetStream subjects are exactly what nats.go's jetstream package sends
// for Consumer (CONSUMER.INFO), Fetch/Messages/Next (CONSUMER.MSG.NEXT) and
// Ack/Nak/Term/InProgress (a publish on the message's $JS.ACK reply
// subject). A jetstream Publish is a plain request on the message subject
// and needs nothing else; its reply and every pulled message arrive under
// the machine's own reply prefix.
func machinePermissions(m string) *server.Permissions {
	stream, durable := subjects.MessageStream, subjects.InboxConsumer(m)
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			subjects.PublishFilter(m),
			subjects.Quarantine(m),
			"$JS.API.CONSUMER.INFO." + stream + "." + durable,
			"$JS.API.CONSUMER.MSG.NEXT." + stream + "." + durable,
			// v1 ack subjects: nats-server's js_ack_fc_v2 feature flag,
			// which would add domain and account tokens, stays off.
			"$JS.ACK." + stream + "." + durable + ".>",
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{
			subjects.ReplyPrefix(m) + ".>",
		}},
	}
}

// adminUser returns the nkey user of the broker's own in-process
// connection, which creates the streams and consumers. Its key lives only
// in memory and it may connect only in-process, so there is no admin
// credential on disk or on the network.
func adminUser(pub string) *server.NkeyUser {
	return &server.NkeyUser{
		Nkey: pub,
		Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"$JS.API.>"}},
			Subscribe: &server.SubjectPermission{Allow: []string{adminInbox + ".>"}},
		},
		AllowedConnectionTypes: map[string]struct{}{
			jwt.ConnectionTypeInProcess: {},
		},
	}
}
