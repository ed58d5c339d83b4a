package e2e_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/broker"
	"phix.dev/phix/consumer"
	"phix.dev/phix/identity"
	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/internal/testcases"
	"phix.dev/phix/keys"
	"phix.dev/phix/producer"
)

var demo = []string{"lab-feed", "ehr-ingest", "billing"}

// deployment is a running embedded default: a data folder with the demo
// identities and a broker serving it on a random loopback port.
type deployment struct {
	dir string
	b   *broker.Broker
}

func startPhix(t testing.TB) *deployment {
	t.Helper()
	dir := t.TempDir()
	if err := identity.Init(dir, demo); err != nil {
		t.Fatalf("identity.Init: %v", err)
	}
	tlsConf, err := identity.BrokerTLS(dir)
	if err != nil {
		t.Fatalf("identity.BrokerTLS: %v", err)
	}
	b, err := broker.New(broker.Config{
		StoreDir: dir,
		Port:     -1,
		TLS:      tlsConf,
		Machines: demo,
	})
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Start(ctx); err != nil {
		t.Fatalf("broker.Start: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	if err := identity.SetURL(dir, b.ClientURL()); err != nil {
		t.Fatalf("identity.SetURL: %v", err)
	}
	return &deployment{dir: dir, b: b}
}

// machine is one demo machine connected to the broker with its own
// certificate and keys.
type machine struct {
	name string
	nc   *nats.Conn
	js   jetstream.JetStream
	keys keys.Provider
}

func (d *deployment) connect(t testing.TB, name string) *machine {
	t.Helper()
	m, err := identity.Load(filepath.Join(d.dir, "identities", name))
	if err != nil {
		t.Fatalf("identity.Load(%s): %v", name, err)
	}
	kp, err := m.Keys()
	if err != nil {
		t.Fatalf("Keys(%s): %v", name, err)
	}
	nc, js := d.dial(t, name)
	return &machine{name: name, nc: nc, js: js, keys: kp}
}

// dial connects to the broker as name with the certificate of its
// identity folder, closing the connection when the test ends.
func (d *deployment) dial(t testing.TB, name string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	m, err := identity.Load(filepath.Join(d.dir, "identities", name))
	if err != nil {
		t.Fatalf("identity.Load(%s): %v", name, err)
	}
	tlsConf, err := m.TLSConfig()
	if err != nil {
		t.Fatalf("TLSConfig(%s): %v", name, err)
	}
	nc, err := nats.Connect(m.URL, broker.ClientOptions(name, tlsConf)...)
	if err != nil {
		t.Fatalf("connect as %s: %v", name, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	return nc, js
}

func (m *machine) producer(t testing.TB) *producer.Producer {
	t.Helper()
	p, err := producer.New(m.js, m.keys, producer.Config{})
	if err != nil {
		t.Fatalf("producer.New: %v", err)
	}
	return p
}

func (m *machine) consumer(t testing.TB, cfg consumer.Config) *consumer.Consumer {
	t.Helper()
	if cfg.PollWait == 0 {
		cfg.PollWait = 200 * time.Millisecond
	}
	c, err := consumer.New(m.js, m.keys, cfg)
	if err != nil {
		t.Fatalf("consumer.New: %v", err)
	}
	return c
}

// casesDir returns the shared HL7 v2 and FHIR test inputs.
func casesDir(t testing.TB) string {
	t.Helper()
	return testcases.Dir(t)
}

func withTimeout(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// quarantined returns how many messages the quarantine stream holds.
func (d *deployment) quarantined(t testing.TB) uint64 {
	t.Helper()
	info, err := d.b.StreamInfo(withTimeout(t, 5*time.Second), subjects.QuarantineStream)
	if err != nil {
		t.Fatalf("StreamInfo(%s): %v", subjects.QuarantineStream, err)
	}
	return info.State.Msgs
}
