package policy

import (
	"errors"
	"fmt"
	"slices"

	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/internal/vaultpolicy"
)

// ErrNotAllowed is wrapped by the error of [Policy.Allow]'s function when
// the policy has no flow for a sender, recipient and type.
var ErrNotAllowed = errors.New("policy: flow not allowed")

// BrokerUser is the broker account of one machine: the subjects it may
// publish and subscribe to. Every list is an allow list, sorted, with no
// repeats; everything else is denied.
type BrokerUser struct {
	Machine   string
	Publish   []string
	Subscribe []string
}

// InboxConsumer is the durable JetStream pull consumer through which a
// recipient reads: on Stream, named Durable, delivering only subjects
// matching one of Filters (sorted).
type InboxConsumer struct {
	Machine string
	Stream  string
	Durable string
	Filters []string
}

// Active returns the names of the machines that are not revoked, in
// policy order.
func (p *Policy) Active() []string {
	var out []string
	for _, m := range p.Machines {
		if m.Revoked == nil {
			out = append(out, m.Name)
		}
	}
	return out
}

// Revoked reports whether machine is listed and revoked.
func (p *Policy) Revoked(machine string) bool {
	m := p.Machine(machine)
	return m != nil && m.Revoked != nil
}

// Machine returns the machine named name, or nil.
func (p *Policy) Machine(name string) *Machine {
	for i := range p.Machines {
		if p.Machines[i].Name == name {
			return &p.Machines[i]
		}
	}
	return nil
}

// IsAuditor reports whether machine is an active auditor.
func (p *Policy) IsAuditor(machine string) bool {
	return slices.Contains(p.Auditors, machine) && p.active(machine)
}

func (p *Policy) active(machine string) bool {
	m := p.Machine(machine)
	return m != nil && m.Revoked == nil
}

// route is one allowed (sender, recipient, type) triple.
type route struct{ from, to, typ string }

// routes returns every allowed triple between active machines.
func (p *Policy) routes() []route {
	var rs []route
	for _, f := range p.Flows {
		if !p.active(f.From) {
			continue
		}
		for _, to := range f.To {
			if !p.active(to) {
				continue
			}
			for _, typ := range f.Types {
				rs = append(rs, route{f.From, to, typ})
			}
		}
	}
	return rs
}

// Allowed reports whether sender may send a message of type typ to
// recipient.
func (p *Policy) Allowed(sender, recipient, typ string) bool {
	return slices.Contains(p.routes(), route{sender, recipient, typ})
}

// Allow returns a check for producer.Config.Allow: it refuses, with an
// error wrapping [ErrNotAllowed], any recipient and type the policy does
// not let sender send, so the producer stops before sealing anything.
func (p *Policy) Allow(sender string) func(recipient, typ string) error {
	allowed := make(map[route]bool)
	for _, r := range p.routes() {
		if r.from == sender {
			allowed[r] = true
		}
	}
	return func(recipient, typ string) error {
		if allowed[route{sender, recipient, typ}] {
			return nil
		}
		return fmt.Errorf("%w: %s may not send %s messages to %s",
			ErrNotAllowed, sender, typ, recipient)
	}
}

// BrokerUsers returns the broker account of every active machine, in
// policy order. Revoked machines have none, so they cannot connect.
//
// The JetStream API subjects are exactly what nats.go's jetstream package
// sends: Consumer (CONSUMER.INFO), Fetch/Messages/Next
// (CONSUMER.MSG.NEXT), Ack/Nak/Term/InProgress (a publish on the
// message's $JS.ACK reply subject, v1 form: the js_ack_fc_v2 feature
// flag, which adds domain and account tokens, stays off), the
// wrapped-key registry (storing keys under its own name as sender for its
// recipients, fetching by direct get the keys wrapped for itself), and for
// auditors Stream (STREAM.INFO) and GetMsg (STREAM.MSG.GET, or
// DIRECT.GET when a stream allows direct gets). A jetstream Publish is a
// plain request on the message subject; its reply and every pulled
// message arrive under the machine's own reply prefix, the only thing it
// may subscribe to.
func (p *Policy) BrokerUsers() []BrokerUser {
	var users []BrokerUser
	routes := p.routes()
	for _, m := range p.Active() {
		var pub []string
		receives := false
		for _, r := range routes {
			if r.from == m {
				pub = append(pub, subjects.Message(r.from, r.to, r.typ),
					// Store the data keys it wraps for that recipient.
					subjects.DataKeyWriteFilter(r.from, r.to))
			}
			receives = receives || r.to == m
		}
		// Fetch the data keys wrapped for it, and only those.
		pub = append(pub, subjects.DataKeyReadFilter(m))
		if receives {
			pub = append(pub, inboxSubjects(m)...)
		}
		// Every machine reports its own audit events, on its own subject
		// only, so the subject authenticates the reporter.
		pub = append(pub, subjects.AuditReport(m))
		if p.IsAuditor(m) {
			pub = append(pub, auditorSubjects(m)...)
		}
		slices.Sort(pub)
		sub := []string{subjects.ReplyPrefix(m) + ".>"}
		if p.IsAuditor(m) {
			// Auditors watch the anomaly alerts of the monitoring.
			sub = append(sub, subjects.Alerts)
		}
		slices.Sort(sub)
		users = append(users, BrokerUser{
			Machine:   m,
			Publish:   slices.Compact(pub),
			Subscribe: sub,
		})
	}
	return users
}

// inboxSubjects are what a recipient publishes to read and quarantine.
func inboxSubjects(m string) []string {
	stream, durable := subjects.MessageStream, subjects.InboxConsumer(m)
	return []string{
		subjects.Quarantine(m),
		"$JS.API.CONSUMER.INFO." + stream + "." + durable,
		"$JS.API.CONSUMER.MSG.NEXT." + stream + "." + durable,
		"$JS.ACK." + stream + "." + durable + ".>",
	}
}

// auditorSubjects give read-only access, by sequence, to the message,
// quarantine and audit streams, and the subject on which an auditor asks
// the broker to list, show, release or drop quarantined messages (each
// request audited by the broker). Creating consumers is not granted: a
// push consumer could deliver to another machine's inbox.
func auditorSubjects(m string) []string {
	out := []string{subjects.QuarantineAdmin(m)}
	for _, s := range []string{subjects.MessageStream, subjects.QuarantineStream, subjects.AuditStream} {
		out = append(out,
			"$JS.API.STREAM.INFO."+s,
			"$JS.API.STREAM.MSG.GET."+s,
			"$JS.API.DIRECT.GET."+s,
			"$JS.API.DIRECT.GET."+s+".>")
	}
	return out
}

// InboxConsumers returns the inbox consumer of every active machine that
// receives at least one flow, in policy order. Each filter lists exactly
// the subjects of the flows addressed to that machine, so even a message
// stored on some other subject could not be delivered to it.
func (p *Policy) InboxConsumers() []InboxConsumer {
	var out []InboxConsumer
	routes := p.routes()
	for _, m := range p.Active() {
		var filters []string
		for _, r := range routes {
			if r.to == m {
				filters = append(filters, subjects.Message(r.from, r.to, r.typ))
			}
		}
		if len(filters) == 0 {
			continue
		}
		slices.Sort(filters)
		out = append(out, InboxConsumer{
			Machine: m,
			Stream:  subjects.MessageStream,
			Durable: subjects.InboxConsumer(m),
			Filters: slices.Compact(filters),
		})
	}
	return out
}

// VaultFlows returns the flows for vaultpolicy.Policy and
// keys.VaultAdmin.Provision: one per active sender, with every active
// recipient it may send any type to. Vault grants by recipient, not type.
func (p *Policy) VaultFlows() []vaultpolicy.Flow {
	var out []vaultpolicy.Flow
	routes := p.routes()
	for _, m := range p.Active() {
		var rs []string
		for _, r := range routes {
			if r.from == m {
				rs = append(rs, r.to)
			}
		}
		if len(rs) == 0 {
			continue
		}
		slices.Sort(rs)
		out = append(out, vaultpolicy.Flow{Sender: m, Recipients: slices.Compact(rs)})
	}
	return out
}

// VaultPolicies returns the Vault ACL policy text of every active machine
// for a transit engine at mount, by machine name (see
// vaultpolicy.Policy).
func (p *Policy) VaultPolicies(mount string) (map[string]string, error) {
	flows := p.VaultFlows()
	out := make(map[string]string)
	for _, m := range p.Active() {
		text, err := vaultpolicy.Policy(mount, m, flows)
		if err != nil {
			return nil, fmt.Errorf("policy: %v", err)
		}
		out[m] = text
	}
	return out, nil
}
