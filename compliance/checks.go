package compliance

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"phix.dev/phix/identity"
	"phix.dev/phix/keys"
)

// checkUniqueIdentity: one identity per machine, no shared keys.
func checkUniqueIdentity(ctx context.Context, d *deployment) Check {
	c := check("unique-identity", "164.312(a)(2)(i)",
		"one identity per machine: no certificate or key shared, sessions use their own key")
	spkiOwner := make(map[string]string)
	mySPKI := make(map[string]string)
	for _, m := range d.policy.Active() {
		cert, err := readCert(filepath.Join(identity.IdentityDir(d.cfg.DataDir, m), "tls.crt"))
		if os.IsNotExist(err) {
			c.note("%s: identity folder not on this host", m)
			continue
		}
		if err != nil {
			c.fail("%s: %v", m, err)
			continue
		}
		if cert.Subject.CommonName != m {
			c.fail("%s: certificate names %q", m, cert.Subject.CommonName)
		}
		sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
		spki := hex.EncodeToString(sum[:])
		if other, dup := spkiOwner[spki]; dup {
			c.fail("%s and %s share a TLS key", other, m)
		}
		spkiOwner[spki], mySPKI[m] = m, spki
	}
	dirKeys, err := directoryKeys(identity.DirectoryDir(d.cfg.DataDir))
	if err != nil {
		c.fail("key directory: %v", err)
	}
	for _, dup := range dirKeys {
		c.fail("%s", dup)
	}

	if !d.needEnforced(&c) {
		return c
	}
	admins := make(map[string]bool)
	for _, a := range d.enforced.KeyAdmins {
		admins[a.Machine] = true
	}
	for _, s := range d.enforced.Sessions {
		switch want, ok := mySPKI[s.Machine]; {
		case admins[s.Machine]:
			c.note("session %d is key administrator %s", s.CID, s.Machine)
		case !d.policy.Revoked(s.Machine) && d.policy.Machine(s.Machine) == nil:
			c.fail("session %d is machine %s, which the policy does not list", s.CID, s.Machine)
		case d.policy.Revoked(s.Machine):
			c.fail("session %d is revoked machine %s", s.CID, s.Machine)
		case ok && !strings.EqualFold(want, s.SPKISHA256):
			c.fail("session %d of %s uses a key that is not in its identity folder", s.CID, s.Machine)
		}
	}
	c.note("%d identities on this host, %d live sessions", len(mySPKI), len(d.enforced.Sessions))
	return c
}

// directoryKeys returns a sentence for every public key that two
// directory records share.
func directoryKeys(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	owner := make(map[string]string)
	var dups []string
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		rec, err := readDirRecord(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		for kind, pub := range map[string][]byte{
			"signing": rec.SigningKey.PublicKey, "KEM": rec.KEMKey.PublicKey,
		} {
			k := kind + " " + hex.EncodeToString(pub)
			if other, dup := owner[k]; dup {
				dups = append(dups, fmt.Sprintf("%s and %s share a %s key", other, name, kind))
			}
			owner[k] = name
		}
	}
	return dups, nil
}

// dirRecord is the part of a key directory record (see keys.Local) the
// checks read.
type dirRecord struct {
	SigningKey struct {
		ID        string `json:"id"`
		PublicKey []byte `json:"public_key"`
	} `json:"signing_key"`
	KEMKey struct {
		PublicKey []byte `json:"public_key"`
	} `json:"kem_key"`
}

func readDirRecord(path string) (*dirRecord, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r dirRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return &r, nil
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return x509.ParseCertificate(block.Bytes)
}

// checkAccessControl: the broker enforces exactly the policy.
func checkAccessControl(ctx context.Context, d *deployment) Check {
	c := check("access-control", "164.312(a)(1)",
		"broker users, permissions and inbox consumers equal those derived from the policy")
	if !d.needEnforced(&c) {
		return c
	}
	for _, diff := range Drift(d.policy, d.enforced) {
		c.fail("%s", diff)
	}
	if c.Status == Pass {
		c.note("%d machines, %d inbox consumers as in %s",
			len(d.enforced.Users), len(d.policy.InboxConsumers()), d.policy.Name())
	}
	for _, a := range d.enforced.KeyAdmins {
		c.note("key administrator %s (not in the policy) may use the key registry", a.Machine)
	}
	return c
}

// checkIdleLogoff: automatic logoff on, at the policy's timeout.
func checkIdleLogoff(ctx context.Context, d *deployment) Check {
	c := check("automatic-logoff", "164.312(a)(2)(iii)",
		"idle machine sessions are disconnected after the policy's timeout")
	if d.policy.Sessions.IdleTimeout == 0 {
		c.fail("the policy switches automatic logoff off (sessions.idle_timeout)")
	}
	if !d.needEnforced(&c) {
		return c
	}
	if d.enforced.IdleTimeout == 0 {
		c.fail("the broker does not disconnect idle sessions")
	} else {
		c.note("idle sessions closed after %s", d.enforced.IdleTimeout)
	}
	return c
}

// checkAtRest: the JetStream store is encrypted under a protected key.
func checkAtRest(ctx context.Context, d *deployment) Check {
	c := check("encryption-at-rest", "164.312(a)(2)(iv)",
		"JetStream store encrypted at rest under a key file readable by its owner only")
	if d.needEnforced(&c) && d.enforced.StoreCipher != "aes" {
		c.fail("broker reports store cipher %q", d.enforced.StoreCipher)
	}
	keyFile := filepath.Join(d.cfg.DataDir, "broker", "jetstream.key")
	if b, err := keys.ReadPrivateFile(keyFile); err != nil {
		c.fail("at-rest key: %v", err)
	} else {
		clear(b)
	}
	streams, _ := filepath.Glob(filepath.Join(d.cfg.DataDir, "jetstream", "*", "streams", "*"))
	for _, s := range streams {
		if _, err := os.Stat(filepath.Join(s, "meta.key")); err != nil {
			c.fail("stream %s is not encrypted on disk", filepath.Base(s))
		}
	}
	if c.Status == Pass {
		c.note("%d streams encrypted with AES-256-GCM", len(streams))
	}
	return c
}

// checkKeyAges: keys and certificates within the rotation period.
func checkKeyAges(ctx context.Context, d *deployment) Check {
	c := check("key-rotation", "164.312(a)(2)(iv)",
		"identity keys and certificates younger than the policy's rotation period")
	period := d.policy.Keys.RotationPeriod.D()
	files := []string{filepath.Join(d.cfg.DataDir, "broker", "server.key")}
	certs := []string{filepath.Join(d.cfg.DataDir, "broker", "server.crt")}
	for _, m := range d.policy.Active() {
		dir := identity.IdentityDir(d.cfg.DataDir, m)
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		files = append(files, filepath.Join(dir, "tls.key"),
			filepath.Join(dir, keys.SignKeyFile), filepath.Join(dir, keys.KEMKeyFile))
		certs = append(certs, filepath.Join(dir, "tls.crt"))
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			c.fail("%v", err)
			continue
		}
		if age := d.now.Sub(fi.ModTime()); age > period {
			c.fail("%s is %s old, rotation period %s", rel(d, f), days(age), d.policy.Keys.RotationPeriod)
		}
	}
	for _, f := range certs {
		cert, err := readCert(f)
		switch {
		case err != nil:
			c.fail("%v", err)
		case d.now.After(cert.NotAfter):
			c.fail("%s expired on %s", rel(d, f), cert.NotAfter.Format("2006-01-02"))
		case d.now.Sub(cert.NotBefore) > period:
			c.fail("%s was issued %s ago, rotation period %s", rel(d, f),
				days(d.now.Sub(cert.NotBefore)), d.policy.Keys.RotationPeriod)
		}
	}
	if c.Status == Pass {
		c.note("%d keys and %d certificates within %s", len(files), len(certs),
			d.policy.Keys.RotationPeriod)
	}
	return c
}

// checkOldMessages would open a message sealed before the last key
// rotation. The local key provider never rotates machine keys (data keys
// are single-use per batch), so there is nothing to check there.
func checkOldMessages(ctx context.Context, d *deployment) Check {
	c := check("old-messages-open", "164.312(a)(2)(iv)",
		"messages sealed before a key rotation still open")
	// TODO(policy): with the Vault provider, rotate a test key with
	// keys.VaultAdmin.RotateKey and open a message sealed before it.
	if _, err := os.Stat(filepath.Join(d.cfg.DataDir, "vault.json")); err == nil {
		c.skip("not evaluated live: doctor holds no Vault operator token to rotate a probe key; " +
			"rotation with old messages opening is covered by the Vault end-to-end tests")
		return c
	}
	c.skip("the local key provider does not rotate machine keys")
	return c
}

// secretPatterns are signs of credentials in a configuration file.
var secretPatterns = []struct {
	what string
	re   *regexp.Regexp
}{
	{"a PEM private key", regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`)},
	{"a Vault token", regexp.MustCompile(`\bhv[sbr]\.[A-Za-z0-9_-]{20,}`)},
	{"a password or secret field", regexp.MustCompile(`(?i)"?(password|passwd|secret_id|secret|token|api_key)"?\s*[:=]`)},
	{"an nkey seed", regexp.MustCompile(`\bS[UAO][A-Z2-7]{50,}`)},
}

// checkNoSecrets: no credential in a configuration file, and private keys
// readable by their owner only.
func checkNoSecrets(ctx context.Context, d *deployment) Check {
	c := check("no-secrets-in-config", "164.312(d)",
		"no passwords, tokens or keys in configuration files; private key files 0600")
	configs := []string{filepath.Join(d.cfg.DataDir, "policy.yaml")}
	ids, _ := filepath.Glob(filepath.Join(d.cfg.DataDir, "identities", "*", "identity.json"))
	configs = append(configs, ids...)
	extra, _ := filepath.Glob(filepath.Join(d.cfg.DataDir, "*.json"))
	configs = append(configs, extra...)
	for _, f := range configs {
		b, err := os.ReadFile(f)
		if err != nil {
			c.fail("%v", err)
			continue
		}
		for _, p := range secretPatterns {
			if p.re.Match(b) {
				c.fail("%s contains %s", rel(d, f), p.what)
			}
		}
	}
	nkeys := 0
	store := filepath.Join(d.cfg.DataDir, "jetstream")
	filepath.WalkDir(d.cfg.DataDir, func(path string, e fs.DirEntry, err error) error {
		// The store's meta.key files are stream keys encrypted under the
		// at-rest key, not secrets; nats-server writes them 0640.
		if path == store {
			return fs.SkipDir
		}
		if err != nil || e.IsDir() || !strings.HasSuffix(path, ".key") {
			return nil
		}
		nkeys++
		if b, err := keys.ReadPrivateFile(path); err != nil {
			c.fail("%s: %v", rel(d, path), err)
		} else {
			clear(b)
		}
		return nil
	})
	if c.Status == Pass {
		c.note("%d configuration files clean, %d private key files owner-only", len(configs), nkeys)
	}
	return c
}

func rel(d *deployment, path string) string {
	if r, err := filepath.Rel(d.cfg.DataDir, path); err == nil {
		return r
	}
	return path
}

// days formats d in whole days, as the policy writes rotation periods.
func days(d time.Duration) string {
	return fmt.Sprintf("%.0fd", d.Hours()/24)
}
