package audit

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/nats-io/nats.go"

	"phix.dev/phix/internal/subjects"
)

// reportTimeout bounds storing one machine report.
const reportTimeout = 10 * time.Second

// Reply is the writer's answer to a machine report.
type Reply struct {
	Index uint64 `json:"index"`           // index of the stored record
	Error string `json:"error,omitempty"` // why it was not stored
}

// Serve subscribes nc to every machine's audit subject and stores each
// report as a record whose Actor is the machine named by the subject.
// The broker's permissions let a machine publish only on its own audit
// subject, so that name is authenticated; anything the report claims
// about its author is discarded. Each report with a reply subject is
// answered with a [Reply]. Serve returns once subscribed; Close stops it.
func (w *Writer) Serve(nc *nats.Conn) error {
	sub, err := nc.Subscribe(subjects.AuditPrefix+".*", w.handleReport)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		sub.Unsubscribe()
		return ErrClosed
	}
	w.sub = sub
	return nil
}

func (w *Writer) handleReport(m *nats.Msg) {
	rep := w.storeReport(m.Subject, m.Data)
	if m.Reply == "" {
		return
	}
	b, _ := json.Marshal(rep)
	m.Respond(b)
}

func (w *Writer) storeReport(subject string, data []byte) Reply {
	machine, ok := subjects.ParseAuditReport(subject)
	if !ok {
		return Reply{Error: "not a machine audit subject"}
	}
	rec, err := ParseReport(data)
	if err != nil {
		if errors.Is(err, ErrNotReportable) {
			return Reply{Error: "kind not reportable"}
		}
		return Reply{Error: "malformed report"}
	}
	rec.Actor, rec.Source = machine, SourceMachine
	ctx, cancel := context.WithTimeout(context.Background(), reportTimeout)
	defer cancel()
	stored, err := w.Append(ctx, rec)
	if err != nil {
		return Reply{Error: "not stored"}
	}
	// An export is announced first, so that it is itself on record and
	// the trail it reads ends in a checkpoint.
	if rec.Kind == KindAuditExport {
		if _, err := w.Checkpoint(ctx); err != nil {
			return Reply{Error: "not sealed"}
		}
	}
	return Reply{Index: stored.Index}
}
