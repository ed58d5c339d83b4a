package cli

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"phix.dev/phix/hl7"
	"phix.dev/phix/internal/testcases"
	"phix.dev/phix/mllp"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of several
// commands.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer // guarded by mu
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitOutput polls out until re matches and returns the first submatch.
func waitOutput(t *testing.T, out *syncBuffer, re *regexp.Regexp) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[len(m)-1]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for output matching %s; got %q", re, out.String())
	return ""
}

// runCommand runs run in the background until the test ends, then
// interrupts it and checks it returned nil.
func runCommand(t *testing.T, ctx context.Context, name string, run func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s = %v, want nil after interrupt", name, err)
		}
	})
}

// TestBridgeMLLPCommands runs `phix up`, `bridge mllp in` as lab-feed and
// `bridge mllp out` as ehr-ingest, sends the ordinary HL7 cases in over
// MLLP and checks they come out downstream byte for byte, with nothing
// from them in the logs.
func TestBridgeMLLPCommands(t *testing.T) {
	cases := testcases.Dir(t)
	data := t.TempDir()
	out, logs := &syncBuffer{}, &syncBuffer{}
	e := &env{stdin: strings.NewReader(""), stdout: out, stderr: logs,
		log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	runCommand(t, ctx, "phix up", func(ctx context.Context) error {
		root := newRoot(strings.NewReader(""), out, logs)
		root.SetArgs([]string{"up", "--data", data, "--listen", "127.0.0.1:0", "--monitor", "off"})
		return root.ExecuteContext(ctx)
	})
	waitOutput(t, out, regexp.MustCompile(`press Ctrl-C`))

	downstream := &received{}
	srv, err := mllp.NewServer(mllp.ServerConfig{Handler: downstream.handle})
	if err != nil {
		t.Fatal(err)
	}
	dsAddr := serveLoopback(t, ctx, srv)

	runCommand(t, ctx, "bridge mllp in", func(ctx context.Context) error {
		cmd := newBridgeMLLP(e)
		cmd.SetArgs([]string{"in", "--identity", filepath.Join(data, "identities", "lab-feed"),
			"--to", "ehr-ingest", "--listen", "127.0.0.1:0"})
		return cmd.ExecuteContext(ctx)
	})
	inAddr := waitOutput(t, out, regexp.MustCompile(`mllp bridge listening on (\S+),`))

	files := []string{"39-adt-a01.hl7", "40-adt-a08.hl7", "41-oru-r01.hl7", "42-orm-o01.hl7", "43-siu-s12.hl7", "44-mdm-t02.hl7"}
	var sent [][]byte
	client, _ := mllp.NewClient(mllp.ClientConfig{Addr: inAddr})
	defer client.Close()
	sendCtx, sendCancel := context.WithTimeout(ctx, 30*time.Second)
	defer sendCancel()
	for _, f := range files {
		raw, err := os.ReadFile(filepath.Join(cases, f))
		if err != nil {
			t.Fatal(err)
		}
		ack, err := client.Send(sendCtx, raw)
		if err != nil || ack.Code != hl7.AckAccept {
			t.Fatalf("Send(%s) to bridge = %v, %v; want AA", f, ack, err)
		}
		sent = append(sent, raw)
	}
	bad, _ := os.ReadFile(filepath.Join(cases, "18-dtm-timezone.hl7"))
	if _, err := client.Send(sendCtx, bad); err == nil {
		t.Error("Send(case 18) to bridge accepted, want AE")
	}

	cmd := newBridgeMLLP(e)
	cmd.SetArgs([]string{"out", "--identity", filepath.Join(data, "identities", "ehr-ingest"),
		"--forward", dsAddr, "--count", "6"})
	outCtx, outCancel := context.WithTimeout(ctx, 60*time.Second)
	defer outCancel()
	if err := cmd.ExecuteContext(outCtx); err != nil {
		t.Fatalf("bridge mllp out = %v, want nil after 6 messages", err)
	}
	got := downstream.all()
	if len(got) != len(sent) {
		t.Fatalf("downstream got %d messages, want %d", len(got), len(sent))
	}
	for i := range sent {
		if !bytes.Equal(got[i], sent[i]) {
			t.Errorf("downstream message %d differs from %s as sent", i, files[i])
		}
	}
	for _, phi := range []string{"Examplename", "Morgan", "MRN300001", "Platelet", "pneumonia"} {
		if strings.Contains(logs.String(), phi) {
			t.Errorf("logs contain message content %q", phi)
		}
	}
}

type received struct {
	mu   sync.Mutex
	msgs [][]byte // guarded by mu
}

func (r *received) handle(_ context.Context, raw []byte, _ *hl7.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, bytes.Clone(raw))
	return nil
}

func (r *received) all() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.msgs...)
}

func serveLoopback(t *testing.T, ctx context.Context, srv *mllp.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	runCommand(t, ctx, "downstream mllp server", func(ctx context.Context) error { return srv.Serve(ctx, ln) })
	return ln.Addr().String()
}
