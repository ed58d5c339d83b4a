package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"phix.dev/phix/audit"
	"phix.dev/phix/internal/subjects"
)

func newAudit(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Export and verify the tamper-evident audit trail",
	}
	cmd.AddCommand(newAuditExport(e), newAuditVerify(e))
	return cmd
}

func newAuditExport(e *env) *cobra.Command {
	var identityDir, url, out string
	cmd := &cobra.Command{
		Use:   "export --identity DIR [--out FILE]",
		Short: "Write the audit trail, sealed by a fresh checkpoint, as JSON lines",
		Long: `Connect as an auditor (a machine the policy lists under auditors), record
the export in the trail, which makes the broker append a signed checkpoint,
and write every record and checkpoint to FILE (or standard output) for
'phix audit verify'. No record holds a payload or PHI.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := connect(cmd.Context(), identityDir, url)
			if err != nil {
				return err
			}
			defer s.close()
			b, _ := json.Marshal(audit.Record{Kind: audit.KindAuditExport})
			m, err := s.nc.RequestWithContext(cmd.Context(), subjects.AuditReport(s.machine.Name), b)
			if err != nil {
				return fmt.Errorf("recording the export: %w", err)
			}
			var rep audit.Reply
			if err := json.Unmarshal(m.Data, &rep); err != nil || rep.Error != "" {
				return fmt.Errorf("recording the export: refused (%s)", rep.Error)
			}
			w, done, err := outputFile(e, out)
			if err != nil {
				return err
			}
			n, err := audit.Export(cmd.Context(), s.js, w)
			if err := errors.Join(err, done()); err != nil {
				return err
			}
			e.log.Info("audit trail exported", "lines", n, "export_record", rep.Index)
			return nil
		},
	}
	cmd.Flags().StringVar(&identityDir, "identity", "", "identity folder of an auditor machine (required)")
	cmd.Flags().StringVar(&url, "url", "", "broker URL (default: the one recorded by phix up)")
	cmd.Flags().StringVar(&out, "out", "", "write to FILE instead of standard output")
	cmd.MarkFlagRequired("identity")
	return cmd
}

// outputFile returns standard output, or FILE created owner-only; done
// closes it.
func outputFile(e *env, path string) (io.Writer, func() error, error) {
	if path == "" || path == "-" {
		return e.stdout, func() error { return nil }, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, nil, err
	}
	return f, f.Close, nil
}

func newAuditVerify(e *env) *cobra.Command {
	var keyFile string
	var maxGap time.Duration
	var allowUnsealed bool
	cmd := &cobra.Command{
		Use:   "verify --key DIR/broker/audit.pub [--max-gap D] [FILE]",
		Short: "Verify an exported audit trail offline",
		Long: `Check an export written by 'phix audit export' (FILE or standard input)
against the broker's audit public key: every checkpoint signature, every
signed Merkle root against the records before it, that no record is
missing, repeated or out of order, and that no two consecutive records are
further apart than --max-gap (a clean broker stop and start is reported as
downtime, not a gap). Prints the report as JSON; exits non-zero if the
trail fails.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := audit.ReadPublicKey(keyFile)
			if err != nil {
				return err
			}
			var in io.Reader = e.stdin
			if len(args) == 1 && args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			rep, verr := audit.Verify(in, audit.VerifyOptions{
				PublicKey: pub, MaxGap: maxGap, AllowUnsealed: allowUnsealed,
			})
			if rep != nil {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			}
			if errors.Is(verr, audit.ErrTampered) {
				return fmt.Errorf("audit trail fails verification: %d problems", len(rep.Problems))
			}
			return verr
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", "the broker's audit public key, DIR/broker/audit.pub (required)")
	cmd.Flags().DurationVar(&maxGap, "max-gap", audit.DefaultMaxGap, "longest allowed time between consecutive records")
	cmd.Flags().BoolVar(&allowUnsealed, "allow-unsealed", false, "accept records after the last checkpoint")
	cmd.MarkFlagRequired("key")
	return cmd
}
