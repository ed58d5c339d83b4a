package producer

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"phix.dev/phix/keys"
)

// dataKey is a data key in use for one recipient set, with the copies of
// it wrapped for each recipient and what it has been used for so far.
type dataKey struct {
	dk       *keys.DataKey
	wrapped  map[string][]byte // by recipient
	created  time.Time
	messages int
	bytes    int64
}

// keyRing hands out data keys, reusing one per recipient set within the
// configured limits. Keys are not shared between recipient sets, so a
// recipient can never open a message addressed to a set it is not in, even
// if it obtained that ciphertext.
type keyRing struct {
	kp  keys.Provider
	cfg Config

	mu     sync.Mutex
	bySet  map[string]*dataKey // guarded by mu; keyed by recipientSet
	issued int                 // guarded by mu; data keys created, for tests and metrics
}

func newKeyRing(kp keys.Provider, cfg Config) *keyRing {
	return &keyRing{kp: kp, cfg: cfg, bySet: make(map[string]*dataKey)}
}

func recipientSet(recipients []string) string {
	s := slices.Clone(recipients)
	slices.Sort(s)
	return strings.Join(s, ",")
}

// take returns a data key for recipients that may encrypt n more bytes of
// plaintext, and counts the use. Wrapping happens outside the lock so a slow
// key service does not stall publishes for other recipient sets for longer
// than one wrap.
func (r *keyRing) take(ctx context.Context, recipients []string, n int) (*dataKey, error) {
	set := recipientSet(recipients)
	now := r.cfg.Now()

	r.mu.Lock()
	k := r.bySet[set]
	if k != nil && r.usable(k, now, n) {
		k.messages++
		k.bytes += int64(n)
		r.mu.Unlock()
		return k, nil
	}
	r.mu.Unlock()

	fresh, err := r.wrapFresh(ctx, recipients, now)
	if err != nil {
		return nil, err
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	r.issued++
	fresh.messages, fresh.bytes = 1, int64(n)
	if r.cfg.KeyMessages > 0 {
		// The retired key may still be in use by a concurrent Publish, so it
		// is dropped rather than zeroed; the garbage collector reclaims it.
		r.bySet[set] = fresh
	}
	return fresh, nil
}

func (r *keyRing) usable(k *dataKey, now time.Time, n int) bool {
	return r.cfg.KeyMessages > 0 &&
		k.messages < r.cfg.KeyMessages &&
		k.bytes+int64(n) <= r.cfg.KeyBytes &&
		now.Sub(k.created) < r.cfg.KeyAge
}

func (r *keyRing) wrapFresh(ctx context.Context, recipients []string, now time.Time) (*dataKey, error) {
	dk := keys.NewDataKey()
	k := &dataKey{dk: dk, wrapped: make(map[string][]byte, len(recipients)), created: now}
	for _, rcpt := range recipients {
		w, err := r.kp.WrapKey(ctx, rcpt, dk)
		if err != nil {
			dk.Destroy()
			return nil, err
		}
		k.wrapped[rcpt] = w
	}
	return k, nil
}

// issuedKeys returns how many data keys the ring has created.
func (r *keyRing) issuedKeys() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.issued
}
