package keys

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/vault/api"

	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/internal/vaultpolicy"
)

// Flow says that Sender may send messages to each of Recipients. The
// flows decide whose wrap keys a machine may encrypt with.
type Flow = vaultpolicy.Flow

// Defaults for [VaultAdminConfig] zero values.
const (
	defaultVaultTokenTTL    = 20 * time.Minute
	defaultVaultTokenMaxTTL = 24 * time.Hour
	// maxRewrapBatch is the number of wrapped keys sent in one rewrap
	// request, to keep request bodies small.
	maxRewrapBatch = 256
)

// Transit key types phix creates.
const (
	wrapKeyType = "aes256-gcm96"
	signKeyType = "ed25519"
)

// VaultAdminConfig configures a [VaultAdmin].
type VaultAdminConfig struct {
	// Address, CACert, Mount and AuthMount are as in [VaultConfig].
	Address   string
	CACert    string
	Mount     string
	AuthMount string
	// TokenTTL is the TTL of the tokens machines get at login; they renew
	// them while in use. Zero means 20 minutes.
	TokenTTL time.Duration
	// TokenMaxTTL is how long a machine token can be renewed before the
	// machine must log in again. Zero means 24 hours.
	TokenMaxTTL time.Duration
	// SecretIDTTL is how long a secret ID from [VaultAdmin.IssueSecretID]
	// can be used to log in. Zero means until it is revoked.
	SecretIDTTL time.Duration
	// Timeout is as in [VaultConfig].
	Timeout time.Duration
}

// VaultKeyUse selects one of a machine's two transit keys.
type VaultKeyUse int

const (
	// VaultWrapKey is the key that wraps the data keys sent to a machine.
	VaultWrapKey VaultKeyUse = iota + 1
	// VaultSignKey is the key a machine signs envelopes with.
	VaultSignKey
)

// VaultWrappedKey is a data key wrapped for Recipient under the data key
// ID DataKeyID, as an envelope carries it.
type VaultWrappedKey struct {
	Recipient string
	DataKeyID string
	Wrapped   []byte
}

// VaultAdmin sets up and maintains phix's keys, policies and AppRoles in
// Vault with an operator token. It never sees a private key or a data
// key: rotation and rewrapping happen inside Vault. It is safe for
// concurrent use.
type VaultAdmin struct {
	cfg     VaultAdminConfig
	c       *api.Client
	transit transit
}

// NewVaultAdmin returns an admin acting with token, which must be allowed
// to manage mounts, ACL policies, AppRoles and transit keys. The caller
// gets the token from wherever operators keep it; this package does not
// read the environment.
func NewVaultAdmin(cfg VaultAdminConfig, token string) (*VaultAdmin, error) {
	if err := checkVaultAddress(cfg.Address); err != nil {
		return nil, err
	}
	if token == "" {
		return nil, errors.New("keys: vault admin needs a token")
	}
	var err error
	if cfg.Mount, err = cleanMount(cfg.Mount, defaultTransitMount); err != nil {
		return nil, err
	}
	if cfg.AuthMount, err = cleanMount(cfg.AuthMount, defaultAppRoleMount); err != nil {
		return nil, err
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = defaultVaultTokenTTL
	}
	if cfg.TokenMaxTTL <= 0 {
		cfg.TokenMaxTTL = defaultVaultTokenMaxTTL
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultVaultTimeout
	}
	c, err := newVaultClient(cfg.Address, cfg.CACert)
	if err != nil {
		return nil, err
	}
	c.SetToken(token)
	return &VaultAdmin{cfg: cfg, c: c, transit: transit{c: c, mount: cfg.Mount}}, nil
}

// do runs one admin request, counting it under op and describing it as
// what in its error.
func (a *VaultAdmin) do(ctx context.Context, op, what string, fn func(context.Context) error) error {
	return vaultError(what, countVault(op, fn(ctx)))
}

// Provision creates, or brings up to date, everything machines need to
// use the [Vault] provider: the transit and AppRole mounts, each machine's
// wrap and signing keys, its ACL policy generated from flows, and its
// AppRole. It is idempotent. Existing keys are kept, but Provision fails
// if one has the wrong type or is exportable. Policies of machines not
// listed are left alone. Without a deadline on ctx, the whole run is
// bounded by ten times the configured Timeout.
func (a *VaultAdmin) Provision(ctx context.Context, machines []string, flows []Flow) error {
	if err := vaultpolicy.Check(machines, flows); err != nil {
		return fmt.Errorf("keys: %v", err)
	}
	ctx, cancel := withDefaultTimeout(ctx, 10*a.cfg.Timeout)
	defer cancel()
	if err := a.ensureMounts(ctx); err != nil {
		return err
	}
	for _, m := range machines {
		if err := a.provisionMachine(ctx, m, flows); err != nil {
			return err
		}
	}
	return nil
}

func (a *VaultAdmin) ensureMounts(ctx context.Context) error {
	var mounts map[string]*api.MountOutput
	err := a.do(ctx, "admin_mounts", "listing mounts", func(ctx context.Context) (err error) {
		mounts, err = a.c.Sys().ListMountsWithContext(ctx)
		return err
	})
	if err != nil {
		return err
	}
	switch m := mounts[a.cfg.Mount+"/"]; {
	case m == nil:
		err = a.do(ctx, "admin_mounts", "mounting transit", func(ctx context.Context) error {
			return a.c.Sys().MountWithContext(ctx, a.cfg.Mount, &api.MountInput{Type: "transit"})
		})
	case m.Type != "transit":
		err = fmt.Errorf("keys: vault mount %s is %s, want transit", a.cfg.Mount, m.Type)
	}
	if err != nil {
		return err
	}

	var auths map[string]*api.AuthMount
	err = a.do(ctx, "admin_mounts", "listing auth methods", func(ctx context.Context) (err error) {
		auths, err = a.c.Sys().ListAuthWithContext(ctx)
		return err
	})
	if err != nil {
		return err
	}
	switch m := auths[a.cfg.AuthMount+"/"]; {
	case m == nil:
		return a.do(ctx, "admin_mounts", "enabling approle", func(ctx context.Context) error {
			return a.c.Sys().EnableAuthWithOptionsWithContext(ctx, a.cfg.AuthMount,
				&api.EnableAuthOptions{Type: "approle"})
		})
	case m.Type != "approle":
		return fmt.Errorf("keys: vault auth mount %s is %s, want approle", a.cfg.AuthMount, m.Type)
	}
	return nil
}

func (a *VaultAdmin) provisionMachine(ctx context.Context, m string, flows []Flow) error {
	if err := a.ensureKey(ctx, vaultpolicy.WrapKey(m), wrapKeyType, true); err != nil {
		return err
	}
	if err := a.ensureKey(ctx, vaultpolicy.SignKey(m), signKeyType, false); err != nil {
		return err
	}

	hcl, err := vaultpolicy.Policy(a.cfg.Mount, m, flows)
	if err != nil {
		return fmt.Errorf("keys: %v", err)
	}
	name := vaultpolicy.PolicyName(m)
	err = a.do(ctx, "admin_policy", "writing policy "+name, func(ctx context.Context) error {
		return a.c.Sys().PutPolicyWithContext(ctx, name, hcl)
	})
	if err != nil {
		return err
	}

	role := vaultpolicy.RoleName(m)
	return a.do(ctx, "admin_role", "writing approle "+role, func(ctx context.Context) error {
		_, err := a.c.Logical().WriteWithContext(ctx, a.rolePath(m), map[string]any{
			"token_policies":          []string{name},
			"token_no_default_policy": true,
			"token_type":              "service",
			"token_ttl":               int(a.cfg.TokenTTL / time.Second),
			"token_max_ttl":           int(a.cfg.TokenMaxTTL / time.Second),
			"secret_id_ttl":           int(a.cfg.SecretIDTTL / time.Second),
			"bind_secret_id":          true,
		})
		return err
	})
}

// ensureKey creates a transit key or checks that the existing one is what
// phix would have created: a key of another type, or one that can be
// exported, would break the guarantees the policies are written for.
func (a *VaultAdmin) ensureKey(ctx context.Context, name, typ string, derived bool) error {
	var k *transitKey
	err := a.do(ctx, "admin_key", "creating key "+name, func(ctx context.Context) (err error) {
		k, err = a.transit.createKey(ctx, name, typ, derived)
		return err
	})
	if err != nil {
		return err
	}
	if k == nil || k.Type != typ || k.Derived != derived || k.Exportable || k.PlaintextBack {
		return fmt.Errorf("keys: vault key %s exists but is not a non-exportable %s key (derived %v)",
			name, typ, derived)
	}
	return nil
}

func (a *VaultAdmin) rolePath(machine string) string {
	return "auth/" + a.cfg.AuthMount + "/role/" + vaultpolicy.RoleName(machine)
}

// IssueSecretID creates a new secret ID for machine's AppRole and writes
// it to the file at path (mode 0600, replaced atomically), so that the
// secret never passes through the caller. With wrapTTL above zero the
// file holds a response-wrapping token valid for wrapTTL instead, for a
// [VaultConfig] with SecretIDWrapped. It returns the role ID, which goes
// into the machine's [VaultConfig].
func (a *VaultAdmin) IssueSecretID(ctx context.Context, machine, path string,
	wrapTTL time.Duration) (roleID string, err error) {
	if err := subjects.CheckName(machine); err != nil {
		return "", fmt.Errorf("keys: %v", err)
	}
	ctx, cancel := withDefaultTimeout(ctx, a.cfg.Timeout)
	defer cancel()

	err = a.do(ctx, "admin_role", "reading role ID of "+machine, func(ctx context.Context) error {
		s, err := a.c.Logical().ReadWithContext(ctx, a.rolePath(machine)+"/role-id")
		roleID = responseString(s, "role_id")
		if err == nil && roleID == "" {
			return fmt.Errorf("no role %s", vaultpolicy.RoleName(machine))
		}
		return err
	})
	if err != nil {
		return "", err
	}

	c := a.c
	if wrapTTL > 0 {
		if c, err = newVaultClient(a.cfg.Address, a.cfg.CACert); err != nil {
			return "", err
		}
		c.SetToken(a.c.Token())
		ttl := strconv.Itoa(int(max(wrapTTL, time.Second)/time.Second)) + "s"
		c.SetWrappingLookupFunc(func(string, string) string { return ttl })
	}
	var secret string
	err = a.do(ctx, "admin_secret_id", "issuing secret ID for "+machine, func(ctx context.Context) error {
		s, err := c.Logical().WriteWithContext(ctx, a.rolePath(machine)+"/secret-id", nil)
		switch {
		case err != nil:
			return err
		case wrapTTL <= 0:
			secret = responseString(s, "secret_id")
		case s != nil && s.WrapInfo != nil:
			secret = s.WrapInfo.Token
		}
		if secret == "" {
			return errors.New("no secret ID in response")
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if err := writeSecretFile(path, secret); err != nil {
		return "", err
	}
	return roleID, nil
}

// writeSecretFile writes a 0600 file through a temporary file in the
// same folder, so that no reader sees it half written or too open.
func writeSecretFile(path, secret string) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".secret-*")
	if err != nil {
		return fmt.Errorf("keys: writing secret file: %w", err)
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("keys: writing secret file: %w", err)
	}
	if _, err := f.WriteString(secret + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("keys: writing secret file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("keys: writing secret file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keys: writing secret file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("keys: writing secret file: %w", err)
	}
	return nil
}

// RotateKey adds a new version to one of machine's keys and returns its
// number. New wraps and signatures use it at once; older versions keep
// opening and verifying until retired with [VaultAdmin.SetMinDecryptionVersion]
// (wrap keys).
func (a *VaultAdmin) RotateKey(ctx context.Context, machine string,
	use VaultKeyUse) (version int, err error) {
	name, err := keyName(machine, use)
	if err != nil {
		return 0, err
	}
	ctx, cancel := withDefaultTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	err = a.do(ctx, "admin_rotate", "rotating "+name, func(ctx context.Context) (err error) {
		version, err = a.transit.rotate(ctx, name)
		return err
	})
	return version, err
}

// SetMinDecryptionVersion makes Vault refuse to unwrap data keys wrapped
// for machine under wrap key versions older than version. Rewrap the keys
// that must stay readable first, with [VaultAdmin.Rewrap].
func (a *VaultAdmin) SetMinDecryptionVersion(ctx context.Context, machine string, version int) error {
	name, err := keyName(machine, VaultWrapKey)
	if err != nil {
		return err
	}
	ctx, cancel := withDefaultTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	return a.do(ctx, "admin_config", "configuring "+name, func(ctx context.Context) error {
		return a.transit.setMinDecryptionVersion(ctx, name, version)
	})
}

// Rewrap re-encrypts wrapped data keys under the latest version of each
// recipient's wrap key, inside Vault, and returns the new wrapped keys in
// input order. Keys for one recipient go in batches of up to 256 per
// request. It fails as a whole, naming the first key that could not be
// rewrapped (wrong recipient or ID, or a version below the minimum), with
// [ErrUnwrap]. Without a deadline on ctx, the whole run is bounded by ten
// times the configured Timeout.
func (a *VaultAdmin) Rewrap(ctx context.Context, keys []VaultWrappedKey) ([][]byte, error) {
	ctx, cancel := withDefaultTimeout(ctx, 10*a.cfg.Timeout)
	defer cancel()
	byRecipient := make(map[string][]int)
	var order []string
	for i, k := range keys {
		if !subjects.ValidName(k.Recipient) {
			return nil, fmt.Errorf("%w: recipient %q", ErrUnknownMachine, k.Recipient)
		}
		if byRecipient[k.Recipient] == nil {
			order = append(order, k.Recipient)
		}
		byRecipient[k.Recipient] = append(byRecipient[k.Recipient], i)
	}
	out := make([][]byte, len(keys))
	for _, r := range order {
		idx := byRecipient[r]
		for start := 0; start < len(idx); start += maxRewrapBatch {
			batch := idx[start:min(start+maxRewrapBatch, len(idx))]
			if err := a.rewrapBatch(ctx, r, keys, batch, out); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// rewrapBatch rewraps keys[i] for each i in idx, all for recipient, into
// out[i].
func (a *VaultAdmin) rewrapBatch(ctx context.Context, recipient string,
	keys []VaultWrappedKey, idx []int, out [][]byte) error {
	items := make([]transitRewrapItem, len(idx))
	for j, i := range idx {
		items[j] = transitRewrapItem{
			Ciphertext: string(keys[i].Wrapped),
			Context:    wrapContext(keys[i].DataKeyID),
		}
	}
	var cts []string
	err := countVault("rewrap", func() (err error) {
		cts, err = a.transit.rewrap(ctx, vaultpolicy.WrapKey(recipient), items)
		return err
	}())
	var ie *transitItemError
	if errors.As(err, &ie) {
		return fmt.Errorf("%w: rewrapping key %d (for %s)", ErrUnwrap, idx[ie.Index], recipient)
	}
	if err != nil {
		return vaultError("rewrapping for "+recipient, err)
	}
	for j, i := range idx {
		out[i] = []byte(cts[j])
	}
	return nil
}

func keyName(machine string, use VaultKeyUse) (string, error) {
	if err := subjects.CheckName(machine); err != nil {
		return "", fmt.Errorf("keys: %v", err)
	}
	switch use {
	case VaultWrapKey:
		return vaultpolicy.WrapKey(machine), nil
	case VaultSignKey:
		return vaultpolicy.SignKey(machine), nil
	}
	return "", fmt.Errorf("keys: unknown vault key use %d", use)
}

// Grant wraps for the machine to each data key that from holds wrapped
// for another reader, and returns the new wrapped keys in input order:
// this is how an auditor is given access to past messages without
// touching them. Transit cannot re-encrypt from one key to another, so
// each data key is decrypted with its reader's wrap key and encrypted with
// to's, inside this process, and zeroed at once; the operator token must
// allow both. It fails as a whole, naming the first key that could not be
// opened, with [ErrUnwrap], and with [ErrUnknownMachine] if to has no wrap
// key. Without a deadline on ctx, the whole run is bounded by ten times
// the configured Timeout.
func (a *VaultAdmin) Grant(ctx context.Context, from []VaultWrappedKey, to string) ([][]byte, error) {
	if err := subjects.CheckName(to); err != nil {
		return nil, fmt.Errorf("keys: %v", err)
	}
	ctx, cancel := withDefaultTimeout(ctx, 10*a.cfg.Timeout)
	defer cancel()
	// An operator token may create keys, and transit creates a missing key
	// on encrypt: check that to's wrap key exists as Provision made it.
	var k *transitKey
	err := a.do(ctx, "admin_key", "reading wrap key of "+to, func(ctx context.Context) (err error) {
		k, err = a.transit.readKey(ctx, vaultpolicy.WrapKey(to))
		return err
	})
	if err != nil {
		return nil, err
	}
	if k == nil || k.Type != wrapKeyType || !k.Derived {
		return nil, fmt.Errorf("%w: %s has no wrap key", ErrUnknownMachine, to)
	}
	out := make([][]byte, len(from))
	for i, w := range from {
		if !subjects.ValidName(w.Recipient) {
			return nil, fmt.Errorf("%w: recipient %q", ErrUnknownMachine, w.Recipient)
		}
		var key []byte
		err := a.do(ctx, "admin_decrypt", "opening key "+strconv.Itoa(i)+" (for "+w.Recipient+")",
			func(ctx context.Context) (err error) {
				key, err = a.transit.decrypt(ctx, vaultpolicy.WrapKey(w.Recipient), string(w.Wrapped),
					wrapContext(w.DataKeyID))
				return err
			})
		if err != nil {
			if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrDenied) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: granting key %d (for %s)", ErrUnwrap, i, w.Recipient)
		}
		var ct string
		err = a.do(ctx, "admin_encrypt", "wrapping for "+to, func(ctx context.Context) (err error) {
			ct, err = a.transit.encrypt(ctx, vaultpolicy.WrapKey(to), key, wrapContext(w.DataKeyID))
			return err
		})
		clear(key)
		if err != nil {
			return nil, err
		}
		out[i] = []byte(ct)
	}
	return out, nil
}

// KeyVersions returns the latest version of one of machine's keys and the
// oldest version that still decrypts (or verifies), as after
// [VaultAdmin.RotateKey] and [VaultAdmin.SetMinDecryptionVersion]. It
// returns [ErrUnknownMachine] if the key does not exist.
func (a *VaultAdmin) KeyVersions(ctx context.Context, machine string,
	use VaultKeyUse) (latest, minDecryption int, err error) {
	name, err := keyName(machine, use)
	if err != nil {
		return 0, 0, err
	}
	ctx, cancel := withDefaultTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	var k *transitKey
	err = a.do(ctx, "admin_key", "reading "+name, func(ctx context.Context) (err error) {
		k, err = a.transit.readKey(ctx, name)
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	if k == nil {
		return 0, 0, fmt.Errorf("%w: no key %s", ErrUnknownMachine, name)
	}
	return k.Latest, max(k.MinDecryption, 1), nil
}

// Revoke cuts machine off from Vault at once: its ACL policy is deleted,
// which Vault applies to every live token at their next request, and its
// AppRole is deleted so that it cannot log in again. Its transit keys are
// kept, so messages already sealed for it stay in the record and a grant
// can still give an auditor access. Provision restores the machine.
func (a *VaultAdmin) Revoke(ctx context.Context, machine string) error {
	name := vaultpolicy.PolicyName(machine)
	err := a.do(ctx, "admin_policy", "deleting policy "+name, func(ctx context.Context) error {
		return a.c.Sys().DeletePolicyWithContext(ctx, name)
	})
	if err != nil {
		return err
	}
	return a.do(ctx, "admin_role", "deleting approle "+vaultpolicy.RoleName(machine), func(ctx context.Context) error {
		_, err := a.c.Logical().DeleteWithContext(ctx, a.rolePath(machine))
		return err
	})
}
