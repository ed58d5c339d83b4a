package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/policy"
)

// access is everything the broker enforces, derived from a policy (or,
// in the deprecated demo mode, from a list of machines). It is replaced
// as a whole, never modified.
type access struct {
	policy    *policy.Policy // nil in demo mode
	users     []policy.BrokerUser
	consumers []policy.InboxConsumer
	idle      time.Duration // zero: no automatic logoff
	retention policy.Retention
}

// accessFrom derives the access of c's policy or machines.
func accessFrom(c Config) *access {
	if c.Policy != nil {
		return policyAccess(c.Policy)
	}
	return demoAccess(c.Machines)
}

func policyAccess(p *policy.Policy) *access {
	return &access{
		policy:    p,
		users:     p.BrokerUsers(),
		consumers: p.InboxConsumers(),
		idle:      p.Sessions.IdleTimeout.D(),
		retention: p.Retention,
	}
}

// demoAccess lets every machine send anything to every machine: the
// broker's behaviour before policies, kept for [Config].Machines.
func demoAccess(machines []string) *access {
	a := &access{}
	for _, m := range machines {
		stream, durable := subjects.MessageStream, subjects.InboxConsumer(m)
		pub := []string{
			"$JS.ACK." + stream + "." + durable + ".>",
			"$JS.API.CONSUMER.INFO." + stream + "." + durable,
			"$JS.API.CONSUMER.MSG.NEXT." + stream + "." + durable,
			subjects.PublishFilter(m),
			subjects.Quarantine(m),
			subjects.AuditReport(m),
		}
		a.users = append(a.users, policy.BrokerUser{
			Machine:   m,
			Publish:   pub,
			Subscribe: []string{subjects.ReplyPrefix(m) + ".>"},
		})
		a.consumers = append(a.consumers, policy.InboxConsumer{
			Machine: m,
			Stream:  stream,
			Durable: durable,
			Filters: []string{subjects.InboxFilter(m)},
		})
	}
	return a
}

// machines returns the names of a's users.
func (a *access) machines() []string {
	out := make([]string, len(a.users))
	for i, u := range a.users {
		out[i] = u.Machine
	}
	return out
}

// serverUsers returns the nats users of a.
func (a *access) serverUsers() []*server.User {
	users := make([]*server.User, 0, len(a.users))
	for _, u := range a.users {
		users = append(users, machineUser(withRegistry(u, a.machines()))) // registry.go
	}
	return users
}

// ErrNoPolicy is returned by [Broker.Revoke] when the broker runs in the
// policy-less demo mode of [Config].Machines.
var ErrNoPolicy = errors.New("broker: no policy")

// SetPolicy makes the running broker enforce p instead of its current
// policy, without a restart: users, permissions, inbox consumers, the idle
// timeout and stream retention all change at once. Live sessions of
// machines that p revokes or no longer lists are closed at once; live
// sessions of the others continue under their new permissions. On error
// the broker may have applied part of p; call SetPolicy again.
//
// It returns [ErrClosed] before Start or after Close, and an error
// wrapping policy.ErrInvalid if p does not validate.
func (b *Broker) SetPolicy(ctx context.Context, p *policy.Policy) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	b.reloadMu.Lock()
	defer b.reloadMu.Unlock()
	if !b.running() {
		return ErrClosed
	}

	old, next := b.currentAccess(), policyAccess(p)
	// The sessions to cut off are listed before the reload, which closes
	// them itself as their users disappear.
	doomed := b.doomedSessions(old, next)
	if err := b.srv.ReloadOptions(b.serverOptions(next)); err != nil {
		return fmt.Errorf("broker: reloading permissions: %v", err)
	}
	b.mu.Lock()
	b.acc = next
	b.mu.Unlock()
	select {
	case b.policyChanged <- struct{}{}:
	default:
	}

	b.cutOff(ctx, next, doomed)
	if err := b.provisionAccess(ctx, next); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	b.auditPolicy(ctx, p)
	b.log.LogAttrs(ctx, slog.LevelInfo, "policy applied",
		slog.String("policy", p.Name()),
		slog.Int("machines", len(next.users)),
		slog.Duration("idle_timeout", next.idle))
	return nil
}

// Revoke cuts machine off at once: it applies the current policy with
// machine marked revoked for reason, which removes its broker user and
// closes its live sessions. The policy file is not changed; to make the
// revocation survive a restart, revoke in the file too (policy.RevokeFile),
// or `phix policy check` reports the difference. Revoke returns
// [ErrNoPolicy] in demo mode and policy.ErrUnknownMachine for a machine
// the policy does not list.
func (b *Broker) Revoke(ctx context.Context, machine, reason string) error {
	cur := b.currentAccess()
	if cur == nil || cur.policy == nil {
		return ErrNoPolicy
	}
	data, err := cur.policy.Marshal()
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	data, err = policy.Revoke(data, machine, reason, time.Now())
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	p, err := policy.Parse(cur.policy.Name(), data)
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	return b.SetPolicy(ctx, p)
}

// doomedSessions returns, by machine, the live sessions of every machine
// that old admits and next does not.
func (b *Broker) doomedSessions(old, next *access) map[string][]*server.ConnInfo {
	keep := next.machines()
	doomed := make(map[string][]*server.ConnInfo)
	for _, m := range old.machines() {
		if !slices.Contains(keep, m) {
			doomed[m] = b.sessions(userName(m))
		}
	}
	return doomed
}

// cutOff closes the sessions in doomed and records why. nats-server
// closes them itself when their user disappears on reload; closing them
// again makes it certain, and the events name the machine and reason.
func (b *Broker) cutOff(ctx context.Context, next *access, doomed map[string][]*server.ConnInfo) {
	for _, m := range slices.Sorted(maps.Keys(doomed)) {
		reason := "removed from policy"
		if next.policy != nil && next.policy.Revoked(m) {
			reason = "revoked"
		}
		for _, ci := range doomed[m] {
			b.srv.DisconnectClientByID(ci.Cid) // gone already if the reload closed it
			b.logSessionClosed(ctx, m, ci, reason)
		}
		b.log.LogAttrs(ctx, slog.LevelWarn, "machine cut off",
			slog.String("machine", m),
			slog.String("reason", reason),
			slog.Int("sessions_closed", len(doomed[m])))
	}
}

// logSessionClosed records that the broker closed a machine's session.
func (b *Broker) logSessionClosed(ctx context.Context, machine string, ci *server.ConnInfo,
	reason string) {
	b.auditSessionClosed(ctx, machine, ci, reason)
	b.log.LogAttrs(ctx, slog.LevelInfo, "session closed",
		slog.String("machine", machine),
		slog.Uint64("cid", ci.Cid),
		slog.String("reason", reason),
		slog.Duration("idle", time.Since(ci.LastActivity).Round(time.Millisecond)))
}

// sessions returns the open client connections of nats user user, or of
// every user when user is "".
func (b *Broker) sessions(user string) []*server.ConnInfo {
	var out []*server.ConnInfo
	for offset := 0; ; {
		cz, err := b.srv.Connz(&server.ConnzOptions{
			Username: true,
			User:     user,
			State:    server.ConnOpen,
			Offset:   offset,
			Limit:    server.DefaultConnListSize,
		})
		if err != nil || len(cz.Conns) == 0 {
			return out
		}
		out = append(out, cz.Conns...)
		offset += len(cz.Conns)
		if offset >= cz.Total {
			return out
		}
	}
}

func (b *Broker) currentAccess() *access {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.acc
}

// running reports whether Start has succeeded and Close not begun.
func (b *Broker) running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ready && !b.closed
}
