package cli

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"phix.dev/phix/identity"
	"phix.dev/phix/internal/vaulttest"
	"phix.dev/phix/policy"
)

// TestSetUpVault runs what `phix up --vault` does to a data folder against
// a real Vault, twice, and opens each machine's provider as `phix publish`
// and `phix subscribe` do.
func TestSetUpVault(t *testing.T) {
	srv := vaulttest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pol, err := policy.Parse("default", policy.Default())
	if err != nil {
		t.Fatalf("policy.Parse(default) = %v", err)
	}
	dir := t.TempDir()
	if err := identity.Init(dir, pol.Active()); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte(srv.RootToken), 0o600); err != nil {
		t.Fatal(err)
	}
	vf := &vaultFlags{addr: srv.Addr, tokenFile: token}

	admins, err := setUpVault(ctx, vf, dir, pol)
	if err != nil || len(admins) != 1 || admins[0] != keyAdminName {
		t.Fatalf("setUpVault = %v, %v; want [%s]", admins, err, keyAdminName)
	}
	secret := filepath.Join(identity.IdentityDir(dir, "billing"), secretIDFile)
	before, err := os.ReadFile(secret)
	if err != nil {
		t.Fatalf("secret ID file: %v", err)
	}
	if fi, _ := os.Stat(secret); fi.Mode().Perm() != 0o600 {
		t.Errorf("secret ID file mode = %v, want 0600", fi.Mode().Perm())
	}
	if _, err := setUpVault(ctx, vf, dir, pol); err != nil {
		t.Fatalf("setUpVault again = %v", err)
	}
	if after, _ := os.ReadFile(secret); string(after) != string(before) {
		t.Errorf("setUpVault again issued a new secret ID, want the existing one kept")
	}

	for _, name := range pol.Active() {
		m, err := identity.Load(identity.IdentityDir(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		kp, vault, err := machineKeys(ctx, m)
		if err != nil || !vault {
			t.Fatalf("machineKeys(%s) = %v, vault %v; want the Vault provider", name, err, vault)
		}
		if _, _, err := kp.Sign(ctx, []byte("synthetic")); err != nil {
			t.Errorf("%s: Sign = %v", name, err)
		}
		closeKeys(kp)
	}
	m, err := identity.Load(identity.IdentityDir(dir, keyAdminName))
	if err != nil {
		t.Fatalf("key admin identity: %v", err)
	}
	if kp, vault, err := machineKeys(ctx, m); err != nil || vault {
		t.Errorf("machineKeys(%s) = %T, vault %v, %v; want local keys", keyAdminName, kp, vault, err)
	}
}
