package vaultpolicy_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"phix.dev/phix/internal/vaultpolicy"
)

var update = flag.Bool("update", false, "rewrite the policy files under deploy/vault")

// The demo deployment: the lab feed sends results to the EHR and billing.
var (
	demoMachines = []string{"lab-feed", "ehr-ingest", "billing"}
	demoFlows    = []vaultpolicy.Flow{
		{Sender: "lab-feed", Recipients: []string{"ehr-ingest", "billing"}},
	}
)

const deployDir = "../../deploy/vault/policies"

// TestDeployPoliciesUpToDate fails when the reviewed policy files for the
// demo deployment no longer match what the generator produces. Run with
// -update to rewrite them, then review the diff.
func TestDeployPoliciesUpToDate(t *testing.T) {
	if err := vaultpolicy.Check(demoMachines, demoFlows); err != nil {
		t.Fatalf("Check(demo) = %v, want nil", err)
	}
	for _, m := range demoMachines {
		got, err := vaultpolicy.Policy("transit", m, demoFlows)
		if err != nil {
			t.Fatalf("Policy(%q) = %v", m, err)
		}
		path := filepath.Join(deployDir, vaultpolicy.PolicyName(m)+".hcl")
		if *update {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("reading %s: %v (run go test -update)", path, err)
		}
		if diff := cmp.Diff(string(want), got); diff != "" {
			t.Errorf("Policy(%q) differs from %s (-file +generated); "+
				"run go test ./internal/vaultpolicy -update:\n%s", m, path, diff)
		}
	}
}

func TestPolicyGrants(t *testing.T) {
	tests := []struct {
		machine    string
		want, deny []string
	}{
		{
			machine: "lab-feed",
			want: []string{
				`path "transit/encrypt/phix-wrap-billing"`,
				`path "transit/encrypt/phix-wrap-ehr-ingest"`,
				`path "transit/decrypt/phix-wrap-lab-feed"`,
				`path "transit/sign/phix-sign-lab-feed"`,
				`path "transit/keys/phix-sign-*"`,
			},
			deny: []string{"transit/encrypt/phix-wrap-lab-feed", "decrypt/phix-wrap-billing", `"create"`},
		},
		{
			machine: "billing",
			want: []string{
				`path "transit/decrypt/phix-wrap-billing"`,
				`path "transit/sign/phix-sign-billing"`,
			},
			deny: []string{"/encrypt/", "decrypt/phix-wrap-lab-feed", "sign/phix-sign-lab-feed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.machine, func(t *testing.T) {
			got, err := vaultpolicy.Policy("transit", tt.machine, demoFlows)
			if err != nil {
				t.Fatalf("Policy(%q) = %v", tt.machine, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("Policy(%q) lacks %s", tt.machine, w)
				}
			}
			for _, d := range tt.deny {
				if strings.Contains(got, d) {
					t.Errorf("Policy(%q) contains %s, want it absent", tt.machine, d)
				}
			}
		})
	}
}

func TestPolicyRejectsBadNames(t *testing.T) {
	tests := []struct {
		name, mount, machine string
		flows                []vaultpolicy.Flow
	}{
		{"glob in machine", "transit", "lab-*", nil},
		{"path in machine", "transit", "a/b", nil},
		{"empty mount", "/", "billing", nil},
		{"glob in mount", "tr*", "billing", nil},
		{"bad recipient", "transit", "lab-feed",
			[]vaultpolicy.Flow{{Sender: "lab-feed", Recipients: []string{"../x"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := vaultpolicy.Policy(tt.mount, tt.machine, tt.flows); err == nil {
				t.Errorf("Policy(%q, %q) = %q, want error", tt.mount, tt.machine, got)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name     string
		machines []string
		flows    []vaultpolicy.Flow
		ok       bool
	}{
		{"demo", demoMachines, demoFlows, true},
		{"no flows", []string{"a"}, nil, true},
		{"unknown sender", []string{"a"}, []vaultpolicy.Flow{{Sender: "b"}}, false},
		{"unknown recipient", []string{"a"},
			[]vaultpolicy.Flow{{Sender: "a", Recipients: []string{"b"}}}, false},
		{"repeated machine", []string{"a", "a"}, nil, false},
		{"invalid machine", []string{"A"}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := vaultpolicy.Check(tt.machines, tt.flows)
			if (err == nil) != tt.ok {
				t.Errorf("Check(%v, %v) = %v, want ok=%v", tt.machines, tt.flows, err, tt.ok)
			}
		})
	}
}

func TestRecipients(t *testing.T) {
	flows := []vaultpolicy.Flow{
		{Sender: "a", Recipients: []string{"c", "b"}},
		{Sender: "x", Recipients: []string{"y"}},
		{Sender: "a", Recipients: []string{"b", "d"}},
	}
	got := vaultpolicy.Recipients("a", flows)
	if diff := cmp.Diff([]string{"b", "c", "d"}, got); diff != "" {
		t.Errorf("Recipients(a) mismatch (-want +got):\n%s", diff)
	}
}
