package envelope

import (
	"container/list"
	"crypto/ed25519"
	"crypto/sha256"
	"sync"
)

// Verifier verifies envelopes as [Envelope.Verify] does, and remembers the
// batch signatures it has verified, so that the other envelopes of a
// version 2 batch cost a few hashes (their inclusion proofs) instead of a
// signature verification each. The cache is bounded and safe for
// concurrent use. The zero value is not usable; use [NewVerifier].
type Verifier struct {
	max int

	// mu guards order and seen.
	mu    sync.Mutex
	order *list.List // of [sha256.Size]byte; front is newest
	seen  map[[sha256.Size]byte]*list.Element
}

// NewVerifier returns a verifier remembering up to max verified batch
// signatures. A max below 1 disables the cache.
func NewVerifier(max int) *Verifier {
	return &Verifier{max: max, order: list.New(), seen: make(map[[sha256.Size]byte]*list.Element)}
}

// Verify checks e's signature with pub, with the contract and errors of
// [Envelope.Verify]. A batch signature is taken from the cache only if
// the very same public key, signed root message and signature verified
// before, so the cache never accepts anything Verify would refuse.
func (v *Verifier) Verify(e *Envelope, pub ed25519.PublicKey) error {
	if e.proof == nil || e.proof.size == 1 || v.max < 1 {
		return e.Verify(pub) // a signature of its own: nothing to share
	}
	if len(pub) != ed25519.PublicKeySize {
		return ErrSignature
	}
	k := v.key(e, pub)
	if v.hit(k) {
		e.verified.Store(true)
		return nil
	}
	if err := e.Verify(pub); err != nil {
		return err
	}
	v.add(k)
	return nil
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

// Len returns the number of batch signatures remembered.
func (v *Verifier) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.order.Len()
}
