package cli

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"phix.dev/phix/compliance"
	"phix.dev/phix/identity"
	"phix.dev/phix/policy"
)

func newDoctor(e *env) *cobra.Command {
	var cfg compliance.Config
	var asJSON bool
	var out string
	cmd := &cobra.Command{
		Use:   "doctor --data DIR",
		Short: "Self-test a running deployment against HIPAA 164.312 and sign the report",
		Long: `Check the running deployment in DIR against the HIPAA Security Rule's
technical safeguards (45 CFR 164.312): TLS posture of every listener,
mutual authentication, unique identities, permissions equal to the policy,
automatic logoff, encryption at rest, key ages, no secrets in
configuration files. Each check names the standard it evidences.

The report is signed with the probing identity's Ed25519 key (by default
the policy's first auditor). --json prints the signed report; --out FILE
also saves it. 'phix doctor verify FILE' checks a saved report. Exits
non-zero if any check fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfg.ClientURL == "" || cfg.MonitorURL == "" {
				ep, err := readEndpoints(cfg.DataDir)
				if err != nil {
					return err
				}
				cfg.ClientURL = orDefault(cfg.ClientURL, ep.ClientURL)
				cfg.MonitorURL = orDefault(cfg.MonitorURL, ep.MonitorURL)
			}
			ctx := cmd.Context()
			r, err := compliance.Run(ctx, cfg)
			if err != nil {
				return err
			}
			signed, err := signReport(cmd, cfg, r)
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(signed, "", "  ")
			if err != nil {
				return err
			}
			if out != "" {
				if err := os.WriteFile(out, append(b, '\n'), 0o644); err != nil {
					return err
				}
			}
			if asJSON {
				fmt.Fprintf(e.stdout, "%s\n", b)
			} else {
				printReport(e.stdout, r, signed)
			}
			if failed := r.Failed(); len(failed) > 0 {
				var ids []string
				for _, c := range failed {
					ids = append(ids, c.Standard+" "+c.ID)
				}
				return fmt.Errorf("%d of %d checks failed: %s",
					len(failed), len(r.Checks), strings.Join(ids, ", "))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfg.DataDir, "data", "phix-data", "data folder of the deployment")
	cmd.Flags().StringVar(&cfg.Identity, "identity", "", "identity folder to probe and sign with (default: the policy's first auditor)")
	cmd.Flags().StringVar(&cfg.ClientURL, "url", "", "broker client URL (default: the one recorded by phix up)")
	cmd.Flags().StringVar(&cfg.MonitorURL, "monitor", "", "monitoring URL (default: the one recorded by phix up)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the signed report as JSON")
	cmd.Flags().StringVar(&out, "out", "", "also write the signed JSON report to FILE")
	cmd.AddCommand(newDoctorVerify(e))
	return cmd
}

// orDefault returns a unless it is "", else b.
func orDefault(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func signReport(cmd *cobra.Command, cfg compliance.Config, r *compliance.Report) (*compliance.Signed, error) {
	dir := cfg.Identity
	if dir == "" {
		p, err := policy.Load(filepath.Join(cfg.DataDir, policy.FileName))
		if err != nil {
			return nil, err
		}
		if len(p.Auditors) == 0 {
			return nil, compliance.ErrNoIdentity
		}
		dir = identity.IdentityDir(cfg.DataDir, p.Auditors[0])
	}
	m, err := identity.Load(dir)
	if err != nil {
		return nil, err
	}
	k, err := m.Keys()
	if err != nil {
		return nil, err
	}
	return compliance.Sign(cmd.Context(), r, k)
}

func printReport(w io.Writer, r *compliance.Report, s *compliance.Signed) {
	fmt.Fprintf(w, "phix doctor: %s, broker %s, monitoring %s\n\n",
		r.Policy, r.ClientURL, orDefault(r.MonitorURL, "none"))
	for _, c := range r.Checks {
		fmt.Fprintf(w, "%-4s  %-19s %s: %s\n", strings.ToUpper(string(c.Status)), c.Standard, c.ID, c.Title)
		for _, d := range c.Details {
			fmt.Fprintf(w, "      %s\n", d)
		}
	}
	fmt.Fprintf(w, "\nsigned by %s (%s): %s\n", s.Signer, s.KeyID,
		base64.StdEncoding.EncodeToString(s.Signature))
	if r.OK() {
		fmt.Fprintf(w, "result: all %d checks passed or were skipped\n", len(r.Checks))
	}
}

func newDoctorVerify(e *env) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "verify FILE --data DIR",
		Short: "Verify the signature of a saved doctor report",
		Long: `Verify a report saved with 'phix doctor --out FILE' (or --json) against the
signer's public key in DIR/directory, and print its result.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var s compliance.Signed
			if err := json.Unmarshal(b, &s); err != nil {
				return fmt.Errorf("%s: %v", args[0], err)
			}
			pub, err := compliance.SignerKey(identity.DirectoryDir(dir), s.Signer, s.KeyID)
			if err != nil {
				return err
			}
			r, err := compliance.Verify(&s, pub)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "report of %s signed by %s (%s): signature valid; %d checks, %d failed\n",
				r.Generated.Format("2006-01-02 15:04:05 MST"), s.Signer, s.KeyID,
				len(r.Checks), len(r.Failed()))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "data", "phix-data", "data folder holding the key directory")
	return cmd
}
