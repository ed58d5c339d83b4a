package producer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/keys"
)

const (
	// signTimeout bounds one signing attempt when the signer sets no
	// bound itself. Callers stop waiting when their own context ends.
	signTimeout = 30 * time.Second
	// Backoff between signing attempts while the key service is
	// unavailable.
	minSignBackoff = 100 * time.Millisecond
	maxSignBackoff = 2 * time.Second
)

// batcher signs envelopes adaptively: when no signature is being made, a
// request is signed at once, alone; requests that arrive while one is
// being made queue up and share the next signature, up to max envelopes.
// A key service that takes d per signature thus sees at most one request
// per d, however many messages are published, and a lone message waits
// for nothing but its own signature.
//
// While the key service is unavailable ([keys.ErrUnavailable]), a batch is
// tried again with backoff, together with whatever queued meanwhile, for
// up to wait per request, so that publishing rides out a short outage;
// a request that waited longer fails with the key service's error.
//
// It is safe for concurrent use.
type batcher struct {
	s    envelope.Signer
	max  int
	wait time.Duration
	// sessions, if not nil, supplies a delegated session key that signs
	// instead of s.
	sessions *sessions

	// mu guards queue and running.
	mu      sync.Mutex
	queue   []*signRequest
	running bool // a goroutine is draining queue

	signatures atomic.Int64 // signatures made, for tests and metrics
	envelopes  atomic.Int64 // envelopes signed
}

// signRequest is one caller's envelopes, signed together.
type signRequest struct {
	us       []*envelope.Unsigned
	deadline time.Time // give up retrying after this
	out      [][]byte
	err      error
	done     chan struct{}
}

func newBatcher(s envelope.Signer, max int, wait time.Duration) *batcher {
	return &batcher{s: s, max: max, wait: wait}
}

// sign returns the encoded envelopes of us, in order, signed in one batch
// with other callers' envelopes or alone. All of us or none are signed.
func (b *batcher) sign(ctx context.Context, us []*envelope.Unsigned) ([][]byte, error) {
	req := &signRequest{us: us, deadline: time.Now().Add(b.wait), done: make(chan struct{})}
	if d, ok := ctx.Deadline(); ok && d.Before(req.deadline) {
		req.deadline = d
	}
	b.mu.Lock()
	b.queue = append(b.queue, req)
	start := !b.running
	b.running = true
	b.mu.Unlock()
	if start {
		go b.run()
	}
	select {
	case <-req.done:
		return req.out, req.err
	case <-ctx.Done():
		// The batch may still be signed; its envelopes are then dropped
		// unpublished, which is harmless.
		return nil, fmt.Errorf("waiting for a signature: %w", ctx.Err())
	}
}

// run signs queued requests, one batch at a time, until the queue is
// empty.
func (b *batcher) run() {
	backoff := minSignBackoff
	for {
		b.mu.Lock()
		reqs := b.takeLocked()
		if len(reqs) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		retry := b.signBatch(reqs)
		if len(retry) == 0 {
			backoff = minSignBackoff
			continue
		}
		// Put the batch back in front, so that it goes first, with
		// whatever queued meanwhile, when the key service is back.
		b.mu.Lock()
		b.queue = append(retry, b.queue...)
		b.mu.Unlock()
		time.Sleep(backoff)
		backoff = min(2*backoff, maxSignBackoff)
	}
}

// takeLocked removes from the queue the requests of the next batch: as
// many as fit in max envelopes, and at least one.
func (b *batcher) takeLocked() []*signRequest {
	n, i := 0, 0
	for ; i < len(b.queue); i++ {
		if i > 0 && n+len(b.queue[i].us) > b.max {
			break
		}
		n += len(b.queue[i].us)
	}
	reqs := b.queue[:i:i]
	b.queue = append([]*signRequest(nil), b.queue[i:]...)
	return reqs
}

// signAll signs us with one signature: by the session key if there are
// sessions, else by the key provider.
func (b *batcher) signAll(us []*envelope.Unsigned) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), signTimeout)
	defer cancel()
	var s envelope.Signer = b.s
	if b.sessions != nil {
		ss, err := b.sessions.get(ctx)
		if err != nil {
			return nil, err
		}
		s = ss
	}
	return envelope.SignBatch(ctx, s, us)
}

// signBatch signs the envelopes of reqs with one signature and completes
// each request, except those to try again because the key service was
// unavailable and their deadline has not passed, which it returns.
func (b *batcher) signBatch(reqs []*signRequest) (retry []*signRequest) {
	var all []*envelope.Unsigned
	for _, r := range reqs {
		all = append(all, r.us...)
	}
	out, err := b.signAll(all)
	if err == nil {
		b.signatures.Add(1)
		b.envelopes.Add(int64(len(all)))
	}
	now := time.Now()
	for _, r := range reqs {
		if errors.Is(err, keys.ErrUnavailable) && now.Before(r.deadline) {
			retry = append(retry, r)
			continue
		}
		r.err = err
		if err == nil {
			r.out, out = out[:len(r.us):len(r.us)], out[len(r.us):]
		}
		close(r.done)
	}
	return retry
}
