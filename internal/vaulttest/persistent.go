package vaulttest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// persistent is the state of a server started by [StartPersistent].
type persistent struct {
	bin, dir, config string
	unsealKey        string

	// mu guards stop.
	mu   sync.Mutex
	stop func() // stops the running process; nil when stopped
}

// StartPersistent starts a Vault server that keeps its data in files
// rather than in memory, initialised with a single unseal key and
// unsealed, so that [Server.Stop] and [Server.Restart] can take it away
// and bring it back with everything it held, as a production server
// restarts. It listens on plain HTTP on loopback. Unlike [Start], its
// root token is the one Vault generated at initialisation. Missing binary
// handling is as for Start.
func StartPersistent(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if _, err := os.Stat(bin); err != nil {
		missingBinary(t, bin)
	}
	var lastErr error
	for range 3 {
		s, err := startPersistent(t, bin)
		if err == nil {
			return s
		}
		lastErr = err
	}
	t.Fatalf("vaulttest: starting persistent Vault server: %v", lastErr)
	return nil
}

func startPersistent(t testing.TB, bin string) (*Server, error) {
	t.Helper()
	port, err := freePortPair()
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p := &persistent{bin: bin, dir: dir, config: filepath.Join(dir, "vault.hcl")}
	hcl := fmt.Sprintf(`storage "file" {
  path = %q
}
listener "tcp" {
  address     = %q
  tls_disable = true
}
api_addr      = "http://%s"
disable_mlock = true
ui            = false
`, filepath.Join(dir, "data"), listen, listen)
	if err := os.WriteFile(p.config, []byte(hcl), 0o600); err != nil {
		return nil, err
	}
	s := &Server{Addr: "http://" + listen, persist: p}
	if err := p.launch(s.Addr); err != nil {
		return nil, err
	}
	t.Cleanup(func() { s.Stop() })

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c, err := newRootClient(s)
	if err != nil {
		return nil, err
	}
	init, err := c.Sys().InitWithContext(ctx, &api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		return nil, fmt.Errorf("initialising: %v", err)
	}
	if len(init.KeysB64) != 1 || init.RootToken == "" {
		return nil, errors.New("initialising: no unseal key or root token")
	}
	p.unsealKey, s.RootToken = init.KeysB64[0], init.RootToken
	if s.Client, err = newRootClient(s); err != nil {
		return nil, err
	}
	return s, p.unseal(ctx, s)
}

// launch starts the server process and waits until it answers HTTP.
func (p *persistent) launch(addr string) error {
	logFile, err := os.OpenFile(filepath.Join(p.dir, "vault.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	home := filepath.Join(p.dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	exited, stop, err := startProcess(p.bin, []string{"server", "-config=" + p.config}, home, p.dir, logFile)
	if err != nil {
		return err
	}
	if err := waitListening(addr, exited); err != nil {
		stop()
		return fmt.Errorf("%v; server log:\n%s", err, tail(filepath.Join(p.dir, "vault.log"), 2000))
	}
	p.mu.Lock()
	p.stop = stop
	p.mu.Unlock()
	return nil
}

// waitListening polls the health endpoint until the server answers at
// all: sealed and uninitialised servers answer with an error status.
func waitListening(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	hc := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-exited:
			return errors.New("server exited during start")
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not listening after %v", startTimeout)
		}
		if resp, err := hc.Get(addr + "/v1/sys/health"); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// unseal unseals the server and waits until it is active.
func (p *persistent) unseal(ctx context.Context, s *Server) error {
	if _, err := s.Client.Sys().UnsealWithContext(ctx, p.unsealKey); err != nil {
		return fmt.Errorf("unsealing: %v", err)
	}
	hc, err := healthClient(s.CACert)
	if err != nil {
		return err
	}
	for !healthy(hc, s.Addr) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("not active after unsealing: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

// Stop stops a server from [StartPersistent], keeping its data, so that
// clients see it unreachable until [Server.Restart]. Stopping a stopped
// server does nothing. It panics for a dev server, whose data would be
// lost.
func (s *Server) Stop() {
	if s.persist == nil {
		panic("vaulttest: Stop on a dev server")
	}
	s.persist.mu.Lock()
	stop := s.persist.stop
	s.persist.stop = nil
	s.persist.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Restart stops a server from [StartPersistent] if it runs, starts it
// again on the same address with the same data, and unseals it. It panics
// for a dev server.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.persist.launch(s.Addr); err != nil {
		t.Fatalf("vaulttest: restarting: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := s.persist.unseal(ctx, s); err != nil {
		t.Fatalf("vaulttest: restarting: %v", err)
	}
}
