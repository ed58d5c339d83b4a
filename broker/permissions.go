package broker

import (
	"slices"
	"strings"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"

	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/policy"
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

// machineUser returns the nats user for u, with no password: the
// verified client certificate is the only credential. Only standard (TCP)
// client connections may use it. Every list is an allow list, so
// everything not named is denied: other machines' subjects and inboxes,
// stream and consumer management, message gets (except for auditors),
// account info and every other JetStream API. The subjects themselves are
// derived by package policy (see policy.Policy.BrokerUsers).
func machineUser(u policy.BrokerUser) *server.User {
	return &server.User{
		Username: userName(u.Machine),
		Permissions: &server.Permissions{
			Publish:   allowOnly(u.Publish),
			Subscribe: allowOnly(u.Subscribe),
		},
		AllowedConnectionTypes: map[string]struct{}{
			jwt.ConnectionTypeStandard: {},
		},
	}
}

// allowOnly returns a permission allowing exactly subjects. To
// nats-server an empty allow list means no restriction at all, so a
// machine with nothing to publish (a pure recipient that receives no
// flow, say) gets an explicit deny of everything instead.
func allowOnly(subjects []string) *server.SubjectPermission {
	if len(subjects) == 0 {
		return &server.SubjectPermission{Deny: []string{">"}}
	}
	allow := slices.Clone(subjects)
	slices.Sort(allow)
	return &server.SubjectPermission{Allow: slices.Compact(allow)}
}

// machineOf returns the machine of nats user name, or "" if name is not a
// machine user.
func machineOf(user string) string {
	rest, ok := strings.CutPrefix(user, "CN=")
	if !ok {
		return ""
	}
	m, ok := strings.CutSuffix(rest, ",O="+certOrg)
	if !ok || !subjects.ValidName(m) {
		return ""
	}
	return m
}

// adminUser returns the nkey user of the broker's own in-process
// connection, which creates the streams and consumers. Its key lives only
// in memory and it may connect only in-process, so there is no admin
// credential on disk or on the network.
func adminUser(pub string) *server.NkeyUser {
	return &server.NkeyUser{
		Nkey: pub,
		Permissions: withAuditAdmin(&server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"$JS.API.>"}},
			Subscribe: &server.SubjectPermission{Allow: []string{adminInbox + ".>"}},
		}),
		AllowedConnectionTypes: map[string]struct{}{
			jwt.ConnectionTypeInProcess: {},
		},
	}
}
