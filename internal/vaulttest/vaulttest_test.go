package vaulttest_test

import (
	"context"
	"testing"

	"github.com/hashicorp/vault/api"

	"phix.dev/phix/internal/vaulttest"
)

func TestStart(t *testing.T) {
	tests := []struct {
		name  string
		start func(testing.TB) *vaulttest.Server
		tls   bool
	}{
		{"plain HTTP", vaulttest.Start, false},
		{"TLS with dev CA", vaulttest.StartTLS, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.start(t)
			if got := s.CACert != ""; got != tt.tls {
				t.Errorf("CACert = %q, want set=%v", s.CACert, tt.tls)
			}
			h, err := s.Client.Sys().HealthWithContext(context.Background())
			if err != nil {
				t.Fatalf("Health() = %v", err)
			}
			if !h.Initialized || h.Sealed {
				t.Errorf("Health() = initialized %v sealed %v, want true false", h.Initialized, h.Sealed)
			}
			// The root client really is root: it can list mounts.
			if _, err := s.Client.Sys().ListMountsWithContext(context.Background()); err != nil {
				t.Errorf("ListMounts() = %v, want nil", err)
			}
		})
	}
}

func TestRestartKeepsData(t *testing.T) {
	s := vaulttest.StartPersistent(t)
	ctx := context.Background()
	if err := s.Client.Sys().MountWithContext(ctx, "transit", &api.MountInput{Type: "transit"}); err != nil {
		t.Fatalf("mounting transit: %v", err)
	}
	if _, err := s.Client.Logical().WriteWithContext(ctx, "transit/keys/k", nil); err != nil {
		t.Fatalf("creating a key: %v", err)
	}

	s.Stop()
	if _, err := s.Client.Sys().HealthWithContext(ctx); err == nil {
		t.Errorf("Health() of a stopped server = nil error, want one")
	}
	s.Restart(t)
	sec, err := s.Client.Logical().ReadWithContext(ctx, "transit/keys/k")
	if err != nil || sec == nil {
		t.Fatalf("reading the key after a restart = %v, %v; want it kept", sec, err)
	}
}
