package cli

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"phix.dev/phix/policy"
)

func newRevoke(e *env) *cobra.Command {
	var dir, reason string
	cmd := &cobra.Command{
		Use:   "revoke NAME --data DIR --reason TEXT",
		Short: "Cut a machine off at once",
		Long: `Mark machine NAME revoked in DIR/policy.yaml, with the time and reason. A
running 'phix up' on DIR applies the change within a second: the machine's
broker user and inbox access are removed and its live sessions closed, and
the broker logs the cut-off with its reason. Every flow from or to the
machine is dropped. To let it back in, delete its "revoked:" entry.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := filepath.Join(dir, policy.FileName)
			if err := policy.RevokeFile(path, args[0], reason, time.Now()); err != nil {
				return err
			}
			e.log.Warn("machine revoked", "machine", args[0], "reason", reason, "policy", path)
			fmt.Fprintf(e.stdout, "revoked %s in %s\n", args[0], path)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "data", "phix-data", "data folder holding policy.yaml")
	cmd.Flags().StringVar(&reason, "reason", "", "why the machine is revoked (recorded in the policy)")
	cmd.MarkFlagRequired("reason")
	return cmd
}
