package broker

import (
	"context"
	"time"
)

// Bounds on how often the idle sweep runs, whatever the timeout: a
// session is closed at most a quarter of the timeout (and at most
// maxIdleSweep) after it became idle for too long.
const (
	minIdleSweep = 100 * time.Millisecond
	maxIdleSweep = 30 * time.Second
)

// idleSweep returns the sweep interval for idle timeout d.
func idleSweep(d time.Duration) time.Duration {
	return min(max(d/4, minIdleSweep), maxIdleSweep)
}

// runIdleLogoff closes machine sessions that have been idle for longer
// than the current idle timeout (automatic logoff, 45 CFR
// 164.312(a)(2)(iii)) until ctx ends. Activity is what nats-server counts
// as such: a publish (including a pull request or an ack) or a delivery
// to the client; PINGs are not activity. A client that reconnects starts a
// new session, with a new TLS handshake and a fresh authorization.
func (b *Broker) runIdleLogoff(ctx context.Context) {
	for {
		a := b.currentAccess()
		wait := maxIdleSweep
		if a != nil && a.idle > 0 {
			wait = idleSweep(a.idle)
			b.closeIdle(ctx, a.idle)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-b.policyChanged:
			// A new timeout takes effect now, not after the old interval.
		case <-t.C:
		}
		t.Stop()
	}
}

// closeIdle closes every machine session idle for longer than timeout.
func (b *Broker) closeIdle(ctx context.Context, timeout time.Duration) {
	now := time.Now()
	for _, ci := range b.sessions("") {
		m := machineOf(ci.AuthorizedUser)
		if m == "" || now.Sub(ci.LastActivity) <= timeout {
			continue
		}
		if err := b.srv.DisconnectClientByID(ci.Cid); err != nil {
			continue // gone already
		}
		b.logSessionClosed(ctx, m, ci, "idle timeout")
	}
}
