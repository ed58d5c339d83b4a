// Package quarantine lists, shows, releases and drops the messages that
// recipients refused and kept, still sealed, in the quarantine stream.
//
// The operations run inside the broker process ([Service]), which alone
// may republish a message on its original subject or delete it from the
// stream. Operators reach them through [Client], over their own machine
// connection: the broker lets a machine send quarantine requests only on
// its own subject, so the subject authenticates the operator, and the
// service records every request, allowed or refused, in the audit trail
// with that identity. Nothing here decrypts: a quarantined message is
// described by its sealed header only.
package quarantine

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/internal/subjects"
)

// Errors of quarantine operations.
var (
	// ErrNotFound means no quarantined message has the sequence asked for.
	ErrNotFound = errors.New("quarantine: no such message")
	// ErrDenied means the operator may not manage the quarantine.
	ErrDenied = errors.New("quarantine: not allowed")
	// ErrBadOriginal means a message's recorded original subject is not
	// a message subject addressed to the machine that quarantined it, so
	// it cannot be released.
	ErrBadOriginal = errors.New("quarantine: original subject not releasable")
)

// Item describes one quarantined message from its headers and sealed
// envelope header; nothing in it is decrypted.
type Item struct {
	Seq             uint64    `json:"seq"` // sequence in the quarantine stream
	Time            time.Time `json:"time"`
	QuarantinedBy   string    `json:"quarantined_by"` // from the stream subject
	Reason          string    `json:"reason"`
	OriginalSubject string    `json:"original_subject"`
	OriginalSeq     uint64    `json:"original_seq,omitempty"`
	MessageID       string    `json:"message_id,omitempty"` // from the sealed header, if it decodes
	Sender          string    `json:"sender,omitempty"`
	Recipients      []string  `json:"recipients,omitempty"`
	ContentType     string    `json:"content_type,omitempty"`
	Created         time.Time `json:"created,omitzero"`
	Digest          string    `json:"digest,omitempty"` // hex SHA-256 of the ciphertext
	Size            int       `json:"size"`             // sealed bytes
	Decodes         bool      `json:"decodes"`          // the envelope is well formed
}

// describe builds an item from a stored quarantine message.
func describe(m *jetstream.RawStreamMsg) Item {
	it := Item{
		Seq: m.Sequence, Time: m.Time.UTC(), Size: len(m.Data),
		Reason:          m.Header.Get(subjects.HeaderReason),
		OriginalSubject: m.Header.Get(subjects.HeaderOriginalSubject),
	}
	it.QuarantinedBy, _ = cutQuarantine(m.Subject)
	it.OriginalSeq, _ = strconv.ParseUint(m.Header.Get(subjects.HeaderOriginalSeq), 10, 64)
	env, err := envelope.Decode(m.Data)
	if err != nil {
		return it
	}
	h := env.Header()
	d := env.CiphertextDigest()
	it.Decodes = true
	it.MessageID, it.Sender, it.Recipients = h.MessageID, h.Sender, h.Recipients
	it.ContentType, it.Created, it.Digest = h.ContentType, h.Created, hex.EncodeToString(d[:])
	return it
}

func cutQuarantine(subject string) (string, bool) {
	if len(subject) <= len(subjects.QuarantinePrefix)+1 ||
		subject[:len(subjects.QuarantinePrefix)+1] != subjects.QuarantinePrefix+"." {
		return "", false
	}
	m := subject[len(subjects.QuarantinePrefix)+1:]
	return m, subjects.ValidName(m)
}

// store is the quarantine stream, as the broker's admin connection sees it.
type store struct{ js jetstream.JetStream }

func (s store) stream(ctx context.Context) (jetstream.Stream, error) {
	st, err := s.js.Stream(ctx, subjects.QuarantineStream)
	if err != nil {
		return nil, fmt.Errorf("quarantine: %w", err)
	}
	return st, nil
}

// list returns every quarantined message, oldest first.
func (s store) list(ctx context.Context) ([]Item, error) {
	st, err := s.stream(ctx)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("quarantine: %w", err)
	}
	var out []Item
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // dropped
		}
		if err != nil {
			return nil, fmt.Errorf("quarantine: reading seq %d: %w", seq, err)
		}
		out = append(out, describe(m))
	}
	return out, nil
}

func (s store) get(ctx context.Context, seq uint64) (*jetstream.RawStreamMsg, error) {
	st, err := s.stream(ctx)
	if err != nil {
		return nil, err
	}
	m, err := st.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("quarantine: reading seq %d: %w", seq, err)
	}
	return m, nil
}

// release republishes the sealed message on its original subject for
// another try and then removes it from quarantine. The original subject
// comes from a header the quarantining machine set, so it is accepted only
// if it is a message subject addressed to that machine: a release can
// never route a message to anyone but the recipient that refused it.
func (s store) release(ctx context.Context, seq uint64) (Item, uint64, error) {
	m, err := s.get(ctx, seq)
	if err != nil {
		return Item{}, 0, err
	}
	it := describe(m)
	_, rcpt, _, ok := subjects.ParseMessage(it.OriginalSubject)
	if !ok || rcpt != it.QuarantinedBy {
		return it, 0, ErrBadOriginal
	}
	ack, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: it.OriginalSubject, Data: m.Data},
		jetstream.WithExpectStream(subjects.MessageStream),
		jetstream.WithMsgID("release."+strconv.FormatUint(seq, 10)))
	if err != nil {
		return it, 0, fmt.Errorf("quarantine: republishing seq %d: %w", seq, err)
	}
	if err := s.delete(ctx, seq); err != nil {
		return it, ack.Sequence, err
	}
	return it, ack.Sequence, nil
}

// drop deletes the message from the quarantine stream for good.
func (s store) drop(ctx context.Context, seq uint64) (Item, error) {
	m, err := s.get(ctx, seq)
	if err != nil {
		return Item{}, err
	}
	it := describe(m)
	return it, s.delete(ctx, seq)
}

func (s store) delete(ctx context.Context, seq uint64) error {
	st, err := s.stream(ctx)
	if err != nil {
		return err
	}
	// SecureDeleteMsg overwrites the stored bytes rather than only
	// unlinking them.
	if err := st.SecureDeleteMsg(ctx, seq); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return ErrNotFound
		}
		return fmt.Errorf("quarantine: deleting seq %d: %w", seq, err)
	}
	return nil
}
