package e2e_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"phix.dev/phix/audit"
	"phix.dev/phix/broker"
	"phix.dev/phix/consumer"
	"phix.dev/phix/identity"
	"phix.dev/phix/internal/cli"
	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/keys"
	"phix.dev/phix/monitor"
	"phix.dev/phix/policy"
	"phix.dev/phix/producer"
	"phix.dev/phix/quarantine"
	"phix.dev/phix/replay"
	"phix.dev/phix/schemas"
)

// recorded collects the audit records a broker stores.
type recorded struct {
	mu   sync.Mutex // guards recs
	recs []audit.Record
}

func (r *recorded) add(rec audit.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
}

func (r *recorded) all() []audit.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.recs)
}

// find returns the records matching keep.
func (r *recorded) find(keep func(audit.Record) bool) []audit.Record {
	var out []audit.Record
	for _, rec := range r.all() {
		if keep(rec) {
			out = append(out, rec)
		}
	}
	return out
}

// waitRecord waits until a record matching keep is stored.
func (r *recorded) waitRecord(t testing.TB, what string, keep func(audit.Record) bool) audit.Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got := r.find(keep); len(got) > 0 {
			return got[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s record within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// auditPolicy is the default policy with a short idle timeout, so that an
// idle logoff happens within a test.
func auditPolicy(t testing.TB, idle string) *policy.Policy {
	t.Helper()
	y := strings.Replace(string(policy.Default()), "idle_timeout: 15m", "idle_timeout: "+idle, 1)
	p, err := policy.Parse("test-policy.yaml", []byte(y))
	if err != nil {
		t.Fatalf("policy.Parse: %v", err)
	}
	return p
}

// startAudited starts a deployment that enforces p, with the audit trail
// polling and checkpointing fast, and returns what it records. Each of
// observers also sees every record.
func startAudited(t testing.TB, p *policy.Policy, observers ...func(audit.Record)) (*deployment, *recorded) {
	t.Helper()
	dir := t.TempDir()
	if err := identity.Init(dir, p.Active()); err != nil {
		t.Fatalf("identity.Init: %v", err)
	}
	tlsConf, err := identity.BrokerTLS(dir)
	if err != nil {
		t.Fatalf("identity.BrokerTLS: %v", err)
	}
	rec := &recorded{}
	b, err := broker.New(broker.Config{
		StoreDir: dir,
		Port:     -1,
		TLS:      tlsConf,
		Policy:   p,
		Audit: broker.AuditConfig{
			HeartbeatInterval:  200 * time.Millisecond,
			CheckpointInterval: 200 * time.Millisecond,
			ConnPollInterval:   20 * time.Millisecond,
			OnRecord: func(r audit.Record) {
				rec.add(r)
				for _, o := range observers {
					o(r)
				}
			},
		},
	})
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	if err := b.Start(withTimeout(t, 30*time.Second)); err != nil {
		t.Fatalf("broker.Start: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	if err := identity.SetURL(dir, b.ClientURL()); err != nil {
		t.Fatalf("identity.SetURL: %v", err)
	}
	return &deployment{dir: dir, b: b}, rec
}

// reporter returns an audit reporter for m, closed (and flushed) at
// cleanup.
func (m *machine) reporter(t testing.TB) *audit.Reporter {
	t.Helper()
	r, err := audit.NewReporter(m.nc, m.name, audit.ReporterConfig{})
	if err != nil {
		t.Fatalf("audit.NewReporter: %v", err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

func TestAuditRecordsEveryEventKind(t *testing.T) {
	d, rec := startAudited(t, auditPolicy(t, "1s"))
	lab, ehr, billing := d.connect(t, "lab-feed"), d.connect(t, "ehr-ingest"), d.connect(t, "billing")
	ctx := withTimeout(t, 60*time.Second)

	// publish, then delivery and open with the key version
	labRep, ehrRep := lab.reporter(t), ehr.reporter(t)
	p, err := producer.New(lab.js, lab.keys, producer.Config{OnPublish: labRep.OnPublish})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := p.Publish(ctx, []string{"ehr-ingest"}, []byte("MSH|^~\\&|SYNTHETIC\r"), producer.WithType("hl7v2", "x-application/hl7-v2+er7"))
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	c := ehr.consumer(t, consumer.Config{OnOpen: ehrRep.OnOpen, OnReject: ehrRep.OnReject})
	if err := c.Run(ctx, 1, func(context.Context, *consumer.Message) error { return nil }); err != nil {
		t.Fatalf("Run: %v", err)
	}

	// quarantine: a copy with one flipped byte
	subject := subjects.Message("lab-feed", "ehr-ingest", "hl7v2")
	bad := []byte("not an envelope")
	if _, err := lab.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: bad}); err != nil {
		t.Fatalf("publishing a malformed copy: %v", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	c2 := ehr.consumer(t, consumer.Config{OnReject: func(r *consumer.RejectError) { ehrRep.OnReject(r); cancel() }})
	if err := c2.Run(runCtx, 0, func(context.Context, *consumer.Message) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run over a malformed copy = %v, want it quarantined", err)
	}

	// permission refusal: billing publishes as lab-feed
	billing.nc.Publish(subject, []byte("forged"))
	billing.nc.Flush()

	// authentication failure: a client with no certificate
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(d.dir, "ca", "ca.crt"))
	pool.AppendCertsFromPEM(caPEM)
	if nc, err := nats.Connect(d.b.ClientURL(), append(broker.ClientOptions("intruder",
		&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}), nats.NoReconnect())...); err == nil {
		nc.Close()
	}

	// operator and key events reported by a machine
	for _, k := range []audit.Kind{audit.KindKeyRotation, audit.KindRewrap, audit.KindGrant, audit.KindQuarantineAction} {
		labRep.Report(audit.Record{Kind: k, Target: "synthetic"})
	}

	// idle logoff of billing, after which it reconnects
	rec.waitRecord(t, "idle-logoff", func(r audit.Record) bool {
		return r.Kind == audit.KindIdleLogoff && r.Actor == "billing"
	})
	// a policy change
	if err := d.b.SetPolicy(ctx, auditPolicy(t, "1h")); err != nil {
		t.Fatalf("SetPolicy: %v", err)
	}
	billing.nc.Close()
	rec.waitRecord(t, "heartbeat", func(r audit.Record) bool { return r.Kind == audit.KindHeartbeat })
	labRep.Close(ctx)
	ehrRep.Close(ctx)

	checks := map[audit.Kind]func(audit.Record) bool{
		audit.KindStart:      func(r audit.Record) bool { return true },
		audit.KindConnect:    func(r audit.Record) bool { return r.Actor == "lab-feed" && r.Remote != "" },
		audit.KindDisconnect: func(r audit.Record) bool { return r.Actor == "billing" },
		audit.KindAuthFailure: func(r audit.Record) bool {
			return r.Reason == "TLS Handshake Failure" && r.Actor == ""
		},
		audit.KindPermissionRefusal: func(r audit.Record) bool {
			return r.Actor == "billing" && r.Subject == subject && r.Action == "publish"
		},
		audit.KindPublish: func(r audit.Record) bool {
			return r.Actor == "lab-feed" && r.MessageID == rc.MessageID && r.Digest != "" && r.Outcome == audit.OutcomeOK
		},
		audit.KindDelivery: func(r audit.Record) bool {
			return r.Actor == "ehr-ingest" && r.MessageID == rc.MessageID && r.Sender == "lab-feed"
		},
		audit.KindOpen: func(r audit.Record) bool {
			return r.Actor == "ehr-ingest" && r.MessageID == rc.MessageID && r.KeyVersion == "local:hpke" && r.DataKeyID != ""
		},
		audit.KindQuarantine: func(r audit.Record) bool {
			return r.Actor == "ehr-ingest" && r.Reason == string(consumer.ReasonMalformed)
		},
		audit.KindQuarantineAction: func(r audit.Record) bool { return r.Actor == "lab-feed" },
		audit.KindKeyRotation:      func(r audit.Record) bool { return r.Actor == "lab-feed" },
		audit.KindRewrap:           func(r audit.Record) bool { return r.Actor == "lab-feed" },
		audit.KindGrant:            func(r audit.Record) bool { return r.Actor == "lab-feed" },
		audit.KindPolicyChange:     func(r audit.Record) bool { return r.Target == "test-policy.yaml" },
		audit.KindIdleLogoff:       func(r audit.Record) bool { return r.Actor == "billing" },
		audit.KindHeartbeat:        func(r audit.Record) bool { return true },
	}
	for kind, ok := range checks {
		rec.waitRecord(t, string(kind), func(r audit.Record) bool { return r.Kind == kind && ok(r) })
	}

	// No record carries the payload.
	var buf bytes.Buffer
	if _, err := d.b.ExportAudit(ctx, &buf); err != nil {
		t.Fatalf("ExportAudit: %v", err)
	}
	if bytes.Contains(buf.Bytes(), []byte("SYNTHETIC")) {
		t.Errorf("the exported audit trail contains the payload")
	}
	d.b.Close()
	if got := rec.find(func(r audit.Record) bool { return r.Kind == audit.KindStop }); len(got) != 1 {
		t.Errorf("broker-stop records after Close = %d, want 1", len(got))
	}
}

// phix runs the command line and returns its exit status and output.
func phix(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Main(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestAuditVerifyCatchesTamperingOnExport(t *testing.T) {
	d, _ := startAudited(t, auditPolicy(t, "15m"))
	lab := d.connect(t, "lab-feed")
	rep := lab.reporter(t)
	p, err := producer.New(lab.js, lab.keys, producer.Config{OnPublish: rep.OnPublish})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := p.Publish(withTimeout(t, 10*time.Second), []string{"ehr-ingest"}, []byte("synthetic"), producer.WithType("fhir", "application/fhir+json")); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	rep.Close(withTimeout(t, 5*time.Second))

	exported := filepath.Join(t.TempDir(), "trail.jsonl")
	auditor := filepath.Join(d.dir, "identities", "auditor")
	if code, _, stderr := phix(t, "audit", "export", "--identity", auditor, "--out", exported); code != 0 {
		t.Fatalf("phix audit export = %d (%s), want 0", code, stderr)
	}
	key := filepath.Join(d.dir, "broker", audit.PublicKeyFile)
	if code, stdout, stderr := phix(t, "audit", "verify", "--key", key, exported); code != 0 {
		t.Fatalf("phix audit verify (untouched) = %d\n%s%s, want 0", code, stdout, stderr)
	}

	orig, err := os.ReadFile(exported)
	if err != nil {
		t.Fatal(err)
	}
	ls := bytes.SplitAfter(orig, []byte("\n"))
	var records []int
	for i, l := range ls {
		if bytes.Contains(l, []byte(`"kind":"publish"`)) {
			records = append(records, i)
		}
	}
	tests := []struct {
		name   string
		tamper func([][]byte) [][]byte
		want   audit.ProblemKind
	}{
		{"a modified record", func(ls [][]byte) [][]byte {
			ls[records[1]] = bytes.Replace(ls[records[1]], []byte(`"outcome":"ok"`), []byte(`"outcome":"failed"`), 1)
			return ls
		}, audit.ProblemRootMismatch},
		{"a deleted record", func(ls [][]byte) [][]byte {
			return slices.Delete(ls, records[2], records[2]+1)
		}, audit.ProblemMissing},
		{"an inserted record", func(ls [][]byte) [][]byte {
			return slices.Insert(ls, records[3], ls[records[0]])
		}, audit.ProblemDuplicate},
		{"reordered records", func(ls [][]byte) [][]byte {
			ls[records[1]], ls[records[2]] = ls[records[2]], ls[records[1]]
			return ls
		}, audit.ProblemReordered},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "tampered.jsonl")
			os.WriteFile(f, bytes.Join(tc.tamper(slices.Clone(ls)), nil), 0o600)
			code, stdout, _ := phix(t, "audit", "verify", "--key", key, f)
			if code == 0 || !strings.Contains(stdout, `"kind": "`+string(tc.want)+`"`) {
				t.Errorf("phix audit verify (%s) = %d\n%s\nwant failure naming %s", tc.name, code, stdout, tc.want)
			}
		})
	}
}

func TestQuarantineOperationsAudited(t *testing.T) {
	d, rec := startAudited(t, auditPolicy(t, "15m"))
	lab, ehr := d.connect(t, "lab-feed"), d.connect(t, "ehr-ingest")
	ctx := withTimeout(t, 60*time.Second)
	p := lab.producer(t)
	var ids []string
	for range 2 {
		rc, err := p.Publish(ctx, []string{"ehr-ingest"}, []byte("synthetic"), producer.WithType("hl7v2", ""))
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
		ids = append(ids, rc.MessageID)
	}
	// The application refuses both: they go to quarantine.
	runCtx, cancel := context.WithCancel(ctx)
	var n int
	c := ehr.consumer(t, consumer.Config{MaxDeliver: 1, OnReject: func(*consumer.RejectError) {
		if n++; n == 2 {
			cancel()
		}
	}})
	c.Run(runCtx, 0, func(context.Context, *consumer.Message) error { return errors.New("downstream down") })

	auditor := filepath.Join(d.dir, "identities", "auditor")
	code, stdout, stderr := phix(t, "quarantine", "list", "--identity", auditor)
	if code != 0 || !strings.Contains(stdout, ids[0]) || !strings.Contains(stdout, ids[1]) {
		t.Fatalf("phix quarantine list = %d\n%s%s\nwant both messages", code, stdout, stderr)
	}
	if code, stdout, _ := phix(t, "quarantine", "show", "--identity", auditor, "1"); code != 0 || !strings.Contains(stdout, `"reason": "handler-failed"`) {
		t.Errorf("phix quarantine show 1 = %d\n%s\nwant the handler-failed message", code, stdout)
	}
	if code, stdout, stderr := phix(t, "quarantine", "release", "--identity", auditor, "1"); code != 0 {
		t.Fatalf("phix quarantine release 1 = %d %s%s, want 0", code, stdout, stderr)
	}
	// The recipient gets the released message again and accepts it now.
	var got string
	if err := ehr.consumer(t, consumer.Config{}).Run(ctx, 1, func(_ context.Context, m *consumer.Message) error {
		got = m.ID
		return nil
	}); err != nil || got != ids[0] {
		t.Errorf("after release, Run received %q (%v), want %s", got, err, ids[0])
	}
	if code, _, stderr := phix(t, "quarantine", "drop", "--identity", auditor, "2"); code != 0 {
		t.Fatalf("phix quarantine drop 2 = %d %s, want 0", code, stderr)
	}
	if code, _, _ := phix(t, "quarantine", "drop", "--identity", auditor, "2"); code == 0 {
		t.Errorf("phix quarantine drop 2 again = 0, want failure")
	}
	if n := d.quarantined(t); n != 0 {
		t.Errorf("quarantine holds %d messages after release and drop, want 0", n)
	}
	// A machine that is not an auditor is refused by the broker.
	billing := filepath.Join(d.dir, "identities", "billing")
	if code, _, _ := phix(t, "quarantine", "list", "--identity", billing, "--timeout", "1s"); code == 0 {
		t.Errorf("phix quarantine list as billing = 0, want refusal")
	}

	for _, want := range []struct {
		action  string
		target  string
		outcome audit.Outcome
	}{
		{quarantine.ActionList, "", audit.OutcomeOK},
		{quarantine.ActionShow, "1", audit.OutcomeOK},
		{quarantine.ActionRelease, "1", audit.OutcomeOK},
		{quarantine.ActionDrop, "2", audit.OutcomeOK},
		{quarantine.ActionDrop, "2", audit.OutcomeRefused},
	} {
		rec.waitRecord(t, "quarantine "+want.action, func(r audit.Record) bool {
			return r.Kind == audit.KindQuarantineAction && r.Actor == "auditor" &&
				r.Action == want.action && r.Target == want.target && r.Outcome == want.outcome
		})
	}
	rec.waitRecord(t, "billing's refused request", func(r audit.Record) bool {
		return r.Kind == audit.KindPermissionRefusal && r.Actor == "billing" &&
			r.Subject == subjects.QuarantineAdmin("billing")
	})
	released := rec.find(func(r audit.Record) bool {
		return r.Kind == audit.KindQuarantineAction && r.Action == quarantine.ActionRelease
	})
	if len(released) != 1 || released[0].MessageID != ids[0] || released[0].Seq == 0 {
		t.Errorf("release records = %+v, want one naming %s and its new sequence", released, ids[0])
	}
}

func TestReplayNamesExactlyTheBadMessages(t *testing.T) {
	// The auditor also receives one flow, so that replay can show it
	// decrypts exactly what the auditor may read and nothing else.
	y := strings.Replace(string(policy.Default()), "flows:\n", "flows:\n  - from: lab-feed\n    to: [auditor]\n    types: [bin]\n", 1)
	pol, err := policy.Parse("replay-policy.yaml", []byte(y))
	if err != nil {
		t.Fatalf("policy.Parse: %v", err)
	}
	d, rec := startAudited(t, pol)
	lab, ehr := d.connect(t, "lab-feed"), d.connect(t, "ehr-ingest")
	ctx := withTimeout(t, 60*time.Second)
	labRep, ehrRep := lab.reporter(t), ehr.reporter(t)
	p, err := producer.New(lab.js, lab.keys, producer.Config{OnPublish: labRep.OnPublish})
	if err != nil {
		t.Fatal(err)
	}
	var valid []string
	for i := range 3 {
		rc, err := p.Publish(ctx, []string{"ehr-ingest"}, []byte("MSH|SYNTHETIC-PHI-"+itoa(i)), producer.WithType("hl7v2", ""))
		if err != nil {
			t.Fatalf("Publish: %v", err)
		}
		valid = append(valid, rc.MessageID)
	}
	forAuditor, err := p.Publish(ctx, []string{"auditor"}, []byte("synthetic note for the auditor"))
	if err != nil {
		t.Fatalf("Publish to auditor: %v", err)
	}
	valid = append(valid, forAuditor.MessageID)
	// ehr-ingest reads its three, so the openings are on record.
	c := ehr.consumer(t, consumer.Config{OnOpen: ehrRep.OnOpen})
	if err := c.Run(ctx, 3, func(context.Context, *consumer.Message) error { return nil }); err != nil {
		t.Fatalf("Run: %v", err)
	}

	// Bad copies: one with a flipped ciphertext byte (signature fails) and
	// one that is not an envelope, both stored by lab-feed on its own
	// subject; and one publish on record that was never stored.
	subject := subjects.Message("lab-feed", "ehr-ingest", "hl7v2")
	good := sealedCopy(t, d, subject)
	// A flipped ciphertext bit, re-encoded canonically: the envelope
	// decodes, but the signature no longer covers it.
	var pe schemas.Envelope
	if err := proto.Unmarshal(good, &pe); err != nil {
		t.Fatal(err)
	}
	pe.Ciphertext[len(pe.Ciphertext)/2] ^= 0x01
	flipped, err := proto.MarshalOptions{Deterministic: true}.Marshal(&pe)
	if err != nil {
		t.Fatal(err)
	}
	var badSeqs []uint64
	// ...and the good copy stored a second time: a replay.
	for _, data := range [][]byte{flipped, []byte("garbage, not an envelope"), good} {
		ack, err := lab.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data})
		if err != nil {
			t.Fatalf("storing a bad copy: %v", err)
		}
		badSeqs = append(badSeqs, ack.Sequence)
	}
	labRep.Report(audit.Record{
		Kind: audit.KindPublish, Outcome: audit.OutcomeOK, MessageID: "lost-in-transit", Sender: "lab-feed",
		Recipient: "ehr-ingest", Subject: subject, Type: "hl7v2", Seq: 9999,
	})
	labRep.Close(ctx)
	ehrRep.Close(ctx)

	out := t.TempDir()
	files := map[string]string{"json": "r.json", "csv": "r.csv", "html": "r.html"}
	auditor := filepath.Join(d.dir, "identities", "auditor")
	code, _, stderr := phix(t, "replay", "--identity", auditor,
		"--audit-key", filepath.Join(d.dir, "broker", audit.PublicKeyFile),
		"--json", filepath.Join(out, files["json"]), "--csv", filepath.Join(out, files["csv"]),
		"--html", filepath.Join(out, files["html"]))
	if code != 0 {
		t.Fatalf("phix replay = %d: %s", code, stderr)
	}
	f, _ := os.Open(filepath.Join(out, files["json"]))
	defer f.Close()
	r, err := replay.ReadJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	auditorKeys, err := identityKeys(t, d, "auditor")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.VerifySignature(ctx, auditorKeys); err != nil {
		t.Errorf("report signature: %v", err)
	}
	type verdict struct {
		Seq     uint64
		ID      string
		Status  replay.Status
		Problem string
	}
	var bad []verdict
	for _, m := range r.Bad() {
		bad = append(bad, verdict{m.Seq, m.MessageID, m.Status, m.Problem})
	}
	want := []verdict{
		{badSeqs[0], valid[2], replay.StatusFailed, replay.ProblemBadSignature},
		{badSeqs[1], "", replay.StatusFailed, replay.ProblemMalformed},
		{badSeqs[2], valid[2], replay.StatusFailed, replay.ProblemDuplicate},
		{9999, "lost-in-transit", replay.StatusMissing, replay.ProblemNotStored},
	}
	if !slices.Equal(bad, want) {
		t.Errorf("replay bad messages = %+v, want exactly %+v", bad, want)
	}
	if r.Counts.Valid != 4 || r.Counts.Decrypted != 0 || !r.AuditTrail.Verified {
		t.Errorf("replay counts %+v, audit trail %+v; want 4 valid, none decrypted, trail verified", r.Counts, r.AuditTrail)
	}
	for _, m := range r.Messages {
		if m.Status == replay.StatusValid && m.Recipient == "ehr-ingest" &&
			(len(m.Openings) != 1 || m.Openings[0].By != "ehr-ingest" || len(m.Deliveries) != 1 || !m.Published) {
			t.Errorf("message %s: openings %+v deliveries %+v published %v; want one of each from the trail",
				m.MessageID, m.Openings, m.Deliveries, m.Published)
		}
	}
	for name, file := range files {
		b, _ := os.ReadFile(filepath.Join(out, file))
		if bytes.Contains(b, []byte("SYNTHETIC-PHI")) {
			t.Errorf("%s report contains plaintext", name)
		}
		if name == "html" && (!bytes.Contains(b, []byte("<svg")) || bytes.Contains(b, []byte("src=")) || bytes.Contains(b, []byte("href="))) {
			t.Errorf("html report is not a self-contained page with inline charts")
		}
	}

	// Decrypting: the auditor opens only the message addressed to it, and
	// the opening is audited.
	plain := t.TempDir()
	code, stdout, stderr := phix(t, "replay", "--identity", auditor, "--decrypt", "--out", plain)
	if code != 0 {
		t.Fatalf("phix replay --decrypt = %d: %s", code, stderr)
	}
	r2, _ := replay.ReadJSON(strings.NewReader(stdout))
	got, _ := os.ReadDir(plain)
	if r2 == nil || r2.Counts.Decrypted != 1 || len(got) != 1 || !strings.HasPrefix(got[0].Name(), forAuditor.MessageID) {
		t.Errorf("replay --decrypt as auditor decrypted %v (files %v), want only %s", r2.Counts, got, forAuditor.MessageID)
	}
	rec.waitRecord(t, "replay opening", func(r audit.Record) bool {
		return r.Kind == audit.KindOpen && r.Actor == "auditor" && r.Action == "replay" && r.MessageID == forAuditor.MessageID
	})
	if n := len(rec.find(func(r audit.Record) bool { return r.Kind == audit.KindReplay && r.Actor == "auditor" })); n != 2 {
		t.Errorf("replay records = %d, want 2", n)
	}
}

// sealedCopy returns the stored bytes of the first message on subject,
// read through the broker's own view of the stream.
func sealedCopy(t testing.TB, d *deployment, subject string) []byte {
	t.Helper()
	auditor := d.connect(t, "auditor")
	s, err := auditor.js.Stream(withTimeout(t, 5*time.Second), subjects.MessageStream)
	if err != nil {
		t.Fatalf("auditor Stream: %v", err)
	}
	m, err := s.GetLastMsgForSubject(withTimeout(t, 5*time.Second), subject)
	if err != nil {
		t.Fatalf("GetLastMsgForSubject: %v", err)
	}
	return m.Data
}

func identityKeys(t testing.TB, d *deployment, name string) (*keys.Local, error) {
	t.Helper()
	m, err := identity.Load(filepath.Join(d.dir, "identities", name))
	if err != nil {
		return nil, err
	}
	return m.Keys()
}

func TestAnomaliesRaiseAlerts(t *testing.T) {
	y := strings.Replace(string(policy.Default()), "monitoring: {}\n",
		"monitoring:\n  refusals_per_minute: 3\n  failures_per_minute: 2\n  messages_per_minute: 50\n", 1)
	pol, err := policy.Parse("monitor-policy.yaml", []byte(y))
	if err != nil {
		t.Fatalf("policy.Parse: %v", err)
	}
	var b atomic.Pointer[broker.Broker]
	mon, err := monitor.New(monitor.Config{Policy: pol, Alert: func(a monitor.Alert) {
		data, _ := json.Marshal(a)
		if bb := b.Load(); bb != nil {
			bb.PublishAlert(data)
		}
	}})
	if err != nil {
		t.Fatalf("monitor.New: %v", err)
	}
	d, _ := startAudited(t, pol, mon.Observe)
	b.Store(d.b)

	// The auditor watches the alerts subject.
	auditor := d.connect(t, "auditor")
	alerts, err := auditor.nc.SubscribeSync(subjects.Alerts)
	if err != nil {
		t.Fatalf("auditor subscribing to alerts: %v", err)
	}
	auditor.nc.Flush()

	// Normal traffic: a few messages published, delivered and opened.
	lab, ehr, billing := d.connect(t, "lab-feed"), d.connect(t, "ehr-ingest"), d.connect(t, "billing")
	ctx := withTimeout(t, 30*time.Second)
	labRep, ehrRep := lab.reporter(t), ehr.reporter(t)
	p, _ := producer.New(lab.js, lab.keys, producer.Config{OnPublish: labRep.OnPublish})
	for range 5 {
		if _, err := p.Publish(ctx, []string{"ehr-ingest"}, []byte("synthetic"), producer.WithType("hl7v2", "")); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	c := ehr.consumer(t, consumer.Config{OnOpen: ehrRep.OnOpen, OnReject: ehrRep.OnReject})
	if err := c.Run(ctx, 5, func(context.Context, *consumer.Message) error { return nil }); err != nil {
		t.Fatalf("Run: %v", err)
	}
	labRep.Close(ctx)
	ehrRep.Close(ctx)
	if m, err := alerts.NextMsg(500 * time.Millisecond); err == nil {
		t.Fatalf("normal traffic raised alert %s", m.Data)
	}

	// Injected: billing probes subjects it may not use.
	for i := range 5 {
		billing.nc.Publish(subjects.Message("lab-feed", "billing", "x"+itoa(i)), []byte("probe"))
	}
	billing.nc.Flush()
	m, err := alerts.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no alert after a burst of permission refusals: %v", err)
	}
	var a monitor.Alert
	if err := json.Unmarshal(m.Data, &a); err != nil || a.Rule != monitor.RuleRefusalBurst {
		t.Errorf("alert = %s, want %s", m.Data, monitor.RuleRefusalBurst)
	}
	for _, a := range mon.Alerts() {
		if a.Rule != monitor.RuleRefusalBurst {
			t.Errorf("unexpected alert %+v", a)
		}
	}
}
