package consumer

import (
	"context"
	"errors"
	"time"
)

// Config configures a [Consumer]. The zero value of every field selects the
// documented default.
type Config struct {
	// MaxDeliver is how many times a message whose handler fails is
	// offered before it is quarantined with [ReasonHandlerFailed]. Zero
	// means 5.
	MaxDeliver int

	// RetryDelay is how long a message whose handler failed waits before it
	// is offered again. Zero means 1s.
	RetryDelay time.Duration

	// KeyCacheSize and KeyCacheTTL bound the cache of unwrapped data keys.
	// Zero means 1024 keys and 10 minutes; a negative size disables it.
	KeyCacheSize int
	KeyCacheTTL  time.Duration

	// RootCacheSize bounds how many verified batch signatures are
	// remembered, so that the other envelopes of a signed batch need only
	// their inclusion proof checked. Zero means 4096; negative disables.
	RootCacheSize int

	// Registry, if set, is where the consumer fetches its wrapped data
	// key when an envelope carries none for it (the Vault provider keeps
	// wrapped keys there, and grants add them there). A *registry.Client
	// satisfies it. Nil means envelopes must carry the key inline.
	Registry Registry

	// Batch is how many messages one pull asks for. Zero means 64.
	Batch int

	// PollWait is how long one pull waits for messages. Zero means 5s.
	PollWait time.Duration

	// OnReject, if set, is called for every message the consumer refuses,
	// after it is safely quarantined. It must not block.
	OnReject func(*RejectError)

	// OnOpen, if set, is called each time a message is verified and
	// opened, before it is handed to the handler, for the audit trail. It
	// must not block.
	OnOpen func(OpenEvent)
}

// Registry fetches data keys wrapped for the consumer's machine;
// *registry.Client satisfies it.
type Registry interface {
	// Get returns the data key dataKeyID of sender wrapped for this
	// machine, or an error matching registry.ErrNotFound,
	// registry.ErrDestroyed or registry.ErrUnavailable.
	Get(ctx context.Context, sender, dataKeyID string) ([]byte, error)
}

// OpenEvent records that a machine opened a message. It carries no
// payload: only what an auditor may see.
type OpenEvent struct {
	MessageID   string
	Opener      string // the machine that opened it
	Sender      string
	Subject     string
	Seq         uint64 // stream sequence; 0 when opened outside the stream
	DataKeyID   string
	SignerKeyID string
	// WrapKeyVersion is the version of this machine's wrapping key that
	// opened the data key ("vault:v2", or "local:hpke").
	WrapKeyVersion string
	// KeyCached reports that the data key came from the consumer's cache
	// rather than a fresh unwrap by the key provider.
	KeyCached bool
	// CiphertextDigest is the SHA-256 of the sealed payload.
	CiphertextDigest [32]byte
}

func (c Config) withDefaults() (Config, error) {
	if c.MaxDeliver == 0 {
		c.MaxDeliver = 5
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = time.Second
	}
	if c.KeyCacheSize == 0 {
		c.KeyCacheSize = 1024
	}
	if c.KeyCacheTTL == 0 {
		c.KeyCacheTTL = 10 * time.Minute
	}
	if c.Batch == 0 {
		c.Batch = 64
	}
	if c.RootCacheSize == 0 {
		c.RootCacheSize = 4096
	}
	if c.PollWait == 0 {
		c.PollWait = 5 * time.Second
	}
	if c.MaxDeliver < 1 || c.RetryDelay < 0 || c.Batch < 1 || c.PollWait < 0 {
		return c, errors.New("consumer: invalid config")
	}
	return c, nil
}
