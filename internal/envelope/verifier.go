package envelope

import (
	"container/list"
	"crypto/ed25519"
	"crypto/sha256"
	"sync"
)

// Verifier verifies envelopes as [Envelope.Verify] does, and remembers the
// batch signatures and delegations it has verified, so that the other
// envelopes of a version 2 batch cost a few hashes (their inclusion
// proofs) instead of a signature verification each, and the envelopes of
// one session cost one verification of its delegation in all. The cache is bounded and safe for
// concurrent use. The zero value is not usable; use [NewVerifier].
type Verifier struct {
	max int

	// mu guards order and seen.
	mu    sync.Mutex
	order *list.List // of [sha256.Size]byte; front is newest
	seen  map[[sha256.Size]byte]*list.Element
}

// NewVerifier returns a verifier remembering up to max verified batch
// signatures and delegations together. A max below 1 disables the cache.
func NewVerifier(max int) *Verifier {
	return &Verifier{max: max, order: list.New(), seen: make(map[[sha256.Size]byte]*list.Element)}
}

// Verify checks e's signature with pub, with the contract and errors of
// [Envelope.Verify]. A batch signature or a delegation is taken from the
// cache only if the very same public key, signed message and signature
// verified before, so the cache never accepts anything Verify would
// refuse. A delegation's binding to e's header (sender, signer key ID,
// creation time) is checked for every envelope.
func (v *Verifier) Verify(e *Envelope, pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize {
		return ErrSignature
	}
	if dl := e.deleg; dl != nil {
		if !dl.covers(&e.h) {
			return ErrSignature
		}
		ok := v.check(dl.cacheKey(pub), func() bool {
			return ed25519.Verify(pub, dl.statement, dl.signature)
		})
		if !ok {
			return ErrSignature
		}
		pub = dl.d.SessionKey
	}
	if e.proof == nil || e.proof.size == 1 {
		// A signature of its own: nothing to share.
		if !ed25519.Verify(pub, e.signed, e.signature) {
			return ErrSignature
		}
	} else if !v.check(v.key(e, pub), func() bool { return ed25519.Verify(pub, e.signed, e.signature) }) {
		return ErrSignature
	}
	e.verified.Store(true)
	return nil
}

// check reports whether verify succeeds, or succeeded before for the same
// cache key k, and remembers a success.
func (v *Verifier) check(k [sha256.Size]byte, verify func() bool) bool {
	if v.max < 1 {
		return verify()
	}
	if v.hit(k) {
		return true
	}
	if !verify() {
		return false
	}
	v.add(k)
	return true
}

// key identifies one (public key, signed message, signature) triple.
func (v *Verifier) key(e *Envelope, pub ed25519.PublicKey) [sha256.Size]byte {
	h := sha256.New()
	h.Write(pub)
	h.Write(e.signature)
	h.Write(e.signed)
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

func (v *Verifier) hit(k [sha256.Size]byte) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	el, ok := v.seen[k]
	if ok {
		v.order.MoveToFront(el)
	}
	return ok
}

func (v *Verifier) add(k [sha256.Size]byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.seen[k]; ok {
		return
	}
	v.seen[k] = v.order.PushFront(k)
	for v.order.Len() > v.max {
		old := v.order.Remove(v.order.Back()).([sha256.Size]byte)
		delete(v.seen, old)
	}
}

// Len returns the number of batch signatures and delegations remembered.
func (v *Verifier) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.order.Len()
}
