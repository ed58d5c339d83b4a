package keys

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strconv"
	"sync"
	"time"

	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/internal/vaultpolicy"
)

// Public key cache limits for [Vault.PublicKey].
const (
	// vaultKeyMaxAge is how long fetched public keys are trusted before
	// they are read again, so that a trimmed (retired) signing key version
	// stops verifying within this time.
	vaultKeyMaxAge = 5 * time.Minute
	// vaultMissInterval is the minimum time between two reads of one
	// machine's keys that did not find the version asked for: envelopes
	// naming made-up key versions must not turn into a flood of reads.
	vaultMissInterval = time.Second
	// maxWrappedSize bounds a wrapped data key sent to Vault, in bytes. A
	// real one is about 90 bytes.
	maxWrappedSize = 1024
	// maxWrapConcurrency bounds parallel encrypt requests in WrapKeys.
	maxWrapConcurrency = 8
)

// wrapContextPrefix starts the key derivation context of a wrap. The data
// key ID follows, so a wrapped key opens only under the ID it was made for.
const wrapContextPrefix = "phix/v1/wrap-data-key\x00"

// Vault is a [Provider] backed by a Vault (or OpenBao) transit engine.
// Private keys never leave Vault: each machine NAME has a wrap key
// "phix-wrap-NAME" (aes256-gcm96, derived, not exportable) and a signing
// key "phix-sign-NAME" (ed25519, not exportable), and its AppRole policy
// decides whose wrap keys it may encrypt with.
//
// A data key is wrapped by transit encryption under the recipient's wrap
// key, with the key derived from the data key ID (transit's derivation
// context). Transit's associated_data would bind the ID as well, but Vault
// 1.21's rewrap endpoint drops it, which would make wrapped keys
// impossible to rewrap after a rotation; the derivation context survives
// rewrap.
//
// Signing key IDs have the form "vault:vN" for version N.
//
// A Vault is safe for concurrent use. [Vault.Close] revokes its token.
type Vault struct {
	cfg     VaultConfig
	transit transit
	login   *vaultLogin
	now     func() time.Time

	// mu guards pubs.
	mu   sync.Mutex
	pubs map[string]*vaultPubKeys
}

var _ Provider = (*Vault)(nil)

// vaultPubKeys are the cached signing public keys of one machine.
type vaultPubKeys struct {
	keys    map[int]ed25519.PublicKey // nil: the machine has no signing key
	latest  int
	fetched time.Time
	missed  time.Time // last read that did not have the version asked for
}

// NewVault returns a provider acting as cfg.Machine. It logs in to Vault
// before returning, so a wrong address, CA, role or secret ID shows at
// start. It returns [ErrInsecureFile] if the secret ID file is accessible
// by others, and [ErrDenied] or [ErrUnavailable] from the login.
func NewVault(ctx context.Context, cfg VaultConfig) (*Vault, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	base, err := newVaultClient(cfg.Address, cfg.CACert)
	if err != nil {
		return nil, err
	}
	authed, err := newVaultClient(cfg.Address, cfg.CACert)
	if err != nil {
		return nil, err
	}
	v := &Vault{
		cfg:     cfg,
		transit: transit{c: authed, mount: cfg.Mount},
		login:   &vaultLogin{base: base, client: authed, cfg: cfg, now: time.Now},
		now:     time.Now,
		pubs:    make(map[string]*vaultPubKeys),
	}
	ctx, cancel := withDefaultTimeout(ctx, cfg.Timeout)
	defer cancel()
	if _, err := v.login.ensure(ctx); err != nil {
		return nil, err
	}
	return v, nil
}

// Identity implements [Provider].
func (v *Vault) Identity() string { return v.cfg.Machine }

// Close revokes the provider's token. The provider logs in again if it
// is used afterwards.
func (v *Vault) Close(ctx context.Context) error {
	ctx, cancel := withDefaultTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	return v.login.revoke(ctx)
}

// call runs one Vault request with a valid token, counting it under op
// and describing it as what in errors, which are this package's.
// A request denied because the token died (revoked, or expired earlier
// than expected) is retried once after logging in again; a policy denial
// is not retried.
func (v *Vault) call(ctx context.Context, op, what string, fn func(context.Context) error) error {
	for attempt := 0; ; attempt++ {
		gen, err := v.login.ensure(ctx)
		if err != nil {
			return err
		}
		err = countVault(op, fn(ctx))
		if err == nil || attempt > 0 || classifyVault(err) != vaultDenied {
			return vaultError(what, err)
		}
		retry, lerr := v.login.recheck(ctx, gen)
		if lerr != nil {
			return lerr
		}
		if !retry {
			return vaultError(what, err)
		}
	}
}

// WrapKey implements [Provider]. It returns [ErrUnknownMachine] for an
// invalid recipient name, [ErrDenied] if the recipient is not one this
// machine may send to (or has no wrap key), and [ErrUnavailable].
func (v *Vault) WrapKey(ctx context.Context, recipient string, dk *DataKey) ([]byte, error) {
	if !subjects.ValidName(recipient) {
		return nil, fmt.Errorf("%w: recipient %q", ErrUnknownMachine, recipient)
	}
	ctx, cancel := withDefaultTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	var ct string
	err := v.call(ctx, "encrypt", "wrapping for "+recipient, func(ctx context.Context) (err error) {
		ct, err = v.transit.encrypt(ctx, vaultpolicy.WrapKey(recipient), dk.Bytes(), wrapContext(dk.ID()))
		return err
	})
	if err != nil {
		return nil, err
	}
	return []byte(ct), nil
}

// WrapKeys wraps dk for each of recipients, as [Vault.WrapKey] does, and
// returns the wrapped keys in the order of recipients. Transit encrypts a
// batch only under one key, and each recipient has its own, so the
// requests run in parallel (at most 8 at a time) instead. If any fails,
// WrapKeys returns the first failure and no keys.
func (v *Vault) WrapKeys(ctx context.Context, recipients []string, dk *DataKey) ([][]byte, error) {
	ctx, cancel := withDefaultTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	out := make([][]byte, len(recipients))
	errs := make([]error, len(recipients))
	sem := make(chan struct{}, maxWrapConcurrency)
	var wg sync.WaitGroup
	for i, r := range recipients {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i], errs[i] = v.WrapKey(ctx, r, dk)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// UnwrapKey implements [Provider]. A failure because Vault could not be
// reached matches [ErrUnavailable] as well as [ErrUnwrap].
func (v *Vault) UnwrapKey(ctx context.Context, dataKeyID string, wrapped []byte) (*DataKey, error) {
	// Anything that is not a transit ciphertext (for example a key wrapped
	// by the local provider) cannot open here; do not send it to Vault.
	if len(wrapped) > maxWrappedSize {
		return nil, ErrUnwrap
	}
	if _, _, ok := splitTransitVersion(string(wrapped)); !ok {
		return nil, ErrUnwrap
	}
	ctx, cancel := withDefaultTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	var key []byte
	err := v.call(ctx, "decrypt", "unwrapping", func(ctx context.Context) (err error) {
		own := vaultpolicy.WrapKey(v.cfg.Machine)
		key, err = v.transit.decrypt(ctx, own, string(wrapped), wrapContext(dataKeyID))
		return err
	})
	if err != nil {
		return nil, unwrapFailure(err)
	}
	defer clear(key)
	return DataKeyFromBytes(dataKeyID, key)
}

// Sign implements [Provider]. It returns [ErrDenied] if the machine's
// policy does not allow signing with its key, and [ErrUnavailable].
func (v *Vault) Sign(ctx context.Context, msg []byte) ([]byte, string, error) {
	ctx, cancel := withDefaultTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	var sig []byte
	var version int
	err := v.call(ctx, "sign", "signing", func(ctx context.Context) (err error) {
		sig, version, err = v.transit.sign(ctx, vaultpolicy.SignKey(v.cfg.Machine), msg)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	return sig, vaultKeyID(version), nil
}

// PublicKey implements [Provider]. Keys are read from Vault once and kept
// for 5 minutes; a version newer than any seen causes a fresh read, at
// most once a second per machine. Besides [ErrUnknownMachine] and
// [ErrUnknownKey] it returns [ErrUnavailable].
func (v *Vault) PublicKey(ctx context.Context, machine, keyID string) (ed25519.PublicKey, error) {
	if !subjects.ValidName(machine) {
		return nil, fmt.Errorf("%w: %q", ErrUnknownMachine, machine)
	}
	version, ok := parseVaultKeyID(keyID)
	if !ok {
		return nil, fmt.Errorf("%w: %q of %s", ErrUnknownKey, keyID, machine)
	}
	if pub, err, done := v.cachedPublicKey(machine, version); done {
		return pub, err
	}

	ctx, cancel := withDefaultTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	var k *transitKey
	err := v.call(ctx, "read_key", "reading public keys of "+machine, func(ctx context.Context) (err error) {
		k, err = v.transit.readKey(ctx, vaultpolicy.SignKey(machine))
		return err
	})
	if err != nil {
		return nil, err
	}
	entry := &vaultPubKeys{fetched: v.now()}
	if k != nil && k.Type == "ed25519" {
		entry.keys, entry.latest = k.Public, k.Latest
	}
	pub, lookupErr := entry.lookup(machine, version, keyID)
	if lookupErr != nil {
		entry.missed = entry.fetched
	}
	v.mu.Lock()
	v.pubs[machine] = entry
	v.mu.Unlock()
	return pub, lookupErr
}

// cachedPublicKey answers from the cache when it can: done is false when
// Vault must be asked.
func (v *Vault) cachedPublicKey(machine string, version int) (pub ed25519.PublicKey, err error, done bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	e := v.pubs[machine]
	now := v.now()
	if e == nil || now.Sub(e.fetched) >= vaultKeyMaxAge {
		return nil, nil, false
	}
	keyID := vaultKeyID(version)
	if pub, ok := e.keys[version]; ok {
		return pub, nil, true
	}
	// An older version that is missing was trimmed or never existed; a
	// newer one may have been made by a rotation since the last read.
	if (e.keys != nil && version <= e.latest) || now.Sub(e.missed) < vaultMissInterval {
		pub, err := e.lookup(machine, version, keyID)
		return pub, err, true
	}
	return nil, nil, false
}

func (e *vaultPubKeys) lookup(machine string, version int, keyID string) (ed25519.PublicKey, error) {
	if e.keys == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownMachine, machine)
	}
	pub, ok := e.keys[version]
	if !ok {
		return nil, fmt.Errorf("%w: %q of %s", ErrUnknownKey, keyID, machine)
	}
	return pub, nil
}

func wrapContext(dataKeyID string) []byte {
	return []byte(wrapContextPrefix + dataKeyID)
}

func vaultKeyID(version int) string { return "vault:v" + strconv.Itoa(version) }

// parseVaultKeyID parses "vault:vN".
func parseVaultKeyID(id string) (int, bool) {
	v, rest, ok := splitTransitVersion(id + ":")
	return v, ok && rest == ""
}
