package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"phix.dev/phix/identity"
	"phix.dev/phix/keys"
	"phix.dev/phix/policy"
	"phix.dev/phix/producer"
)

// Files that record the Vault provider. None holds a secret except the
// secret ID file, which is 0600 and read by the keys package only.
const (
	// vaultFile in an identity folder says that the machine uses the Vault
	// provider, and how to reach and log in to it.
	vaultFile = "vault.json"
	// secretIDFile in an identity folder holds the machine's AppRole
	// secret ID.
	secretIDFile = "vault-secret-id"
	// keyAdminName is the identity `phix up --vault` creates for
	// `phix keys`: the broker's key administrator of the wrapped-key
	// registry. It is not a machine.
	keyAdminName = "keyadmin"
)

// vaultJSON is the content of vault.json, in an identity folder (all
// fields) or in the data folder (address and CA only, for `phix keys`).
// Paths are relative to the folder holding the file unless absolute.
type vaultJSON struct {
	Address      string `json:"address"`
	CACert       string `json:"ca_cert,omitempty"`
	Mount        string `json:"mount,omitempty"`
	AuthMount    string `json:"auth_mount,omitempty"`
	RoleID       string `json:"role_id,omitempty"`
	SecretIDFile string `json:"secret_id_file,omitempty"`
}

// vaultFlags are the flags that point a command at Vault with an operator
// token.
type vaultFlags struct {
	addr, ca, tokenFile string
}

func (f *vaultFlags) add(cmd *cobra.Command, what string) {
	cmd.Flags().StringVar(&f.addr, "vault", "", what)
	cmd.Flags().StringVar(&f.ca, "vault-ca", "", "PEM file of the CA that signed Vault's certificate")
	cmd.Flags().StringVar(&f.tokenFile, "vault-token-file", "",
		"file holding a Vault operator token (default: $VAULT_TOKEN)")
}

// fill takes the address and CA from DIR/vault.json where the flags do
// not set them.
func (f *vaultFlags) fill(dir string) error {
	if f.addr != "" {
		return nil
	}
	v, err := readVaultJSON(filepath.Join(dir, vaultFile))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no Vault configured: pass --vault or run `phix up --vault` on %s first", dir)
	}
	if err != nil {
		return err
	}
	f.addr, f.ca = v.Address, resolvePath(dir, v.CACert)
	return nil
}

// admin returns a Vault admin acting with the operator token.
func (f *vaultFlags) admin() (*keys.VaultAdmin, error) {
	token, err := f.token()
	if err != nil {
		return nil, err
	}
	return keys.NewVaultAdmin(keys.VaultAdminConfig{Address: f.addr, CACert: f.ca}, token)
}

// token reads the operator token from --vault-token-file, or else from
// VAULT_TOKEN, the variable operators already set for the vault command.
// The command line is the one place that reads the environment.
func (f *vaultFlags) token() (string, error) {
	if f.tokenFile == "" {
		if t := os.Getenv("VAULT_TOKEN"); t != "" {
			return t, nil
		}
		return "", errors.New("no Vault operator token: pass --vault-token-file or set VAULT_TOKEN")
	}
	b, err := os.ReadFile(f.tokenFile)
	if err != nil {
		return "", fmt.Errorf("vault token: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("vault token file %s is empty", f.tokenFile)
	}
	return t, nil
}

// setUpVault makes the machines of pol use Vault: it provisions their
// transit keys, policies and AppRoles from pol's flows, gives each
// identity folder a secret ID file and a vault.json, records Vault's
// address in DIR/vault.json, and creates the key administrator's
// identity. It returns the key administrators for the broker. Existing
// secret ID files are kept, so restarts issue no new credentials.
func setUpVault(ctx context.Context, f *vaultFlags, dir string, pol *policy.Policy) ([]string, error) {
	if f.addr == "" {
		return nil, nil
	}
	admin, err := f.admin()
	if err != nil {
		return nil, err
	}
	machines := pol.Active()
	if err := admin.Provision(ctx, machines, pol.VaultFlows()); err != nil {
		return nil, err
	}
	ca := ""
	if f.ca != "" {
		if ca, err = filepath.Abs(f.ca); err != nil {
			return nil, err
		}
	}
	for _, m := range machines {
		if err := issueVaultIdentity(ctx, admin, identity.IdentityDir(dir, m), m, f.addr, ca); err != nil {
			return nil, err
		}
	}
	if err := writeVaultJSON(filepath.Join(dir, vaultFile), &vaultJSON{Address: f.addr, CACert: ca}); err != nil {
		return nil, err
	}
	if err := identity.Init(dir, []string{keyAdminName}); err != nil {
		return nil, err
	}
	return []string{keyAdminName}, nil
}

func issueVaultIdentity(ctx context.Context, admin *keys.VaultAdmin, idDir, machine, addr, ca string) error {
	path := filepath.Join(idDir, vaultFile)
	old, err := readVaultJSON(path)
	if err == nil && old.Address == addr {
		if _, err := os.Stat(resolvePath(idDir, old.SecretIDFile)); err == nil {
			return nil
		}
	}
	roleID, err := admin.IssueSecretID(ctx, machine, filepath.Join(idDir, secretIDFile), 0)
	if err != nil {
		return err
	}
	return writeVaultJSON(path, &vaultJSON{
		Address: addr, CACert: ca, RoleID: roleID, SecretIDFile: secretIDFile,
	})
}

// machineKeys opens the key provider an identity folder records: Vault
// if it has a vault.json, else the local provider. vault reports which.
func machineKeys(ctx context.Context, m *identity.Machine) (kp keys.Provider, vault bool, err error) {
	v, err := readVaultJSON(filepath.Join(m.Dir, vaultFile))
	if errors.Is(err, fs.ErrNotExist) {
		kp, err := m.Keys()
		return kp, false, err
	}
	if err != nil {
		return nil, false, err
	}
	kp, err = keys.NewVault(ctx, keys.VaultConfig{
		Address:      v.Address,
		CACert:       resolvePath(m.Dir, v.CACert),
		Mount:        v.Mount,
		AuthMount:    v.AuthMount,
		Machine:      m.Name,
		RoleID:       v.RoleID,
		SecretIDFile: resolvePath(m.Dir, v.SecretIDFile),
	})
	return kp, true, err
}

func readVaultJSON(path string) (*vaultJSON, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v vaultJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if v.Address == "" {
		return nil, fmt.Errorf("%s: no Vault address", path)
	}
	return &v, nil
}

func writeVaultJSON(path string, v *vaultJSON) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// resolvePath returns path relative to dir unless it is absolute or empty.
func resolvePath(dir, path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

// producerRegistry is where a producer of s stores wrapped keys: the
// registry with the Vault provider, none (inline keys) with the local one.
func (s *session) producerRegistry() producer.Registry {
	if s.vault {
		return s.reg
	}
	return nil
}

// closeKeys revokes the Vault provider's token, if kp is one.
func closeKeys(kp keys.Provider) {
	if v, ok := kp.(*keys.Vault); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		v.Close(ctx)
	}
}
