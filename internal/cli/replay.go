package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"phix.dev/phix/audit"
	"phix.dev/phix/replay"
)

func newReplay(e *env) *cobra.Command {
	var identityDir, url, from, to, auditKey, jsonOut, csvOut, htmlOut, out string
	var f replay.Filter
	var decrypt bool
	cmd := &cobra.Command{
		Use:   "replay --identity DIR [filters] [--json FILE] [--csv FILE] [--html FILE]",
		Short: "Verify stored messages for an audit and report who sent, received and opened them",
		Long: `Replay the stored messages selected by the filters as an auditor: verify
every signature, subject binding and key commitment without decrypting,
match the audit trail (publishes, deliveries, openings) to them, and report
which messages failed verification or are missing. The report is signed by
the replaying identity and written as JSON (standard output by default),
CSV and a self-contained HTML page.

With --decrypt and --out, messages the identity may open (it is a
recipient or was granted access) are written to FOLDER; each opening is
recorded in the audit trail. Nothing else is ever decrypted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if f.From, err = parseTime(from); err != nil {
				return err
			}
			if f.To, err = parseTime(to); err != nil {
				return err
			}
			if decrypt != (out != "") {
				return errors.New("--decrypt and --out go together")
			}
			s, err := connect(cmd.Context(), identityDir, url)
			if err != nil {
				return err
			}
			defer s.close()
			rep, stopReports, err := s.startReporter(e)
			if err != nil {
				return err
			}
			defer stopReports()
			cfg := replay.Config{JS: s.js, Keys: s.keys, Filter: f, Decrypt: decrypt, Report: rep.Report}
			if s.reg != nil {
				cfg.Registry = s.reg
			}
			if auditKey != "" {
				if cfg.AuditKey, err = audit.ReadPublicKey(auditKey); err != nil {
					return err
				}
			}
			if decrypt {
				if err := os.MkdirAll(out, 0o700); err != nil {
					return err
				}
				cfg.OnPlaintext = func(m *replay.Message, payload []byte) error {
					return writePayload(out, m.MessageID+"."+m.Recipient, payload)
				}
			}
			if bar := progressBar(e); bar != nil {
				cfg.Progress = func(done, total uint64) {
					bar.ChangeMax64(int64(total))
					bar.Set64(int64(done))
				}
				defer bar.Finish()
			}
			r, err := replay.Run(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if jsonOut == "" && csvOut == "" && htmlOut == "" {
				jsonOut = "-"
			}
			for _, o := range []struct {
				path  string
				write func(io.Writer) error
			}{{jsonOut, r.WriteJSON}, {csvOut, r.WriteCSV}, {htmlOut, r.WriteHTML}} {
				if o.path == "" {
					continue
				}
				w, done, err := outputFile(e, o.path)
				if err != nil {
					return err
				}
				if err := errors.Join(o.write(w), done()); err != nil {
					return err
				}
			}
			e.log.Info("replay done", "messages", r.Counts.Total, "valid", r.Counts.Valid,
				"failed", r.Counts.Failed, "missing", r.Counts.Missing, "decrypted", r.Counts.Decrypted)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&identityDir, "identity", "", "identity folder of an auditor machine (required)")
	fl.StringVar(&url, "url", "", "broker URL (default: the one recorded by phix up)")
	fl.StringVar(&from, "from", "", "only messages stored at or after this time (RFC 3339)")
	fl.StringVar(&to, "to", "", "only messages stored before this time (RFC 3339)")
	fl.StringVar(&f.Sender, "sender", "", "only messages from this machine")
	fl.StringVar(&f.Recipient, "recipient", "", "only copies for this machine")
	fl.StringVar(&f.Type, "type", "", "only messages of this type")
	fl.StringVar(&f.MessageID, "id", "", "only this message ID")
	fl.StringVar(&auditKey, "audit-key", "", "verify the audit trail with this key, DIR/broker/audit.pub")
	fl.StringVar(&jsonOut, "json", "", "write the signed JSON report to FILE (- for standard output)")
	fl.StringVar(&csvOut, "csv", "", "write the CSV report to FILE")
	fl.StringVar(&htmlOut, "html", "", "write the HTML report to FILE")
	fl.BoolVar(&decrypt, "decrypt", false, "also open the messages this identity may read (needs --out)")
	fl.StringVar(&out, "out", "", "with --decrypt, write each opened payload to FOLDER")
	cmd.MarkFlagRequired("identity")
	return cmd
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: want RFC 3339, such as 2026-03-15T09:00:00Z", s)
	}
	return t, nil
}

// writePayload writes PHI in the clear, owner-only, under a safe name.
func writePayload(dir, name string, payload []byte) error {
	if filepath.Base(name) != name || name == "." || name == ".." {
		return fmt.Errorf("message %q is not a safe file name", name)
	}
	return os.WriteFile(filepath.Join(dir, name), payload, 0o600)
}

// progressBar returns a bar on standard error when it is a terminal.
func progressBar(e *env) *progressbar.ProgressBar {
	f, ok := e.stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription("replaying"),
		progressbar.OptionShowCount(),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionThrottle(100*time.Millisecond))
}
