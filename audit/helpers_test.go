package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/audit"
)

// newJetStream runs an in-process nats-server with JetStream on a temp
// store and returns a connection to it.
func newJetStream(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		DontListen: true, JetStream: true, StoreDir: t.TempDir(), NoSigs: true,
	})
	if err != nil {
		t.Fatalf("server.NewServer() = %v, want nil", err)
	}
	go srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready within 10s")
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		t.Fatalf("nats.Connect() = %v, want nil", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream.New() = %v, want nil", err)
	}
	return nc, js
}

func newSigner(t testing.TB) *audit.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := audit.NewSigner(priv)
	if err != nil {
		t.Fatalf("NewSigner() = %v, want nil", err)
	}
	return s
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// clock is a settable time source for the writer.
type clock struct {
	mu  sync.Mutex // guards now
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 15, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newWriter(t testing.TB, js jetstream.JetStream, cfg audit.WriterConfig) *audit.Writer {
	t.Helper()
	w, err := audit.NewWriter(ctxFor(t, 10*time.Second), js, cfg)
	if err != nil {
		t.Fatalf("NewWriter() = %v, want nil", err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w
}

func appendN(t testing.TB, w *audit.Writer, n int) {
	t.Helper()
	for i := range n {
		rec := audit.Record{Kind: audit.KindPublish, MessageID: "m" + string(rune('a'+i%26)), Sender: "lab-feed"}
		if _, err := w.Append(ctxFor(t, 5*time.Second), rec); err != nil {
			t.Fatalf("Append(%d) = %v, want nil", i, err)
		}
	}
}

func export(t testing.TB, js jetstream.JetStream) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := audit.Export(ctxFor(t, 10*time.Second), js, &buf); err != nil {
		t.Fatalf("Export() = %v, want nil", err)
	}
	return buf.Bytes()
}
