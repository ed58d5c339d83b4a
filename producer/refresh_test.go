package producer

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"phix.dev/phix/keys"
)

// memRegistry records the wrapped keys put into it.
type memRegistry struct {
	mu   sync.Mutex
	keys map[string][]byte // guarded by mu; by dataKeyID/reader
	fail error
}

func (m *memRegistry) Put(_ context.Context, id, reader string, w []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	if m.keys == nil {
		m.keys = make(map[string][]byte)
	}
	m.keys[id+"/"+reader] = w
	return nil
}

func (m *memRegistry) has(id, reader string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.keys[id+"/"+reader] != nil
}

func ringFor(t *testing.T, f *fakeKeys, cfg Config) *keyRing {
	t.Helper()
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return newKeyRing(f, cfg)
}

// waitFor polls cond until it holds or 5 seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestKeyRingRefreshesInTheBackground(t *testing.T) {
	f := newFakeKeys()
	reg := &memRegistry{}
	r := ringFor(t, f, Config{KeyMessages: 8, Registry: reg})
	ctx := context.Background()
	rcpts := []string{"billing", "ehr-ingest"}

	first, err := r.take(ctx, rcpts, 1)
	if err != nil {
		t.Fatalf("take = %v", err)
	}
	for _, rc := range rcpts {
		if !reg.has(first.dk.ID(), rc) {
			t.Errorf("data key not registered for %s before its first use", rc)
		}
	}
	for range 5 { // 6 of 8 used: past three quarters
		if _, err := r.take(ctx, rcpts, 1); err != nil {
			t.Fatalf("take = %v", err)
		}
	}
	waitFor(t, "background refresh", func() bool { return r.issuedKeys() == 2 })

	// The successor is ready, so the key service is not needed when the
	// first key is spent.
	f.down.Store(true)
	for i := range 6 {
		k, err := r.take(ctx, rcpts, 1)
		if err != nil {
			t.Fatalf("take %d = %v", i, err)
		}
		if i >= 2 && k.dk.ID() == first.dk.ID() {
			t.Errorf("take %d used the first key past its limit", i)
		}
	}
	if got := f.wraps.Load(); got != 4 {
		t.Errorf("wraps = %d, want 4 (two recipients, two keys)", got)
	}
}

// TestKeyRingOutage has the key service go away: publishing goes on with
// the key in use until it is spent, then fails fast with the key
// service's error, and recovers by itself when it is back.
func TestKeyRingOutage(t *testing.T) {
	f := newFakeKeys()
	r := ringFor(t, f, Config{KeyMessages: 4})
	ctx := context.Background()
	rcpts := []string{"billing"}
	if _, err := r.take(ctx, rcpts, 1); err != nil {
		t.Fatalf("take = %v", err)
	}

	f.down.Store(true)
	for i := range 3 {
		if _, err := r.take(ctx, rcpts, 1); err != nil {
			t.Fatalf("take %d during the outage, key not spent = %v", i, err)
		}
	}
	_, err := r.take(ctx, rcpts, 1)
	if !errors.Is(err, keys.ErrUnavailable) {
		t.Fatalf("take after the key is spent = %v, want keys.ErrUnavailable", err)
	}
	wraps := f.wraps.Load()
	if _, err := r.take(ctx, rcpts, 1); !errors.Is(err, keys.ErrUnavailable) {
		t.Errorf("take again at once = %v, want keys.ErrUnavailable", err)
	}
	if got := f.wraps.Load(); got != wraps {
		t.Errorf("wraps right after a failure = %d, want %d (fail fast)", got, wraps)
	}

	f.down.Store(false)
	waitFor(t, "recovery", func() bool {
		_, err := r.take(ctx, rcpts, 1)
		return err == nil
	})
}

func TestKeyRingRegistryFailure(t *testing.T) {
	f := newFakeKeys()
	reg := &memRegistry{fail: errors.New("registry: unavailable")}
	r := ringFor(t, f, Config{Registry: reg})
	if _, err := r.take(context.Background(), []string{"billing"}, 1); err == nil {
		t.Fatalf("take with the registry failing = nil error, want one: no key may be used unregistered")
	}
}

func TestKeyRingOneWrapAtATime(t *testing.T) {
	f := newFakeKeys()
	f.wrapDelay = 50 * time.Millisecond
	r := ringFor(t, f, Config{})
	var wg sync.WaitGroup
	ids := make([]string, 16)
	for i := range ids {
		wg.Go(func() {
			k, err := r.take(context.Background(), []string{"billing"}, 1)
			if err != nil {
				t.Errorf("take = %v", err)
				return
			}
			ids[i] = k.dk.ID()
		})
	}
	wg.Wait()
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Fatalf("concurrent takes got different keys; want one wrap shared by all")
		}
	}
	if got := f.wraps.Load(); got != 1 {
		t.Errorf("wraps = %d, want 1", got)
	}
}

// TestKeyRingDropsAStaleSuccessor lets a successor, wrapped ahead, grow
// too old before it is needed: it is never used, and the next key is
// wrapped afresh.
func TestKeyRingDropsAStaleSuccessor(t *testing.T) {
	f := newFakeKeys()
	now := time.Unix(1_000_000, 0)
	r := ringFor(t, f, Config{KeyMessages: 4, KeyAge: time.Minute, Now: func() time.Time { return now }})
	ctx := context.Background()
	rcpts := []string{"billing"}
	for range 3 { // 3 of 4: a successor is wrapped
		if _, err := r.take(ctx, rcpts, 1); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "background refresh", func() bool { return r.issuedKeys() == 2 })
	r.mu.Lock()
	stale := r.slots["billing"].next
	r.mu.Unlock()

	now = now.Add(2 * time.Minute)
	k, err := r.take(ctx, rcpts, 1)
	if err != nil {
		t.Fatalf("take after the successor expired = %v", err)
	}
	if k == stale || now.Sub(k.created) >= time.Minute {
		t.Errorf("take used a key created %v ago, want a fresh one", now.Sub(k.created))
	}
}
