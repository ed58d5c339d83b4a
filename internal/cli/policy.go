package cli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"phix.dev/phix/broker"
	"phix.dev/phix/compliance"
	"phix.dev/phix/identity"
	"phix.dev/phix/policy"
)

// policyPollInterval is how often `phix up` looks for a changed policy
// file; a revocation takes effect within it.
const policyPollInterval = 500 * time.Millisecond

// endpointsFile records, in DIR/broker, where the running broker listens,
// for `phix doctor` and `phix policy check`. It holds no secret.
const endpointsFile = "endpoints.json"

// endpoints is the content of [endpointsFile].
type endpoints struct {
	ClientURL  string `json:"client_url"`
	MonitorURL string `json:"monitor_url,omitempty"`
}

func writeEndpoints(dir string, ep endpoints) error {
	b, err := json.MarshalIndent(ep, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "broker", endpointsFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func readEndpoints(dir string) (endpoints, error) {
	var ep endpoints
	b, err := os.ReadFile(filepath.Join(dir, "broker", endpointsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return ep, fmt.Errorf("no running broker recorded in %s: start `phix up --data %s` "+
			"or pass --url and --monitor", dir, dir)
	}
	if err != nil {
		return ep, err
	}
	return ep, json.Unmarshal(b, &ep)
}

// deploymentPolicy writes the demo policy to DIR/policy.yaml unless
// there is one, and loads it.
func deploymentPolicy(e *env, dir string) (*policy.Policy, string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	path := filepath.Join(dir, policy.FileName)
	wrote, err := policy.WriteDefault(path)
	if err != nil {
		return nil, "", err
	}
	if wrote {
		e.log.Info("wrote demo policy", "path", path)
	}
	p, err := policy.Load(path)
	return p, path, err
}

// watchPolicy applies every change of the policy file to b until ctx
// ends. A file that does not load is reported and ignored: the broker
// keeps enforcing the last good policy.
func watchPolicy(ctx context.Context, e *env, b *broker.Broker, dir, path string) {
	policy.Watch(ctx, path, policyPollInterval, func(p *policy.Policy, err error) {
		if err == nil {
			// New machines get their identity folders before they may connect.
			err = identity.Init(dir, p.Active())
		}
		if err == nil {
			err = b.SetPolicy(ctx, p)
		}
		if err != nil {
			e.log.Error("policy not applied; still enforcing the previous one",
				"path", path, "error", err)
		}
	})
}

// sourceAllow returns the producer's policy check for machine: from
// policyFile, or else from policy.yaml in the data folder that holds the
// identity folder, if there is one. Nil means no check at the source (the
// broker still refuses).
func sourceAllow(identityDir, policyFile, machine string) (func(string, string) error, error) {
	if policyFile == "" {
		guess := filepath.Join(identityDir, "..", "..", policy.FileName)
		if _, err := os.Stat(guess); err != nil {
			return nil, nil
		}
		policyFile = guess
	}
	p, err := policy.Load(policyFile)
	if err != nil {
		return nil, err
	}
	return p.Allow(machine), nil
}

func newPolicyCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check the access policy and what the running broker enforces",
	}
	cmd.AddCommand(newPolicyCheck(e), newPolicyVault(e))
	return cmd
}

func newPolicyCheck(e *env) *cobra.Command {
	var dir, identityDir, monitor string
	cmd := &cobra.Command{
		Use:   "check --data DIR",
		Short: "Validate policy.yaml and report drift from what the broker enforces",
		Long: `Validate DIR/policy.yaml and compare what it derives (broker users, subject
permissions, inbox consumers, idle timeout, retention) with what the
running broker enforces, read from its monitoring endpoint as an auditor.
Exits non-zero if the file is invalid or anything differs.

Vault: the Vault policies the file derives are printed by
'phix policy vault'; comparing them with the policies installed in Vault
is not done here.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := policy.Load(filepath.Join(dir, policy.FileName))
			if err != nil {
				return err
			}
			if monitor == "" {
				ep, err := readEndpoints(dir)
				if err != nil {
					return err
				}
				monitor = ep.MonitorURL
			}
			tc, err := auditorTLS(dir, identityDir, p)
			if err != nil {
				return err
			}
			enf, err := compliance.FetchEnforced(cmd.Context(), monitor, tc)
			if err != nil {
				return err
			}
			drift := compliance.Drift(p, enf)
			for _, d := range drift {
				fmt.Fprintln(e.stdout, "drift:", d)
			}
			if len(drift) > 0 {
				return fmt.Errorf("%d differences between %s and the broker", len(drift), p.Name())
			}
			fmt.Fprintf(e.stdout, "policy %s is valid and enforced as written (%d machines)\n",
				p.Name(), len(enf.Users))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "data", "phix-data", "data folder holding policy.yaml")
	cmd.Flags().StringVar(&identityDir, "identity", "", "an auditor's identity folder (default: the policy's first auditor)")
	cmd.Flags().StringVar(&monitor, "monitor", "", "monitoring URL (default: the one recorded by phix up)")
	return cmd
}

func newPolicyVault(e *env) *cobra.Command {
	var dir, mount string
	cmd := &cobra.Command{
		Use:   "vault --data DIR",
		Short: "Print the Vault ACL policies derived from policy.yaml",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := policy.Load(filepath.Join(dir, policy.FileName))
			if err != nil {
				return err
			}
			pols, err := p.VaultPolicies(mount)
			if err != nil {
				return err
			}
			names := make([]string, 0, len(pols))
			for m := range pols {
				names = append(names, m)
			}
			slices.Sort(names)
			for _, m := range names {
				fmt.Fprintln(e.stdout, pols[m])
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "data", "phix-data", "data folder holding policy.yaml")
	cmd.Flags().StringVar(&mount, "mount", "transit", "Vault transit mount path")
	return cmd
}

// auditorTLS returns the client TLS configuration of identityDir, or of
// the policy's first auditor in data folder dir.
func auditorTLS(dir, identityDir string, p *policy.Policy) (*tls.Config, error) {
	if identityDir == "" {
		if len(p.Auditors) == 0 {
			return nil, compliance.ErrNoIdentity
		}
		identityDir = identity.IdentityDir(dir, p.Auditors[0])
	}
	m, err := identity.Load(identityDir)
	if err != nil {
		return nil, err
	}
	return m.TLSConfig()
}

// monitorPort parses the --monitor flag of `phix up`.
func monitorPort(s string) (int, error) {
	switch s {
	case "off":
		return 0, nil
	case "0":
		return broker.RandomPort, nil
	}
	port, err := strconv.Atoi(s)
	if err != nil || port < 1 || port > 65535 {
		return 0, fmt.Errorf("--monitor %q: want a port, 0 or off", s)
	}
	return port, nil
}
