package cli

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"

	"github.com/spf13/cobra"

	"phix.dev/phix/consumer"
)

func newSubscribe(e *env) *cobra.Command {
	var identityDir, out, url string
	var count int
	cmd := &cobra.Command{
		Use:   "subscribe --identity DIR [--count N] [--out FOLDER]",
		Short: "Receive, verify and open messages addressed to a machine",
		Long: `Receive the messages addressed to the machine whose identity folder is
given, verify each sender's signature, open it, and print the payload byte
for byte (or, with --out, write one file per message named by its message
ID). A message is acknowledged only once written. Messages that fail
verification are quarantined with a reason and never printed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out != "" {
				if err := os.MkdirAll(out, 0o700); err != nil {
					return err
				}
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
			c, err := consumer.New(s.js, s.keys, consumer.Config{
				Registry: s.reg,
				OnOpen:   rep.OnOpen,
				OnReject: func(r *consumer.RejectError) {
					rep.OnReject(r)
					e.log.Warn("message quarantined", "reason", r.Reason, "subject", r.Subject,
						"seq", r.Seq, "err", r.Err)
				},
			})
			if err != nil {
				return err
			}
			err = c.Run(cmd.Context(), count, func(ctx context.Context, m *consumer.Message) error {
				e.log.Debug("message opened", "id", m.ID, "sender", m.Sender, "seq", m.Seq)
				if out == "" {
					_, err := e.stdout.Write(m.Payload)
					return err
				}
				return writeMessage(out, m)
			})
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	cmd.Flags().StringVar(&identityDir, "identity", "", "identity folder of the receiving machine (required)")
	cmd.Flags().IntVar(&count, "count", 0, "exit after this many messages (default: run until interrupted)")
	cmd.Flags().StringVar(&out, "out", "", "write each payload to FOLDER/<message-id> instead of standard output")
	cmd.Flags().StringVar(&url, "url", "", "broker URL (default: the one recorded by phix up)")
	cmd.MarkFlagRequired("identity")
	return cmd
}

// writeMessage writes the payload atomically, so a crash never leaves a
// partial file under a message's name, with owner-only permissions since
// it is PHI in the clear.
func writeMessage(dir string, m *consumer.Message) error {
	tmp, err := os.CreateTemp(dir, ".partial-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(m.Payload); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, fileName(m.ID)))
}

// safeIDRE matches message IDs that can serve as file names as they are.
var safeIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// fileName returns the file name for a message ID. The ID is chosen by the
// sender, so one that could escape the folder, hide, or collide with the
// temporary files is hex-encoded instead of refused: the message is valid
// and must not be lost over its name.
func fileName(id string) string {
	if safeIDRE.MatchString(id) {
		return id
	}
	return "id-" + hex.EncodeToString([]byte(id))
}
