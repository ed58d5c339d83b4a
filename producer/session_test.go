package producer

import (
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/keys"
)

// fakeClock is a settable clock for delegation lifetimes.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// unsignedAt returns n envelopes from lab-feed created at created.
func unsignedAt(t testing.TB, n int, created time.Time) []*envelope.Unsigned {
	t.Helper()
	dk := keys.NewDataKey()
	out := make([]*envelope.Unsigned, n)
	for i := range out {
		u, err := envelope.Prepare(envelope.Meta{
			MessageID: NewMessageID(), Sender: "lab-feed", Recipients: []string{"billing"},
			Subject: "phix.msg.lab-feed.billing.bin", ContentType: "application/octet-stream",
			Created: created,
		}, dk, nil, []byte("synthetic"))
		if err != nil {
			t.Fatalf("Prepare = %v", err)
		}
		out[i] = u
	}
	return out
}

func delegatedBatcher(f *fakeKeys, c *fakeClock) *batcher {
	b := newBatcher(f, 512, -1)
	b.sessions = newSessions(f, time.Hour, c.now)
	return b
}

func TestSessionsSignOncePerLifetime(t *testing.T) {
	f, c := newFakeKeys(), &fakeClock{t: time.Now()}
	b := delegatedBatcher(f, c)
	for i := range 20 {
		out, err := b.sign(context.Background(), unsignedAt(t, 3, c.now()))
		if err != nil {
			t.Fatalf("sign %d = %v", i, err)
		}
		e, err := envelope.Decode(out[0])
		if err != nil {
			t.Fatalf("Decode = %v", err)
		}
		if err := e.Verify(f.priv.Public().(ed25519.PublicKey)); err != nil {
			t.Errorf("Verify(identity key) = %v, want nil", err)
		}
		if _, ok := e.Delegation(); !ok {
			t.Errorf("envelope %d carries no delegation", i)
		}
		c.advance(time.Minute)
	}
	if n := f.signs.Load(); n != 2 {
		t.Errorf("key provider signatures for 20 batches = %d, want 2 (one delegation)", n)
	}
}

func TestSessionsRenewInTheBackground(t *testing.T) {
	f, c := newFakeKeys(), &fakeClock{t: time.Now()}
	b := delegatedBatcher(f, c)
	if _, err := b.sign(context.Background(), unsignedAt(t, 1, c.now())); err != nil {
		t.Fatalf("sign = %v", err)
	}
	c.advance(46 * time.Minute) // past 75% of an hour
	if _, err := b.sign(context.Background(), unsignedAt(t, 1, c.now())); err != nil {
		t.Fatalf("sign at 46m = %v", err)
	}
	waitFor(t, "a second session", func() bool { return b.sessions.count() == 2 })
}

// TestSessionsOutage shows signing going on through a key service outage
// while the delegation lasts, failing clearly once it has expired, and
// recovering when the service is back.
func TestSessionsOutage(t *testing.T) {
	f, c := newFakeKeys(), &fakeClock{t: time.Now()}
	b := delegatedBatcher(f, c)
	if _, err := b.sign(context.Background(), unsignedAt(t, 1, c.now())); err != nil {
		t.Fatalf("sign = %v", err)
	}
	f.down.Store(true)
	start := c.now()
	for _, at := range []time.Duration{10 * time.Minute, 50 * time.Minute, 59 * time.Minute} {
		c.set(start.Add(at))
		if _, err := b.sign(context.Background(), unsignedAt(t, 1, c.now())); err != nil {
			t.Errorf("sign with the service down, %v on = %v, want the delegation used", at, err)
		}
	}

	c.set(start.Add(61 * time.Minute))
	_, err := b.sign(context.Background(), unsignedAt(t, 1, c.now()))
	if !errors.Is(err, keys.ErrUnavailable) || !strings.Contains(err.Error(), "delegation that expired") {
		t.Errorf("sign after the delegation expired = %v, want keys.ErrUnavailable naming the delegation", err)
	}

	f.down.Store(false)
	if _, err := b.sign(context.Background(), unsignedAt(t, 1, c.now())); err != nil {
		t.Errorf("sign once the service is back = %v, want nil", err)
	}
}

func TestSigningKeyLifetimeDefaults(t *testing.T) {
	tests := []struct {
		name string
		life time.Duration
		kp   keys.Provider
		want time.Duration
	}{
		{"local provider, zero: off", 0, newFakeKeys(), 0},
		{"vault provider, zero: one hour", 0, new(keys.Vault), DefaultSigningKeyLifetime},
		{"vault provider, negative: off", -1, new(keys.Vault), 0},
		{"local provider, set: on", 10 * time.Minute, newFakeKeys(), 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Config{SigningKeyLifetime: tt.life}.signingKeyLifetime(tt.kp)
			if err != nil || got != tt.want {
				t.Errorf("signingKeyLifetime = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	if _, err := (Config{SigningKeyLifetime: 24 * time.Hour}).signingKeyLifetime(newFakeKeys()); err == nil {
		t.Errorf("signingKeyLifetime(24h) = nil error, want a refusal")
	}
}
