// Package producer seals payloads for named recipients and publishes them
// to the phix broker.
//
// Each payload is encrypted once per recipient copy under a data key that
// the key provider wraps for that recipient alone, signed by the sending
// machine's identity key, and stored on the recipient's subject. Publish
// returns only after JetStream has acknowledged every copy; a retried
// Publish with the same message ID is deduplicated by the broker.
package producer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/keys"
)

// ErrNoRecipients is returned by [Producer.Publish] when no recipient is named.
var ErrNoRecipients = errors.New("producer: no recipients")

// Producer publishes sealed messages as one machine identity. It is safe
// for concurrent use.
type Producer struct {
	js   jetstream.JetStream
	kp   keys.Provider
	cfg  Config
	ring *keyRing
}

// New returns a producer that publishes through js and seals with kp,
// acting as kp's identity. The caller keeps ownership of js's connection.
func New(js jetstream.JetStream, kp keys.Provider, cfg Config) (*Producer, error) {
	if js == nil || kp == nil {
		return nil, errors.New("producer: nil JetStream or key provider")
	}
	if err := subjects.CheckName(kp.Identity()); err != nil {
		return nil, fmt.Errorf("producer: sender: %v", err)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Producer{js: js, kp: kp, cfg: cfg, ring: newKeyRing(kp, cfg)}, nil
}

// Receipt describes a message that the broker has stored.
type Receipt struct {
	// MessageID identifies the message across all recipient copies.
	MessageID string
	// Copies holds the stream sequence of each recipient's copy.
	Copies map[string]uint64
}

// Publish seals payload for recipients and waits until JetStream has
// stored a copy for each of them. On error some copies may be stored:
// calling Publish again with the same [WithMessageID] completes the
// message without duplicating the stored copies.
func (p *Producer) Publish(ctx context.Context, recipients []string, payload []byte, opts ...Option) (*Receipt, error) {
	o, err := p.options(recipients, opts)
	if err != nil {
		return nil, err
	}
	if p.cfg.Allow != nil {
		for _, rcpt := range o.recipients {
			if err := p.cfg.Allow(rcpt, o.typ); err != nil {
				return nil, fmt.Errorf("producer: %s to %s: %w", o.typ, rcpt, err)
			}
		}
	}
	k, err := p.ring.take(ctx, o.recipients, len(payload))
	if err != nil {
		return nil, fmt.Errorf("producer: wrapping data key: %w", err)
	}

	rc := &Receipt{MessageID: o.id, Copies: make(map[string]uint64, len(o.recipients))}
	for _, rcpt := range o.recipients {
		ev := PublishEvent{
			MessageID: o.id, Sender: p.kp.Identity(), Recipient: rcpt, Recipients: o.recipients,
			Subject: subjects.Message(p.kp.Identity(), rcpt, o.typ), Type: o.typ,
			DataKeyID: k.dk.ID(), Size: len(payload),
		}
		err := p.publishCopy(ctx, o, k, &ev, payload)
		if p.cfg.OnPublish != nil {
			p.cfg.OnPublish(ev)
		}
		if err != nil {
			return rc, fmt.Errorf("producer: message %s to %s: %w", o.id, rcpt, err)
		}
		rc.Copies[rcpt] = ev.Seq
	}
	return rc, nil
}

// publishCopy seals and stores the copy described by ev, filling in its
// digest, sequence and outcome.
func (p *Producer) publishCopy(ctx context.Context, o *options, k *dataKey, ev *PublishEvent, payload []byte) error {
	seq, dup, digest, err := p.storeCopy(ctx, o, k, ev.Recipient, payload)
	ev.Seq, ev.Duplicate, ev.CiphertextDigest, ev.Err = seq, dup, digest, err
	return err
}

func (p *Producer) storeCopy(ctx context.Context, o *options, k *dataKey, rcpt string, payload []byte) (seq uint64, dup bool, digest [32]byte, err error) {
	subject := subjects.Message(p.kp.Identity(), rcpt, o.typ)
	meta := envelope.Meta{
		MessageID:   o.id,
		Sender:      p.kp.Identity(),
		Recipients:  o.recipients,
		Subject:     subject,
		ContentType: o.contentType,
		SchemaID:    o.schemaID,
		Created:     o.created,
	}
	wrapped := []envelope.WrappedKey{{Recipient: rcpt, Wrapped: k.wrapped[rcpt]}}
	b, err := envelope.Seal(ctx, p.kp, meta, k.dk, wrapped, payload)
	if err != nil {
		return 0, false, digest, fmt.Errorf("sealing: %w", err)
	}
	if p.cfg.OnPublish != nil {
		// Only observers need the digest; decoding again costs a copy.
		if env, err := envelope.Decode(b); err == nil {
			digest = env.CiphertextDigest()
		}
	}

	msg := &nats.Msg{Subject: subject, Data: b}
	var last error
	for range p.cfg.Retries + 1 {
		ack, err := p.js.PublishMsg(ctx, msg,
			jetstream.WithMsgID(o.id+"."+rcpt),
			jetstream.WithExpectStream(subjects.MessageStream))
		if err == nil {
			return ack.Sequence, ack.Duplicate, digest, nil
		}
		last = err
		if ctx.Err() != nil || !retryable(err) {
			break
		}
	}
	return 0, false, digest, fmt.Errorf("publishing: %w", last)
}

// retryable reports whether a publish error may succeed on a second try.
// Permission refusals and a missing stream will not.
func retryable(err error) bool {
	return !errors.Is(err, nats.ErrPermissionViolation) &&
		!errors.Is(err, jetstream.ErrNoStreamResponse) &&
		!errors.Is(err, jetstream.ErrStreamNotFound)
}

// DataKeysIssued reports how many data keys p has created so far. It shows
// key reuse at work in metrics and tests.
func (p *Producer) DataKeysIssued() int { return p.ring.issuedKeys() }

// NewMessageID returns a fresh random message ID (128 bits, hex).
func NewMessageID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (p *Producer) options(recipients []string, opts []Option) (*options, error) {
	o := &options{
		id:          NewMessageID(),
		typ:         "bin",
		contentType: "application/octet-stream",
		created:     p.cfg.Now(),
	}
	for _, opt := range opts {
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	if len(recipients) == 0 {
		return nil, ErrNoRecipients
	}
	o.recipients = slices.Clone(recipients)
	slices.Sort(o.recipients)
	if n := len(o.recipients); len(slices.Compact(o.recipients)) != n {
		return nil, fmt.Errorf("producer: recipient named twice")
	}
	for _, r := range o.recipients {
		if err := subjects.CheckName(r); err != nil {
			return nil, fmt.Errorf("producer: recipient: %v", err)
		}
	}
	return o, nil
}

type options struct {
	id          string
	typ         string
	contentType string
	schemaID    string
	created     time.Time
	recipients  []string
}

// Option adjusts one [Producer.Publish] call.
type Option func(*options) error

// WithMessageID sets the message ID, for retrying a Publish idempotently.
func WithMessageID(id string) Option {
	return func(o *options) error {
		if id == "" || len(id) > 64 {
			return fmt.Errorf("producer: message id must be 1-64 bytes")
		}
		o.id = id
		return nil
	}
}

// WithType sets the message type, the last subject token (such as
// "hl7v2" or "fhir") by which the broker routes and permits flows, and
// the content type recorded in the signed header ("" means
// application/octet-stream).
func WithType(typ, contentType string) Option {
	return func(o *options) error {
		if err := subjects.CheckName(typ); err != nil {
			return fmt.Errorf("producer: type: %v", err)
		}
		if contentType == "" {
			contentType = "application/octet-stream"
		}
		o.typ, o.contentType = typ, contentType
		return nil
	}
}

// WithSchemaID records the payload's schema (for example an HL7 message
// structure or a FHIR profile URL) in the signed header.
func WithSchemaID(id string) Option {
	return func(o *options) error {
		o.schemaID = id
		return nil
	}
}
