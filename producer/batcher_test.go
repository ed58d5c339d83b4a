package producer

import (
	"context"
	"crypto/ed25519"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/keys"
)

// fakeKeys is a key provider whose wraps and signatures take a set time
// and can be made to fail, as a remote key service would.
type fakeKeys struct {
	priv ed25519.PrivateKey

	wrapDelay, signDelay time.Duration
	down                 atomic.Bool // fail with keys.ErrUnavailable

	wraps, signs atomic.Int64
	// inSign counts concurrent Sign calls; maxInSign is the most seen.
	inSign, maxInSign atomic.Int64
}

func newFakeKeys() *fakeKeys {
	return &fakeKeys{priv: ed25519.NewKeyFromSeed(make([]byte, 32))}
}

func (f *fakeKeys) Identity() string { return "lab-feed" }

func (f *fakeKeys) WrapKey(ctx context.Context, recipient string, dk *keys.DataKey) ([]byte, error) {
	f.wraps.Add(1)
	time.Sleep(f.wrapDelay)
	if f.down.Load() {
		return nil, keys.ErrUnavailable
	}
	return []byte("wrapped:" + recipient + ":" + dk.ID()), nil
}

func (f *fakeKeys) UnwrapKey(context.Context, string, []byte) (*keys.DataKey, error) {
	return nil, keys.ErrUnwrap
}

func (f *fakeKeys) Sign(ctx context.Context, msg []byte) ([]byte, string, error) {
	n := f.inSign.Add(1)
	defer f.inSign.Add(-1)
	for m := f.maxInSign.Load(); n > m && !f.maxInSign.CompareAndSwap(m, n); m = f.maxInSign.Load() {
	}
	f.signs.Add(1)
	time.Sleep(f.signDelay)
	if f.down.Load() {
		return nil, "", keys.ErrUnavailable
	}
	return ed25519.Sign(f.priv, msg), "fake:v1", nil
}

func (f *fakeKeys) PublicKey(context.Context, string, string) (ed25519.PublicKey, error) {
	return f.priv.Public().(ed25519.PublicKey), nil
}

func unsigned(t testing.TB, n int) []*envelope.Unsigned {
	t.Helper()
	dk := keys.NewDataKey()
	out := make([]*envelope.Unsigned, n)
	for i := range out {
		u, err := envelope.Prepare(envelope.Meta{
			MessageID: NewMessageID(), Sender: "lab-feed", Recipients: []string{"billing"},
			Subject: "phix.msg.lab-feed.billing.bin", ContentType: "application/octet-stream",
			Created: time.Now(),
		}, dk, nil, []byte("synthetic"))
		if err != nil {
			t.Fatalf("Prepare = %v", err)
		}
		out[i] = u
	}
	return out
}

func TestBatcherSignsALoneMessageAtOnce(t *testing.T) {
	f := newFakeKeys()
	b := newBatcher(f, 512, 0)
	start := time.Now()
	out, err := b.sign(context.Background(), unsigned(t, 2))
	if err != nil || len(out) != 2 {
		t.Fatalf("sign(2 copies) = %d envelopes, %v; want 2", len(out), err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("sign(lone message) took %v, want no waiting", took)
	}
	if got := f.signs.Load(); got != 1 {
		t.Errorf("Sign calls = %d, want 1 for both copies", got)
	}
	for i, raw := range out {
		e, err := envelope.Decode(raw)
		if err != nil {
			t.Fatalf("Decode(%d) = %v", i, err)
		}
		if size, index := e.Batch(); size != 2 || index != uint64(i) {
			t.Errorf("Batch() = %d, %d; want 2, %d", size, index, i)
		}
		if err := e.Verify(f.priv.Public().(ed25519.PublicKey)); err != nil {
			t.Errorf("Verify(%d) = %v", i, err)
		}
	}
}

// TestBatcherSharesSignaturesUnderLoad publishes from many goroutines
// against a slow signer: signatures are made one at a time and each
// covers the messages that queued meanwhile.
func TestBatcherSharesSignaturesUnderLoad(t *testing.T) {
	f := newFakeKeys()
	f.signDelay = 20 * time.Millisecond
	b := newBatcher(f, 64, 0)
	const callers, each = 32, 10
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range each {
				if _, err := b.sign(context.Background(), unsigned(t, 1)); err != nil {
					t.Errorf("sign = %v", err)
					return
				}
			}
		})
	}
	wg.Wait()

	sigs, envs := b.signatures.Load(), b.envelopes.Load()
	if envs != callers*each {
		t.Errorf("envelopes signed = %d, want %d", envs, callers*each)
	}
	if sigs > callers*each/4 {
		t.Errorf("signatures = %d for %d envelopes, want batches of several", sigs, envs)
	}
	if got := f.maxInSign.Load(); got != 1 {
		t.Errorf("concurrent Sign calls = %d, want 1 at a time", got)
	}
}

func TestBatcherRespectsMaxBatch(t *testing.T) {
	f := newFakeKeys()
	f.signDelay = 20 * time.Millisecond
	b := newBatcher(f, 3, 0)
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			out, err := b.sign(context.Background(), unsigned(t, 1))
			if err != nil {
				t.Errorf("sign = %v", err)
				return
			}
			e, err := envelope.Decode(out[0])
			if err != nil {
				t.Errorf("Decode = %v", err)
				return
			}
			if size, _ := e.Batch(); size > 3 {
				t.Errorf("batch size = %d, want at most 3", size)
			}
		})
	}
	wg.Wait()
}

func TestBatcherFailureFailsTheWholeBatch(t *testing.T) {
	f := newFakeKeys()
	f.down.Store(true)
	b := newBatcher(f, 512, 0)
	if _, err := b.sign(context.Background(), unsigned(t, 3)); !errors.Is(err, keys.ErrUnavailable) {
		t.Errorf("sign(signer down) = %v, want keys.ErrUnavailable", err)
	}
	f.down.Store(false)
	if _, err := b.sign(context.Background(), unsigned(t, 1)); err != nil {
		t.Errorf("sign(signer back) = %v, want nil", err)
	}
}

func TestBatcherCallerGivesUp(t *testing.T) {
	f := newFakeKeys()
	f.signDelay = time.Second
	b := newBatcher(f, 512, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.sign(ctx, unsigned(t, 1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("sign(short deadline, slow signer) = %v, want DeadlineExceeded", err)
	}
}

// TestBatcherRidesOutAShortOutage takes the signer down and brings it
// back while a request waits: the request is signed, not failed.
func TestBatcherRidesOutAShortOutage(t *testing.T) {
	f := newFakeKeys()
	f.down.Store(true)
	b := newBatcher(f, 512, 10*time.Second)
	go func() {
		time.Sleep(300 * time.Millisecond)
		f.down.Store(false)
	}()
	if _, err := b.sign(context.Background(), unsigned(t, 2)); err != nil {
		t.Fatalf("sign across a short outage = %v, want nil", err)
	}
	if got := f.signs.Load(); got < 2 {
		t.Errorf("Sign calls = %d, want retries", got)
	}

	f.down.Store(true)
	start := time.Now()
	b = newBatcher(f, 512, 300*time.Millisecond)
	if _, err := b.sign(context.Background(), unsigned(t, 1)); !errors.Is(err, keys.ErrUnavailable) {
		t.Errorf("sign through a long outage = %v, want keys.ErrUnavailable", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("sign through a long outage took %v, want about the wait", took)
	}
}
