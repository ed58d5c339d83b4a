// Package consumer receives sealed messages addressed to one machine,
// verifies and opens them, and hands the plaintext to the application.
//
// A message is acknowledged only after the handler returns nil. A message
// that fails verification or opening is never handed over: it is copied,
// still sealed, to the quarantine stream with a [Reason], and only then
// removed from the machine's inbox, so nothing is lost. A message that
// cannot be opened only because the key service or the registry is out of
// reach is left in the inbox and tried again.
//
// Envelopes of format version 2 may carry no wrapped key: the consumer
// then fetches the one wrapped for its machine from the wrapped-key
// registry ([Config].Registry). Unwrapped data keys and verified batch
// signatures are cached, so that a message under a known data key, in a
// known batch, costs no key service call at all.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/keys"
	"phix.dev/phix/registry"
)

// ackTimeout bounds how long an acknowledgement may wait for the broker's
// confirmation once the handler has accepted a message.
const ackTimeout = 10 * time.Second

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
	js       jetstream.JetStream
	kp       keys.Provider
	cfg      Config
	cache    *keys.Cache
	verifier *envelope.Verifier
	seen     *seenMessages
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
	return &Consumer{
		js: js, kp: kp, cfg: cfg,
		cache:    keys.NewCache(cfg.KeyCacheSize, cfg.KeyCacheTTL),
		verifier: envelope.NewVerifier(cfg.RootCacheSize),
		seen:     newSeenMessages(),
	}, nil
}

// Open verifies and opens an envelope that arrived on subject, as this
// consumer's machine. Every refusal is a [*RejectError]. Verification
// comes first: nothing is unwrapped or decrypted for a message whose
// sender signature does not hold. Other errors (a key service or the
// registry out of reach) say nothing about the message: try again later.
func (c *Consumer) Open(ctx context.Context, subject string, data []byte) (*Message, error) {
	return c.open(ctx, subject, data, 0, false)
}

// OpenGranted opens a message stored on subject that is not addressed to
// this machine but whose data key was granted to it, as an auditor reads
// past messages it fetched from the stream. It checks everything [Open]
// does except that the machine is a recipient; without a grant it fails
// with [ReasonNotRecipient].
func (c *Consumer) OpenGranted(ctx context.Context, subject string, data []byte) (*Message, error) {
	return c.open(ctx, subject, data, 0, true)
}

func (c *Consumer) open(ctx context.Context, subject string, data []byte, seq uint64,
	granted bool) (*Message, error) {
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
	if !granted && (rcpt != me || !slices.Contains(h.Recipients, me)) {
		return reject(ReasonNotRecipient, fmt.Errorf("%s is not a recipient", me))
	}

	pub, err := c.kp.PublicKey(ctx, h.Sender, h.SignerKeyID)
	if err != nil {
		if errors.Is(err, keys.ErrUnknownMachine) || errors.Is(err, keys.ErrUnknownKey) {
			return reject(ReasonUnknownSender, err)
		}
		return nil, fmt.Errorf("consumer: looking up sender key: %w", err)
	}
	if err := c.verifier.Verify(env, pub); err != nil {
		return reject(ReasonBadSignature, err)
	}

	dk, wrapVer, cached, err := c.dataKey(ctx, env, &h)
	var rej *RejectError
	switch {
	case errors.As(err, &rej):
		rej.Subject = subject
		return nil, rej
	case err != nil:
		// An unreachable key service or registry is no fault of the
		// message: leave it in the inbox to be tried again rather than
		// quarantine it.
		return nil, fmt.Errorf("consumer: data key: %w", err)
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
			WrapKeyVersion: wrapVer, KeyCached: cached, CiphertextDigest: env.CiphertextDigest(),
		})
	}
	return &Message{
		ID: h.MessageID, Sender: h.Sender, Recipients: h.Recipients, Subject: h.Subject,
		ContentType: h.ContentType, SchemaID: h.SchemaID, Created: h.Created,
		DataKeyID: h.DataKeyID, SignerKeyID: h.SignerKeyID, Payload: pt,
	}, nil
}

// dataKey returns the unwrapped data key of a verified envelope: from the
// cache when possible, else unwrapped from the envelope's own wrapped key
// or, if it carries none for this machine, from the registry's. The
// envelope's key commitment, checked by Open, makes a cached key safe to
// reuse: a key that does not match the header is refused. Refusals are
// [*RejectError]s without a subject; other errors mean "try later".
func (c *Consumer) dataKey(ctx context.Context, env *envelope.Envelope,
	h *envelope.Header) (dk *keys.DataKey, version string, cached bool, err error) {
	if dk, version := c.cache.Get(h.DataKeyID); dk != nil {
		return dk, version, true, nil
	}
	wrapped, ok := env.WrappedKey(c.kp.Identity())
	if !ok {
		if wrapped, err = c.fetch(ctx, h); err != nil {
			return nil, "", false, err
		}
	}
	dk, err = c.kp.UnwrapKey(ctx, h.DataKeyID, wrapped)
	if err != nil {
		if errors.Is(err, keys.ErrUnwrap) && !errors.Is(err, keys.ErrUnavailable) {
			return nil, "", false, &RejectError{Reason: ReasonOpenFailed, Err: envelope.ErrOpen}
		}
		return nil, "", false, fmt.Errorf("unwrapping: %w", err)
	}
	version = wrapVersion(wrapped)
	c.cache.Put(dk, version)
	return dk, version, false, nil
}

// wrapVersion names the key version a wrapped data key was made with:
// Vault's own "vault:vN" prefix, or the local provider's HPKE key.
func wrapVersion(wrapped []byte) string {
	if v, rest, ok := strings.Cut(string(wrapped[:min(len(wrapped), 24)]), ":"); ok && v == "vault" {
		if n, _, ok := strings.Cut(rest, ":"); ok {
			return "vault:" + n
		}
	}
	return "local:hpke"
}

// fetch gets this machine's wrapped key from the registry.
func (c *Consumer) fetch(ctx context.Context, h *envelope.Header) ([]byte, error) {
	if c.cfg.Registry == nil {
		return nil, &RejectError{Reason: ReasonNotRecipient, Err: errNoWrappedKey}
	}
	w, err := c.cfg.Registry.Get(ctx, h.Sender, h.DataKeyID)
	switch {
	case errors.Is(err, registry.ErrDestroyed):
		return nil, &RejectError{Reason: ReasonKeyDestroyed, Err: err}
	case errors.Is(err, registry.ErrNotFound), errors.Is(err, registry.ErrInvalid):
		return nil, &RejectError{Reason: ReasonNotRecipient, Err: errNoWrappedKey}
	case err != nil:
		return nil, fmt.Errorf("fetching from the registry: %w", err)
	}
	return w, nil
}

// errNoWrappedKey is the cause of [ReasonNotRecipient] when neither the
// envelope nor the registry has a key wrapped for this machine.
var errNoWrappedKey = errors.New("no data key wrapped for this machine")

// Run pulls messages from the machine's inbox and hands each opened one
// to h until ctx is done or, with count > 0, until h has accepted count
// messages. It returns nil when count is reached and ctx's error when
// cancelled.
func (c *Consumer) Run(ctx context.Context, count int, h Handler) error {
	cons, err := c.js.Consumer(ctx, subjects.MessageStream, subjects.InboxConsumer(c.kp.Identity()))
	if err != nil {
		return fmt.Errorf("consumer: inbox: %w", err)
	}
	done, backoff := 0, c.cfg.RetryDelay
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch := c.cfg.Batch
		if count > 0 {
			batch = min(batch, count-done)
		}
		n, err := c.runBatch(ctx, cons, batch, h)
		done += n
		switch {
		case err == nil:
			backoff = c.cfg.RetryDelay
		case ctx.Err() != nil:
			return ctx.Err()
		case transient(err):
			// The connection is reconnecting or the broker restarting:
			// wait and pull again rather than give up.
			if err := sleep(ctx, backoff); err != nil {
				return err
			}
			backoff = min(2*backoff, 30*time.Second)
		default:
			return err
		}
		if count > 0 && done >= count {
			return nil
		}
	}
}

// runBatch pulls up to n messages and handles them in order, returning how
// many the handler accepted. When ctx ends mid-batch, the messages not yet
// handled are released at once, so that the next consumer need not wait
// for their acknowledgement deadline.
func (c *Consumer) runBatch(ctx context.Context, cons jetstream.Consumer, n int, h Handler) (int, error) {
	msgs, err := cons.Fetch(n, jetstream.FetchMaxWait(c.cfg.PollWait))
	if err != nil {
		return 0, fmt.Errorf("consumer: fetching: %w", err)
	}
	done := 0
	for m := range msgs.Messages() {
		if ctx.Err() != nil {
			m.Nak()
			continue
		}
		ok, err := c.handle(ctx, m, h)
		if err != nil {
			for rest := range msgs.Messages() {
				rest.Nak()
			}
			return done, err
		}
		if ok {
			done++
		}
	}
	if err := msgs.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
		return done, fmt.Errorf("consumer: fetching: %w", err)
	}
	return done, nil
}

// transient reports whether a pull failed for a reason that passes by
// itself: a reconnecting connection, a restarting broker, a missed
// heartbeat.
func transient(err error) bool {
	return errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoHeartbeat) ||
		errors.Is(err, jetstream.ErrServerShutdown) ||
		errors.Is(err, context.DeadlineExceeded)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// handle processes one delivery. It reports whether the handler accepted
// the message; an error means the consumer cannot go on safely.
func (c *Consumer) handle(ctx context.Context, m jetstream.Msg, h Handler) (bool, error) {
	md, err := m.Metadata()
	if err != nil {
		return false, fmt.Errorf("consumer: delivery metadata: %w", err)
	}
	msg, err := c.open(ctx, m.Subject(), m.Data(), md.Sequence.Stream, false)
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
	if c.seen.replayed(msg.ID, m.Subject(), msg.Seq) {
		rej := &RejectError{Reason: ReasonReplayed, Subject: m.Subject(), Seq: msg.Seq,
			Err: fmt.Errorf("message %s was already received as another stored copy", msg.ID)}
		return false, c.quarantine(ctx, m, rej)
	}

	if err := h(ctx, msg); err != nil {
		if int(md.NumDelivered) >= c.cfg.MaxDeliver {
			rej := &RejectError{Reason: ReasonHandlerFailed, Subject: m.Subject(), Seq: msg.Seq, Err: err}
			return false, c.quarantine(ctx, m, rej)
		}
		return false, m.NakWithDelay(c.cfg.RetryDelay)
	}
	// The handler has taken the message, so the acknowledgement must go
	// out even if ctx was cancelled meanwhile; otherwise the message
	// would be handed over twice.
	ackCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
	defer cancel()
	if err := m.DoubleAck(ackCtx); err != nil {
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
