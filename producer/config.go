package producer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/keys"
)

// Default limits on reusing one data key. A data key is never reused
// across different recipient sets, and each message still gets its own
// HKDF-derived key, so these bound the blast radius of one leaked data key
// rather than nonce safety.
const (
	DefaultKeyMessages = 10_000           // messages per data key
	DefaultKeyBytes    = 1 << 30          // plaintext bytes per data key
	DefaultKeyAge      = 15 * time.Minute // age of a data key
)

// Config configures a [Producer]. The zero value of every field except
// Keys selects the documented default.
type Config struct {
	// KeyMessages, KeyBytes and KeyAge bound how long one data key is
	// reused: after that many messages, plaintext bytes, or that much
	// time, the next message gets a fresh data key. Zero means the
	// matching Default constant; a negative KeyMessages disables reuse.
	KeyMessages int
	KeyBytes    int64
	KeyAge      time.Duration

	// Registry, if set, receives every data key wrapped for each recipient
	// before the key is first used, and envelopes then carry no wrapped
	// keys (format version 2), so that the keys can later be rewrapped,
	// granted or destroyed without touching stored messages. A
	// *registry.Client satisfies it. Nil keeps the wrapped keys inline in
	// each envelope, which needs no registry but allows none of that.
	Registry Registry

	// MaxBatch is the most envelopes one signature covers. A lone message
	// is signed at once; envelopes that arrive while a signature is being
	// made share the next one (format version 2). Zero means 512.
	MaxBatch int

	// SignWait is how long Publish waits for its signature while the key
	// service is unavailable, trying again with backoff, before it fails
	// with the key service's error; nothing is published meanwhile. Zero
	// means 15 seconds; negative means fail at the first refusal.
	SignWait time.Duration

	// SigningKeyLifetime turns on delegated signing: the producer makes
	// an Ed25519 session key in memory, has the key provider sign a
	// delegation to it valid for this long, and signs envelope batches
	// with it locally (schemas/envelope-v2.md, "Delegated signing"). The
	// key provider is then asked to sign once per lifetime instead of
	// once per batch, and publishing continues through a key service
	// outage until the delegation expires. A successor is made in the
	// background from 75% of the lifetime on. Zero means
	// [DefaultSigningKeyLifetime] with a provider that signs remotely
	// (*keys.Vault) and off with any other, which signs locally anyway;
	// negative means off. At most 23h55m.
	SigningKeyLifetime time.Duration

	// PublishTimeout bounds the wait for JetStream's acknowledgement of one
	// attempt to store a copy. Zero means 5s.
	PublishTimeout time.Duration

	// Retries is how many times a failed JetStream publish of one copy is
	// retried before Publish gives up. Retries are safe because every copy
	// carries a deduplication ID. Zero means 3.
	Retries int

	// Now returns the current time; nil means time.Now. It exists for
	// tests of key expiry.
	Now func() time.Time

	// Allow, if set, is asked before anything is sealed whether the
	// producer's machine may send a message of type typ to recipient. A
	// non-nil error refuses the whole Publish; nothing is sent. The policy
	// package supplies it so refusals happen at the source as well as at
	// the broker.
	Allow func(recipient, typ string) error

	// OnPublish, if set, is called once per recipient copy with the
	// outcome, for the audit trail and metrics. It must not block and
	// must not retain the event's slices.
	OnPublish func(PublishEvent)
}

// Registry stores wrapped data keys; *registry.Client satisfies it.
type Registry interface {
	// Put stores the data key dataKeyID wrapped for reader, with the
	// producer's machine as sender. It is called once per key and reader,
	// and again only to retry.
	Put(ctx context.Context, dataKeyID, reader string, wrapped []byte) error
}

// PublishEvent describes one recipient copy of a published message. It
// carries no payload: only what an auditor may see.
type PublishEvent struct {
	MessageID  string
	Sender     string
	Recipient  string   // the copy's recipient
	Recipients []string // every recipient of the message
	Subject    string
	Type       string
	DataKeyID  string
	// CiphertextDigest is the SHA-256 of the sealed payload, which
	// identifies the message without revealing it. Zero if sealing failed.
	CiphertextDigest [32]byte
	Size             int    // plaintext bytes
	Seq              uint64 // stream sequence; 0 on failure
	Duplicate        bool   // the broker already held this copy
	Err              error  // nil on success
}

// signingKeyLifetime returns the lifetime of delegated signing keys for
// provider kp, zero for none.
func (c Config) signingKeyLifetime(kp keys.Provider) (time.Duration, error) {
	life := c.SigningKeyLifetime
	if life == 0 {
		if _, remote := kp.(*keys.Vault); remote {
			life = DefaultSigningKeyLifetime
		}
	}
	if life > maxSigningKeyLifetime {
		return 0, fmt.Errorf("producer: SigningKeyLifetime %v over %v", life, maxSigningKeyLifetime)
	}
	return max(life, 0), nil
}

func (c Config) withDefaults() (Config, error) {
	if c.KeyMessages == 0 {
		c.KeyMessages = DefaultKeyMessages
	}
	if c.KeyBytes == 0 {
		c.KeyBytes = DefaultKeyBytes
	}
	if c.KeyAge == 0 {
		c.KeyAge = DefaultKeyAge
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 5 * time.Second
	}
	if c.Retries == 0 {
		c.Retries = 3
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 512
	}
	if c.SignWait == 0 {
		c.SignWait = 15 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.KeyBytes < 0 || c.KeyAge < 0 || c.Retries < 0 {
		return c, errors.New("producer: negative key limit or retry count")
	}
	if c.MaxBatch < 1 || c.MaxBatch > envelope.MaxBatchSize {
		return c, fmt.Errorf("producer: MaxBatch %d outside 1..%d", c.MaxBatch, envelope.MaxBatchSize)
	}
	return c, nil
}
