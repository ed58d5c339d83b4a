// Package vaulttest runs a real Vault dev server for tests.
//
// The server binary is the pinned build from e2e/vaultd (see ensure.sh
// there). Each [Start] gets its own process, ports, root token and HOME, so
// tests may run in parallel. A dev server keeps everything in memory and is
// unsealed: it is test infrastructure only. [StartPersistent] runs a
// server on file storage instead, which [Server.Stop] and
// [Server.Restart] take down and bring back with its data, for outage
// tests.
package vaulttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// Version is the Vault release that e2e/vaultd builds.
const Version = "1.21.1"

// startTimeout bounds how long a dev server may take to answer health checks.
const startTimeout = 60 * time.Second

// Server is a running Vault dev server. Its fields are set by [Start] or
// [StartTLS] and must not be changed.
type Server struct {
	// Addr is the server's URL, for example http://127.0.0.1:41234.
	Addr string
	// RootToken is the dev server's root token. It is random per server.
	RootToken string
	// CACert is the path of the PEM CA that signed the server certificate,
	// or "" for a plain-HTTP server.
	CACert string
	// Client is an API client for Addr authenticated with RootToken. It
	// ignores VAULT_* environment variables.
	Client *api.Client

	// persist is set for a server from [StartPersistent].
	persist *persistent
}

// Binary returns the path of the Vault server binary: $PHIX_VAULT_BIN if
// set, else vault-<Version> in $PHIX_VAULT_CACHE, else in phix under the
// user cache folder ($XDG_CACHE_HOME or ~/.cache), as e2e/vaultd/ensure.sh
// builds it.
func Binary() string {
	if p := os.Getenv("PHIX_VAULT_BIN"); p != "" {
		return p
	}
	cache := os.Getenv("PHIX_VAULT_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			base = filepath.Join(os.Getenv("HOME"), ".cache")
		}
		cache = filepath.Join(base, "phix")
	}
	return filepath.Join(cache, "vault-"+Version)
}

// Start starts a plain-HTTP dev server on loopback and stops it when the
// test ends. When the binary is missing it skips the test, or fails it
// when CI=true so that CI cannot pass by skipping.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, false)
}

// StartTLS is like [Start] but serves HTTPS with a certificate for
// 127.0.0.1 and localhost signed by the CA at [Server.CACert].
func StartTLS(t testing.TB) *Server {
	t.Helper()
	return start(t, true)
}

func start(t testing.TB, useTLS bool) *Server {
	t.Helper()
	bin := Binary()
	if _, err := os.Stat(bin); err != nil {
		missingBinary(t, bin)
	}

	// Picking free ports and starting the server race with other
	// processes, so a start that dies early is retried on new ports.
	var lastErr error
	for range 3 {
		s, err := launch(t, bin, useTLS)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("vaulttest: starting Vault dev server: %v", lastErr)
	return nil
}

// missingBinary skips the test, or fails it when CI=true so that CI
// cannot pass by skipping.
func missingBinary(t testing.TB, bin string) {
	t.Helper()
	msg := fmt.Sprintf("vaulttest: no Vault server at %s; build it with "+
		"e2e/vaultd/ensure.sh (about 11 minutes cold) or set PHIX_VAULT_BIN", bin)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// launch runs one server process and waits until it is healthy. On error
// the process is already stopped.
func launch(t testing.TB, bin string, useTLS bool) (*Server, error) {
	t.Helper()
	port, err := freePortPair()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		return nil, err
	}
	s := &Server{RootToken: randomToken()}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{"server", "-dev",
		"-dev-root-token-id=" + s.RootToken,
		"-dev-no-store-token",
		"-dev-listen-address=" + listen,
	}
	scheme := "http"
	if useTLS {
		certDir := filepath.Join(dir, "tls")
		if err := os.Mkdir(certDir, 0o700); err != nil {
			return nil, err
		}
		args = append(args, "-dev-tls", "-dev-tls-cert-dir="+certDir)
		s.CACert = filepath.Join(certDir, "vault-ca.pem")
		scheme = "https"
	}
	s.Addr = scheme + "://" + listen

	logPath := filepath.Join(dir, "vault.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	exited, stop, err := startProcess(bin, args, home, dir, logFile)
	if err != nil {
		return nil, err
	}

	if err := waitHealthy(s, exited); err != nil {
		stop()
		return nil, fmt.Errorf("%v; server log:\n%s", err, tail(logPath, 2000))
	}
	t.Cleanup(stop)

	if s.Client, err = newRootClient(s); err != nil {
		return nil, err
	}
	return s, nil
}

// waitHealthy polls /v1/sys/health until it answers 200, the process exits
// or startTimeout passes.
func waitHealthy(s *Server, exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	var hc *http.Client
	for {
		select {
		case <-exited:
			return errors.New("server exited during start")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not healthy after %v", startTimeout)
		}
		if hc == nil {
			// With -dev-tls the CA file appears only once the server runs.
			hc, _ = healthClient(s.CACert)
		}
		if hc != nil && healthy(hc, s.Addr) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func healthy(hc *http.Client, addr string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, addr+"/v1/sys/health", nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func healthClient(caFile string) (*http.Client, error) {
	if caFile == "" {
		return &http.Client{}, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no certificate in CA file")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	return &http.Client{Transport: tr}, nil
}

func newRootClient(s *Server) (*api.Client, error) {
	tr := &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
	cfg := &api.Config{
		Address:    s.Addr,
		HttpClient: &http.Client{Transport: tr},
		MaxRetries: 2,
	}
	if s.CACert != "" {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: s.CACert}); err != nil {
			return nil, err
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	// NewClient picks up VAULT_TOKEN and VAULT_NAMESPACE from the
	// environment; a test server must not depend on the developer's shell.
	c.ClearNamespace()
	c.SetToken(s.RootToken)
	return c, nil
}

// freePortPair returns a loopback port p such that p and p+1 were both
// free: the dev server also listens on the next port (its cluster port).
func freePortPair() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p+1)))
		l.Close()
		if err != nil {
			continue
		}
		l2.Close()
		return p, nil
	}
	return 0, errors.New("no free pair of loopback ports")
}

func randomToken() string {
	var b [16]byte
	rand.Read(b[:])
	return "root-" + hex.EncodeToString(b[:])
}

// tail returns the last n bytes of the file at path, for failure reports.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}

// startProcess starts the Vault binary with a clean environment (no
// VAULT_* from the developer's shell, a scratch HOME so the server writes
// nothing into the real one), logging to log. exited closes when the
// process ends; stop interrupts it and waits, killing it after 10s.
func startProcess(bin string, args []string, home, tmp string, log *os.File) (
	exited <-chan struct{}, stop func(), err error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"HOME=" + home, "TMPDIR=" + tmp}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	stop = func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	return done, stop, nil
}
