package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/consumer"
	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/producer"
)

// ordinarySamples returns the ordinary HL7 v2 and FHIR messages (cases
// 39 to 48) by file name.
func ordinarySamples(t *testing.T) map[string][]byte {
	t.Helper()
	dir := casesDir(t)
	out := make(map[string][]byte)
	for n := 39; n <= 48; n++ {
		matches, _ := filepath.Glob(filepath.Join(dir, itoa(n)+"-*"))
		for _, m := range matches {
			if strings.HasSuffix(m, ".expect.txt") {
				continue
			}
			b, err := os.ReadFile(m)
			if err != nil {
				t.Fatal(err)
			}
			out[filepath.Base(m)] = b
		}
	}
	if len(out) != 10 {
		t.Fatalf("found %d ordinary samples in %s, want 10", len(out), dir)
	}
	return out
}

func itoa(n int) string { return string(rune('0'+n/10)) + string(rune('0'+n%10)) }

func typeOf(name string) (string, string) {
	if strings.HasSuffix(name, ".hl7") {
		return "hl7v2", "x-application/hl7-v2+er7"
	}
	return "fhir", "application/fhir+json"
}

// publishSamples sends every sample from lab-feed to ehr-ingest and
// returns the payloads by message ID.
func publishSamples(t *testing.T, lab *machine, samples map[string][]byte) map[string][]byte {
	t.Helper()
	ctx := withTimeout(t, 30*time.Second)
	p := lab.producer(t)
	sent := make(map[string][]byte)
	for name, payload := range samples {
		typ, ct := typeOf(name)
		rc, err := p.Publish(ctx, []string{"ehr-ingest"}, payload, producer.WithType(typ, ct))
		if err != nil {
			t.Fatalf("Publish(%s): %v", name, err)
		}
		sent[rc.MessageID] = payload
	}
	return sent
}

func TestOrdinarySamplesArriveByteIdentical(t *testing.T) {
	d := startPhix(t)
	lab, ehr := d.connect(t, "lab-feed"), d.connect(t, "ehr-ingest")
	sent := publishSamples(t, lab, ordinarySamples(t))

	got := make(map[string][]byte)
	c := ehr.consumer(t, consumer.Config{})
	err := c.Run(withTimeout(t, 30*time.Second), len(sent), func(_ context.Context, m *consumer.Message) error {
		if m.Sender != "lab-feed" {
			t.Errorf("message %s: Sender = %q, want lab-feed", m.ID, m.Sender)
		}
		got[m.ID] = bytes.Clone(m.Payload)
		return nil
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	for id, want := range sent {
		if !bytes.Equal(got[id], want) {
			t.Errorf("message %s: payload differs (got %d bytes, want %d)", id, len(got[id]), len(want))
		}
	}
}

func TestBillingCannotReadAnotherMachinesMessages(t *testing.T) {
	d := startPhix(t)
	lab := d.connect(t, "lab-feed")
	publishSamples(t, lab, ordinarySamples(t))

	billing := d.connect(t, "billing")
	var denied atomic.Int32
	billing.nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			denied.Add(1)
		}
	})
	ctx := withTimeout(t, 10*time.Second)

	attempts := map[string]func(context.Context) error{
		"pull from ehr-ingest's inbox consumer": func(ctx context.Context) error {
			_, err := billing.js.Consumer(ctx, subjects.MessageStream, subjects.InboxConsumer("ehr-ingest"))
			return err
		},
		"create its own consumer over ehr-ingest's subjects": func(ctx context.Context) error {
			_, err := billing.js.CreateConsumer(ctx, subjects.MessageStream, jetstream.ConsumerConfig{
				FilterSubject: subjects.InboxFilter("ehr-ingest"),
			})
			return err
		},
		"get a stored message directly": func(ctx context.Context) error {
			s, err := billing.js.Stream(ctx, subjects.MessageStream)
			if err != nil {
				return err
			}
			_, err = s.GetMsg(ctx, 1)
			return err
		},
	}
	for name, try := range attempts {
		t.Run(name, func(t *testing.T) {
			before := denied.Load()
			ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if err := try(ctx); err == nil {
				t.Fatalf("%s succeeded, want refusal", name)
			}
			// The refusal must come from the broker's permissions, not
			// from a missing stream or a slow server.
			waitFor(t, 5*time.Second, func() bool { return denied.Load() > before })
		})
	}

	// A plain subscription to the message subjects is refused by the
	// broker, which reports it asynchronously.
	before := denied.Load()
	sub, err := billing.nc.SubscribeSync(subjects.InboxFilter("ehr-ingest"))
	if err == nil {
		defer sub.Unsubscribe()
	}
	billing.nc.Flush()
	waitFor(t, 5*time.Second, func() bool { return denied.Load() > before })
	if _, err := sub.NextMsg(200 * time.Millisecond); err == nil {
		t.Errorf("billing received a message on %s", subjects.InboxFilter("ehr-ingest"))
	}
}

func TestNonRecipientCannotOpenHandedEnvelope(t *testing.T) {
	d := startPhix(t)
	lab, ehr, billing := d.connect(t, "lab-feed"), d.connect(t, "ehr-ingest"), d.connect(t, "billing")
	publishSamples(t, lab, map[string][]byte{"39.hl7": []byte("MSH|^~\\&|LAB|X|EHR|Y|20250315||ADT^A01|T1|P|2.5.1\rPID|1||SYN0001\r")})

	subject, data := fetchRaw(t, ehr)
	bc := billing.consumer(t, consumer.Config{})
	ctx := withTimeout(t, 5*time.Second)

	cases := []struct {
		name    string
		subject string
		want    consumer.Reason
	}{
		{"as delivered", subject, consumer.ReasonNotRecipient},
		{"moved to billing's subject", subjects.Message("lab-feed", "billing", "hl7v2"), consumer.ReasonSubjectMismatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := bc.Open(ctx, tc.subject, data)
			var rej *consumer.RejectError
			if !errors.As(err, &rej) || rej.Reason != tc.want {
				t.Fatalf("billing Open(%s) = %v, %v; want reject %s", tc.subject, m, err, tc.want)
			}
		})
	}
	if _, err := ehr.consumer(t, consumer.Config{}).Open(ctx, subject, data); err != nil {
		t.Fatalf("ehr-ingest Open of the same envelope: %v", err)
	}
}

// fetchRaw takes the next sealed message from m's inbox without opening it.
func fetchRaw(t *testing.T, m *machine) (string, []byte) {
	t.Helper()
	ctx := withTimeout(t, 10*time.Second)
	cons, err := m.js.Consumer(ctx, subjects.MessageStream, subjects.InboxConsumer(m.name))
	if err != nil {
		t.Fatalf("Consumer: %v", err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	if err := msg.Ack(); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	return msg.Subject(), bytes.Clone(msg.Data())
}

func TestStoreHoldsNoPlaintext(t *testing.T) {
	d := startPhix(t)
	lab := d.connect(t, "lab-feed")
	samples := ordinarySamples(t)
	publishSamples(t, lab, samples)
	d.b.Close() // flush the store to disk

	var store [][]byte
	err := filepath.WalkDir(d.dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		store = append(store, b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(store) == 0 {
		t.Fatal("data folder is empty")
	}
	for name, payload := range samples {
		for _, tok := range distinctive(payload) {
			for _, f := range store {
				if bytes.Contains(f, []byte(tok)) {
					t.Errorf("%s: %q found in the data folder", name, tok)
				}
			}
		}
	}
}

// distinctive returns the payload's runs of eight or more letters and
// digits: identifiers, names, codes. Random ciphertext matches none of
// them by chance.
func distinctive(payload []byte) []string {
	var toks []string
	for _, m := range regexp.MustCompile(`[A-Za-z0-9]{8,}`).FindAll(payload, -1) {
		toks = append(toks, string(m))
	}
	slices.Sort(toks)
	return slices.Compact(toks)
}

func TestEveryTamperedByteIsQuarantined(t *testing.T) {
	d := startPhix(t)
	lab, ehr := d.connect(t, "lab-feed"), d.connect(t, "ehr-ingest")
	publishSamples(t, lab, map[string][]byte{"x.hl7": []byte("MSH|^~\\&|LAB|X|EHR|Y|20250315||ORU^R01|T2|P|2.5.1\rOBX|1|NM|6690-2||11.8\r")})
	subject, data := fetchRaw(t, ehr)

	ctx := withTimeout(t, 120*time.Second)
	for i := range data {
		bad := bytes.Clone(data)
		bad[i] ^= 0xff
		if _, err := lab.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: bad}); err != nil {
			t.Fatalf("publishing tampered copy %d: %v", i, err)
		}
	}

	var mu sync.Mutex
	reasons := make(map[consumer.Reason]int)
	var rejected atomic.Int64
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := ehr.consumer(t, consumer.Config{OnReject: func(r *consumer.RejectError) {
		mu.Lock()
		reasons[r.Reason]++
		mu.Unlock()
		if rejected.Add(1) == int64(len(data)) {
			cancel()
		}
	}})
	err := c.Run(runCtx, 0, func(_ context.Context, m *consumer.Message) error {
		t.Errorf("tampered message %s was handed to the handler", m.ID)
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	if got := rejected.Load(); got != int64(len(data)) {
		t.Fatalf("rejected %d tampered copies, want %d", got, len(data))
	}
	t.Logf("rejections by reason over %d bytes: %v", len(data), reasons)

	cons, err := ehr.js.Consumer(ctx, subjects.MessageStream, subjects.InboxConsumer("ehr-ingest"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumPending != 0 || info.NumAckPending != 0 {
		t.Errorf("inbox after quarantine: pending %d, ack pending %d; want 0, 0", info.NumPending, info.NumAckPending)
	}
	if n := d.quarantined(t); n != uint64(len(data)) {
		t.Errorf("quarantine stream holds %d messages, want %d", n, len(data))
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
