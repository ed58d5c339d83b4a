package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"phix.dev/phix/quarantine"
)

func newQuarantine(e *env) *cobra.Command {
	var identityDir, url string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "quarantine",
		Short: "List, show, release or drop quarantined messages",
		Long: `Manage the messages recipients refused, kept sealed in the quarantine
stream. The broker performs each action for an auditor machine (named by
--identity) and records it, allowed or refused, in the audit trail.
Nothing is decrypted.`,
	}
	cmd.PersistentFlags().StringVar(&identityDir, "identity", "", "identity folder of an auditor machine (required)")
	cmd.PersistentFlags().StringVar(&url, "url", "", "broker URL (default: the one recorded by phix up)")
	cmd.PersistentFlags().DurationVar(&timeout, "timeout", quarantine.DefaultTimeout, "how long to wait for the broker")
	cmd.MarkPersistentFlagRequired("identity")

	// with runs fn with a quarantine client connected as the operator.
	with := func(ctx context.Context, fn func(context.Context, *quarantine.Client) error) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		s, err := connect(ctx, identityDir, url)
		if err != nil {
			return err
		}
		defer s.close()
		return fn(ctx, quarantine.NewClient(s.nc, s.machine.Name))
	}
	seqArg := func(args []string) (uint64, error) {
		n, err := strconv.ParseUint(args[0], 10, 64)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("SEQ %q: want a quarantine sequence number", args[0])
		}
		return n, nil
	}

	cmd.AddCommand(
		&cobra.Command{
			Use: "list", Short: "List quarantined messages", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				return with(cmd.Context(), func(ctx context.Context, c *quarantine.Client) error {
					items, err := c.List(ctx)
					if err != nil {
						return err
					}
					tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "SEQ\tTIME\tBY\tREASON\tSENDER\tMESSAGE ID\tSUBJECT")
					for _, it := range items {
						fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", it.Seq, it.Time.Format("2006-01-02T15:04:05Z"),
							it.QuarantinedBy, it.Reason, dash(it.Sender), dash(it.MessageID), it.OriginalSubject)
					}
					return tw.Flush()
				})
			},
		},
		&cobra.Command{
			Use: "show SEQ", Short: "Describe one quarantined message (sealed header only)", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				seq, err := seqArg(args)
				if err != nil {
					return err
				}
				return with(cmd.Context(), func(ctx context.Context, c *quarantine.Client) error {
					it, err := c.Show(ctx, seq)
					if err != nil {
						return err
					}
					enc := json.NewEncoder(e.stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(it)
				})
			},
		},
		&cobra.Command{
			Use: "release SEQ", Short: "Send a quarantined message to its recipient again", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				seq, err := seqArg(args)
				if err != nil {
					return err
				}
				return with(cmd.Context(), func(ctx context.Context, c *quarantine.Client) error {
					it, newSeq, err := c.Release(ctx, seq)
					if err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "released %d to %s as message seq %d\n", seq, it.OriginalSubject, newSeq)
					return nil
				})
			},
		},
		&cobra.Command{
			Use: "drop SEQ", Short: "Delete a quarantined message for good", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				seq, err := seqArg(args)
				if err != nil {
					return err
				}
				return with(cmd.Context(), func(ctx context.Context, c *quarantine.Client) error {
					if _, err := c.Drop(ctx, seq); err != nil {
						return err
					}
					fmt.Fprintf(e.stdout, "dropped %d\n", seq)
					return nil
				})
			},
		},
	)
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
