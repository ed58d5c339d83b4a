package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/internal/subjects"
)

// Entry is one line of an export: exactly one of Record (the record's
// stored JSON, byte for byte, which is what its leaf hash covers) and
// Checkpoint is set.
type Entry struct {
	Record     json.RawMessage `json:"record,omitempty"`
	Checkpoint json.RawMessage `json:"checkpoint,omitempty"`
}

// Export writes every record and checkpoint stored in the audit stream,
// in stream order, to w as JSON lines ([Entry]), up to the last message
// stored when Export starts. It returns the number of lines written. The
// records are copied byte for byte so that [Verify] can recompute their
// leaf hashes.
//
// Export reads message by message (STREAM.INFO and STREAM.MSG.GET or
// DIRECT.GET on PHIX_AUDIT), so a read-only auditor needs no right to
// create consumers.
func Export(ctx context.Context, js jetstream.JetStream, w io.Writer) (int, error) {
	s, err := js.Stream(ctx, subjects.AuditStream)
	if err != nil {
		return 0, fmt.Errorf("audit: %w", err)
	}
	info := s.CachedInfo()
	bw := bufio.NewWriter(w)
	n := 0
	// The stream denies deletes, so every sequence from FirstSeq to
	// LastSeq holds a message.
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			return n, fmt.Errorf("audit: reading seq %d: %w", seq, err)
		}
		if err := writeEntry(bw, m.Subject, m.Data); err != nil {
			return n, err
		}
		n++
	}
	return n, bw.Flush()
}
func writeEntry(w *bufio.Writer, subject string, data []byte) error {
	var e Entry
	switch subject {
	case subjects.AuditRecordSubject:
		e.Record = data
	case subjects.AuditCheckpointSubject:
		e.Checkpoint = data
	default:
		return nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit: encoding entry: %v", err)
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}
