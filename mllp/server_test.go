package mllp_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"phix.dev/phix/hl7"
	"phix.dev/phix/mllp"
)

// recorder is a Handler that keeps what it was given.
type recorder struct {
	mu   sync.Mutex
	msgs [][]byte // guarded by mu
	err  error    // returned by the handler
}

func (r *recorder) handle(ctx context.Context, raw []byte, m *hl7.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, bytes.Clone(raw))
	return r.err
}

func (r *recorder) got() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.msgs...)
}

// testServer is a Server listening on a loopback port.
type testServer struct {
	srv  *mllp.Server
	addr string
	done chan error
	stop context.CancelFunc
}

func startServer(t testing.TB, cfg mllp.ServerConfig) *testServer {
	t.Helper()
	srv, err := mllp.NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{srv: srv, addr: ln.Addr().String(), done: make(chan error, 1), stop: cancel}
	go func() { ts.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ts.done; err != nil {
			t.Errorf("Serve = %v, want nil after shutdown", err)
		}
	})
	return ts
}

func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readAck reads one framed acknowledgement within 5 seconds.
func readAck(t testing.TB, r *mllp.Reader, c net.Conn) *hl7.Message {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	raw, err := r.ReadFrame()
	if err != nil {
		t.Fatalf("reading ack: %v", err)
	}
	m, err := hl7.Parse(raw)
	if err != nil {
		t.Fatalf("Parse(ack) = %v; ack %q", err, raw)
	}
	return m
}

func checkAck(t testing.TB, a *hl7.Message, code, id string) {
	t.Helper()
	if got, gotID := a.Get("MSA-1"), a.Get("MSA-2"); got != code || gotID != id {
		t.Errorf("ack MSA-1, MSA-2 = %s, %s; want %s, %s", got, gotID, code, id)
	}
}

// waitFor polls cond until it holds or 5 seconds pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestCase20SplitReads writes case 20 in the five writes its TEST HARNESS
// line gives, 20 ms apart, and checks that the one ACK comes only after
// the final CR.
func TestCase20SplitReads(t *testing.T) {
	raw := loadCase(t, "20-mllp-split-reads.hl7")
	rec := &recorder{}
	ts := startServer(t, mllp.ServerConfig{Handler: rec.handle})
	c := dial(t, ts.addr)
	r := mllp.NewReader(c, 0)
	for i, part := range splitAt(raw, 1, 25, 236, 237) {
		if i > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		if i == 4 {
			// Everything but the final CR is sent: no ACK may come yet.
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if f, err := r.ReadFrame(); !isTimeout(err) {
				t.Fatalf("before the final CR: ReadFrame = %q, %v; want a timeout", f, err)
			}
			r = mllp.NewReader(c, 0)
		}
		if _, err := c.Write(part); err != nil {
			t.Fatal(err)
		}
	}
	checkAck(t, readAck(t, r, c), "AA", "MLP0000020")
	got := rec.got()
	if len(got) != 1 || !bytes.Equal(got[0], raw[1:236]) {
		t.Fatalf("handler got %d messages, want exactly the 235-byte payload once", len(got))
	}
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := r.ReadFrame(); !isTimeout(err) {
		t.Errorf("second ReadFrame = %v, want a timeout: exactly one ACK", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestCase21TwoFramesOneRead writes both frames in one write.
func TestCase21TwoFramesOneRead(t *testing.T) {
	raw := loadCase(t, "21-mllp-two-frames-one-read.hl7")
	rec := &recorder{}
	ts := startServer(t, mllp.ServerConfig{Handler: rec.handle})
	c := dial(t, ts.addr)
	if _, err := c.Write(raw); err != nil {
		t.Fatal(err)
	}
	r := mllp.NewReader(c, 0)
	checkAck(t, readAck(t, r, c), "AA", "MLP0000211")
	checkAck(t, readAck(t, r, c), "AA", "MLP0000212")
	checkDelivered(t, rec, raw, "MLP0000211", "MLP0000212")
}

// TestCase23JunkAndTrailingLF writes the log line, both frames and their
// trailing LFs, and checks the junk is discarded and counted.
func TestCase23JunkAndTrailingLF(t *testing.T) {
	raw := loadCase(t, "23-mllp-junk-and-trailing-lf.hl7")
	rec := &recorder{}
	ts := startServer(t, mllp.ServerConfig{Handler: rec.handle})
	c := dial(t, ts.addr)
	if _, err := c.Write(raw); err != nil {
		t.Fatal(err)
	}
	r := mllp.NewReader(c, 0)
	checkAck(t, readAck(t, r, c), "AA", "MLP0000231")
	checkAck(t, readAck(t, r, c), "AA", "MLP0000232")
	checkDelivered(t, rec, raw, "MLP0000231", "MLP0000232")
	// The LF after the last frame is known to be junk only once the
	// stream ends without another start block.
	c.Close()
	waitFor(t, "40 discarded bytes", func() bool { return ts.srv.Stats().DiscardedBytes == 40 })
}

// checkDelivered checks that the handler got exactly the payloads of
// stream's frames, in order, with the given control IDs.
func checkDelivered(t testing.TB, rec *recorder, stream []byte, ids ...string) {
	t.Helper()
	want, _ := readAll(t, mllp.NewReader(bytes.NewReader(stream), 0))
	got := rec.got()
	if len(got) != len(ids) || len(want) != len(ids) {
		t.Fatalf("handler got %d messages, want %d", len(got), len(ids))
	}
	for i, id := range ids {
		m, err := hl7.Parse(got[i])
		if !bytes.Equal(got[i], want[i]) || err != nil || m.ControlID() != id {
			t.Errorf("message %d: control id %s, %v, exact %v; want %s, exact", i, m.ControlID(), err, bytes.Equal(got[i], want[i]), id)
		}
	}
}
