package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"phix.dev/phix/identity"
	"phix.dev/phix/keys"
	"phix.dev/phix/registry"
)

// keysFlags are the flags every `phix keys` command shares.
type keysFlags struct {
	vault vaultFlags
	dir   string
	url   string
}

func (f *keysFlags) add(cmd *cobra.Command) {
	f.vault.add(cmd, "Vault address (default: the one phix up --vault recorded in the data folder)")
	cmd.Flags().StringVar(&f.dir, "data", "phix-data", "data folder of the running broker")
	cmd.Flags().StringVar(&f.url, "url", "", "broker URL (default: the one recorded by phix up)")
}

func newKeys(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Rotate, rewrap, grant and destroy keys held in Vault",
		Long: `Manage the keys of a deployment that runs on Vault (phix up --vault). The
commands act with a Vault operator token (--vault-token-file or VAULT_TOKEN)
and, for the wrapped-key registry, as the key administrator identity that
phix up --vault created. Stored messages are never touched: only their
wrapped data keys are.`,
	}
	cmd.AddCommand(newKeysRotate(e), newKeysRewrap(e), newKeysGrant(e), newKeysDestroy(e), newKeysList(e))
	return cmd
}

func newKeysRotate(e *env) *cobra.Command {
	var f keysFlags
	var sign bool
	cmd := &cobra.Command{
		Use:   "rotate NAME",
		Short: "Add a new version to a machine's wrap key (or, with --sign, signing key)",
		Long: `Rotate machine NAME's Vault transit key. New data keys are wrapped (or new
envelopes signed) with the new version at once; everything made with older
versions keeps opening and verifying. Follow with phix keys rewrap NAME
--retire to move stored wrapped keys to the new version and retire the old.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.vault.fill(f.dir); err != nil {
				return err
			}
			admin, err := f.vault.admin()
			if err != nil {
				return err
			}
			use := keys.VaultWrapKey
			if sign {
				use = keys.VaultSignKey
			}
			v, err := admin.RotateKey(cmd.Context(), args[0], use)
			if err != nil {
				return err
			}
			e.log.Info("key rotated", "machine", args[0], "signing", sign, "key_version", v)
			fmt.Fprintf(e.stdout, "%s: key version %d\n", args[0], v)
			return f.record(cmd.Context(), rotationRecord(args[0], sign, v))
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&sign, "sign", false, "rotate the signing key instead of the wrap key")
	return cmd
}

func newKeysRewrap(e *env) *cobra.Command {
	var f keysFlags
	var retire bool
	cmd := &cobra.Command{
		Use:   "rewrap NAME",
		Short: "Rewrap every data key of a reader under its newest key version",
		Long: `Re-encrypt, inside Vault, every data key in the registry that is wrapped
for NAME, under the newest version of NAME's wrap key. With --retire, then
make Vault refuse the older versions (min_decryption_version), so that a
leaked old version opens nothing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, name := cmd.Context(), args[0]
			va, reg, done, err := f.open(ctx, true)
			if err != nil {
				return err
			}
			defer done()
			res, err := reg.Rewrap(ctx, va, name)
			if err != nil {
				return err
			}
			e.log.Info("data keys rewrapped", "reader", name,
				"rewrapped", res.Rewrapped, "changed", res.Changed)
			fmt.Fprintf(e.stdout, "%s: %d data keys rewrapped (%d changed meanwhile, left alone)\n",
				name, res.Rewrapped, res.Changed)
			if !retire {
				return f.record(ctx, rewrapRecord(name, res.Rewrapped, 0))
			}
			latest, _, err := va.KeyVersions(ctx, name, keys.VaultWrapKey)
			if err != nil {
				return err
			}
			if err := va.SetMinDecryptionVersion(ctx, name, latest); err != nil {
				return err
			}
			e.log.Info("old key versions retired", "machine", name, "min_decryption_version", latest)
			fmt.Fprintf(e.stdout, "%s: versions before %d retired\n", name, latest)
			return f.record(ctx, rewrapRecord(name, res.Rewrapped, latest))
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVar(&retire, "retire", false, "afterwards refuse key versions older than the newest")
	return cmd
}

func newKeysGrant(e *env) *cobra.Command {
	var f keysFlags
	var to, reason string
	var ids []string
	cmd := &cobra.Command{
		Use:   "grant --to READER --message ID [--message ID...]",
		Short: "Give a reader, such as an auditor, access to past messages",
		Long: `Wrap the data keys of the given messages for READER and record the grant in
the registry and the log. READER needs a Vault wrap key (it must be a
machine of the deployment) and reads the messages from the stream, as an
auditor may. The messages are not touched.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			va, reg, done, err := f.open(ctx, true)
			if err != nil {
				return err
			}
			defer done()
			msgs, err := reg.FindMessages(ctx, splitIDs(ids))
			if err != nil {
				return err
			}
			recs, err := reg.Grant(ctx, va, registry.GrantRequest{
				To: to, Keys: registry.KeyRefs(msgs), By: "phix keys grant", Reason: reason,
				OnGrant: func(r registry.GrantRecord) { logGrant(e.log, r) },
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "%s: %d data keys granted for %d messages\n", to, len(recs), len(splitIDs(ids)))
			return f.recordGrants(ctx, recs)
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&to, "to", "", "reader to grant access to (required)")
	cmd.Flags().StringArrayVar(&ids, "message", nil, "message ID, repeatable or comma-separated (required)")
	cmd.Flags().StringVar(&reason, "reason", "", "why access is granted, for the record")
	cmd.MarkFlagRequired("to")
	cmd.MarkFlagRequired("message")
	return cmd
}

// logGrant records a grant in the log; the command then puts each grant on
// the audit trail.
func logGrant(log *slog.Logger, r registry.GrantRecord) {
	log.Info("data key granted", "to", r.To, "sender", r.Sender, "data_key_id", r.DataKeyID,
		"from", r.From, "messages", strings.Join(r.MessageIDs, ","), "reason", r.Reason)
}

func newKeysDestroy(e *env) *cobra.Command {
	var f keysFlags
	var sender, reason string
	cmd := &cobra.Command{
		Use:   "destroy DATAKEYID",
		Short: "Destroy a data key so that the messages sealed under it cannot be opened",
		Long: `Erase every wrapped copy of data key DATAKEYID from the registry and leave a
tombstone naming when, by whom and why. The messages stay stored, with
their signed headers, as the record that they existed; no reader can open
them again. Readers that hold the key in their cache lose it when the cache
entry expires. This cannot be undone.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, id := cmd.Context(), args[0]
			_, reg, done, err := f.open(ctx, false)
			if err != nil {
				return err
			}
			defer done()
			if sender == "" {
				if sender, err = senderOf(ctx, reg, id); err != nil {
					return err
				}
			}
			t, err := reg.Destroy(ctx, sender, id, "phix keys destroy", reason)
			if err != nil {
				return err
			}
			e.log.Warn("data key destroyed", "sender", t.Sender, "data_key_id", t.DataKeyID,
				"readers", strings.Join(t.Readers, ","), "reason", t.Reason)
			fmt.Fprintf(e.stdout, "data key %s of %s destroyed; %d readers lost access\n",
				t.DataKeyID, t.Sender, len(t.Readers))
			return f.record(ctx, destroyRecord(t))
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&sender, "sender", "", "machine that made the data key (default: found in the registry)")
	cmd.Flags().StringVar(&reason, "reason", "", "why the key is destroyed, for the record")
	return cmd
}

// senderOf finds the one sender of data key id in the registry.
func senderOf(ctx context.Context, reg *registry.Admin, id string) (string, error) {
	es, err := reg.Entries(ctx, registry.Filter{DataKeyID: id})
	if err != nil {
		return "", err
	}
	var senders []string
	for _, e := range es {
		senders = append(senders, e.Sender)
	}
	slices.Sort(senders)
	senders = slices.Compact(senders)
	switch len(senders) {
	case 0:
		return "", fmt.Errorf("no data key %s in the registry (pass --sender if it was destroyed before)", id)
	case 1:
		return senders[0], nil
	}
	return "", fmt.Errorf("data key %s has several senders (%s): pass --sender", id, strings.Join(senders, ", "))
}

// open connects to the broker as the key administrator and, if withVault,
// to Vault with the operator token. done closes the connection.
func (f *keysFlags) open(ctx context.Context, withVault bool) (va *keys.VaultAdmin,
	reg *registry.Admin, done func(), err error) {
	if withVault {
		if err := f.vault.fill(f.dir); err != nil {
			return nil, nil, nil, err
		}
		if va, err = f.vault.admin(); err != nil {
			return nil, nil, nil, err
		}
	}
	s, err := connect(ctx, identity.IdentityDir(f.dir, keyAdminName), f.url)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			err = fmt.Errorf("no key administrator identity in %s: run `phix up --vault` first",
				filepath.Join(f.dir, "identities"))
		}
		return nil, nil, nil, err
	}
	if reg, err = registry.NewAdmin(ctx, s.js); err != nil {
		s.close()
		return nil, nil, nil, err
	}
	return va, reg, s.close, nil
}

func splitIDs(ids []string) []string {
	var out []string
	for _, s := range ids {
		out = append(out, splitList(s)...)
	}
	return out
}

func newKeysList(e *env) *cobra.Command {
	var f keysFlags
	var filter registry.Filter
	var ids []string
	cmd := &cobra.Command{
		Use:   "list [--sender NAME] [--reader NAME] [--message ID...]",
		Short: "List wrapped data keys in the registry, or the data keys of messages",
		Long: `Without --message, print one line per wrapped data key in the registry:
sender, data key ID, reader and the key version it is wrapped under. With
--message, print the data key of each stored copy of those messages:
message ID, recipient, sender and data key ID. A data key protects every
message sealed under it (up to the producer's reuse limit).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			_, reg, done, err := f.open(ctx, false)
			if err != nil {
				return err
			}
			defer done()
			if len(ids) > 0 {
				msgs, err := reg.FindMessages(ctx, splitIDs(ids))
				if err != nil {
					return err
				}
				for _, m := range msgs {
					fmt.Fprintf(e.stdout, "%s\t%s\t%s\t%s\n", m.ID, m.Recipient, m.Sender, m.DataKeyID)
				}
				return nil
			}
			es, err := reg.Entries(ctx, filter)
			if err != nil {
				return err
			}
			for _, x := range es {
				version, _, _ := strings.Cut(strings.TrimPrefix(string(x.Wrapped), "vault:"), ":")
				fmt.Fprintf(e.stdout, "%s\t%s\t%s\t%s\n", x.Sender, x.DataKeyID, x.Reader, version)
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&filter.Sender, "sender", "", "only keys made by this machine")
	cmd.Flags().StringVar(&filter.Reader, "reader", "", "only keys wrapped for this machine")
	cmd.Flags().StringArrayVar(&ids, "message", nil, "show the data keys of these messages instead")
	return cmd
}
