package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"phix.dev/phix/consumer"
	"phix.dev/phix/hl7"
	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/mllp"
	"phix.dev/phix/producer"
)

// serveMLLP runs an MLLP server with handler on a loopback port until the
// test ends and returns its address.
func serveMLLP(t *testing.T, h mllp.Handler) string {
	t.Helper()
	srv, err := mllp.NewServer(mllp.ServerConfig{Handler: h})
	if err != nil {
		t.Fatalf("mllp.NewServer: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v", err)
		}
	})
	return ln.Addr().String()
}

// TestMLLPBridgeDeliversOriginalBytes sends the ordinary HL7 v2 cases (39
// to 44) over MLLP to an ingress bridge publishing as lab-feed, checks
// each gets AA only once stored, receives them as ehr-ingest byte for
// byte, and forwards them over MLLP to a downstream receiver, again byte
// for byte. A message that fails validation (case 18) is refused with AE
// and never published.
func TestMLLPBridgeDeliversOriginalBytes(t *testing.T) {
	dir := casesDir(t)
	d := startPhix(t)
	lab, ehr := d.connect(t, "lab-feed"), d.connect(t, "ehr-ingest")
	p := lab.producer(t)

	var mu sync.Mutex
	stored := make(map[string]string) // phix message ID by MSH-10
	in := serveMLLP(t, func(ctx context.Context, raw []byte, m *hl7.Message) error {
		rc, err := p.Publish(ctx, []string{"ehr-ingest"}, raw,
			producer.WithType("hl7v2", "x-application/hl7-v2+er7"),
			producer.WithSchemaID("hl7v2/"+m.Version()+"/"+m.Get("MSH-9.3")))
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		stored[m.ControlID()] = rc.MessageID
		return nil
	})

	client, err := mllp.NewClient(mllp.ClientConfig{Addr: in})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	ctx := withTimeout(t, 60*time.Second)
	sent := make(map[string][]byte) // payload by phix message ID
	for _, f := range []string{"39-adt-a01.hl7", "40-adt-a08.hl7", "41-oru-r01.hl7", "42-orm-o01.hl7", "43-siu-s12.hl7", "44-mdm-t02.hl7"} {
		raw, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		ack, err := client.Send(ctx, raw)
		if err != nil || ack.Code != hl7.AckAccept {
			t.Fatalf("Send(%s) = %v, %v; want AA", f, ack, err)
		}
		mu.Lock()
		id, ok := stored[ack.ControlID]
		mu.Unlock()
		if !ok {
			t.Fatalf("%s acknowledged AA before it was stored", f)
		}
		sent[id] = raw
	}
	bad, err := os.ReadFile(filepath.Join(dir, "18-dtm-timezone.hl7"))
	if err != nil {
		t.Fatal(err)
	}
	var nack *mllp.NackError
	if _, err := client.Send(ctx, bad); !errors.As(err, &nack) || nack.Code != hl7.AckError {
		t.Errorf("Send(case 18) = %v, want an AE refusal", err)
	}
	info, err := d.b.StreamInfo(ctx, subjects.MessageStream)
	if err != nil || info.State.Msgs != uint64(len(sent)) {
		t.Fatalf("stream holds %v messages (%v), want %d: the refused message must not be stored", info, err, len(sent))
	}

	checkReceivedAndForward(t, ctx, ehr, sent)
}

// checkReceivedAndForward receives sent as ehr-ingest, checks every
// payload, and forwards each over MLLP the way `phix bridge mllp out`
// does, acknowledging it to phix only after the downstream AA.
func checkReceivedAndForward(t *testing.T, ctx context.Context, ehr *machine, sent map[string][]byte) {
	t.Helper()
	var mu sync.Mutex
	var downstream [][]byte
	out := serveMLLP(t, func(_ context.Context, raw []byte, _ *hl7.Message) error {
		mu.Lock()
		defer mu.Unlock()
		downstream = append(downstream, bytes.Clone(raw))
		return nil
	})
	fwd, err := mllp.NewClient(mllp.ClientConfig{Addr: out})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fwd.Close() })

	got := make(map[string][]byte)
	c := ehr.consumer(t, consumer.Config{})
	err = c.Run(ctx, len(sent), func(ctx context.Context, m *consumer.Message) error {
		if m.Sender != "lab-feed" || m.ContentType != "x-application/hl7-v2+er7" {
			t.Errorf("message %s from %s as %s, want lab-feed, HL7 v2", m.ID, m.Sender, m.ContentType)
		}
		if _, err := fwd.Send(ctx, m.Payload); err != nil {
			return err
		}
		got[m.ID] = bytes.Clone(m.Payload)
		return nil
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	for id, want := range sent {
		if !bytes.Equal(got[id], want) {
			t.Errorf("message %s: received payload differs from the bytes sent over MLLP", id)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(downstream) != len(sent) {
		t.Fatalf("downstream got %d messages, want %d", len(downstream), len(sent))
	}
	for _, raw := range downstream {
		found := false
		for _, want := range sent {
			found = found || bytes.Equal(raw, want)
		}
		if !found {
			t.Errorf("downstream got a message that differs from every one sent")
		}
	}
}
