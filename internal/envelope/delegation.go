package envelope

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"phix.dev/phix/schemas"
)

// MaxDelegationLifetime is the longest validity a delegation statement
// may state, from not-before to not-after. It bounds what a stolen session
// key is worth (schemas/envelope-v2.md, "Delegated signing").
const MaxDelegationLifetime = 24 * time.Hour

// delegationContext starts every delegation statement. It keeps the
// statement apart from batch roots, leaves and version 1 signature inputs,
// which the same identity key signs.
const delegationContext = "phix/v2/delegation\x00"

// delegationFixedLen is the size of a statement less its two variable
// fields: context, two length bytes, session key and two timestamps.
const delegationFixedLen = len(delegationContext) + 2 + ed25519.PublicKeySize + 16

// ErrSessionExpired is returned by [SignBatch] with a [*Session] whose
// delegation does not cover an envelope's creation time: readers would
// refuse the signature. Make a new session.
var ErrSessionExpired = errors.New("envelope: session key not valid at the envelope's creation time")

// Delegation is what a delegation statement says: that SessionKey may sign
// batches of envelopes as Machine for envelopes created from NotBefore to
// NotAfter inclusive, on the authority of Machine's identity key version
// SignerKeyID.
type Delegation struct {
	Machine     string
	SignerKeyID string
	SessionKey  ed25519.PublicKey
	NotBefore   time.Time
	NotAfter    time.Time
}

// statement returns the canonical statement bytes:
//
//	"phix/v2/delegation\x00" || uint8(len(machine)) || machine
//	  || uint8(len(signer_key_id)) || signer_key_id || session_key (32)
//	  || int64be(not_before ns) || int64be(not_after ns)
func (d *Delegation) statement() []byte {
	b := make([]byte, 0, delegationFixedLen+len(d.Machine)+len(d.SignerKeyID))
	b = append(b, delegationContext...)
	b = append(b, byte(len(d.Machine)))
	b = append(b, d.Machine...)
	b = append(b, byte(len(d.SignerKeyID)))
	b = append(b, d.SignerKeyID...)
	b = append(b, d.SessionKey...)
	b = binary.BigEndian.AppendUint64(b, uint64(d.NotBefore.UnixNano()))
	return binary.BigEndian.AppendUint64(b, uint64(d.NotAfter.UnixNano()))
}

// check applies the rules every statement must meet.
func (d *Delegation) check() error {
	if err := checkName("delegation.machine", d.Machine); err != nil {
		return err
	}
	if err := checkToken("delegation.signer_key_id", d.SignerKeyID, MaxKeyIDLen); err != nil {
		return err
	}
	if len(d.SessionKey) != ed25519.PublicKeySize {
		return malformed("delegation session key is not %d bytes", ed25519.PublicKeySize)
	}
	if !d.NotBefore.Before(d.NotAfter) || d.NotAfter.Sub(d.NotBefore) > MaxDelegationLifetime {
		return malformed("delegation validity is empty or longer than %v", MaxDelegationLifetime)
	}
	return nil
}

// parseStatement decodes a statement strictly: exactly the layout of
// [Delegation.statement], no byte more or less.
func parseStatement(b []byte) (*Delegation, error) {
	bad := malformed("delegation statement does not parse")
	if len(b) < delegationFixedLen || string(b[:len(delegationContext)]) != delegationContext {
		return nil, bad
	}
	rest := b[len(delegationContext):]
	field := func() (string, bool) {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return "", false
		}
		s := string(rest[1 : 1+int(rest[0])])
		rest = rest[1+int(rest[0]):]
		return s, true
	}
	machine, ok1 := field()
	keyID, ok2 := field()
	if !ok1 || !ok2 || len(rest) != ed25519.PublicKeySize+16 {
		return nil, bad
	}
	d := &Delegation{
		Machine:     machine,
		SignerKeyID: keyID,
		SessionKey:  ed25519.PublicKey(rest[:ed25519.PublicKeySize:ed25519.PublicKeySize]),
		NotBefore:   time.Unix(0, int64(binary.BigEndian.Uint64(rest[32:40]))).UTC(),
		NotAfter:    time.Unix(0, int64(binary.BigEndian.Uint64(rest[40:48]))).UTC(),
	}
	if err := d.check(); err != nil {
		return nil, err
	}
	return d, nil
}

// delegation is a decoded envelope's delegation with its signature.
type delegation struct {
	d         *Delegation
	statement []byte
	signature []byte
}

// delegationFromProto checks an envelope's delegation field.
func delegationFromProto(pd *schemas.Delegation) (*delegation, error) {
	if len(pd.ProtoReflect().GetUnknown()) > 0 {
		return nil, malformed("unknown field in delegation")
	}
	if len(pd.GetSignature()) != SignatureSize {
		return nil, malformed("delegation.signature is not %d bytes", SignatureSize)
	}
	d, err := parseStatement(pd.GetStatement())
	if err != nil {
		return nil, err
	}
	return &delegation{d: d, statement: pd.GetStatement(), signature: pd.GetSignature()}, nil
}

// covers reports whether the delegation may sign an envelope with header
// h: made for h's sender, under the key version the envelope names, and
// valid at h's creation time.
func (dl *delegation) covers(h *Header) bool {
	d := dl.d
	return d.Machine == h.Sender && d.SignerKeyID == h.SignerKeyID &&
		!h.Created.Before(d.NotBefore) && !h.Created.After(d.NotAfter)
}

// cacheKey identifies (identity key, statement, signature) for [Verifier].
func (dl *delegation) cacheKey(pub ed25519.PublicKey) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(delegationContext))
	h.Write(pub)
	h.Write(dl.signature)
	h.Write(dl.statement)
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// Delegation returns the envelope's delegation statement, if it has one.
// It is authenticated only once [Envelope.Verify] has succeeded.
func (e *Envelope) Delegation() (Delegation, bool) {
	if e.deleg == nil {
		return Delegation{}, false
	}
	return *e.deleg.d, true
}

// Session is a short-lived Ed25519 signing key, made in memory, with a
// delegation statement that a machine's identity key signed for it.
// [SignBatch] with a Session signs locally and attaches the delegation
// to every envelope, so a key service is asked once per session rather
// than once per batch. The private key never leaves the process; it is
// not comparable and not printable. A Session is safe for concurrent use
// until [Session.Destroy].
type Session struct {
	_         [0]func() // not comparable
	priv      ed25519.PrivateKey
	d         Delegation
	statement []byte
	signature []byte
}

var _ Signer = (*Session)(nil)

// NewSession makes a fresh session key and has s, the identity key of
// machine, sign a delegation to it valid from notBefore to notAfter
// (at most [MaxDelegationLifetime] apart). keyIDHint is the key version s
// is expected to sign with; the statement names the version and a
// mismatch costs one more signature (at most three attempts in all, as
// during a key rotation). Errors from s are wrapped.
func NewSession(ctx context.Context, s Signer, machine string, notBefore, notAfter time.Time,
	keyIDHint string) (*Session, error) {
	pub, priv, err := ed25519.GenerateKey(random)
	if err != nil {
		return nil, fmt.Errorf("envelope: making session key: %w", err)
	}
	if k, ok := s.(keyIDSigner); ok {
		if keyIDHint, err = k.SigningKeyID(ctx); err != nil {
			return nil, fmt.Errorf("envelope: getting signing key id: %w", err)
		}
	}
	if keyIDHint == "" {
		keyIDHint = "unknown" // learnt from the first signature
	}
	d := Delegation{
		Machine: machine, SignerKeyID: keyIDHint, SessionKey: pub,
		NotBefore: notBefore.UTC(), NotAfter: notAfter.UTC(),
	}
	for range maxSignAttempts {
		if err := d.check(); err != nil {
			return nil, err
		}
		st := d.statement()
		sig, keyID, err := s.Sign(ctx, st)
		if err != nil {
			return nil, fmt.Errorf("envelope: signing delegation: %w", err)
		}
		if keyID != d.SignerKeyID {
			d.SignerKeyID = keyID
			continue
		}
		if len(sig) != SignatureSize {
			return nil, fmt.Errorf("envelope: signer returned a %d-byte signature", len(sig))
		}
		return &Session{priv: priv, d: d, statement: st, signature: sig}, nil
	}
	return nil, errors.New("envelope: signer key id kept changing while signing")
}

// Sign signs msg with the session key and reports the identity key
// version that signed the delegation.
func (s *Session) Sign(_ context.Context, msg []byte) ([]byte, string, error) {
	return ed25519.Sign(s.priv, msg), s.d.SignerKeyID, nil
}

// Delegation returns what the session's delegation statement says.
func (s *Session) Delegation() Delegation { return s.d }

// Destroy zeroes the private session key. The session must not sign
// afterwards.
func (s *Session) Destroy() { clear(s.priv) }

// String names the session without its key, so it is safe to log.
func (s *Session) String() string {
	return fmt.Sprintf("session:%s/%s until %s", s.d.Machine, s.d.SignerKeyID,
		s.d.NotAfter.Format(time.RFC3339))
}

// covers reports whether the session may sign an envelope created at t.
func (s *Session) covers(t time.Time) bool {
	return !t.Before(s.d.NotBefore) && !t.After(s.d.NotAfter)
}

func (s *Session) proto() *schemas.Delegation {
	return &schemas.Delegation{Statement: s.statement, Signature: s.signature}
}
