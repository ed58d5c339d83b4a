package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"phix.dev/phix/policy"
)

func newRevoke(e *env) *cobra.Command {
	var dir, reason string
	var vf vaultFlags
	cmd := &cobra.Command{
		Use:   "revoke NAME --data DIR --reason TEXT",
		Short: "Cut a machine off at once",
		Long: `Mark machine NAME revoked in DIR/policy.yaml, with the time and reason. A
running 'phix up' on DIR applies the change within a second: the machine's
broker user and inbox access are removed and its live sessions closed, and
the broker logs the cut-off with its reason. Every flow from or to the
machine is dropped. To let it back in, delete its "revoked:" entry.

On a deployment that runs on Vault (DIR/vault.json exists), the machine's
Vault policy and AppRole are deleted as well, with the operator token of
--vault-token-file or VAULT_TOKEN, so that its live token can no longer
sign or unwrap and it cannot log in again.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := filepath.Join(dir, policy.FileName)
			if err := policy.RevokeFile(path, args[0], reason, time.Now()); err != nil {
				return err
			}
			e.log.Warn("machine revoked", "machine", args[0], "reason", reason, "policy", path)
			fmt.Fprintf(e.stdout, "revoked %s in %s\n", args[0], path)
			if _, err := os.Stat(filepath.Join(dir, vaultFile)); err != nil {
				return nil // local keys: nothing held elsewhere
			}
			if err := revokeInVault(cmd.Context(), &vf, dir, args[0]); err != nil {
				return fmt.Errorf("%s is cut off from the broker, but its Vault access remains: %w", args[0], err)
			}
			e.log.Warn("machine revoked in vault", "machine", args[0])
			fmt.Fprintf(e.stdout, "revoked %s in Vault\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "data", "phix-data", "data folder holding policy.yaml")
	cmd.Flags().StringVar(&reason, "reason", "", "why the machine is revoked (recorded in the policy)")
	cmd.MarkFlagRequired("reason")
	vf.add(cmd, "Vault address (default: the one phix up --vault recorded in the data folder)")
	return cmd
}

func revokeInVault(ctx context.Context, vf *vaultFlags, dir, machine string) error {
	if err := vf.fill(dir); err != nil {
		return err
	}
	admin, err := vf.admin()
	if err != nil {
		return err
	}
	return admin.Revoke(ctx, machine)
}
