package producer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/keys"
)

const (
	// DefaultSigningKeyLifetime is how long a delegated signing key is
	// valid when [Config].SigningKeyLifetime is zero and the key provider
	// signs remotely.
	DefaultSigningKeyLifetime = time.Hour

	// maxSigningKeyLifetime keeps a delegation, with its backdated start,
	// within the envelope format's limit.
	maxSigningKeyLifetime = envelope.MaxDelegationLifetime - sessionBackdate

	// sessionBackdate is how far before its making a delegation starts,
	// so that it covers envelopes prepared shortly before (for instance
	// ones that waited for a signature during an outage).
	sessionBackdate = 5 * time.Minute

	// sessionRetry is the least time between two background attempts to
	// renew a delegation while the key service refuses.
	sessionRetry = 10 * time.Second
)

// sessions holds the producer's delegated signing key ([envelope.Session])
// and renews it: in the background from 75% of its life on, and at once,
// by the caller, when it has expired. A failed background renewal keeps
// the current key, which stays usable until its delegation expires, so a
// key service outage stops signing only then. Safe for concurrent use.
type sessions struct {
	kp   keys.Provider
	life time.Duration
	now  func() time.Time

	// making serializes making sessions, so that a caller and the
	// background renewal do not both ask the key service.
	making sync.Mutex

	// mu guards cur, renewAt, renewing, lastTry and made.
	mu       sync.Mutex
	cur      *envelope.Session
	renewAt  time.Time
	renewing bool
	lastTry  time.Time
	made     int
}

func newSessions(kp keys.Provider, life time.Duration, now func() time.Time) *sessions {
	return &sessions{kp: kp, life: life, now: now}
}

// get returns a session whose delegation is valid now, making one if
// there is none.
func (s *sessions) get(ctx context.Context) (*envelope.Session, error) {
	now := s.now()
	s.mu.Lock()
	cur := s.cur
	valid := cur != nil && now.Before(cur.Delegation().NotAfter)
	if valid && !now.Before(s.renewAt) && !s.renewing && now.Sub(s.lastTry) >= sessionRetry {
		s.renewing, s.lastTry = true, now
		go s.renew()
	}
	s.mu.Unlock()
	if valid {
		return cur, nil
	}
	ss, err := s.refresh(ctx, cur)
	if err != nil && cur != nil {
		return nil, fmt.Errorf("renewing the signing key delegation that expired at %s: %w",
			cur.Delegation().NotAfter.Format(time.RFC3339), err)
	}
	return ss, err
}

// renew makes a successor session in the background; on failure the
// current one stays in use.
func (s *sessions) renew() {
	ctx, cancel := context.WithTimeout(context.Background(), signTimeout)
	defer cancel()
	s.mu.Lock()
	cur := s.cur
	s.mu.Unlock()
	s.refresh(ctx, cur) // a failure is retried at a later get
	s.mu.Lock()
	s.renewing = false
	s.mu.Unlock()
}

// refresh makes a new session unless another caller replaced old while
// this one waited.
func (s *sessions) refresh(ctx context.Context, old *envelope.Session) (*envelope.Session, error) {
	s.making.Lock()
	defer s.making.Unlock()
	s.mu.Lock()
	if s.cur != old && s.cur != nil && s.now().Before(s.cur.Delegation().NotAfter) {
		cur := s.cur
		s.mu.Unlock()
		return cur, nil
	}
	s.mu.Unlock()

	hint := ""
	if old != nil {
		hint = old.Delegation().SignerKeyID
	}
	now := s.now()
	ss, err := envelope.NewSession(ctx, s.kp, s.kp.Identity(), now.Add(-sessionBackdate), now.Add(s.life), hint)
	if err != nil {
		return nil, err
	}
	// The replaced session is not destroyed: a batch may still be
	// signing with it. It is unreachable once that batch is done.
	s.mu.Lock()
	s.cur, s.renewAt = ss, now.Add(s.life*3/4)
	s.made++
	s.mu.Unlock()
	return ss, nil
}

// count returns how many sessions were made.
func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.made
}
