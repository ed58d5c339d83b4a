package e2e_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"phix.dev/phix/audit"
	"phix.dev/phix/consumer"
	"phix.dev/phix/internal/vaulttest"
	"phix.dev/phix/producer"
	"phix.dev/phix/registry"
)

// TestVaultKeysCommands drives `phix keys` against a running deployment on
// a real Vault: rotate and rewrap with retirement, list, grant and
// destroy, and checks the effect on the messages.
func TestVaultKeysCommands(t *testing.T) {
	d := startVaultPhix(t, vaulttest.Start)
	lab, billing := d.machine(t, "lab-feed"), d.machine(t, "billing")
	ctx := withTimeout(t, 2*time.Minute)

	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte(d.vault.RootToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]string{"address": d.vault.Addr})
	if err := os.WriteFile(filepath.Join(d.dir, "vault.json"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	keysCmd := func(args ...string) string {
		t.Helper()
		args = append([]string{"keys"}, args...)
		args = append(args, "--data", d.dir, "--vault-token-file", token)
		code, out, stderr := phix(t, args...)
		if code != 0 {
			t.Fatalf("phix %s = %d: %s", strings.Join(args, " "), code, stderr)
		}
		return out
	}

	p := lab.producer(t, producer.Config{KeyMessages: 1}) // one data key per message
	var ids []string
	for range 3 {
		rc, err := p.Publish(ctx, []string{"ehr-ingest", "billing"}, []byte("synthetic"))
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
		ids = append(ids, rc.MessageID)
	}

	if out := keysCmd("rotate", "billing"); !strings.Contains(out, "key version 2") {
		t.Errorf("phix keys rotate billing = %q, want key version 2", out)
	}
	if out := keysCmd("rewrap", "billing", "--retire"); !strings.Contains(out, "versions before 2 retired") {
		t.Errorf("phix keys rewrap billing --retire = %q", out)
	}
	for _, line := range strings.Split(strings.TrimSpace(keysCmd("list", "--reader", "billing")), "\n") {
		if !strings.HasSuffix(line, "\tv2") {
			t.Errorf("phix keys list --reader billing: %q, want every key at v2", line)
		}
	}

	out := keysCmd("grant", "--to", "auditor", "--message", ids[0], "--reason", "test")
	if !strings.Contains(out, "1 data keys granted") {
		t.Errorf("phix keys grant = %q", out)
	}
	fields := strings.Fields(strings.Split(keysCmd("list", "--message", ids[1]), "\n")[0])
	if len(fields) != 4 {
		t.Fatalf("phix keys list --message: %q, want id, recipient, sender, data key", fields)
	}
	if out := keysCmd("destroy", fields[3], "--reason", "erasure"); !strings.Contains(out, "destroyed") {
		t.Errorf("phix keys destroy = %q", out)
	}

	// Billing opens the first and third message; the second is gone.
	reg := d.registryAdmin(t)
	stored, err := reg.FindMessages(ctx, ids)
	if err != nil {
		t.Fatalf("FindMessages: %v", err)
	}
	c := billing.consumer(t)
	for _, m := range copiesFor(stored, "billing") {
		_, err := c.Open(ctx, m.Subject, m.Data)
		var rej *consumer.RejectError
		switch {
		case m.ID == ids[1] && (!errors.As(err, &rej) || rej.Reason != consumer.ReasonKeyDestroyed):
			t.Errorf("billing: Open(destroyed) = %v, want %s", err, consumer.ReasonKeyDestroyed)
		case m.ID != ids[1] && err != nil:
			t.Errorf("billing: Open(%s) = %v, want it opened", m.ID, err)
		}
	}
	if _, err := reg.Tombstone(ctx, "lab-feed", fields[3]); err != nil {
		t.Errorf("Tombstone after phix keys destroy = %v", err)
	}
	es, err := reg.Entries(ctx, registry.Filter{Reader: "auditor"})
	if err != nil || len(es) != 1 {
		t.Errorf("auditor entries after phix keys grant = %d, %v; want 1", len(es), err)
	}

	// Each key operation is on the audit trail, by the key administrator.
	for _, want := range []struct {
		kind   audit.Kind
		target string
	}{
		{audit.KindKeyRotation, "billing"},
		{audit.KindRewrap, "billing"},
		{audit.KindGrant, "auditor"},
		{audit.KindKeyDestroy, ""},
	} {
		got := d.audit.find(func(r audit.Record) bool {
			return r.Kind == want.kind && r.Actor == keyAdminName &&
				(want.target == "" || r.Target == want.target)
		})
		if len(got) != 1 {
			t.Errorf("audit records of kind %s for %q by %s = %d, want 1", want.kind, want.target, keyAdminName, len(got))
		}
	}
	if got := d.audit.find(func(r audit.Record) bool { return r.Kind == audit.KindKeyDestroy }); len(got) == 1 &&
		got[0].DataKeyID != fields[3] {
		t.Errorf("key-destroy record names data key %s, want %s", got[0].DataKeyID, fields[3])
	}

	// phix revoke on a Vault deployment also takes the machine's Vault
	// access away: its live provider can no longer sign.
	if err := os.WriteFile(filepath.Join(d.dir, "policy.yaml"), []byte(vaultPolicyYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := billing.kp.Sign(ctx, []byte("before")); err != nil {
		t.Fatalf("billing Sign before revoke = %v", err)
	}
	code, out, stderr := phix(t, "revoke", "billing", "--reason", "decommissioned", "--data", d.dir,
		"--vault-token-file", token)
	if code != 0 || !strings.Contains(out, "revoked billing in Vault") {
		t.Fatalf("phix revoke billing = %d, %q %q; want revoked in the policy and in Vault", code, out, stderr)
	}
	if sig, _, err := billing.kp.Sign(ctx, []byte("after")); err == nil {
		t.Errorf("billing Sign after phix revoke = %x, want refusal", sig)
	}
}
