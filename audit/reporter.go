package audit

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"phix.dev/phix/consumer"
	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/producer"
)

// Defaults for zero [ReporterConfig] fields.
const (
	DefaultReporterBuffer  = 4096
	DefaultReporterTimeout = 5 * time.Second
)

// ReporterConfig configures a [Reporter].
type ReporterConfig struct {
	// Buffer is how many records may wait to be sent; further reports are
	// dropped and counted. Default [DefaultReporterBuffer].
	Buffer int
	// Timeout bounds waiting for the writer to store one record. Default
	// [DefaultReporterTimeout].
	Timeout time.Duration
}

// ReporterStats counts what a [Reporter] did with its reports.
type ReporterStats struct {
	Stored  uint64 // acknowledged by the audit writer
	Dropped uint64 // not queued because the buffer was full or closed
	Failed  uint64 // sent but not acknowledged, or refused
}

// Reporter sends one machine's audit events to the broker's audit writer
// in the background, so that auditing never blocks a publish or an open.
// Create it with [NewReporter] and stop it with [Reporter.Close]. Its
// methods are safe for concurrent use.
type Reporter struct {
	nc      *nats.Conn
	subject string
	cfg     ReporterConfig
	queue   chan []byte

	stored, dropped, failed atomic.Uint64

	mu     sync.RWMutex // guards closed against sends on queue
	closed bool
	done   chan struct{} // closed when the sending goroutine ends
}

// NewReporter returns a reporter that sends machine's events over nc on
// subjects.AuditReport(machine), the only audit subject the broker lets
// that machine use. The caller keeps ownership of nc and must call Close
// before closing it.
func NewReporter(nc *nats.Conn, machine string, cfg ReporterConfig) (*Reporter, error) {
	if nc == nil {
		return nil, errors.New("audit: reporter needs a connection")
	}
	if err := subjects.CheckName(machine); err != nil {
		return nil, fmt.Errorf("audit: reporter: %v", err)
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultReporterBuffer
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultReporterTimeout
	}
	r := &Reporter{
		nc: nc, subject: subjects.AuditReport(machine), cfg: cfg,
		queue: make(chan []byte, cfg.Buffer), done: make(chan struct{}),
	}
	go r.send()
	return r, nil
}

// Report queues rec without blocking and reports whether it was queued.
// Index, time, actor and source are set by the writer, whatever rec says.
func (r *Reporter) Report(rec Record) bool {
	b, err := json.Marshal(rec)
	if err != nil {
		r.dropped.Add(1)
		return false
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		r.dropped.Add(1)
		return false
	}
	select {
	case r.queue <- b:
		return true
	default:
		r.dropped.Add(1)
		return false
	}
}

func (r *Reporter) send() {
	defer close(r.done)
	for b := range r.queue {
		m, err := r.nc.Request(r.subject, b, r.cfg.Timeout)
		if err != nil {
			r.failed.Add(1)
			continue
		}
		var rep Reply
		if json.Unmarshal(m.Data, &rep) != nil || rep.Error != "" {
			r.failed.Add(1)
			continue
		}
		r.stored.Add(1)
	}
}

// Close stops taking reports and waits until those queued are sent or
// ctx ends; then the rest count as dropped. It returns ctx's error if it
// gave up. Calling Close again waits again.
func (r *Reporter) Close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.queue)
	}
	r.mu.Unlock()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stats returns the reporter's counters.
func (r *Reporter) Stats() ReporterStats {
	return ReporterStats{Stored: r.stored.Load(), Dropped: r.dropped.Load(), Failed: r.failed.Load()}
}

// OnPublish reports a producer's publish; it fits [producer.Config].OnPublish.
func (r *Reporter) OnPublish(ev producer.PublishEvent) { r.Report(PublishRecord(ev)) }

// OnOpen reports an opening; it fits [consumer.Config].OnOpen.
func (r *Reporter) OnOpen(ev consumer.OpenEvent) { r.Report(OpenRecord(ev)) }

// OnReject reports a quarantine; it fits [consumer.Config].OnReject.
func (r *Reporter) OnReject(rej *consumer.RejectError) { r.Report(RejectRecord(rej)) }

// PublishRecord converts a producer's publish event.
func PublishRecord(ev producer.PublishEvent) Record {
	rec := Record{
		Kind: KindPublish, Outcome: OutcomeOK, MessageID: ev.MessageID, Subject: ev.Subject,
		Sender: ev.Sender, Recipient: ev.Recipient, Recipients: ev.Recipients, Type: ev.Type,
		Size: ev.Size, Seq: ev.Seq, DataKeyID: ev.DataKeyID,
	}
	if ev.CiphertextDigest != ([32]byte{}) {
		rec.Digest = hex.EncodeToString(ev.CiphertextDigest[:])
	}
	switch {
	case ev.Err != nil:
		rec.Outcome = OutcomeFailed
		// The error names subjects and stages, never the payload.
		rec.Detail = ev.Err.Error()
	case ev.Duplicate:
		rec.Outcome = OutcomeDuplicate
	}
	return rec
}

// OpenRecord converts a consumer's open event.
func OpenRecord(ev consumer.OpenEvent) Record {
	return Record{
		Kind: KindOpen, Outcome: OutcomeOK, MessageID: ev.MessageID, Subject: ev.Subject,
		Sender: ev.Sender, Recipient: ev.Opener, Seq: ev.Seq, DataKeyID: ev.DataKeyID,
		KeyVersion: ev.WrapKeyVersion, KeyCached: ev.KeyCached,
		Digest: hex.EncodeToString(ev.CiphertextDigest[:]),
		Detail: "signed with " + ev.SignerKeyID,
	}
}

// RejectRecord converts a consumer's refusal, reported once the message
// is safely in quarantine.
func RejectRecord(rej *consumer.RejectError) Record {
	rec := Record{
		Kind: KindQuarantine, Outcome: OutcomeRefused, Reason: string(rej.Reason),
		Subject: rej.Subject, Seq: rej.Seq,
	}
	if s, rcpt, typ, ok := subjects.ParseMessage(rej.Subject); ok {
		rec.Sender, rec.Recipient, rec.Type = s, rcpt, typ
	}
	return rec
}
