// Package producer seals payloads for named recipients and publishes them
// to the phix broker.
//
// Each payload is encrypted once per recipient copy under a data key that
// the key provider wraps for that recipient alone, signed by the sending
// machine's identity key, and stored on the recipient's subject. Publish
// returns only after JetStream has acknowledged every copy; a retried
// Publish with the same message ID is deduplicated by the broker.
//
// # Key service calls
//
// The producer is built so that a remote key service (Vault) is asked as
// rarely as possible:
//
//   - a data key is reused for one recipient set within limits (messages,
//     bytes, age; see [Config]), and its successor is wrapped in the
//     background before the limit is reached, so at steady state one wrap
//     per recipient serves [DefaultKeyMessages] messages;
//   - envelopes are signed in batches (format version 2): a lone message
//     is signed at once, and messages published while a signature is
//     being made share the next one, each envelope carrying its Merkle
//     inclusion proof, so the signing rate is bounded by the key service's
//     latency, not by the message rate;
//   - with a remote key service, batches are signed by a short-lived
//     session key held in memory, which the identity key delegates to
//     once per [Config].SigningKeyLifetime, so signing costs the key
//     service one call an hour and goes on while it is unreachable.
//
// With [Config].Registry the wrapped keys go to the wrapped-key registry
// instead of into each envelope, so that they can be rewrapped, granted
// and destroyed later (package registry).
package producer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
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
	js    jetstream.JetStream
	kp    keys.Provider
	cfg   Config
	ring  *keyRing
	batch *batcher
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
	life, err := cfg.signingKeyLifetime(kp)
	if err != nil {
		return nil, err
	}
	p := &Producer{
		js: js, kp: kp, cfg: cfg,
		ring:  newKeyRing(kp, cfg),
		batch: newBatcher(kp, cfg.MaxBatch, cfg.SignWait),
	}
	if life > 0 {
		p.batch.sessions = newSessions(kp, life, cfg.Now)
	}
	return p, nil
}

// Receipt describes a message that the broker has stored.
type Receipt struct {
	// MessageID identifies the message across all recipient copies.
	MessageID string
	// Copies holds the stream sequence of each recipient's copy.
	Copies map[string]uint64
	// Duplicates lists the recipients whose copy the broker already held
	// under this message ID, within its deduplication window. When it is
	// not empty, this call stored nothing new for them: a retry completed,
	// or the ID was reused for different content, which was dropped.
	Duplicates []string
}

// Publish seals payload for recipients and waits until JetStream has
// stored a copy for each of them. Every copy is sealed and signed before
// the first is published, so a failure of the key service (wrapping or
// signing) publishes nothing. On a failure to store, some copies may be
// stored: calling Publish again with the same [WithMessageID] completes
// the message without duplicating the stored copies.
//
// While the key service is unreachable, Publish keeps working as long as
// the data key in use for the recipients lasts (see [Config.KeyMessages])
// and signatures can be made (with delegated signing, until the
// delegation expires; see [Config.SigningKeyLifetime]); it then fails with
// the key service's error (keys.ErrUnavailable), and works again once the
// service is back.
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
		return nil, fmt.Errorf("producer: data key for %s: %w", strings.Join(o.recipients, ","), err)
	}

	evs := make([]PublishEvent, len(o.recipients))
	for i, rcpt := range o.recipients {
		evs[i] = PublishEvent{
			MessageID: o.id, Sender: p.kp.Identity(), Recipient: rcpt, Recipients: o.recipients,
			Subject: subjects.Message(p.kp.Identity(), rcpt, o.typ), Type: o.typ,
			DataKeyID: k.dk.ID(), Size: len(payload),
		}
	}
	sealed, err := p.seal(ctx, o, k, evs, payload)
	if err != nil {
		for i := range evs {
			evs[i].Err = err
			p.emit(evs[i])
		}
		return nil, fmt.Errorf("producer: message %s: %w", o.id, err)
	}

	rc := &Receipt{MessageID: o.id, Copies: make(map[string]uint64, len(o.recipients))}
	for i := range evs {
		ev := &evs[i]
		ev.Seq, ev.Duplicate, ev.Err = p.store(ctx, o, ev, sealed[i])
		p.emit(*ev)
		if ev.Err != nil {
			return rc, fmt.Errorf("producer: message %s to %s: %w", o.id, ev.Recipient, ev.Err)
		}
		rc.Copies[ev.Recipient] = ev.Seq
		if ev.Duplicate {
			rc.Duplicates = append(rc.Duplicates, ev.Recipient)
		}
	}
	return rc, nil
}

func (p *Producer) emit(ev PublishEvent) {
	if p.cfg.OnPublish != nil {
		p.cfg.OnPublish(ev)
	}
}

// seal encrypts one copy per recipient and signs them all, in one batch
// with whatever other copies are waiting, filling in each event's digest.
func (p *Producer) seal(ctx context.Context, o *options, k *dataKey, evs []PublishEvent,
	payload []byte) ([][]byte, error) {
	us := make([]*envelope.Unsigned, len(evs))
	for i := range evs {
		meta := envelope.Meta{
			MessageID:   o.id,
			Sender:      p.kp.Identity(),
			Recipients:  o.recipients,
			Subject:     evs[i].Subject,
			ContentType: o.contentType,
			SchemaID:    o.schemaID,
			Created:     o.created,
		}
		var wrapped []envelope.WrappedKey
		if p.cfg.Registry == nil {
			wrapped = []envelope.WrappedKey{{Recipient: evs[i].Recipient, Wrapped: k.wrapped[evs[i].Recipient]}}
		}
		u, err := envelope.Prepare(meta, k.dk, wrapped, payload)
		if err != nil {
			return nil, fmt.Errorf("sealing: %w", err)
		}
		us[i] = u
		evs[i].CiphertextDigest = u.CiphertextDigest()
	}
	out, err := p.batch.sign(ctx, us)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return out, nil
}

// store publishes one sealed copy, retrying transient failures.
func (p *Producer) store(ctx context.Context, o *options, ev *PublishEvent,
	b []byte) (seq uint64, dup bool, err error) {
	msg := &nats.Msg{Subject: ev.Subject, Data: b}
	var last error
	for range p.cfg.Retries + 1 {
		actx, cancel := context.WithTimeout(ctx, p.cfg.PublishTimeout)
		ack, err := p.js.PublishMsg(actx, msg,
			jetstream.WithMsgID(o.id+"."+ev.Recipient),
			jetstream.WithExpectStream(subjects.MessageStream))
		cancel()
		if err == nil {
			return ack.Sequence, ack.Duplicate, nil
		}
		last = err
		// The broker answers a refused publish with an asynchronous error
		// on the connection, never with a reply, so the publish itself
		// only times out: look there before trying again.
		if refused := refusal(p.js.Conn(), ev.Subject); refused != nil {
			return 0, false, refused
		}
		if ctx.Err() != nil || !retryable(err) {
			break
		}
	}
	return 0, false, fmt.Errorf("publishing: %w", last)
}

// ErrRefused is returned by [Producer.Publish] when the broker's
// permissions refuse the message's subject: the policy does not allow the
// flow.
var ErrRefused = errors.New("producer: refused by the broker: the policy does not allow this flow")

func refusal(nc *nats.Conn, subject string) error {
	if nc == nil {
		return nil
	}
	if err := nc.LastError(); errors.Is(err, nats.ErrPermissionViolation) &&
		strings.Contains(err.Error(), `"`+subject+`"`) {
		return fmt.Errorf("%w (%s)", ErrRefused, subject)
	}
	return nil
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

// Signatures reports how many batch signatures p has made and how many
// envelopes they covered, which shows batching at work.
func (p *Producer) Signatures() (signatures, envelopes int64) {
	return p.batch.signatures.Load(), p.batch.envelopes.Load()
}

// SigningSessions reports how many delegated signing keys p has made,
// each costing the key provider one signature (two for the first, which
// learns the key version); 0 when delegated signing is off.
func (p *Producer) SigningSessions() int {
	if p.batch.sessions == nil {
		return 0
	}
	return p.batch.sessions.count()
}

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

// messageIDRE is the shape of message IDs: safe in subjects' headers, file
// names and logs.
var messageIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// WithMessageID sets the message ID, for retrying a Publish idempotently.
func WithMessageID(id string) Option {
	return func(o *options) error {
		if !messageIDRE.MatchString(id) {
			return fmt.Errorf("producer: message id %q: want 1-64 of [A-Za-z0-9._-], starting with a letter or digit", id)
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
