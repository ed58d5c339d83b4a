package keys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// maxSecretIDFileSize bounds the secret ID file, in bytes.
const maxSecretIDFileSize = 4096

// vaultLogin keeps a short-lived AppRole token alive for one machine. It
// renews the token when it is used past half of its life, and logs in
// again when the token expired, could not be renewed, or turns out to be
// revoked. Renewal happens on use, not in the background, so an idle
// machine holds no live token for longer than one TTL. It is safe for concurrent use.
type vaultLogin struct {
	base   *api.Client // no token: login and unwrap only
	client *api.Client // carries the current token
	cfg    VaultConfig
	now    func() time.Time

	// mu serialises logins and renewals, so that callers arriving while
	// the token is being replaced wait for the new one instead of all
	// logging in. It guards secretID, gen, ttl, expires and renewable.
	mu sync.Mutex
	// secretID is the unwrapped secret ID when cfg.SecretIDWrapped.
	secretID string
	// gen counts logins; a caller that saw a 403 with token generation g
	// re-logs in only if no one else did since.
	gen       uint64
	ttl       time.Duration // as granted at login; the renewal increment
	expires   time.Time
	renewable bool
}

// ensure returns the generation of a token that is valid now, logging in
// or renewing first when needed.
func (l *vaultLogin) ensure(ctx context.Context) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.gen == 0 || !now.Before(l.expires.Add(-expirySlack(l.ttl))) {
		return l.gen, l.loginLocked(ctx)
	}
	if l.renewable && l.expires.Sub(now) < l.ttl/2 {
		err := l.renewLocked(ctx)
		if errors.Is(err, ErrUnavailable) {
			// The token still has a while to live; try again next use.
			return l.gen, nil
		}
		if err != nil {
			return l.gen, l.loginLocked(ctx)
		}
	}
	return l.gen, nil
}

// recheck is called after a request made with token generation gen was
// denied. It tells a policy denial (the token is fine: do not retry) from
// a dead token (revoked or expired early: log in and retry).
func (l *vaultLogin) recheck(ctx context.Context, gen uint64) (retry bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if gen != l.gen {
		return true, nil // someone logged in since; try the new token
	}
	_, err = l.client.Auth().Token().LookupSelfWithContext(ctx)
	if err = countVault("lookup", err); err == nil {
		return false, nil
	}
	if classifyVault(err) != vaultDenied {
		return false, vaultError("token lookup", err)
	}
	if err := l.loginLocked(ctx); err != nil {
		return false, err
	}
	return true, nil
}

// expirySlack is how long before its expiry a token is no longer used, so
// that a request does not race the expiry on the server.
func expirySlack(ttl time.Duration) time.Duration {
	return min(ttl/10, 10*time.Second)
}

func (l *vaultLogin) loginLocked(ctx context.Context) error {
	sid, err := l.secretIDLocked(ctx)
	if err != nil {
		return err
	}
	s, err := l.base.Logical().WriteWithContext(ctx, "auth/"+l.cfg.AuthMount+"/login", map[string]any{
		"role_id":   l.cfg.RoleID,
		"secret_id": sid,
	})
	if err = countVault("login", err); err != nil {
		return vaultError("login as "+l.cfg.Machine, err)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return errors.New("keys: vault login: no token in response")
	}
	now := l.now()
	l.client.SetToken(s.Auth.ClientToken)
	l.gen++
	l.ttl = time.Duration(s.Auth.LeaseDuration) * time.Second
	l.renewable = s.Auth.Renewable && l.ttl > 0
	l.expires = now.Add(l.ttl)
	if l.ttl == 0 {
		l.expires = now.Add(100 * 365 * 24 * time.Hour) // a non-expiring token
	}
	return nil
}

func (l *vaultLogin) renewLocked(ctx context.Context) error {
	now := l.now()
	s, err := l.client.Auth().Token().RenewSelfWithContext(ctx, int(l.ttl/time.Second))
	if err = countVault("renew", err); err != nil {
		return vaultError("token renewal", err)
	}
	if s == nil || s.Auth == nil {
		return errors.New("keys: vault token renewal: empty response")
	}
	granted := time.Duration(s.Auth.LeaseDuration) * time.Second
	l.expires = now.Add(granted)
	// Less than asked for means the token reached its max TTL: renewing
	// again gains nothing, so the next login happens at expiry.
	l.renewable = s.Auth.Renewable && granted >= l.ttl
	return nil
}

// secretIDLocked returns the secret ID: from the file each time, or, for
// a wrapped secret ID, unwrapped once and then kept.
func (l *vaultLogin) secretIDLocked(ctx context.Context) (string, error) {
	if l.secretID != "" {
		return l.secretID, nil
	}
	v, err := readSecretFile(l.cfg.SecretIDFile)
	if err != nil {
		return "", err
	}
	if !l.cfg.SecretIDWrapped {
		return v, nil
	}
	// Unwrap with a fresh client: the API client installs the wrapping
	// token as its own token when it has none.
	c, err := newVaultClient(l.cfg.Address, l.cfg.CACert)
	if err != nil {
		return "", err
	}
	s, err := c.Logical().UnwrapWithContext(ctx, v)
	if err = countVault("unwrap_secret_id", err); err != nil {
		return "", vaultError("unwrapping secret ID", err)
	}
	sid := responseString(s, "secret_id")
	if sid == "" {
		return "", errors.New("keys: vault unwrapping secret ID: no secret ID in response")
	}
	l.secretID = sid
	return sid, nil
}

// readSecretFile reads a small secret file that only its owner may access.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("keys: secret ID file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("keys: secret ID file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%w: secret ID file %s", ErrInsecureFile, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretIDFileSize+1))
	if err != nil {
		return "", fmt.Errorf("keys: secret ID file: %w", err)
	}
	if len(b) > maxSecretIDFileSize {
		return "", fmt.Errorf("keys: secret ID file %s is larger than %d bytes", path, maxSecretIDFileSize)
	}
	v := strings.TrimSpace(string(b))
	clear(b)
	if v == "" {
		return "", fmt.Errorf("keys: secret ID file %s is empty", path)
	}
	return v, nil
}

// revoke revokes the current token, if any, so it dies before its TTL.
func (l *vaultLogin) revoke(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.gen == 0 || !l.now().Before(l.expires) {
		return nil
	}
	err := countVault("revoke", l.client.Auth().Token().RevokeSelfWithContext(ctx, ""))
	l.client.SetToken("")
	l.expires = time.Time{} // the next use logs in again
	return vaultError("token revocation", err)
}
