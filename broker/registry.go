package broker

import (
	"fmt"
	"slices"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/policy"
)

// This file holds the broker's side of the wrapped-key registry (package
// registry): the bucket's stream, the registry subjects each machine may
// use, and the key administrators.

// registryStreamConfig returns the stream of the [subjects.DataKeyBucket]
// key-value bucket. It is what nats.go's CreateKeyValue would make, with
// one difference: DenyDelete is off, so that the key administrator can
// overwrite a destroyed key's stored copies (a secure delete) rather than
// only hide them behind a purge marker. Entries never expire: a wrapped
// key must outlive every message sealed under its data key.
func registryStreamConfig(maxPayload int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              subjects.DataKeyStream,
		Description:       "phix wrapped data keys, one per sender, data key and reader",
		Subjects:          []string{subjects.DataKeyPrefix + ".>"},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: 1,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxConsumers:      -1,
		MaxMsgSize:        int32(min(maxPayload, 64<<10)),
		Discard:           jetstream.DiscardNew,
		Duplicates:        DefaultDuplicateWindow,
		AllowRollup:       true,
		AllowDirect:       true,
		DenyDelete:        false,
		DenyPurge:         false,
		Replicas:          1,
	}
}

// withRegistry returns u with the registry subjects it needs added to its
// publish permissions: to store data keys it wrapped for the recipients it
// may send to (under its own name as sender only), and to fetch, by direct
// get, the keys wrapped for itself (entries ending in its own name only).
// A recipient token "*" in u's message subjects (the demo mode, which may
// send to everyone) stands for each of machines, so that the wildcard can
// never reach the registry's record keys.
func withRegistry(u policy.BrokerUser, machines []string) policy.BrokerUser {
	var recipients []string
	for _, s := range u.Publish {
		if r, ok := sendsTo(u.Machine, s); ok {
			if r == "*" {
				recipients = append(recipients, machines...)
			} else {
				recipients = append(recipients, r)
			}
		}
	}
	slices.Sort(recipients)
	pub := slices.Clone(u.Publish)
	for _, r := range slices.Compact(recipients) {
		pub = append(pub, subjects.DataKeyWriteFilter(u.Machine, r))
	}
	u.Publish = append(pub, subjects.DataKeyReadFilter(u.Machine))
	return u
}

// sendsTo reports the recipient token of a message subject pattern that
// sender may publish on: phix.msg.<sender>.<recipient>.<type>.
func sendsTo(sender, pattern string) (string, bool) {
	if pattern == subjects.PublishFilter(sender) {
		return "*", true
	}
	s, r, _, ok := subjects.ParseMessage(pattern)
	return r, ok && s == sender
}

// keyAdminPermissions are those of a key administrator (see
// [Config].KeyAdmins): read, write, replace and erase registry entries,
// and read stored messages by sequence to find their data keys. It may not
// create consumers, touch any other stream, or publish messages.
func keyAdminPermissions(m string) *server.Permissions {
	reg, msgs := subjects.DataKeyStream, subjects.MessageStream
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			subjects.DataKeyPrefix + ".>",
			"$JS.API.STREAM.INFO." + reg,
			"$JS.API.STREAM.MSG.GET." + reg,
			"$JS.API.STREAM.MSG.DELETE." + reg,
			"$JS.API.DIRECT.GET." + reg,
			"$JS.API.DIRECT.GET." + reg + ".>",
			"$JS.API.STREAM.INFO." + msgs,
			"$JS.API.STREAM.MSG.GET." + msgs,
			"$JS.API.DIRECT.GET." + msgs,
			"$JS.API.DIRECT.GET." + msgs + ".>",
			// Every key operation is put on the audit trail under the
			// administrator's own name.
			subjects.AuditReport(m),
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{subjects.ReplyPrefix(m) + ".>"}},
	}
}

// keyAdminUsers returns the nats users of the key administrators.
func keyAdminUsers(names []string) []*server.User {
	var users []*server.User
	for _, n := range names {
		users = append(users, &server.User{
			Username:    userName(n),
			Permissions: keyAdminPermissions(n),
			AllowedConnectionTypes: map[string]struct{}{
				jwt.ConnectionTypeStandard: {},
			},
		})
	}
	return users
}

// checkKeyAdmins checks that key administrators have valid names that no
// machine has: one certificate is one identity with one set of rights.
func checkKeyAdmins(c *Config) error {
	machines := c.Machines
	if c.Policy != nil {
		for _, m := range c.Policy.Machines {
			machines = append(machines, m.Name)
		}
	}
	seen := make(map[string]bool)
	for _, n := range c.KeyAdmins {
		if err := subjects.CheckName(n); err != nil {
			return fmt.Errorf("key admin: %v", err)
		}
		if seen[n] || slices.Contains(machines, n) {
			return fmt.Errorf("key admin %q is listed twice or is also a machine", n)
		}
		seen[n] = true
	}
	return nil
}
