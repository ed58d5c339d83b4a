package cli

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/broker"
	"phix.dev/phix/identity"
	"phix.dev/phix/keys"
	"phix.dev/phix/registry"
)

// session is one machine's connection to the broker with its keys.
type session struct {
	machine *identity.Machine
	nc      *nats.Conn
	js      jetstream.JetStream
	keys    keys.Provider
	vault   bool             // keys is the Vault provider (vault.go)
	reg     *registry.Client // the machine's wrapped-key registry access
}

// connect loads the identity folder and connects to the broker as that
// machine over mutually authenticated TLS 1.3.
func connect(ctx context.Context, identityDir, url string) (*session, error) {
	m, err := identity.Load(identityDir)
	if err != nil {
		return nil, err
	}
	if url == "" {
		url = m.URL
	}
	if url == "" {
		return nil, fmt.Errorf("no broker URL for %s: start `phix up` first or pass --url", m.Name)
	}
	tlsConf, err := m.TLSConfig()
	if err != nil {
		return nil, err
	}
	kp, vault, err := machineKeys(ctx, m)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, broker.ClientOptions(m.Name, tlsConf)...)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s as %s: %w", url, m.Name, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	reg, err := registry.NewClient(js, m.Name)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &session{machine: m, nc: nc, js: js, keys: kp, vault: vault, reg: reg}, nil
}

func (s *session) close() {
	s.nc.Drain()
	closeKeys(s.keys)
}
