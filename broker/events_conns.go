package broker

import (
	"context"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"phix.dev/phix/audit"
)

// authFailures are the close reasons nats-server gives a client that did
// not get through the TLS handshake or authorization.
var authFailures = map[string]bool{
	server.AuthenticationViolation.String(): true,
	server.TLSHandshakeError.String():       true,
	server.AuthenticationTimeout.String():   true,
}

// connTracker turns snapshots of nats-server's open and recently closed
// connections into connect, disconnect and auth-failure records.
type connTracker struct {
	open   map[uint64]*server.ConnInfo // machine connections recorded as open
	closed map[uint64]bool             // closed connections already recorded
}

// collectConnEvents polls connections and records their events, and
// records the permission violations nats-server logs, until ctx ends.
func (b *Broker) collectConnEvents(ctx context.Context) {
	every := b.cfg.Audit.ConnPollInterval
	if every <= 0 {
		every = DefaultConnPollInterval
	}
	t := &connTracker{open: map[uint64]*server.ConnInfo{}, closed: map[uint64]bool{}}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		b.recordAll(ctx, t.poll(b.srv))
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case v := <-b.ev.violations:
			b.recordAll(ctx, t.poll(b.srv))
			b.auditEvent(ctx, t.violation(b.srv, v))
		}
	}
}

func (b *Broker) recordAll(ctx context.Context, recs []audit.Record) {
	for _, r := range recs {
		b.auditEvent(ctx, r)
	}
}

// connections returns every connection in state, in pages.
func connections(srv *server.Server, state server.ConnState) []*server.ConnInfo {
	var out []*server.ConnInfo
	for offset := 0; ; {
		cz, err := srv.Connz(&server.ConnzOptions{
			Username: true, State: state, Offset: offset, Limit: server.DefaultConnListSize,
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

func (t *connTracker) poll(srv *server.Server) []audit.Record {
	var recs []audit.Record
	open := map[uint64]bool{}
	for _, ci := range connections(srv, server.ConnOpen) {
		m := machineOf(ci.AuthorizedUser)
		if m == "" {
			continue // the broker's own in-process connections
		}
		open[ci.Cid] = true
		if t.open[ci.Cid] == nil {
			t.open[ci.Cid] = ci
			recs = append(recs, connectRecord(m, ci))
		}
	}
	seen := map[uint64]bool{}
	for _, ci := range connections(srv, server.ConnClosed) {
		seen[ci.Cid] = true
		if t.closed[ci.Cid] {
			continue
		}
		recs = append(recs, t.closedRecords(ci)...)
	}
	// The closed ring buffer forgets old connections; only those still in
	// it need remembering.
	t.closed = seen
	for cid, ci := range t.open {
		if !open[cid] && !seen[cid] {
			delete(t.open, cid)
			recs = append(recs, audit.Record{
				Kind: audit.KindDisconnect, Actor: machineOf(ci.AuthorizedUser), Outcome: audit.OutcomeOK,
				ConnID: cid, Remote: remote(ci), Reason: "unknown",
			})
		}
	}
	return recs
}

func (t *connTracker) closedRecords(ci *server.ConnInfo) []audit.Record {
	if authFailures[ci.Reason] {
		rec := audit.Record{
			Kind: audit.KindAuthFailure, Outcome: audit.OutcomeRefused, Reason: ci.Reason,
			ConnID: ci.Cid, Remote: remote(ci), At: ci.Start.UTC(),
		}
		if len(ci.TLSPeerCerts) > 0 {
			rec.Detail = "certificate " + ci.TLSPeerCerts[0].Subject
		}
		return []audit.Record{rec}
	}
	m := machineOf(ci.AuthorizedUser)
	if m == "" {
		return nil
	}
	var recs []audit.Record
	if t.open[ci.Cid] == nil {
		// Opened and closed between two polls.
		recs = append(recs, connectRecord(m, ci))
	}
	delete(t.open, ci.Cid)
	rec := audit.Record{
		Kind: audit.KindDisconnect, Actor: m, Outcome: audit.OutcomeOK, Reason: ci.Reason,
		ConnID: ci.Cid, Remote: remote(ci),
	}
	if ci.Stop != nil {
		rec.At = ci.Stop.UTC()
	}
	return append(recs, rec)
}

func connectRecord(machine string, ci *server.ConnInfo) audit.Record {
	return audit.Record{
		Kind: audit.KindConnect, Actor: machine, Outcome: audit.OutcomeOK,
		ConnID: ci.Cid, Remote: remote(ci), Detail: "tls " + ci.TLSVersion, At: ci.Start.UTC(),
	}
}

// violation turns a logged violation into a record, naming the machine
// of the connection.
func (t *connTracker) violation(srv *server.Server, v violation) audit.Record {
	rec := audit.Record{
		Kind: audit.KindPermissionRefusal, Outcome: audit.OutcomeRefused, Action: v.action,
		Subject: v.subject, ConnID: v.cid,
	}
	if ci := t.open[v.cid]; ci != nil {
		rec.Actor, rec.Remote = machineOf(ci.AuthorizedUser), remote(ci)
		return rec
	}
	cz, err := srv.Connz(&server.ConnzOptions{CID: v.cid, Username: true, State: server.ConnAll})
	if err == nil && len(cz.Conns) == 1 {
		rec.Actor, rec.Remote = machineOf(cz.Conns[0].AuthorizedUser), remote(cz.Conns[0])
	}
	return rec
}
