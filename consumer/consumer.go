// Package consumer receives sealed messages addressed to one machine,
// verifies and opens them, and hands the plaintext to the application.
//
// A message is acknowledged only after the handler returns nil. A message
// that fails verification or opening is never handed over: it is copied,
// still sealed, to the quarantine stream with a [Reason], and only then
// removed from the machine's inbox, so nothing is lost.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/keys"
)

// Message is an opened message. Payload is the plaintext; the rest comes
// from the signed header and has been verified.
type Message struct {
	ID          string
	Sender      string
	Recipients  []string
	Subject     string
	ContentType string
	SchemaID    string
	Created     time.Time
	DataKeyID   string
	SignerKeyID string
	Payload     []byte

	// Seq is the message's sequence in the stream, 0 for [Consumer.Open].
	Seq uint64
	// Delivered counts deliveries of this message, starting at 1.
	Delivered uint64
}

// Handler processes one opened message. Returning an error asks for the
// message again later; see [Config.MaxDeliver].
type Handler func(ctx context.Context, m *Message) error

// Consumer reads one machine's inbox. Its methods are safe for concurrent
// use, though [Consumer.Run] is meant to be called once at a time.
type Consumer struct {
	js    jetstream.JetStream
	kp    keys.Provider
	cfg   Config
	cache *keys.Cache
}

// New returns a consumer that reads kp's identity's inbox through js.
// The caller keeps ownership of js's connection.
func New(js jetstream.JetStream, kp keys.Provider, cfg Config) (*Consumer, error) {
	if js == nil || kp == nil {
		return nil, errors.New("consumer: nil JetStream or key provider")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Consumer{js: js, kp: kp, cfg: cfg, cache: keys.NewCache(cfg.KeyCacheSize, cfg.KeyCacheTTL)}, nil
}

// Open verifies and opens an envelope that arrived on subject, as this
// consumer's machine. Every refusal is a [*RejectError]. Verification
// comes first: nothing is unwrapped or decrypted for a message whose
// sender signature does not hold.
func (c *Consumer) Open(ctx context.Context, subject string, data []byte) (*Message, error) {
	return c.open(ctx, subject, data, 0)
}

func (c *Consumer) open(ctx context.Context, subject string, data []byte, seq uint64) (*Message, error) {
	reject := func(r Reason, err error) (*Message, error) {
		return nil, &RejectError{Reason: r, Subject: subject, Err: err}
	}
	env, err := envelope.Decode(data)
	if err != nil {
		return reject(ReasonMalformed, err)
	}
	if err := env.CheckSubject(subject); err != nil {
		return reject(ReasonSubjectMismatch, err)
	}
	h := env.Header()
	me := c.kp.Identity()
	sender, rcpt, _, ok := subjects.ParseMessage(subject)
	if !ok || sender != h.Sender {
		return reject(ReasonSubjectMismatch, fmt.Errorf("subject does not name sender %q", h.Sender))
	}
	if rcpt != me || !slices.Contains(h.Recipients, me) {
		return reject(ReasonNotRecipient, fmt.Errorf("%s is not a recipient", me))
	}

	pub, err := c.kp.PublicKey(ctx, h.Sender, h.SignerKeyID)
	if err != nil {
		if errors.Is(err, keys.ErrUnknownMachine) || errors.Is(err, keys.ErrUnknownKey) {
			return reject(ReasonUnknownSender, err)
		}
		return nil, fmt.Errorf("consumer: looking up sender key: %w", err)
	}
	if err := env.Verify(pub); err != nil {
		return reject(ReasonBadSignature, err)
	}

	wrapped, ok := env.WrappedKey(me)
	if !ok {
		return reject(ReasonNotRecipient, errors.New("no data key wrapped for this machine"))
	}
	dk, cached, err := c.dataKey(ctx, h.DataKeyID, wrapped)
	if err != nil {
		// An unreachable key service is no fault of the message: leave it
		// in the inbox to be tried again rather than quarantine it.
		if errors.Is(err, keys.ErrUnwrap) && !errors.Is(err, keys.ErrUnavailable) {
			return reject(ReasonOpenFailed, envelope.ErrOpen)
		}
		return nil, fmt.Errorf("consumer: unwrapping data key: %w", err)
	}
	defer dk.Destroy()
	pt, err := env.Open(dk)
	if err != nil {
		// A cached key that fails may be one an attacker raced in under a
		// reused ID; drop it so the next message unwraps afresh.
		c.cache.Forget(h.DataKeyID)
		return reject(ReasonOpenFailed, envelope.ErrOpen)
	}
	if c.cfg.OnOpen != nil {
		c.cfg.OnOpen(OpenEvent{
			MessageID: h.MessageID, Opener: me, Sender: h.Sender, Subject: subject,
			Seq: seq, DataKeyID: h.DataKeyID, SignerKeyID: h.SignerKeyID,
			KeyCached: cached, CiphertextDigest: env.CiphertextDigest(),
		})
	}
	return &Message{
		ID: h.MessageID, Sender: h.Sender, Recipients: h.Recipients, Subject: h.Subject,
		ContentType: h.ContentType, SchemaID: h.SchemaID, Created: h.Created,
		DataKeyID: h.DataKeyID, SignerKeyID: h.SignerKeyID, Payload: pt,
	}, nil
}

// dataKey returns the unwrapped data key, from the cache when possible. The
// envelope's key commitment, checked by Open, makes a cached key safe to
// reuse: a key that does not match the header is refused.
func (c *Consumer) dataKey(ctx context.Context, id string, wrapped []byte) (dk *keys.DataKey, cached bool, err error) {
	if dk := c.cache.Get(id); dk != nil {
		return dk, true, nil
	}
	dk, err = c.kp.UnwrapKey(ctx, id, wrapped)
	if err != nil {
		return nil, false, err
	}
	c.cache.Put(dk)
	return dk, false, nil
}

// Run pulls messages from the machine's inbox and hands each opened one
// to h until ctx is done or, with count > 0, until h has accepted count
// messages. It returns nil when count is reached and ctx's error when
// cancelled.
func (c *Consumer) Run(ctx context.Context, count int, h Handler) error {
	cons, err := c.js.Consumer(ctx, subjects.MessageStream, subjects.InboxConsumer(c.kp.Identity()))
	if err != nil {
		return fmt.Errorf("consumer: inbox: %w", err)
	}
	done := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch := c.cfg.Batch
		if count > 0 {
			batch = min(batch, count-done)
		}
		msgs, err := cons.Fetch(batch, jetstream.FetchMaxWait(c.cfg.PollWait))
		if err != nil {
			return fmt.Errorf("consumer: fetching: %w", err)
		}
		for m := range msgs.Messages() {
			ok, err := c.handle(ctx, m, h)
			if err != nil {
				return err
			}
			if ok {
				done++
			}
		}
		if err := msgs.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && ctx.Err() == nil {
			return fmt.Errorf("consumer: fetching: %w", err)
		}
		if count > 0 && done >= count {
			return nil
		}
	}
}

// handle processes one delivery. It reports whether the handler accepted
// the message; an error means the consumer cannot go on safely.
func (c *Consumer) handle(ctx context.Context, m jetstream.Msg, h Handler) (bool, error) {
	md, err := m.Metadata()
	if err != nil {
		return false, fmt.Errorf("consumer: delivery metadata: %w", err)
	}
	msg, err := c.open(ctx, m.Subject(), m.Data(), md.Sequence.Stream)
	var rej *RejectError
	switch {
	case errors.As(err, &rej):
		rej.Seq = md.Sequence.Stream
		return false, c.quarantine(ctx, m, rej)
	case err != nil:
		// The key service is unreachable or similar: not the message's
		// fault. Leave it for redelivery.
		return false, errors.Join(err, m.NakWithDelay(c.cfg.RetryDelay))
	}
	msg.Seq, msg.Delivered = md.Sequence.Stream, md.NumDelivered

	if err := h(ctx, msg); err != nil {
		if int(md.NumDelivered) >= c.cfg.MaxDeliver {
			rej := &RejectError{Reason: ReasonHandlerFailed, Subject: m.Subject(), Seq: msg.Seq, Err: err}
			return false, c.quarantine(ctx, m, rej)
		}
		return false, m.NakWithDelay(c.cfg.RetryDelay)
	}
	if err := m.DoubleAck(ctx); err != nil {
		return false, fmt.Errorf("consumer: acknowledging %s: %w", msg.ID, err)
	}
	return true, nil
}

// quarantine stores the sealed message on the machine's quarantine subject
// with the reason, and only once that is acknowledged terminates its
// delivery. If the quarantine publish fails the message stays in the
// inbox for redelivery, so a refusal never loses it.
func (c *Consumer) quarantine(ctx context.Context, m jetstream.Msg, rej *RejectError) error {
	me := c.kp.Identity()
	q := nats.NewMsg(subjects.Quarantine(me))
	q.Data = m.Data()
	q.Header.Set(subjects.HeaderReason, string(rej.Reason))
	q.Header.Set(subjects.HeaderOriginalSubject, m.Subject())
	q.Header.Set(subjects.HeaderOriginalSeq, strconv.FormatUint(rej.Seq, 10))
	q.Header.Set(subjects.HeaderQuarantinedBy, me)
	id := fmt.Sprintf("q.%s.%d", me, rej.Seq)
	if _, err := c.js.PublishMsg(ctx, q, jetstream.WithMsgID(id), jetstream.WithExpectStream(subjects.QuarantineStream)); err != nil {
		return errors.Join(fmt.Errorf("consumer: quarantining seq %d: %w", rej.Seq, err), m.NakWithDelay(c.cfg.RetryDelay))
	}
	if err := m.TermWithReason(string(rej.Reason)); err != nil {
		return fmt.Errorf("consumer: terminating seq %d: %w", rej.Seq, err)
	}
	if c.cfg.OnReject != nil {
		c.cfg.OnReject(rej)
	}
	return nil
}
