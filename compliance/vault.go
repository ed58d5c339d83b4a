package compliance

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
)

// checkVaultLink adds the link to Vault, on a deployment that uses it, to
// the transmission-security check: key material and tokens cross it, so a
// plaintext address fails even on loopback. phix's Vault client itself
// refuses anything below TLS 1.3.
func checkVaultLink(d *deployment, c *Check) {
	b, err := os.ReadFile(filepath.Join(d.cfg.DataDir, "vault.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return // local key provider: no Vault link
	}
	if err != nil {
		c.fail("reading vault.json: %v", err)
		return
	}
	var v struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		c.fail("vault.json: %v", err)
		return
	}
	u, err := url.Parse(v.Address)
	if err != nil || u.Scheme != "https" {
		c.fail("Vault link %s is not HTTPS", v.Address)
		return
	}
	c.note("Vault link %s: HTTPS, TLS 1.3 required by the client", u.Host)
}
