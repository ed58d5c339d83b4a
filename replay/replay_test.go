package replay_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/keys"
	"phix.dev/phix/producer"
	"phix.dev/phix/replay"
)

// fixture is an in-process JetStream with the message stream and local
// keys for a sender, a recipient and an auditor.
type fixture struct {
	js   jetstream.JetStream
	keys map[string]keys.Provider
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv, err := server.NewServer(&server.Options{DontListen: true, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
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
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx(t), jetstream.StreamConfig{
		Name: subjects.MessageStream, Subjects: []string{subjects.MessagePrefix + ".*.*.*"},
	}); err != nil {
		t.Fatalf("CreateStream() = %v, want nil", err)
	}
	f := &fixture{js: js, keys: map[string]keys.Provider{}}
	dir := t.TempDir()
	names := []string{"lab-feed", "ehr-ingest", "auditor"}
	for _, n := range names {
		if err := keys.GenerateLocal(filepath.Join(dir, n), filepath.Join(dir, "directory"), n); err != nil {
			t.Fatalf("GenerateLocal(%s) = %v, want nil", n, err)
		}
	}
	for _, n := range names {
		kp, err := keys.OpenLocal(filepath.Join(dir, n), filepath.Join(dir, "directory"), n)
		if err != nil {
			t.Fatalf("OpenLocal(%s) = %v, want nil", n, err)
		}
		f.keys[n] = kp
	}
	return f
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestRunVerifiesWithoutDecrypting(t *testing.T) {
	f := newFixture(t)
	p, err := producer.New(f.js, f.keys["lab-feed"], producer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, to := range []string{"ehr-ingest", "auditor"} {
		rc, err := p.Publish(ctx(t), []string{to}, []byte("synthetic payload"), producer.WithType("fhir", "application/fhir+json"))
		if err != nil {
			t.Fatalf("Publish() = %v, want nil", err)
		}
		ids = append(ids, rc.MessageID)
	}
	ack, err := f.js.Publish(ctx(t), subjects.Message("lab-feed", "ehr-ingest", "fhir"), []byte("not an envelope"))
	if err != nil {
		t.Fatal(err)
	}

	var opened []string
	r, err := replay.Run(ctx(t), replay.Config{
		JS: f.js, Keys: f.keys["auditor"], Decrypt: true,
		OnPlaintext: func(m *replay.Message, payload []byte) error {
			opened = append(opened, m.MessageID)
			return nil
		},
	})
	if err != nil {
		t.Fatalf("Run() = %v, want nil", err)
	}
	bad := r.Bad()
	if len(bad) != 1 || bad[0].Seq != ack.Sequence || bad[0].Problem != replay.ProblemMalformed {
		t.Errorf("Run() bad = %+v, want only seq %d malformed", bad, ack.Sequence)
	}
	if len(opened) != 1 || opened[0] != ids[1] || r.Counts.Decrypted != 1 {
		t.Errorf("Run() decrypted %v, want only %s, the auditor's own", opened, ids[1])
	}
	if r.AuditTrail.Error == "" {
		t.Errorf("Run() without an audit stream: AuditTrail = %+v, want the error noted", r.AuditTrail)
	}

	if err := r.VerifySignature(ctx(t), f.keys["lab-feed"]); err != nil {
		t.Errorf("VerifySignature() = %v, want nil", err)
	}
	r.Messages[0].Status = replay.StatusFailed
	if err := r.VerifySignature(ctx(t), f.keys["lab-feed"]); !errors.Is(err, replay.ErrSignature) {
		t.Errorf("VerifySignature() after an edit = %v, want ErrSignature", err)
	}
}

func TestRunFilters(t *testing.T) {
	f := newFixture(t)
	p, _ := producer.New(f.js, f.keys["lab-feed"], producer.Config{})
	rc, err := p.Publish(ctx(t), []string{"ehr-ingest"}, []byte("a"), producer.WithType("fhir", "application/fhir+json"))
	if err != nil {
		t.Fatal(err)
	}
	p.Publish(ctx(t), []string{"auditor"}, []byte("b"), producer.WithType("hl7v2", "x"))
	tests := []struct {
		name   string
		filter replay.Filter
		want   int
	}{
		{"everything", replay.Filter{}, 2},
		{"by recipient", replay.Filter{Recipient: "auditor"}, 1},
		{"by type", replay.Filter{Type: "fhir"}, 1},
		{"by message id", replay.Filter{MessageID: rc.MessageID}, 1},
		{"by sender", replay.Filter{Sender: "ehr-ingest"}, 0},
		{"by time", replay.Filter{From: time.Now().Add(time.Hour)}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := replay.Run(ctx(t), replay.Config{JS: f.js, Keys: f.keys["auditor"], Filter: tc.filter})
			if err != nil || r.Counts.Total != tc.want {
				t.Errorf("Run(%+v) = %d messages, %v; want %d", tc.filter, r.Counts.Total, err, tc.want)
			}
		})
	}
}

func TestReportFormats(t *testing.T) {
	f := newFixture(t)
	p, _ := producer.New(f.js, f.keys["lab-feed"], producer.Config{})
	p.Publish(ctx(t), []string{"ehr-ingest"}, []byte("a"))
	r, err := replay.Run(ctx(t), replay.Config{JS: f.js, Keys: f.keys["auditor"]})
	if err != nil {
		t.Fatal(err)
	}
	var j, c, h bytes.Buffer
	if err := errors.Join(r.WriteJSON(&j), r.WriteCSV(&c), r.WriteHTML(&h)); err != nil {
		t.Fatalf("writing reports = %v, want nil", err)
	}
	back, err := replay.ReadJSON(&j)
	if err != nil || back.VerifySignature(ctx(t), f.keys["auditor"]) != nil {
		t.Errorf("JSON report read back: %v; want it to verify", err)
	}
	rows, err := csv.NewReader(&c).ReadAll()
	if err != nil || len(rows) != 3 || rows[2][0] != "#signature" {
		t.Errorf("CSV report = %v, %v; want header, one row, signature", rows, err)
	}
	page := h.String()
	for _, want := range []string{"<svg", "<circle", "<rect", "valid"} {
		if !strings.Contains(page, want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
	for _, never := range []string{"<script", "src=", "href=", "http://", "https://"} {
		if strings.Contains(page, never) {
			t.Errorf("HTML report contains %q; want a self-contained page", never)
		}
	}
}
