package policy_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"phix.dev/phix/internal/vaultpolicy"
	"phix.dev/phix/policy"
)

func parseDefault(t testing.TB) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("default", policy.Default())
	if err != nil {
		t.Fatalf("Parse(default) = %v, want nil", err)
	}
	return p
}

func TestDefault(t *testing.T) {
	p := parseDefault(t)
	if diff := cmp.Diff([]string{"lab-feed", "ehr-ingest", "billing", "auditor"},
		policy.DemoMachines()); diff != "" {
		t.Errorf("DemoMachines() mismatch (-want +got):\n%s", diff)
	}
	if got, want := p.Sessions.IdleTimeout.D(), 15*time.Minute; got != want {
		t.Errorf("idle timeout = %v, want %v", got, want)
	}
	if got, want := p.Retention.Audit.D(), 6*policy.Year; got != want {
		t.Errorf("audit retention = %v, want %v", got, want)
	}
}

func TestBrokerUsers(t *testing.T) {
	got := parseDefault(t).BrokerUsers()
	want := []policy.BrokerUser{
		{
			Machine: "lab-feed",
			Publish: []string{
				"$JS.API.DIRECT.GET.KV_PHIX_DATAKEYS.$KV.PHIX_DATAKEYS.*.*.lab-feed",
				"$KV.PHIX_DATAKEYS.lab-feed.*.billing",
				"$KV.PHIX_DATAKEYS.lab-feed.*.ehr-ingest",
				"phix.audit.lab-feed",
				"phix.msg.lab-feed.billing.fhir",
				"phix.msg.lab-feed.billing.fhir-event",
				"phix.msg.lab-feed.billing.hl7v2",
				"phix.msg.lab-feed.ehr-ingest.fhir",
				"phix.msg.lab-feed.ehr-ingest.fhir-event",
				"phix.msg.lab-feed.ehr-ingest.hl7v2",
			},
			Subscribe: []string{"_INBOX.lab-feed.>"},
		},
		{
			Machine: "ehr-ingest",
			Publish: []string{
				"$JS.ACK.PHIX_MSGS.inbox-ehr-ingest.>",
				"$JS.API.CONSUMER.INFO.PHIX_MSGS.inbox-ehr-ingest",
				"$JS.API.CONSUMER.MSG.NEXT.PHIX_MSGS.inbox-ehr-ingest",
				"$JS.API.DIRECT.GET.KV_PHIX_DATAKEYS.$KV.PHIX_DATAKEYS.*.*.ehr-ingest",
				"$KV.PHIX_DATAKEYS.ehr-ingest.*.billing",
				"phix.audit.ehr-ingest",
				"phix.msg.ehr-ingest.billing.fhir",
				"phix.quarantine.ehr-ingest",
			},
			Subscribe: []string{"_INBOX.ehr-ingest.>"},
		},
		{
			Machine: "billing",
			Publish: []string{
				"$JS.ACK.PHIX_MSGS.inbox-billing.>",
				"$JS.API.CONSUMER.INFO.PHIX_MSGS.inbox-billing",
				"$JS.API.CONSUMER.MSG.NEXT.PHIX_MSGS.inbox-billing",
				"$JS.API.DIRECT.GET.KV_PHIX_DATAKEYS.$KV.PHIX_DATAKEYS.*.*.billing",
				"phix.audit.billing",
				"phix.quarantine.billing",
			},
			Subscribe: []string{"_INBOX.billing.>"},
		},
		{
			Machine: "auditor",
			Publish: []string{
				"$JS.API.DIRECT.GET.KV_PHIX_DATAKEYS.$KV.PHIX_DATAKEYS.*.*.auditor",
				"$JS.API.DIRECT.GET.PHIX_AUDIT",
				"$JS.API.DIRECT.GET.PHIX_AUDIT.>",
				"$JS.API.DIRECT.GET.PHIX_MSGS",
				"$JS.API.DIRECT.GET.PHIX_MSGS.>",
				"$JS.API.DIRECT.GET.PHIX_QUARANTINE",
				"$JS.API.DIRECT.GET.PHIX_QUARANTINE.>",
				"$JS.API.STREAM.INFO.PHIX_AUDIT",
				"$JS.API.STREAM.INFO.PHIX_MSGS",
				"$JS.API.STREAM.INFO.PHIX_QUARANTINE",
				"$JS.API.STREAM.MSG.GET.PHIX_AUDIT",
				"$JS.API.STREAM.MSG.GET.PHIX_MSGS",
				"$JS.API.STREAM.MSG.GET.PHIX_QUARANTINE",
				"phix.admin.quarantine.auditor",
				"phix.audit.auditor",
			},
			Subscribe: []string{"_INBOX.auditor.>", "phix.alerts"},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("BrokerUsers() mismatch (-want +got):\n%s", diff)
	}
}

func TestInboxConsumers(t *testing.T) {
	got := parseDefault(t).InboxConsumers()
	want := []policy.InboxConsumer{
		{
			Machine: "ehr-ingest", Stream: "PHIX_MSGS", Durable: "inbox-ehr-ingest",
			Filters: []string{
				"phix.msg.lab-feed.ehr-ingest.fhir",
				"phix.msg.lab-feed.ehr-ingest.fhir-event",
				"phix.msg.lab-feed.ehr-ingest.hl7v2",
			},
		},
		{
			Machine: "billing", Stream: "PHIX_MSGS", Durable: "inbox-billing",
			Filters: []string{
				"phix.msg.ehr-ingest.billing.fhir",
				"phix.msg.lab-feed.billing.fhir",
				"phix.msg.lab-feed.billing.fhir-event",
				"phix.msg.lab-feed.billing.hl7v2",
			},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("InboxConsumers() mismatch (-want +got):\n%s", diff)
	}
}

func TestVaultFlows(t *testing.T) {
	got := parseDefault(t).VaultFlows()
	want := []vaultpolicy.Flow{
		{Sender: "lab-feed", Recipients: []string{"billing", "ehr-ingest"}},
		{Sender: "ehr-ingest", Recipients: []string{"billing"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("VaultFlows() mismatch (-want +got):\n%s", diff)
	}
	if err := vaultpolicy.Check(parseDefault(t).Active(), got); err != nil {
		t.Errorf("vaultpolicy.Check(VaultFlows()) = %v, want nil", err)
	}
	pols, err := parseDefault(t).VaultPolicies("transit")
	if err != nil {
		t.Fatalf("VaultPolicies() = %v, want nil", err)
	}
	if len(pols) != 4 || !strings.Contains(pols["lab-feed"], "transit/encrypt/phix-wrap-billing") {
		t.Errorf("VaultPolicies()[lab-feed] = %q, want it to wrap for billing", pols["lab-feed"])
	}
}

func TestAllow(t *testing.T) {
	p := parseDefault(t)
	tests := []struct {
		sender, recipient, typ string
		ok                     bool
	}{
		{"lab-feed", "ehr-ingest", "hl7v2", true},
		{"lab-feed", "billing", "fhir", true},
		{"ehr-ingest", "billing", "fhir", true},
		{"ehr-ingest", "billing", "hl7v2", false},
		{"ehr-ingest", "lab-feed", "fhir", false},
		{"billing", "ehr-ingest", "fhir", false},
		{"auditor", "billing", "fhir", false},
		{"lab-feed", "auditor", "hl7v2", false},
		{"lab-feed", "stranger", "hl7v2", false},
	}
	for _, tt := range tests {
		err := p.Allow(tt.sender)(tt.recipient, tt.typ)
		if tt.ok && err != nil || !tt.ok && !errors.Is(err, policy.ErrNotAllowed) {
			t.Errorf("Allow(%s)(%s, %s) = %v, want allowed %v", tt.sender, tt.recipient, tt.typ, err, tt.ok)
		}
		if got := p.Allowed(tt.sender, tt.recipient, tt.typ); got != tt.ok {
			t.Errorf("Allowed(%s, %s, %s) = %v, want %v", tt.sender, tt.recipient, tt.typ, got, tt.ok)
		}
	}
}

// valid is a minimal valid policy; cases replace one line.
const valid = `version: 1
machines:
  - name: a
  - name: b
flows:
  - from: a
    to: [b]
    types: [fhir]
keys:
  rotation_period: 90d
sessions:
  idle_timeout: 15m
retention:
  audit: 6y
`

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name       string
		old, new   string // replace old by new in valid
		wantLine   int
		wantInText string
	}{
		{"unknown field", "  - name: b\n", "  - name: b\n    colour: red\n", 5, "colour"},
		{"unknown top-level field", "version: 1\n", "version: 1\nacl: {}\n", 2, "acl"},
		{"wrong version", "version: 1", "version: 2", 1, "version: got 2, want 1"},
		{"bad machine name", "name: b", "name: B.x", 4, "machines[1].name"},
		{"duplicate machine", "name: b", "name: a", 4, `"a" is already machines[0]`},
		{"unknown sender", "from: a", "from: c", 6, `flows[0].from: unknown machine "c"`},
		{"unknown recipient", "to: [b]", "to: [b, biling]", 7, `flows[0].to[1]: unknown machine "biling"`},
		{"send to self", "to: [b]", "to: [a]", 7, "may not send to itself"},
		{"no types", "types: [fhir]", "types: []", 8, "flows[0].types: at least one"},
		{"bad type", "types: [fhir]", "types: [FHIR]", 8, "flows[0].types[0]"},
		{"duplicate flow", "types: [fhir]", "types: [fhir, fhir]", 8, "already allowed by flows[0]"},
		{"auditor sends", "keys:", "auditors: [a]\nkeys:", 9, "auditors must be read-only"},
		{"unknown auditor", "keys:", "auditors: [z]\nkeys:", 9, `auditors[0]: unknown machine "z"`},
		{"bad duration", "90d", "ninety days", 10, "invalid duration"},
		{"rotation too short", "90d", "1m", 10, "keys.rotation_period: 1m0s is outside"},
		{"idle timeout missing", "sessions:\n  idle_timeout: 15m\n", "", 0, "sessions.idle_timeout: required"},
		{"audit retention short", "audit: 6y", "audit: 5y", 14, "164.316(b)(2)"},
		{"type error", "version: 1", "version: one", 1, "cannot unmarshal"},
		{"two documents", "version: 1\n", "version: 1\n---\nversion: 1\n", 0, "more than one"},
		{"not a mapping", valid, "- a\n", 0, "want a YAML mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := strings.Replace(valid, tt.old, tt.new, 1)
			_, err := policy.Parse("p.yaml", []byte(in))
			var ve *policy.ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, policy.ErrInvalid) {
				t.Fatalf("Parse() = %v, want a *ValidationError", err)
			}
			if !strings.Contains(err.Error(), tt.wantInText) {
				t.Errorf("Parse() = %q, want it to contain %q", err, tt.wantInText)
			}
			if tt.wantLine > 0 && !strings.Contains(err.Error(), "line "+strconv.Itoa(tt.wantLine)) {
				t.Errorf("Parse() = %q, want line %d", err, tt.wantLine)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	in := strings.NewReplacer("from: a", "from: x", "to: [b]", "to: [y]").Replace(valid)
	_, err := policy.Parse("p.yaml", []byte(in))
	var ve *policy.ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 2 {
		t.Fatalf("Parse() = %v, want 2 problems", err)
	}
	if ve.Problems[0].Line != 6 || ve.Problems[1].Line != 7 {
		t.Errorf("problem lines = %d, %d, want 6, 7", ve.Problems[0].Line, ve.Problems[1].Line)
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		str  string
	}{
		{"15m", 15 * time.Minute, "15m0s"},
		{"90d", 90 * policy.Day, "90d"},
		{"2w", 2 * policy.Week, "2w"},
		{"6y", 6 * policy.Year, "6y"},
		{"off", 0, "off"},
		{"0", 0, "off"},
		{"1h30m", 90 * time.Minute, "1h30m0s"},
	}
	for _, tt := range tests {
		d, err := policy.ParseDuration(tt.in)
		if err != nil || d.D() != tt.want || d.String() != tt.str {
			t.Errorf("ParseDuration(%q) = %v (%s), %v; want %v (%s)", tt.in, d.D(), d, err, tt.want, tt.str)
		}
	}
	for _, in := range []string{"-1s", "1.5d", "d", "-2d", "forever", "10000y"} {
		if _, err := policy.ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = nil error, want an error", in)
		}
	}
}

func TestRevoke(t *testing.T) {
	at := time.Date(2025, 3, 15, 10, 0, 0, 0, time.UTC)
	out, err := policy.Revoke(policy.Default(), "billing", "laptop stolen", at)
	if err != nil {
		t.Fatalf("Revoke() = %v, want nil", err)
	}
	if !strings.Contains(string(out), "# Automatic logoff, 45 CFR 164.312(a)(2)(iii)") {
		t.Errorf("Revoke() lost the file's comments:\n%s", out)
	}
	p, err := policy.Parse("revoked", out)
	if err != nil {
		t.Fatalf("Parse(Revoke()) = %v, want nil", err)
	}
	m := p.Machine("billing")
	if m.Revoked == nil || !m.Revoked.At.Equal(at) || m.Revoked.Reason != "laptop stolen" {
		t.Errorf("billing.Revoked = %+v, want at %v for laptop stolen", m.Revoked, at)
	}
	if diff := cmp.Diff([]string{"lab-feed", "ehr-ingest", "auditor"}, p.Active()); diff != "" {
		t.Errorf("Active() mismatch (-want +got):\n%s", diff)
	}
	for _, u := range p.BrokerUsers() {
		for _, s := range u.Publish {
			if strings.Contains(s, "billing") {
				t.Errorf("%s may still publish %s after billing was revoked", u.Machine, s)
			}
		}
	}
	for _, c := range p.InboxConsumers() {
		if c.Machine == "billing" {
			t.Errorf("InboxConsumers() still has %s", c.Durable)
		}
	}
	if err := p.Allow("lab-feed")("billing", "fhir"); !errors.Is(err, policy.ErrNotAllowed) {
		t.Errorf("Allow(lab-feed)(billing) after revocation = %v, want %v", err, policy.ErrNotAllowed)
	}

	again, err := policy.Revoke(out, "billing", "other", at.Add(time.Hour))
	if err != nil || string(again) != string(out) {
		t.Errorf("Revoke() of a revoked machine = %v, want the policy unchanged", err)
	}
	if _, err := policy.Revoke(out, "nobody", "", at); !errors.Is(err, policy.ErrUnknownMachine) {
		t.Errorf("Revoke(nobody) = %v, want %v", err, policy.ErrUnknownMachine)
	}
}

func TestWriteDefaultAndRevokeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), policy.FileName)
	if wrote, err := policy.WriteDefault(path); !wrote || err != nil {
		t.Fatalf("WriteDefault() = %v, %v; want true, nil", wrote, err)
	}
	if wrote, err := policy.WriteDefault(path); wrote || err != nil {
		t.Fatalf("second WriteDefault() = %v, %v; want false, nil", wrote, err)
	}
	if err := policy.RevokeFile(path, "lab-feed", "", time.Now()); err != nil {
		t.Fatalf("RevokeFile() = %v, want nil", err)
	}
	p, err := policy.Load(path)
	if err != nil {
		t.Fatalf("Load() = %v, want nil", err)
	}
	if !p.Revoked("lab-feed") {
		t.Errorf("Revoked(lab-feed) = false after RevokeFile, want true")
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode after RevokeFile = %v, %v; want 0644", fi.Mode(), err)
	}
}

func TestWatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), policy.FileName)
	if _, err := policy.WriteDefault(path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan error, 10)
	go policy.Watch(ctx, path, 10*time.Millisecond, func(p *policy.Policy, err error) {
		if err == nil && !p.Revoked("billing") {
			err = errors.New("billing not revoked")
		}
		got <- err
	})
	time.Sleep(50 * time.Millisecond) // the file as it was counts as seen
	if err := policy.RevokeFile(path, "billing", "", time.Now()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Errorf("Watch() reported %v, want the revoked policy", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Watch() saw no change 5s after RevokeFile")
	}
	if err := os.WriteFile(path, []byte("version: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if !errors.Is(err, policy.ErrInvalid) {
			t.Errorf("Watch() of an invalid file reported %v, want %v", err, policy.ErrInvalid)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Watch() saw no change 5s after an invalid write")
	}
}
