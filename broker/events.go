package broker

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/audit"
	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/policy"
	"phix.dev/phix/quarantine"
)

// DefaultConnPollInterval is how often, by default, the broker looks for
// connections opened and closed since it last looked.
const DefaultConnPollInterval = 500 * time.Millisecond

// AuditConfig configures the broker's audit trail (see package audit).
// Zero values select the defaults of audit.WriterConfig.
type AuditConfig struct {
	// KeyDir holds the audit signing key (audit.KeyFile, 0600) and its
	// public key (audit.PublicKeyFile); the key is created on first
	// start. Default StoreDir/broker.
	KeyDir string

	HeartbeatInterval  time.Duration
	CheckpointInterval time.Duration
	CheckpointRecords  int

	// ConnPollInterval is how often connection events are collected.
	// Default [DefaultConnPollInterval].
	ConnPollInterval time.Duration

	// OnRecord, if set, sees every record once stored, for real-time
	// monitoring. It must not block.
	OnRecord func(audit.Record)
}

// violationBuffer is how many permission violations may wait to be
// recorded; beyond that they are counted and dropped, so a flood of
// refusals cannot stall nats-server's logging.
const violationBuffer = 1024

// events is the broker's audit wiring: the audit writer and what feeds
// it from nats-server.
type events struct {
	violations chan violation

	mu      sync.Mutex // guards w, nc, dropped
	w       *audit.Writer
	nc      *nats.Conn
	dropped uint64 // violations not recorded because the buffer was full

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// violation is a permission refusal as nats-server logged it.
type violation struct {
	cid     uint64
	action  string // "publish" or "subscribe"
	subject string
}

// watchViolations returns l wrapped so that nats-server's permission
// violation log lines also become audit records. nats-server reports
// violations only through its logger; the connection ID in the line is
// resolved to a machine by the broker, never taken from client-chosen
// text such as the connection name.
func (b *Broker) watchViolations(l server.Logger) server.Logger {
	b.ev = &events{violations: make(chan violation, violationBuffer)}
	return &eventLogger{Logger: l, ev: b.ev}
}

type eventLogger struct {
	server.Logger
	ev *events
}

func (l *eventLogger) Errorf(format string, v ...any) {
	l.Logger.Errorf(format, v...)
	if !strings.Contains(format, "Violation") {
		return
	}
	vi, ok := parseViolation(fmt.Sprintf(format, v...))
	if !ok {
		return
	}
	select {
	case l.ev.violations <- vi:
	default:
		l.ev.mu.Lock()
		l.ev.dropped++
		l.ev.mu.Unlock()
	}
}

var cidRE = regexp.MustCompile(`cid:(\d+)`)

// parseViolation reads lines such as
//
//	127.0.0.1:5000 - cid:7 - "v1:go:name" - "$G/user" - Publish Violation - Subject "x"
//
// The connection ID is the first cid token: it precedes everything a
// client chooses. The subject is the quoted string after the last
// "Violation".
func parseViolation(line string) (violation, bool) {
	m := cidRE.FindStringSubmatch(line)
	i := strings.LastIndex(line, " Violation")
	if m == nil || i < 0 {
		return violation{}, false
	}
	cid, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		return violation{}, false
	}
	v := violation{cid: cid, action: "publish"}
	if strings.HasSuffix(line[:i], "Subscription") {
		v.action = "subscribe"
	}
	rest := line[i:]
	if j := strings.Index(rest, `"`); j >= 0 {
		if q, err := strconv.QuotedPrefix(rest[j:]); err == nil {
			v.subject, _ = strconv.Unquote(q)
		}
	}
	return v, true
}

// startEvents opens the audit connection, starts the audit writer and
// the collectors of connection, permission and delivery events. It must
// run before the admin key is wiped.
func (b *Broker) startEvents(ctx context.Context) (err error) {
	ev := b.ev
	cfg := b.cfg.Audit
	keyDir := cfg.KeyDir
	if keyDir == "" {
		keyDir = filepath.Join(b.cfg.StoreDir, "broker")
	}
	signer, err := audit.LoadOrCreateSigner(keyDir)
	if err != nil {
		return err
	}
	nc, err := nats.Connect("",
		nats.InProcessServer(b.srv),
		nats.Nkey(b.adminPub, b.admin.Sign),
		nats.CustomInboxPrefix(adminInbox+".audit"),
		nats.Name("phix-broker-audit"),
		nats.NoReconnect())
	if err != nil {
		return fmt.Errorf("connecting audit writer: %v", err)
	}
	defer func() {
		if err != nil {
			nc.Close()
		}
	}()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("audit jetstream: %v", err)
	}
	w, err := audit.NewWriter(ctx, js, audit.WriterConfig{
		Signer:             signer,
		HeartbeatInterval:  cfg.HeartbeatInterval,
		CheckpointInterval: cfg.CheckpointInterval,
		CheckpointRecords:  cfg.CheckpointRecords,
		OnRecord:           cfg.OnRecord,
		MaxAge:             b.currentAccess().retention.Audit.D(),
	})
	if err != nil {
		return err
	}
	if err := w.Serve(nc); err != nil {
		w.Close(ctx)
		return fmt.Errorf("serving audit reports: %v", err)
	}
	qs := quarantine.NewService(b.js, b.mayManageQuarantine, b.auditEvent)
	if _, err := qs.Serve(nc); err != nil {
		w.Close(ctx)
		return fmt.Errorf("serving quarantine requests: %v", err)
	}
	ackSubject := server.JSMetricConsumerAckPre + "." + subjects.MessageStream + ".*"
	if _, err := nc.Subscribe(ackSubject, func(m *nats.Msg) { b.onAck(js, m) }); err != nil {
		w.Close(ctx)
		return fmt.Errorf("subscribing to deliveries: %v", err)
	}

	runCtx, stop := context.WithCancel(context.Background())
	ev.mu.Lock()
	ev.w, ev.nc, ev.stop = w, nc, stop
	ev.mu.Unlock()
	ev.wg.Go(func() { b.collectConnEvents(runCtx) })
	return nil
}

// stopEvents stops the collectors and closes the audit writer, which
// seals the trail with a stop record and a checkpoint. It is safe to
// call when startEvents did not run or failed.
func (b *Broker) stopEvents() {
	ev := b.ev
	ev.mu.Lock()
	w, nc, stop := ev.w, ev.nc, ev.stop
	ev.w, ev.nc, ev.stop = nil, nil, nil
	ev.mu.Unlock()
	if stop == nil {
		return
	}
	stop()
	ev.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		b.log.LogAttrs(ctx, slog.LevelError, "audit trail not sealed", slog.String("error", err.Error()))
	}
	nc.Close()
}

func (b *Broker) writer() *audit.Writer {
	b.ev.mu.Lock()
	defer b.ev.mu.Unlock()
	return b.ev.w
}

// AuditEvent appends rec to the audit trail as an event the broker
// process observed or performed, such as an operator's action through an
// in-process tool. The writer sets index and time. It returns [ErrClosed]
// before Start or after Close.
func (b *Broker) AuditEvent(ctx context.Context, rec audit.Record) (audit.Record, error) {
	w := b.writer()
	if w == nil {
		return audit.Record{}, ErrClosed
	}
	if rec.Source == "" {
		rec.Source = audit.SourceBroker
	}
	stored, err := w.Append(ctx, rec)
	if errors.Is(err, audit.ErrClosed) {
		return audit.Record{}, ErrClosed
	}
	return stored, err
}

// auditEvent records rec, logging rather than returning a failure: the
// event itself has already happened.
func (b *Broker) auditEvent(ctx context.Context, rec audit.Record) {
	if _, err := b.AuditEvent(ctx, rec); err != nil && !errors.Is(err, ErrClosed) {
		b.log.LogAttrs(ctx, slog.LevelError, "audit record lost",
			slog.String("kind", string(rec.Kind)), slog.String("error", err.Error()))
	}
}

// ExportAudit seals the trail with a fresh checkpoint and writes it to w
// as audit.Export does. It returns the number of lines written, or
// [ErrClosed] before Start or after Close.
func (b *Broker) ExportAudit(ctx context.Context, w io.Writer) (int, error) {
	aw := b.writer()
	b.mu.Lock()
	js := b.js
	b.mu.Unlock()
	if aw == nil || js == nil {
		return 0, ErrClosed
	}
	if _, err := aw.Checkpoint(ctx); err != nil {
		return 0, err
	}
	return audit.Export(ctx, js, w)
}

// PublishAlert publishes data on subjects.Alerts for whoever watches
// alerts. It returns [ErrClosed] before Start or after Close.
func (b *Broker) PublishAlert(data []byte) error {
	b.ev.mu.Lock()
	nc := b.ev.nc
	b.ev.mu.Unlock()
	if nc == nil {
		return ErrClosed
	}
	return nc.Publish(subjects.Alerts, data)
}

// mayManageQuarantine reports whether machine is an auditor of the
// enforced policy. In the policy-less demo mode nobody is.
func (b *Broker) mayManageQuarantine(machine string) bool {
	a := b.currentAccess()
	return a != nil && a.policy != nil && a.policy.IsAuditor(machine)
}

// auditSessionClosed records a session the broker closed itself.
func (b *Broker) auditSessionClosed(ctx context.Context, machine string, ci *server.ConnInfo, reason string) {
	rec := audit.Record{
		Kind: audit.KindDisconnect, Actor: machine, Outcome: audit.OutcomeOK, Reason: reason,
		ConnID: ci.Cid, Remote: remote(ci), Detail: "closed by the broker",
	}
	if reason == "idle timeout" {
		rec.Kind = audit.KindIdleLogoff
		rec.Detail = "idle since " + ci.LastActivity.UTC().Format(time.RFC3339)
	}
	b.auditEvent(ctx, rec)
}

// auditPolicy records that the broker now enforces p.
func (b *Broker) auditPolicy(ctx context.Context, p *policy.Policy) {
	b.auditEvent(ctx, audit.Record{Kind: audit.KindPolicyChange, Outcome: audit.OutcomeOK, Target: p.Name()})
}

// onAck records a delivery from JetStream's ack sample of an inbox
// consumer: the recipient acknowledged the message, after opening it or
// quarantining it. The message's signed header, never its payload, names
// the message; it is read here, not trusted from anyone.
func (b *Broker) onAck(js jetstream.JetStream, m *nats.Msg) {
	var am server.JSConsumerAckMetric
	if err := json.Unmarshal(m.Data, &am); err != nil {
		return
	}
	machine, ok := strings.CutPrefix(am.Consumer, "inbox-")
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec := audit.Record{
		Kind: audit.KindDelivery, Actor: machine, Recipient: machine, Outcome: audit.OutcomeOK,
		Seq: am.StreamSeq, Deliveries: am.Deliveries,
	}
	if s, err := js.Stream(ctx, subjects.MessageStream); err == nil {
		if sm, err := s.GetMsg(ctx, am.StreamSeq); err == nil {
			describeStored(&rec, sm.Subject, sm.Data)
		}
	}
	b.auditEvent(ctx, rec)
}

// describeStored fills rec with what identifies a stored envelope.
func describeStored(rec *audit.Record, subject string, data []byte) {
	rec.Subject = subject
	if s, _, typ, ok := subjects.ParseMessage(subject); ok {
		rec.Sender, rec.Type = s, typ
	}
	env, err := envelope.Decode(data)
	if err != nil {
		rec.Detail = "stored message does not decode"
		return
	}
	h := env.Header()
	d := env.CiphertextDigest()
	rec.MessageID, rec.Digest = h.MessageID, hex.EncodeToString(d[:])
}

func remote(ci *server.ConnInfo) string {
	if ci.IP == "" {
		return ""
	}
	return ci.IP + ":" + strconv.Itoa(ci.Port)
}

// withAuditAdmin adds to the admin user's permissions p what the audit
// writer needs on its in-process connection: storing records, taking
// machine reports and answering them, JetStream's ack samples of inbox
// consumers (deliveries), and publishing alerts.
func withAuditAdmin(p *server.Permissions) *server.Permissions {
	p.Publish.Allow = append(p.Publish.Allow, subjects.AuditLogPrefix+".>", subjects.Alerts,
		// quarantine releases republish on the original message subject
		subjects.MessagePrefix+".*.*.*")
	p.Subscribe.Allow = append(p.Subscribe.Allow,
		subjects.AuditPrefix+".*",
		subjects.QuarantineAdminPrefix+".*",
		server.JSMetricConsumerAckPre+"."+subjects.MessageStream+".*")
	// Replies to machine reports go to the reporting machine's own reply
	// inbox; the response permission allows exactly one reply per report.
	p.Response = &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute}
	return p
}
