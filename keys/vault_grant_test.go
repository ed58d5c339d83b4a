package keys

import (
	"bytes"
	"errors"
	"testing"

	"phix.dev/phix/internal/vaulttest"
)

func TestVaultGrant(t *testing.T) {
	env := newVaultEnv(t, vaulttest.Start, VaultAdminConfig{})
	ctx := t.Context()
	lab, ehr, billing := env.provider(t, "lab-feed"), env.provider(t, "ehr-ingest"), env.provider(t, "billing")

	dk := NewDataKey()
	forEHR, err := lab.WrapKey(ctx, "ehr-ingest", dk)
	if err != nil {
		t.Fatalf("WrapKey(ehr-ingest) = %v", err)
	}
	// billing is no recipient of this key; the grant gives it one.
	if _, err := billing.UnwrapKey(ctx, dk.ID(), forEHR); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("billing: UnwrapKey(ehr-ingest's key) = %v, want ErrUnwrap", err)
	}
	got, err := env.admin.Grant(ctx, []VaultWrappedKey{
		{Recipient: "ehr-ingest", DataKeyID: dk.ID(), Wrapped: forEHR},
	}, "billing")
	if err != nil || len(got) != 1 {
		t.Fatalf("Grant(to billing) = %d keys, %v; want 1", len(got), err)
	}
	opened, err := billing.UnwrapKey(ctx, dk.ID(), got[0])
	if err != nil || !bytes.Equal(opened.Bytes(), dk.Bytes()) {
		t.Fatalf("billing: UnwrapKey(granted) = %v, %v; want the data key", opened, err)
	}
	if _, err := ehr.UnwrapKey(ctx, dk.ID(), got[0]); !errors.Is(err, ErrUnwrap) {
		t.Errorf("ehr-ingest: UnwrapKey(billing's grant) = %v, want ErrUnwrap", err)
	}

	key := func(reader, id string) VaultWrappedKey {
		return VaultWrappedKey{Recipient: reader, DataKeyID: id, Wrapped: forEHR}
	}
	tests := []struct {
		name string
		from VaultWrappedKey
		to   string
		want error
	}{
		{"under another data key ID", key("ehr-ingest", "other"), "billing", ErrUnwrap},
		{"naming the wrong reader", key("billing", dk.ID()), "lab-feed", ErrUnwrap},
		{"to a machine without a wrap key", key("ehr-ingest", dk.ID()), "nobody", ErrUnknownMachine},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := env.admin.Grant(ctx, []VaultWrappedKey{tt.from}, tt.to)
			if !errors.Is(err, tt.want) {
				t.Errorf("Grant = %v, want an error matching %v", err, tt.want)
			}
		})
	}
}

func TestVaultKeyVersions(t *testing.T) {
	env := newVaultEnv(t, vaulttest.Start, VaultAdminConfig{})
	ctx := t.Context()
	if l, m, err := env.admin.KeyVersions(ctx, "billing", VaultWrapKey); err != nil || l != 1 || m != 1 {
		t.Fatalf("KeyVersions(billing) = %d, %d, %v; want 1, 1", l, m, err)
	}
	if _, err := env.admin.RotateKey(ctx, "billing", VaultWrapKey); err != nil {
		t.Fatal(err)
	}
	if err := env.admin.SetMinDecryptionVersion(ctx, "billing", 2); err != nil {
		t.Fatal(err)
	}
	if l, m, err := env.admin.KeyVersions(ctx, "billing", VaultWrapKey); err != nil || l != 2 || m != 2 {
		t.Errorf("KeyVersions(billing) after rotate and retire = %d, %d, %v; want 2, 2", l, m, err)
	}
	if _, _, err := env.admin.KeyVersions(ctx, "nobody", VaultSignKey); !errors.Is(err, ErrUnknownMachine) {
		t.Errorf("KeyVersions(nobody) = %v, want ErrUnknownMachine", err)
	}
}

// TestVaultGrantCreatesNoKey checks that a grant to an unprovisioned name
// leaves Vault without a key of that name: transit would create one on
// encrypt.
func TestVaultGrantCreatesNoKey(t *testing.T) {
	env := newVaultEnv(t, vaulttest.Start, VaultAdminConfig{})
	ctx := t.Context()
	from := []VaultWrappedKey{{Recipient: "billing", DataKeyID: "x", Wrapped: []byte("vault:v1:x")}}
	env.admin.Grant(ctx, from, "nobody")
	if _, _, err := env.admin.KeyVersions(ctx, "nobody", VaultWrapKey); !errors.Is(err, ErrUnknownMachine) {
		t.Errorf("KeyVersions(nobody) after a grant to it = %v, want ErrUnknownMachine", err)
	}
}
