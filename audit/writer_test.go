package audit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"phix.dev/phix/audit"
	"phix.dev/phix/consumer"
	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/producer"
)

func TestWriterResumesAfterRestart(t *testing.T) {
	_, js := newJetStream(t)
	s := newSigner(t)
	cfg := audit.WriterConfig{Signer: s, CheckpointRecords: 3, HeartbeatInterval: time.Hour, CheckpointInterval: time.Hour}
	w := newWriter(t, js, cfg)
	appendN(t, w, 7)
	// No Close: as if the broker crashed two records after the last
	// checkpoint. A new writer resumes from it and the stored records.
	w3 := newWriter(t, js, cfg)
	if got, want := w3.Size(), uint64(1+7+1); got != want {
		t.Errorf("Size() after restart = %d, want %d", got, want)
	}
	appendN(t, w3, 1)
	w3.Close(ctxFor(t, 5*time.Second))

	rep, err := audit.Verify(bytes.NewReader(export(t, js)), audit.VerifyOptions{PublicKey: s.Public()})
	if err != nil {
		t.Fatalf("Verify() = %+v, %v; want nil", rep.Problems, err)
	}
}

func TestWriterRefusesSecondWriter(t *testing.T) {
	_, js := newJetStream(t)
	cfg := audit.WriterConfig{Signer: newSigner(t), HeartbeatInterval: time.Hour, CheckpointInterval: time.Hour}
	w1 := newWriter(t, js, cfg)
	w2 := newWriter(t, js, cfg) // starts after w1 and so knows w1's records
	if _, err := w1.Append(ctxFor(t, 5*time.Second), audit.Record{Kind: audit.KindHeartbeat}); !errors.Is(err, audit.ErrConflict) {
		t.Errorf("Append() by the first writer after a second started = %v, want ErrConflict", err)
	}
	if _, err := w2.Append(ctxFor(t, 5*time.Second), audit.Record{Kind: audit.KindHeartbeat}); err != nil {
		t.Errorf("Append() by the second writer = %v, want nil", err)
	}
}

func TestServeStampsReporter(t *testing.T) {
	nc, js := newJetStream(t)
	var got []audit.Record
	stored := make(chan audit.Record, 10)
	w := newWriter(t, js, audit.WriterConfig{
		Signer: newSigner(t), HeartbeatInterval: time.Hour, CheckpointInterval: time.Hour,
		OnRecord: func(r audit.Record) { stored <- r },
	})
	<-stored // start
	if err := w.Serve(nc); err != nil {
		t.Fatalf("Serve() = %v, want nil", err)
	}

	tests := []struct {
		name      string
		report    string
		wantError string
	}{
		{"a claimed actor is replaced", `{"kind":"open","actor":"billing","source":"broker","index":99,"message_id":"m1"}`, ""},
		{"a broker-only kind is refused", `{"kind":"connect","actor":"lab-feed"}`, "kind not reportable"},
		{"garbage is refused", `not json`, "malformed report"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := nc.Request(subjects.AuditReport("ehr-ingest"), []byte(tc.report), 5*time.Second)
			if err != nil {
				t.Fatalf("Request() = %v, want nil", err)
			}
			var rep audit.Reply
			json.Unmarshal(m.Data, &rep)
			if rep.Error != tc.wantError {
				t.Fatalf("report %s: reply error %q, want %q", tc.report, rep.Error, tc.wantError)
			}
			if tc.wantError == "" {
				got = append(got, <-stored)
			}
		})
	}
	want := audit.Record{Index: 1, Kind: audit.KindOpen, Actor: "ehr-ingest", Source: audit.SourceMachine, MessageID: "m1"}
	if diff := cmp.Diff([]audit.Record{want}, got, cmpIgnoreTime); diff != "" {
		t.Errorf("stored records (-want +got):\n%s", diff)
	}
}

var cmpIgnoreTime = cmp.Transformer("notime", func(r audit.Record) audit.Record {
	r.Time = time.Time{}
	return r
})

func TestReporter(t *testing.T) {
	nc, js := newJetStream(t)
	stored := make(chan audit.Record, 10)
	w := newWriter(t, js, audit.WriterConfig{
		Signer: newSigner(t), HeartbeatInterval: time.Hour, CheckpointInterval: time.Hour,
		OnRecord: func(r audit.Record) { stored <- r },
	})
	<-stored
	w.Serve(nc)

	r, err := audit.NewReporter(nc, "lab-feed", audit.ReporterConfig{})
	if err != nil {
		t.Fatalf("NewReporter() = %v, want nil", err)
	}
	digest := [32]byte{1, 2, 3}
	r.OnPublish(producer.PublishEvent{
		MessageID: "m1", Sender: "lab-feed", Recipient: "ehr-ingest", Recipients: []string{"ehr-ingest"},
		Subject: subjects.Message("lab-feed", "ehr-ingest", "hl7v2"), Type: "hl7v2", DataKeyID: "dk1",
		CiphertextDigest: digest, Size: 42, Seq: 7,
	})
	r.OnOpen(consumer.OpenEvent{MessageID: "m1", Opener: "lab-feed", Sender: "x", DataKeyID: "dk1", SignerKeyID: "ed25519:s1", WrapKeyVersion: "k1", KeyCached: true})
	r.OnReject(&consumer.RejectError{Reason: consumer.ReasonBadSignature, Subject: subjects.Message("x", "lab-feed", "fhir"), Seq: 9})
	if err := r.Close(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatalf("Close() = %v, want nil", err)
	}
	if r.Report(audit.Record{Kind: audit.KindOpen}) {
		t.Errorf("Report() after Close = true, want false")
	}
	if got, want := r.Stats(), (audit.ReporterStats{Stored: 3, Dropped: 1}); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
	var kinds []audit.Kind
	for range 3 {
		rec := <-stored
		if rec.Actor != "lab-feed" {
			t.Errorf("record %d actor = %q, want lab-feed", rec.Index, rec.Actor)
		}
		kinds = append(kinds, rec.Kind)
		if rec.Kind == audit.KindOpen && (!rec.KeyCached || rec.KeyVersion != "k1") {
			t.Errorf("open record = %+v, want key version k1 from cache", rec)
		}
	}
	if diff := cmp.Diff([]audit.Kind{audit.KindPublish, audit.KindOpen, audit.KindQuarantine}, kinds); diff != "" {
		t.Errorf("reported kinds (-want +got):\n%s", diff)
	}
}

func TestReporterDropsWhenFull(t *testing.T) {
	nc, _ := newJetStream(t)
	// Nobody answers: every send waits for its timeout.
	r, _ := audit.NewReporter(nc, "lab-feed", audit.ReporterConfig{Buffer: 2, Timeout: 50 * time.Millisecond})
	dropped := 0
	for range 10 {
		if !r.Report(audit.Record{Kind: audit.KindOpen}) {
			dropped++
		}
	}
	r.Close(ctxFor(t, 5*time.Second))
	st := r.Stats()
	if st.Dropped != uint64(dropped) || dropped < 7 || st.Stored != 0 || st.Failed+st.Dropped != 10 {
		t.Errorf("Stats() = %+v with %d refused, want the overflow dropped and the rest failed", st, dropped)
	}
}

func TestLoadOrCreateSigner(t *testing.T) {
	dir := t.TempDir()
	s1, err := audit.LoadOrCreateSigner(dir)
	if err != nil {
		t.Fatalf("LoadOrCreateSigner() = %v, want nil", err)
	}
	s2, err := audit.LoadOrCreateSigner(dir)
	if err != nil || s1.KeyID() != s2.KeyID() {
		t.Fatalf("LoadOrCreateSigner() again = %v, %v; want the same key", s2, err)
	}
	pub, err := audit.ReadPublicKey(filepath.Join(dir, audit.PublicKeyFile))
	if err != nil || !pub.Equal(s1.Public()) {
		t.Errorf("ReadPublicKey() = %v, want the signer's key", err)
	}
	fi, _ := os.Stat(filepath.Join(dir, audit.KeyFile))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	os.Chmod(filepath.Join(dir, audit.KeyFile), 0o644)
	if _, err := audit.LoadOrCreateSigner(dir); err == nil {
		t.Errorf("LoadOrCreateSigner() with a readable key = nil error, want refusal")
	}
}
