package keys

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestVaultConfigValidate(t *testing.T) {
	valid := VaultConfig{
		Address:      "https://vault.example:8200",
		Machine:      "billing",
		RoleID:       "role",
		SecretIDFile: "/run/phix/secret-id",
	}
	tests := []struct {
		name   string
		change func(*VaultConfig)
		ok     bool
	}{
		{"valid", func(*VaultConfig) {}, true},
		{"http on loopback", func(c *VaultConfig) { c.Address = "http://127.0.0.1:8200" }, true},
		{"http on localhost", func(c *VaultConfig) { c.Address = "http://localhost:8200" }, true},
		{"http on IPv6 loopback", func(c *VaultConfig) { c.Address = "http://[::1]:8200" }, true},
		{"http elsewhere", func(c *VaultConfig) { c.Address = "http://vault.example:8200" }, false},
		{"no scheme", func(c *VaultConfig) { c.Address = "vault.example:8200" }, false},
		{"unix socket", func(c *VaultConfig) { c.Address = "unix:///run/vault.sock" }, false},
		{"machine with a slash", func(c *VaultConfig) { c.Machine = "a/b" }, false},
		{"no machine", func(c *VaultConfig) { c.Machine = "" }, false},
		{"no role ID", func(c *VaultConfig) { c.RoleID = "" }, false},
		{"no secret ID file", func(c *VaultConfig) { c.SecretIDFile = "" }, false},
		{"mount with a glob", func(c *VaultConfig) { c.Mount = "transit*" }, false},
		{"mount climbing up", func(c *VaultConfig) { c.Mount = "../sys" }, false},
		{"nested mount", func(c *VaultConfig) { c.Mount = "/phix/transit/" }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.change(&cfg)
			err := cfg.validate()
			if (err == nil) != tt.ok {
				t.Errorf("validate(%+v) = %v, want ok=%v", cfg, err, tt.ok)
			}
		})
	}
}

func TestVaultConfigDefaults(t *testing.T) {
	cfg := VaultConfig{
		Address: "https://v:8200", Machine: "m", RoleID: "r", SecretIDFile: "f",
		Mount: "/phix/transit/",
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	got := []any{cfg.Mount, cfg.AuthMount, cfg.Timeout}
	want := []any{"phix/transit", "approle", defaultVaultTimeout}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("validate() defaults mismatch (-want +got):\n%s", diff)
	}
}

func TestSplitTransitVersion(t *testing.T) {
	tests := []struct {
		in      string
		version int
		rest    string
		ok      bool
	}{
		{"vault:v1:abc", 1, "abc", true},
		{"vault:v12:", 12, "", true},
		{"vault:v0:abc", 0, "", false},
		{"vault:v01:abc", 0, "", false},
		{"vault:v-1:abc", 0, "", false},
		{"vault:v+1:abc", 0, "", false},
		{"vault:vx:abc", 0, "", false},
		{"vault:v1", 0, "", false},
		{"v1:abc", 0, "", false},
		{"", 0, "", false},
	}
	for _, tt := range tests {
		v, rest, ok := splitTransitVersion(tt.in)
		if v != tt.version || rest != tt.rest || ok != tt.ok {
			t.Errorf("splitTransitVersion(%q) = %d, %q, %v; want %d, %q, %v",
				tt.in, v, rest, ok, tt.version, tt.rest, tt.ok)
		}
	}
}

func TestUnwrapFailureIsOpaque(t *testing.T) {
	tests := []struct {
		name        string
		in          error
		unavailable bool
	}{
		{"denied", fmt.Errorf("%w: unwrapping", ErrDenied), false},
		{"refused", errors.New("keys: vault unwrapping: status 400: cipher: message authentication failed"), false},
		{"unavailable", fmt.Errorf("%w: unwrapping: status 503: Vault is sealed", ErrUnavailable), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := unwrapFailure(tt.in)
			if !errors.Is(err, ErrUnwrap) || errors.Is(err, ErrUnavailable) != tt.unavailable {
				t.Errorf("unwrapFailure(%v) = %v, want ErrUnwrap (unavailable=%v)", tt.in, err, tt.unavailable)
			}
			if !tt.unavailable && err != ErrUnwrap {
				t.Errorf("unwrapFailure(%v) = %v, want the bare ErrUnwrap", tt.in, err)
			}
		})
	}
}
