// Package vaultpolicy names the Vault objects phix uses per machine (transit
// keys, ACL policies, AppRoles) and generates each machine's ACL policy
// from the message flows it takes part in.
//
// The policy is the enforcement point when Vault is the key provider: a
// machine can wrap data keys only for the recipients it may send to, can
// unwrap only data keys wrapped for itself, and can sign only as itself.
// Everyone may read every machine's signing public keys.
package vaultpolicy

import (
	"fmt"
	"slices"
	"strings"

	"phix.dev/phix/internal/subjects"
)

// Flow says that Sender may send messages to each of Recipients.
type Flow struct {
	Sender     string
	Recipients []string
}

// Prefixes of the per-machine names; the machine name follows each.
const (
	wrapKeyPrefix = "phix-wrap-"
	signKeyPrefix = "phix-sign-"
	policyPrefix  = "phix-"
)

// WrapKey returns the name of machine's transit key (aes256-gcm96, derived)
// that wraps the data keys addressed to it.
func WrapKey(machine string) string { return wrapKeyPrefix + machine }

// SignKey returns the name of machine's transit signing key (ed25519).
func SignKey(machine string) string { return signKeyPrefix + machine }

// PolicyName returns the name of machine's ACL policy.
func PolicyName(machine string) string { return policyPrefix + machine }

// RoleName returns the name of machine's AppRole.
func RoleName(machine string) string { return policyPrefix + machine }

// Check reports the first problem with a set of machines and flows: an
// invalid or repeated machine name, or a flow naming an unknown machine.
func Check(machines []string, flows []Flow) error {
	known := make(map[string]bool, len(machines))
	for _, m := range machines {
		if err := subjects.CheckName(m); err != nil {
			return fmt.Errorf("vaultpolicy: machine: %v", err)
		}
		if known[m] {
			return fmt.Errorf("vaultpolicy: machine %q listed twice", m)
		}
		known[m] = true
	}
	for _, f := range flows {
		if !known[f.Sender] {
			return fmt.Errorf("vaultpolicy: flow sender %q is not a machine", f.Sender)
		}
		for _, r := range f.Recipients {
			if !known[r] {
				return fmt.Errorf("vaultpolicy: flow %s -> %q: not a machine", f.Sender, r)
			}
		}
	}
	return nil
}

// Recipients returns, sorted and without repeats, every machine that
// sender may send to under flows.
func Recipients(sender string, flows []Flow) []string {
	var rs []string
	for _, f := range flows {
		if f.Sender == sender {
			rs = append(rs, f.Recipients...)
		}
	}
	slices.Sort(rs)
	return slices.Compact(rs)
}

// Policy returns the HCL text of machine's ACL policy for a transit engine
// mounted at mount. The text depends only on its inputs, so it can be
// compared byte for byte with a reviewed copy.
//
// Only the "update" capability is granted on transit operations: "create"
// would let an encrypt or sign request create a missing key on the fly.
func Policy(mount, machine string, flows []Flow) (string, error) {
	if err := subjects.CheckName(machine); err != nil {
		return "", fmt.Errorf("vaultpolicy: machine: %v", err)
	}
	mount = strings.Trim(mount, "/")
	if mount == "" || strings.ContainsAny(mount, "*+\"\n") {
		return "", fmt.Errorf("vaultpolicy: invalid transit mount %q", mount)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "# Vault ACL policy %q for phix machine %q.\n", PolicyName(machine), machine)
	b.WriteString("# Generated from the message flows; regenerate rather than edit.\n")

	rs := Recipients(machine, flows)
	if len(rs) > 0 {
		b.WriteString("\n# Wrap data keys for the machines it may send to.\n")
	}
	for _, r := range rs {
		if err := subjects.CheckName(r); err != nil {
			return "", fmt.Errorf("vaultpolicy: recipient: %v", err)
		}
		writePath(&b, mount+"/encrypt/"+WrapKey(r), "update")
	}

	b.WriteString("\n# Unwrap data keys addressed to it, and nobody else's.\n")
	writePath(&b, mount+"/decrypt/"+WrapKey(machine), "update")
	b.WriteString("\n# Sign envelopes as itself.\n")
	writePath(&b, mount+"/sign/"+SignKey(machine), "update")
	b.WriteString("\n# Read every machine's signing public keys to verify senders.\n")
	b.WriteString("# Read is the only capability: rotate, config and trim need update.\n")
	writePath(&b, mount+"/keys/"+signKeyPrefix+"*", "read")
	b.WriteString("\n# Manage its own token: renew it while in use, tell a dead token\n")
	b.WriteString("# from a denial, and revoke it at shutdown. AppRole tokens get no\n")
	b.WriteString("# default policy (phix provisions them so), hence these rules.\n")
	writePath(&b, "auth/token/renew-self", "update")
	writePath(&b, "auth/token/lookup-self", "read")
	writePath(&b, "auth/token/revoke-self", "update")
	return b.String(), nil
}

// writePath grants one capability on path; each rule phix needs has one.
func writePath(b *strings.Builder, path, capability string) {
	fmt.Fprintf(b, "path %q {\n  capabilities = [%q]\n}\n", path, capability)
}
