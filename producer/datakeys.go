package producer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"phix.dev/phix/keys"
)

const (
	// refreshTimeout bounds one background refresh of a data key, wrapping
	// and registering included, when the key provider sets no bound
	// itself.
	refreshTimeout = 30 * time.Second
	// retryInterval is how long after a failed wrap the ring fails at
	// once instead of asking the key service again.
	retryInterval = time.Second
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

// keySlot is the state of one recipient set: the key in use, a successor
// wrapped ahead of time, and a refresh in progress.
type keySlot struct {
	cur  *dataKey
	next *dataKey // wrapped and registered, not used yet
	// refreshing is closed when the refresh in progress ends; nil when
	// none runs.
	refreshing chan struct{}
	// lastErr is why the last wrap failed, at failedAt; nil after a
	// success.
	lastErr  error
	failedAt time.Time
}

// keyRing hands out data keys, reusing one per recipient set within the
// configured limits. Keys are not shared between recipient sets, so a
// recipient can never open a message addressed to a set it is not in, even
// if it obtained that ciphertext.
//
// Once a key has used three quarters of any limit, a successor is wrapped
// (and registered) in the background, so that publishing does not wait on
// the key service at steady state, and keeps going on the current key
// while the key service is unreachable, until that key is spent.
type keyRing struct {
	kp  keys.Provider
	cfg Config

	mu     sync.Mutex
	slots  map[string]*keySlot // guarded by mu; keyed by recipientSet
	issued int                 // guarded by mu; data keys created, for tests and metrics
}

func newKeyRing(kp keys.Provider, cfg Config) *keyRing {
	return &keyRing{kp: kp, cfg: cfg, slots: make(map[string]*keySlot)}
}

func recipientSet(recipients []string) string {
	s := slices.Clone(recipients)
	slices.Sort(s)
	return strings.Join(s, ",")
}

// take returns a data key for recipients that may encrypt n more bytes of
// plaintext, and counts the use. Wrapping happens outside the lock, and
// only one caller per recipient set wraps at a time while the others wait
// for its key, so a slow key service is asked once, not by every caller.
func (r *keyRing) take(ctx context.Context, recipients []string, n int) (*dataKey, error) {
	if r.cfg.KeyMessages < 0 {
		return r.fresh(ctx, recipients, n)
	}
	set := recipientSet(recipients)
	for {
		now := r.cfg.Now()
		r.mu.Lock()
		s := r.slots[set]
		if s == nil {
			s = &keySlot{}
			r.slots[set] = s
		}
		if k := r.useLocked(s, recipients, now, n); k != nil {
			r.mu.Unlock()
			return k, nil
		}
		if wait := s.refreshing; wait != nil {
			r.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if s.lastErr != nil && now.Sub(s.failedAt) < retryInterval {
			// The key service failed a moment ago: fail fast instead of
			// making every caller wait for it to time out again.
			err := s.lastErr
			r.mu.Unlock()
			return nil, fmt.Errorf("%w: no usable data key, and wrapping a new one failed %v ago",
				err, now.Sub(s.failedAt).Round(time.Millisecond))
		}
		done := make(chan struct{})
		s.refreshing = done
		r.mu.Unlock()

		k, err := r.wrapFresh(ctx, recipients, now)

		r.mu.Lock()
		close(done)
		s.refreshing = nil
		if err != nil {
			if ctx.Err() == nil {
				s.lastErr, s.failedAt = err, now
			}
			r.mu.Unlock()
			return nil, err
		}
		k.messages, k.bytes = 1, int64(n)
		s.cur, s.lastErr = k, nil
		r.mu.Unlock()
		return k, nil
	}
}

// useLocked counts a use of the slot's usable key, promoting the
// successor if the current key is spent, and starts a refresh when the key
// nears a limit. It returns nil if the caller must wrap a key itself or
// wait for a refresh.
func (r *keyRing) useLocked(s *keySlot, recipients []string, now time.Time, n int) *dataKey {
	if s.next != nil && now.Sub(s.next.created) >= r.cfg.KeyAge {
		s.next = nil // wrapped ahead, then never needed in time
	}
	if s.cur == nil || !r.usable(s.cur, now, n) {
		s.cur = nil
		if s.next != nil {
			// The retired key may still be in use by a concurrent Publish,
			// so it is dropped rather than zeroed; the garbage collector
			// reclaims it.
			s.cur, s.next = s.next, nil
		}
	}
	if s.cur == nil {
		return nil
	}
	s.cur.messages++
	s.cur.bytes += int64(n)
	if s.next == nil && s.refreshing == nil && r.nearLimit(s.cur, now) {
		s.refreshing = make(chan struct{})
		go r.refresh(s, slices.Clone(recipients), now)
	}
	return s.cur
}

// refresh wraps a successor for the slot in the background.
func (r *keyRing) refresh(s *keySlot, recipients []string, now time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
	defer cancel()
	k, err := r.wrapFresh(ctx, recipients, now)

	r.mu.Lock()
	defer r.mu.Unlock()
	s.next, s.lastErr = k, nil
	if err != nil {
		s.lastErr, s.failedAt = err, now
	}
	close(s.refreshing)
	s.refreshing = nil
}

// fresh wraps a new key and counts one use of n bytes.
func (r *keyRing) fresh(ctx context.Context, recipients []string, n int) (*dataKey, error) {
	k, err := r.wrapFresh(ctx, recipients, r.cfg.Now())
	if err != nil {
		return nil, err
	}
	k.messages, k.bytes = 1, int64(n)
	return k, nil
}

func (r *keyRing) usable(k *dataKey, now time.Time, n int) bool {
	return k.messages < r.cfg.KeyMessages &&
		k.bytes+int64(n) <= r.cfg.KeyBytes &&
		now.Sub(k.created) < r.cfg.KeyAge
}

// nearLimit reports whether k has used three quarters of any limit.
func (r *keyRing) nearLimit(k *dataKey, now time.Time) bool {
	return int64(k.messages)*4 >= int64(r.cfg.KeyMessages)*3 ||
		k.bytes*4 >= r.cfg.KeyBytes*3 ||
		now.Sub(k.created)*4 >= r.cfg.KeyAge*3
}

// multiWrapper is a provider that wraps one key for several recipients in
// one call, as [keys.Vault.WrapKeys] does in parallel.
type multiWrapper interface {
	WrapKeys(ctx context.Context, recipients []string, dk *keys.DataKey) ([][]byte, error)
}

// wrapFresh makes a data key, wraps it for each recipient and, with a
// registry, stores the wrapped keys there before the key is used, so that
// no envelope ever names a key its readers cannot find.
func (r *keyRing) wrapFresh(ctx context.Context, recipients []string, now time.Time) (*dataKey, error) {
	dk := keys.NewDataKey()
	k := &dataKey{dk: dk, wrapped: make(map[string][]byte, len(recipients)), created: now}
	var ws [][]byte
	var err error
	if mw, ok := r.kp.(multiWrapper); ok {
		ws, err = mw.WrapKeys(ctx, recipients, dk)
	} else {
		for _, rcpt := range recipients {
			var w []byte
			if w, err = r.kp.WrapKey(ctx, rcpt, dk); err != nil {
				break
			}
			ws = append(ws, w)
		}
	}
	if err != nil {
		dk.Destroy()
		return nil, err
	}
	for i, rcpt := range recipients {
		k.wrapped[rcpt] = ws[i]
		if r.cfg.Registry == nil {
			continue
		}
		if err := r.cfg.Registry.Put(ctx, dk.ID(), rcpt, ws[i]); err != nil {
			dk.Destroy()
			return nil, fmt.Errorf("registering data key for %s: %w", rcpt, err)
		}
	}

	r.mu.Lock()
	r.issued++
	r.mu.Unlock()
	return k, nil
}

// issuedKeys returns how many data keys the ring has created.
func (r *keyRing) issuedKeys() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.issued
}
