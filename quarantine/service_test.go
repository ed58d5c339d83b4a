package quarantine_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/audit"
	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/quarantine"
)

func TestServiceAuditsEveryRequest(t *testing.T) {
	srv, err := server.NewServer(&server.Options{DontListen: true, JetStream: true, StoreDir: t.TempDir(), NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	srv.ReadyForConnections(10 * time.Second)
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, s := range []jetstream.StreamConfig{
		{Name: subjects.MessageStream, Subjects: []string{subjects.MessagePrefix + ".*.*.*"}},
		{Name: subjects.QuarantineStream, Subjects: []string{subjects.QuarantinePrefix + ".>"}},
	} {
		if _, err := js.CreateStream(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	q := nats.NewMsg(subjects.Quarantine("ehr-ingest"))
	q.Data = []byte("sealed bytes")
	q.Header.Set(subjects.HeaderReason, "bad-signature")
	// A forged original subject naming another recipient.
	q.Header.Set(subjects.HeaderOriginalSubject, subjects.Message("lab-feed", "billing", "fhir"))
	if _, err := js.PublishMsg(ctx, q); err != nil {
		t.Fatal(err)
	}

	var recs []audit.Record
	svc := quarantine.NewService(js, func(m string) bool { return m == "auditor" },
		func(_ context.Context, r audit.Record) { recs = append(recs, r) })
	if _, err := svc.Serve(nc); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		operator string
		req      func(*quarantine.Client) error
		want     error
		outcome  audit.Outcome
	}{
		{"billing", func(c *quarantine.Client) error { _, err := c.List(ctx); return err }, quarantine.ErrDenied, audit.OutcomeRefused},
		{"auditor", func(c *quarantine.Client) error { _, err := c.List(ctx); return err }, nil, audit.OutcomeOK},
		{"auditor", func(c *quarantine.Client) error { _, err := c.Show(ctx, 7); return err }, quarantine.ErrNotFound, audit.OutcomeRefused},
		{"auditor", func(c *quarantine.Client) error { _, _, err := c.Release(ctx, 1); return err }, quarantine.ErrBadOriginal, audit.OutcomeRefused},
		{"auditor", func(c *quarantine.Client) error { _, err := c.Drop(ctx, 1); return err }, nil, audit.OutcomeOK},
	}
	for i, tc := range tests {
		err := tc.req(quarantine.NewClient(nc, tc.operator))
		if !errors.Is(err, tc.want) && (err != nil || tc.want != nil) {
			t.Errorf("request %d by %s = %v, want %v", i, tc.operator, err, tc.want)
		}
		if len(recs) != i+1 || recs[i].Actor != tc.operator || recs[i].Outcome != tc.outcome ||
			recs[i].Kind != audit.KindQuarantineAction {
			t.Errorf("request %d: audit records %+v, want one more by %s with outcome %s", i, recs, tc.operator, tc.outcome)
		}
	}
}
