package keys

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"phix.dev/phix/internal/subjects"
)

// Defaults for [VaultConfig] and [VaultAdminConfig] zero values.
const (
	defaultTransitMount = "transit"
	defaultAppRoleMount = "approle"
	// defaultVaultTimeout bounds one Vault call, retries included, when the
	// caller's context has no deadline.
	defaultVaultTimeout = 10 * time.Second
)

// VaultConfig configures a [Vault] provider for one machine. Secrets are
// never part of it: the AppRole secret ID is read from SecretIDFile.
type VaultConfig struct {
	// Address is the Vault server URL. It must use https unless its host is
	// a loopback address (a local dev server or agent).
	Address string
	// CACert is the path of a PEM file with the CAs that sign the server's
	// certificate. Empty means the system roots.
	CACert string
	// Mount is the transit engine's mount path. Empty means "transit".
	Mount string
	// AuthMount is the AppRole auth method's mount path. Empty means
	// "approle".
	AuthMount string
	// Machine is the name of the machine this provider acts as.
	Machine string
	// RoleID is the machine's AppRole role ID. It names the role and is
	// not secret on its own.
	RoleID string
	// SecretIDFile is the path of a file holding the AppRole secret ID. It
	// must not be accessible by group or others ([ErrInsecureFile]). It is
	// read again at each login, so an operator can replace it.
	SecretIDFile string
	// SecretIDWrapped says that SecretIDFile holds a response-wrapping
	// token rather than the secret ID. It is unwrapped once, at the first
	// login, and the secret ID is then kept in memory for later logins: a
	// wrapping token opens only once, so a stolen file that was already
	// used is worthless and a file used by someone else shows up as an
	// unwrap failure.
	SecretIDWrapped bool
	// Timeout bounds each operation, Vault retries included, when the
	// caller's context has no deadline. Zero means 10 seconds.
	Timeout time.Duration
}

// validate checks cfg and fills in defaults.
func (cfg *VaultConfig) validate() error {
	if err := checkVaultAddress(cfg.Address); err != nil {
		return err
	}
	if err := subjects.CheckName(cfg.Machine); err != nil {
		return fmt.Errorf("keys: vault machine: %v", err)
	}
	if cfg.RoleID == "" || cfg.SecretIDFile == "" {
		return errors.New("keys: vault needs a role ID and a secret ID file")
	}
	var err error
	if cfg.Mount, err = cleanMount(cfg.Mount, defaultTransitMount); err != nil {
		return err
	}
	if cfg.AuthMount, err = cleanMount(cfg.AuthMount, defaultAppRoleMount); err != nil {
		return err
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultVaultTimeout
	}
	return nil
}

// checkVaultAddress refuses plain HTTP to anything but loopback: the token
// and every data key cross this connection.
func checkVaultAddress(addr string) error {
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return fmt.Errorf("keys: invalid vault address %q", addr)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if ip := net.ParseIP(host); (ip != nil && ip.IsLoopback()) || host == "localhost" {
			return nil
		}
		return fmt.Errorf("keys: vault address %q: http is allowed only on loopback", addr)
	}
	return fmt.Errorf("keys: vault address %q: want an http or https URL", addr)
}

// cleanMount trims slashes from a mount path and refuses characters that
// would change the meaning of a request path or a policy rule.
func cleanMount(m, def string) (string, error) {
	m = strings.Trim(m, "/")
	if m == "" {
		return def, nil
	}
	if strings.ContainsAny(m, "*+?#\"\\ \n") || strings.Contains(m, "..") {
		return "", fmt.Errorf("keys: invalid vault mount %q", m)
	}
	return m, nil
}

// newVaultClient returns an API client for addr with no token. The client
// is isolated from VAULT_* environment variables (only cmd/ reads the
// environment) and never logs. Clients are made afresh rather than with
// the API's Clone, which reads the environment again.
func newVaultClient(addr, caCert string) (*api.Client, error) {
	tr := &http.Transport{
		Proxy:               nil,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS13},
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 16,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	cfg := &api.Config{
		Address:    addr,
		HttpClient: &http.Client{Transport: tr},
		MaxRetries: 2,
	}
	// The API client handles Vault's redirects itself, as its default
	// configuration does; net/http must hand them over unfollowed.
	cfg.HttpClient.CheckRedirect = func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}
	if caCert != "" {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: caCert}); err != nil {
			return nil, fmt.Errorf("keys: vault CA certificate: %v", err)
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("keys: vault client: %v", err)
	}
	// NewClient copies VAULT_TOKEN, VAULT_NAMESPACE and VAULT_HEADERS from
	// the environment; undo that so configuration has one source.
	c.SetToken("")
	c.ClearNamespace()
	c.SetHeaders(http.Header{api.RequestHeaderName: []string{"true"}})
	return c, nil
}

// withDefaultTimeout bounds ctx by d unless it already has a deadline.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}
