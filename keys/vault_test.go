package keys

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"phix.dev/phix/internal/vaultpolicy"
	"phix.dev/phix/internal/vaulttest"
)

// The demo deployment: the lab feed sends results to the EHR and billing.
var (
	vaultDemoMachines = []string{"lab-feed", "ehr-ingest", "billing"}
	vaultDemoFlows    = []Flow{{Sender: "lab-feed", Recipients: []string{"ehr-ingest", "billing"}}}
)

// vaultEnv is a real Vault dev server provisioned for the demo machines.
type vaultEnv struct {
	srv   *vaulttest.Server
	admin *VaultAdmin
	dir   string
}

func newVaultEnv(t testing.TB, start func(testing.TB) *vaulttest.Server, cfg VaultAdminConfig) *vaultEnv {
	t.Helper()
	srv := start(t)
	cfg.Address, cfg.CACert = srv.Addr, srv.CACert
	admin, err := NewVaultAdmin(cfg, srv.RootToken)
	if err != nil {
		t.Fatalf("NewVaultAdmin() = %v", err)
	}
	if err := admin.Provision(t.Context(), vaultDemoMachines, vaultDemoFlows); err != nil {
		t.Fatalf("Provision(demo) = %v", err)
	}
	return &vaultEnv{srv: srv, admin: admin, dir: t.TempDir()}
}

// config issues a secret ID for machine into a file and returns the
// provider configuration that uses it.
func (e *vaultEnv) config(t testing.TB, machine string, wrapTTL time.Duration) VaultConfig {
	t.Helper()
	path := filepath.Join(e.dir, machine+".secret-id")
	roleID, err := e.admin.IssueSecretID(t.Context(), machine, path, wrapTTL)
	if err != nil {
		t.Fatalf("IssueSecretID(%s) = %v", machine, err)
	}
	return VaultConfig{
		Address:         e.srv.Addr,
		CACert:          e.srv.CACert,
		Machine:         machine,
		RoleID:          roleID,
		SecretIDFile:    path,
		SecretIDWrapped: wrapTTL > 0,
	}
}

func (e *vaultEnv) provider(t testing.TB, machine string) *Vault {
	t.Helper()
	v, err := NewVault(t.Context(), e.config(t, machine, 0))
	if err != nil {
		t.Fatalf("NewVault(%s) = %v", machine, err)
	}
	t.Cleanup(func() {
		// Short: some tests leave Vault sealed, and Close need not succeed.
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		v.Close(ctx)
	})
	return v
}

// vaultCalls reads the VaultCalls counter for one operation and result.
func vaultCalls(t testing.TB, op string, res vaultResult) float64 {
	t.Helper()
	var m dto.Metric
	if err := VaultCalls.WithLabelValues(op, string(res)).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestVaultWrapForRecipients(t *testing.T) {
	env := newVaultEnv(t, vaulttest.Start, VaultAdminConfig{})
	ctx := t.Context()
	lab, ehr, billing := env.provider(t, "lab-feed"), env.provider(t, "ehr-ingest"), env.provider(t, "billing")

	dk := NewDataKey()
	wrapped, err := lab.WrapKeys(ctx, []string{"ehr-ingest", "billing"}, dk)
	if err != nil {
		t.Fatalf("WrapKeys(ehr-ingest, billing) = %v", err)
	}
	for i, p := range []*Vault{ehr, billing} {
		got, err := p.UnwrapKey(ctx, dk.ID(), wrapped[i])
		if err != nil {
			t.Fatalf("%s: UnwrapKey(own) = %v, want nil", p.Identity(), err)
		}
		if !bytes.Equal(got.Bytes(), dk.Bytes()) || got.ID() != dk.ID() {
			t.Errorf("%s: UnwrapKey(own) = %v, want %v with the same bytes", p.Identity(), got, dk)
		}
	}

	tampered := bytes.Clone(wrapped[1])
	tampered[len(tampered)-3] ^= 'A' ^ 'B'
	tests := []struct {
		name    string
		p       *Vault
		id      string
		wrapped []byte
	}{
		{"sender is not a recipient", lab, dk.ID(), wrapped[0]},
		{"other recipient's key", ehr, dk.ID(), wrapped[1]},
		{"other recipient's key, the other way", billing, dk.ID(), wrapped[0]},
		{"replayed under another data key ID", billing, NewDataKey().ID(), wrapped[1]},
		{"tampered ciphertext", billing, dk.ID(), tampered},
		{"not a transit ciphertext", billing, dk.ID(), []byte("hpke:abc")},
		{"empty", billing, dk.ID(), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.p.UnwrapKey(ctx, tt.id, tt.wrapped)
			if !errors.Is(err, ErrUnwrap) || errors.Is(err, ErrUnavailable) {
				t.Errorf("%s: UnwrapKey() = %v, %v; want ErrUnwrap only", tt.p.Identity(), got, err)
			}
		})
	}

	// Using the recipient's wrap key instead of its own does not help an
	// outsider: Vault's policy refuses it, and that too is only ErrUnwrap.
	t.Run("outsider with the recipient's key", func(t *testing.T) {
		err := lab.call(ctx, "decrypt", "unwrapping", func(ctx context.Context) error {
			key := vaultpolicy.WrapKey("billing")
			_, err := lab.transit.decrypt(ctx, key, string(wrapped[1]), wrapContext(dk.ID()))
			return err
		})
		if !errors.Is(err, ErrDenied) {
			t.Fatalf("lab-feed: decrypt with phix-wrap-billing = %v, want ErrDenied", err)
		}
		if got := unwrapFailure(err); got != ErrUnwrap {
			t.Errorf("unwrapFailure(%v) = %v, want ErrUnwrap", err, got)
		}
	})

	// Junk that is not a transit ciphertext never reaches Vault.
	before := vaultCalls(t, "decrypt", vaultRefused) + vaultCalls(t, "decrypt", vaultOK)
	billing.UnwrapKey(ctx, dk.ID(), []byte("vault:vx:abc"))
	billing.UnwrapKey(ctx, dk.ID(), bytes.Repeat([]byte("vault:v1:"), 200))
	if after := vaultCalls(t, "decrypt", vaultRefused) + vaultCalls(t, "decrypt", vaultOK); after != before {
		t.Errorf("decrypt calls after junk = %v, want %v", after, before)
	}
}

// TestVaultPolicyDenials shows each rule of the generated policies being
// enforced by Vault itself, bypassing the provider's own choices.
func TestVaultPolicyDenials(t *testing.T) {
	env := newVaultEnv(t, vaulttest.Start, VaultAdminConfig{})
	ctx := t.Context()
	lab, ehr, billing := env.provider(t, "lab-feed"), env.provider(t, "ehr-ingest"), env.provider(t, "billing")
	dk := NewDataKey()
	forEHR, err := lab.WrapKey(ctx, "ehr-ingest", dk)
	if err != nil {
		t.Fatalf("WrapKey(ehr-ingest) = %v", err)
	}

	tests := []struct {
		name string
		p    *Vault
		op   func(context.Context, *Vault) error
	}{
		{"encrypt for a recipient outside its flows", billing, func(ctx context.Context, v *Vault) error {
			_, err := v.WrapKey(ctx, "ehr-ingest", dk)
			return err
		}},
		{"encrypt for itself when it is no recipient", lab, func(ctx context.Context, v *Vault) error {
			_, err := v.WrapKey(ctx, "lab-feed", dk)
			return err
		}},
		{"encrypt for a machine that does not exist", lab, func(ctx context.Context, v *Vault) error {
			_, err := v.WrapKey(ctx, "nobody", dk)
			return err
		}},
		{"sign with another machine's key", billing, func(ctx context.Context, v *Vault) error {
			return v.call(ctx, "sign", "signing", func(ctx context.Context) error {
				_, _, err := v.transit.sign(ctx, vaultpolicy.SignKey("lab-feed"), []byte("forged"))
				return err
			})
		}},
		{"decrypt with another machine's key", billing, func(ctx context.Context, v *Vault) error {
			return v.call(ctx, "decrypt", "unwrapping", func(ctx context.Context) error {
				key := vaultpolicy.WrapKey("ehr-ingest")
				_, err := v.transit.decrypt(ctx, key, string(forEHR), wrapContext(dk.ID()))
				return err
			})
		}},
		{"rotate its own key", ehr, func(ctx context.Context, v *Vault) error {
			return v.call(ctx, "rotate", "rotating", func(ctx context.Context) error {
				_, err := v.transit.rotate(ctx, vaultpolicy.WrapKey("ehr-ingest"))
				return err
			})
		}},
		{"read a wrap key", ehr, func(ctx context.Context, v *Vault) error {
			return v.call(ctx, "read_key", "reading", func(ctx context.Context) error {
				_, err := v.transit.readKey(ctx, vaultpolicy.WrapKey("ehr-ingest"))
				return err
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logins := vaultCalls(t, "login", vaultOK)
			err := tt.op(ctx, tt.p)
			if !errors.Is(err, ErrDenied) {
				t.Errorf("%s: %s = %v, want ErrDenied", tt.p.Identity(), tt.name, err)
			}
			// A policy denial is not mistaken for a dead token.
			if got := vaultCalls(t, "login", vaultOK); got != logins {
				t.Errorf("logins after denial = %v, want %v", got, logins)
			}
		})
	}

	// The owner itself can still open it: the denials above were policy.
	if _, err := ehr.UnwrapKey(ctx, dk.ID(), forEHR); err != nil {
		t.Errorf("ehr-ingest: UnwrapKey(own) = %v, want nil", err)
	}
}

func TestVaultRotateRewrapRetire(t *testing.T) {
	env := newVaultEnv(t, vaulttest.Start, VaultAdminConfig{})
	ctx := t.Context()
	lab, billing := env.provider(t, "lab-feed"), env.provider(t, "billing")

	wrap := func(dk *DataKey) []byte {
		t.Helper()
		w, err := lab.WrapKey(ctx, "billing", dk)
		if err != nil {
			t.Fatalf("WrapKey(billing) = %v", err)
		}
		return w
	}
	unwrap := func(dk *DataKey, w []byte) error {
		t.Helper()
		got, err := billing.UnwrapKey(ctx, dk.ID(), w)
		if err == nil && !bytes.Equal(got.Bytes(), dk.Bytes()) {
			t.Errorf("UnwrapKey(%s) returned other key bytes", dk.ID())
		}
		return err
	}
	dkRewrapped, dkLeftOld := NewDataKey(), NewDataKey()
	oldA, oldB := wrap(dkRewrapped), wrap(dkLeftOld)

	v, err := env.admin.RotateKey(ctx, "billing", VaultWrapKey)
	if err != nil || v != 2 {
		t.Fatalf("RotateKey(billing, wrap) = %d, %v; want 2, nil", v, err)
	}
	if err := unwrap(dkLeftOld, oldB); err != nil {
		t.Errorf("UnwrapKey(v1 key after rotation) = %v, want nil", err)
	}
	dkNew := NewDataKey()
	fresh := wrap(dkNew)
	if !strings.HasPrefix(string(fresh), "vault:v2:") {
		t.Errorf("WrapKey after rotation = %.9s..., want vault:v2:", fresh)
	}

	rewrapped, err := env.admin.Rewrap(ctx, []VaultWrappedKey{
		{Recipient: "billing", DataKeyID: dkRewrapped.ID(), Wrapped: oldA},
	})
	if err != nil {
		t.Fatalf("Rewrap(v1 key) = %v", err)
	}
	if !strings.HasPrefix(string(rewrapped[0]), "vault:v2:") {
		t.Errorf("Rewrap(v1 key) = %.9s..., want vault:v2:", rewrapped[0])
	}
	// Rewrap keeps the binding to the data key ID.
	_, err = env.admin.Rewrap(ctx, []VaultWrappedKey{
		{Recipient: "billing", DataKeyID: dkRewrapped.ID(), Wrapped: oldA},
		{Recipient: "billing", DataKeyID: "other-id", Wrapped: oldB},
	})
	if !errors.Is(err, ErrUnwrap) {
		t.Errorf("Rewrap(wrong data key ID) = %v, want ErrUnwrap", err)
	}

	if err := env.admin.SetMinDecryptionVersion(ctx, "billing", 2); err != nil {
		t.Fatalf("SetMinDecryptionVersion(billing, 2) = %v", err)
	}
	if err := unwrap(dkRewrapped, rewrapped[0]); err != nil {
		t.Errorf("UnwrapKey(rewrapped) after retiring v1 = %v, want nil", err)
	}
	if err := unwrap(dkNew, fresh); err != nil {
		t.Errorf("UnwrapKey(v2 key) after retiring v1 = %v, want nil", err)
	}
	if err := unwrap(dkLeftOld, oldB); !errors.Is(err, ErrUnwrap) {
		t.Errorf("UnwrapKey(v1 key) after retiring v1 = %v, want ErrUnwrap", err)
	}
	if _, err := env.admin.Rewrap(ctx, []VaultWrappedKey{
		{Recipient: "billing", DataKeyID: dkLeftOld.ID(), Wrapped: oldB},
	}); !errors.Is(err, ErrUnwrap) {
		t.Errorf("Rewrap(v1 key) after retiring v1 = %v, want ErrUnwrap", err)
	}
}

func TestVaultSignVerifyAcrossRotation(t *testing.T) {
	env := newVaultEnv(t, vaulttest.Start, VaultAdminConfig{})
	ctx := t.Context()
	lab, ehr := env.provider(t, "lab-feed"), env.provider(t, "ehr-ingest")

	msg1 := []byte("phix/v1/signature\x00header one")
	sig1, id1, err := lab.Sign(ctx, msg1)
	if err != nil || id1 != "vault:v1" {
		t.Fatalf("Sign() = _, %q, %v; want vault:v1, nil", id1, err)
	}
	verify := func(msg, sig []byte, keyID string) bool {
		t.Helper()
		pub, err := ehr.PublicKey(ctx, "lab-feed", keyID)
		if err != nil {
			t.Fatalf("PublicKey(lab-feed, %s) = %v", keyID, err)
		}
		return ed25519.Verify(pub, msg, sig)
	}
	if !verify(msg1, sig1, id1) {
		t.Fatalf("signature by %s does not verify", id1)
	}

	if v, err := env.admin.RotateKey(ctx, "lab-feed", VaultSignKey); err != nil || v != 2 {
		t.Fatalf("RotateKey(lab-feed, sign) = %d, %v; want 2, nil", v, err)
	}
	msg2 := []byte("phix/v1/signature\x00header two")
	sig2, id2, err := lab.Sign(ctx, msg2)
	if err != nil || id2 != "vault:v2" {
		t.Fatalf("Sign() after rotation = _, %q, %v; want vault:v2, nil", id2, err)
	}
	if !verify(msg2, sig2, id2) {
		t.Errorf("signature by %s does not verify", id2)
	}
	if !verify(msg1, sig1, id1) {
		t.Errorf("old signature by %s does not verify after rotation", id1)
	}
	if verify(msg1, sig1, id2) {
		t.Errorf("old signature verifies with %s, want only with %s", id2, id1)
	}

	reads := vaultCalls(t, "read_key", vaultOK)
	tests := []struct {
		machine, keyID string
		want           error
	}{
		{"lab-feed", "vault:v1", nil},
		{"lab-feed", "vault:v2", nil},
		{"lab-feed", "vault:v9", ErrUnknownKey},
		{"lab-feed", "vault:v9", ErrUnknownKey}, // answered from the cache
		{"lab-feed", "vault:v01", ErrUnknownKey},
		{"lab-feed", "local:abc", ErrUnknownKey},
		{"lab-feed", "vault:v1:", ErrUnknownKey},
		{"nobody", "vault:v1", ErrUnknownMachine},
		{"nobody", "vault:v1", ErrUnknownMachine}, // answered from the cache
		{"../sys", "vault:v1", ErrUnknownMachine},
	}
	for _, tt := range tests {
		_, err := ehr.PublicKey(ctx, tt.machine, tt.keyID)
		if !errors.Is(err, tt.want) {
			t.Errorf("PublicKey(%q, %q) = %v, want %v", tt.machine, tt.keyID, err, tt.want)
		}
	}
	// Known versions come from the cache; each miss costs one read.
	if got, want := vaultCalls(t, "read_key", vaultOK)-reads, 2.0; got != want {
		t.Errorf("public key reads = %v, want %v (v9 once, nobody once)", got, want)
	}
}

func TestVaultAppRoleLogin(t *testing.T) {
	env := newVaultEnv(t, vaulttest.Start, VaultAdminConfig{})
	ctx := t.Context()

	t.Run("response-wrapped secret ID opens once", func(t *testing.T) {
		cfg := env.config(t, "billing", time.Minute)
		v, err := NewVault(ctx, cfg)
		if err != nil {
			t.Fatalf("NewVault(wrapped secret ID) = %v", err)
		}
		defer v.Close(ctx)
		if _, _, err := v.Sign(ctx, []byte("m")); err != nil {
			t.Errorf("Sign() = %v, want nil", err)
		}
		if v2, err := NewVault(ctx, cfg); err == nil {
			v2.Close(ctx)
			t.Errorf("NewVault(used wrapping token) = nil error, want failure")
		}
	})

	t.Run("secret ID file readable by others", func(t *testing.T) {
		cfg := env.config(t, "billing", 0)
		if err := os.Chmod(cfg.SecretIDFile, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := NewVault(ctx, cfg); !errors.Is(err, ErrInsecureFile) {
			t.Errorf("NewVault(0644 secret ID file) = %v, want ErrInsecureFile", err)
		}
	})

	t.Run("wrong secret ID", func(t *testing.T) {
		cfg := env.config(t, "billing", 0)
		if err := os.WriteFile(cfg.SecretIDFile, []byte("not-the-secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := NewVault(ctx, cfg); err == nil || errors.Is(err, ErrUnavailable) {
			t.Errorf("NewVault(wrong secret ID) = %v, want a refusal", err)
		}
	})

	t.Run("revoked token logs in again", func(t *testing.T) {
		v := env.provider(t, "lab-feed")
		if err := env.srv.Client.Auth().Token().RevokeOrphanWithContext(ctx, v.transit.c.Token()); err != nil {
			t.Fatalf("revoking the machine token: %v", err)
		}
		// Concurrent callers that all hit the dead token share one login.
		logins := vaultCalls(t, "login", vaultOK)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				if _, _, err := v.Sign(ctx, []byte("m")); err != nil {
					t.Errorf("Sign() with revoked token = %v, want nil after re-login", err)
				}
			})
		}
		wg.Wait()
		if got := vaultCalls(t, "login", vaultOK); got != logins+1 {
			t.Errorf("logins = %v, want %v", got, logins+1)
		}
	})

	t.Run("renewed past half life, new login after expiry", func(t *testing.T) {
		v := env.provider(t, "ehr-ingest")
		clock := newVaultClock()
		v.login.now = clock.now
		v.login.mu.Lock()
		v.login.expires = clock.now().Add(v.login.ttl) // on the fake clock
		gen := v.login.gen
		v.login.mu.Unlock()

		renewals, logins := vaultCalls(t, "renew", vaultOK), vaultCalls(t, "login", vaultOK)
		clock.advance(defaultVaultTokenTTL * 6 / 10)
		if _, _, err := v.Sign(ctx, []byte("m")); err != nil {
			t.Fatalf("Sign() past half life = %v", err)
		}
		if got := vaultCalls(t, "renew", vaultOK); got != renewals+1 {
			t.Errorf("renewals = %v, want %v", got, renewals+1)
		}
		if v.login.gen != gen {
			t.Errorf("token generation = %d, want %d (renewed, not replaced)", v.login.gen, gen)
		}

		clock.advance(2 * defaultVaultTokenTTL)
		if _, _, err := v.Sign(ctx, []byte("m")); err != nil {
			t.Fatalf("Sign() after expiry = %v", err)
		}
		if got := vaultCalls(t, "login", vaultOK); got != logins+1 {
			t.Errorf("logins = %v, want %v", got, logins+1)
		}
	})
}

// TestVaultExpiredTokenLogsInAgain lets a short-lived token really expire
// on the server while the provider's clock says it is fresh, so the
// provider learns of it only from Vault's 403.
func TestVaultExpiredTokenLogsInAgain(t *testing.T) {
	env := newVaultEnv(t, vaulttest.Start, VaultAdminConfig{TokenTTL: 2 * time.Second, TokenMaxTTL: 2 * time.Second})
	ctx := t.Context()
	v := env.provider(t, "lab-feed")
	frozen := time.Now()
	v.login.mu.Lock()
	v.login.now = func() time.Time { return frozen }
	v.login.expires = frozen.Add(time.Hour)
	v.login.mu.Unlock()

	token := v.transit.c.Token()
	vaultWaitFor(t, 30*time.Second, func() bool {
		_, err := env.srv.Client.Auth().Token().LookupWithContext(ctx, token)
		return err != nil
	})

	logins := vaultCalls(t, "login", vaultOK)
	if _, _, err := v.Sign(ctx, []byte("m")); err != nil {
		t.Fatalf("Sign() with expired token = %v, want nil after re-login", err)
	}
	if got := vaultCalls(t, "login", vaultOK); got != logins+1 {
		t.Errorf("logins = %v, want %v", got, logins+1)
	}
}

func TestVaultTLS(t *testing.T) {
	env := newVaultEnv(t, vaulttest.StartTLS, VaultAdminConfig{})
	ctx := t.Context()
	v := env.provider(t, "lab-feed")
	if _, _, err := v.Sign(ctx, []byte("m")); err != nil {
		t.Errorf("Sign() over TLS = %v", err)
	}

	cfg := env.config(t, "billing", 0)
	cfg.CACert = ""
	if _, err := NewVault(ctx, cfg); !errors.Is(err, ErrUnavailable) {
		t.Errorf("NewVault(no CA for a dev certificate) = %v, want ErrUnavailable", err)
	}
}

func TestVaultUnavailable(t *testing.T) {
	env := newVaultEnv(t, vaulttest.Start, VaultAdminConfig{})
	ctx := t.Context()
	v := env.provider(t, "billing")
	lab := env.provider(t, "lab-feed")
	dk := NewDataKey()
	w, err := lab.WrapKey(ctx, "billing", dk)
	if err != nil {
		t.Fatalf("WrapKey(billing) = %v", err)
	}
	if err := env.srv.Client.Sys().SealWithContext(ctx); err != nil {
		t.Fatalf("sealing: %v", err)
	}
	_, err = v.UnwrapKey(ctx, dk.ID(), w)
	if !errors.Is(err, ErrUnwrap) || !errors.Is(err, ErrUnavailable) {
		t.Errorf("UnwrapKey() on a sealed Vault = %v, want ErrUnwrap and ErrUnavailable", err)
	}
}

// vaultClock is a settable clock for token lifetimes.
type vaultClock struct {
	mu sync.Mutex
	t  time.Time // guarded by mu
}

func newVaultClock() *vaultClock { return &vaultClock{t: time.Now()} }

func (c *vaultClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *vaultClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// vaultWaitFor polls cond until it holds or timeout passes.
func vaultWaitFor(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A revoked machine loses Vault at once: its live token can no longer sign
// or unwrap, and it cannot log in again.
func TestVaultRevokeCutsOffAtOnce(t *testing.T) {
	env := newVaultEnv(t, vaulttest.Start, VaultAdminConfig{})
	ctx := t.Context()
	billing := env.provider(t, "billing")
	if _, _, err := billing.Sign(ctx, []byte("before")); err != nil {
		t.Fatalf("Sign before revocation = %v, want nil", err)
	}
	again := env.config(t, "billing", 0) // a secret ID issued before the cut

	if err := env.admin.Revoke(ctx, "billing"); err != nil {
		t.Fatalf("Revoke(billing) = %v", err)
	}
	// The live token has lost its policy; the provider's attempt to log
	// in again is refused too, since the role is gone.
	if sig, _, err := billing.Sign(ctx, []byte("after")); err == nil {
		t.Errorf("Sign with the live token after revocation = %x, want refusal", sig)
	}
	if _, err := NewVault(ctx, again); err == nil {
		t.Errorf("NewVault(billing) after revocation logged in, want refusal")
	}
	// The others are untouched.
	if _, _, err := env.provider(t, "lab-feed").Sign(ctx, []byte("still fine")); err != nil {
		t.Errorf("lab-feed Sign after billing's revocation = %v, want nil", err)
	}
}
