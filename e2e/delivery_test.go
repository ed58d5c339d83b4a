package e2e_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"phix.dev/phix/consumer"
	"phix.dev/phix/producer"
)

// A handler that fails is offered the message again, and after MaxDeliver
// failures the message is quarantined with its reason, not dropped.
func TestHandlerFailureRedeliversThenQuarantines(t *testing.T) {
	d := startPhix(t)
	lab, ehr := d.connect(t, "lab-feed"), d.connect(t, "ehr-ingest")
	ctx := withTimeout(t, 30*time.Second)
	if _, err := lab.producer(t).Publish(ctx, []string{"ehr-ingest"}, []byte("synthetic order 1"), producer.WithType("hl7v2", "")); err != nil {
		t.Fatal(err)
	}

	var calls atomic.Int32
	var rejected atomic.Pointer[consumer.RejectError]
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := ehr.consumer(t, consumer.Config{
		MaxDeliver: 3,
		RetryDelay: 10 * time.Millisecond,
		OnReject: func(r *consumer.RejectError) {
			rejected.Store(r)
			cancel()
		},
	})
	errDown := errors.New("downstream EHR unavailable")
	err := c.Run(runCtx, 0, func(_ context.Context, m *consumer.Message) error {
		calls.Add(1)
		if m.Delivered != uint64(calls.Load()) {
			t.Errorf("delivery %d: Delivered = %d", calls.Load(), m.Delivered)
		}
		return errDown
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("handler called %d times, want 3", got)
	}
	r := rejected.Load()
	if r == nil || r.Reason != consumer.ReasonHandlerFailed || !errors.Is(r, errDown) {
		t.Fatalf("rejection = %v, want %s wrapping %v", r, consumer.ReasonHandlerFailed, errDown)
	}
	if n := d.quarantined(t); n != 1 {
		t.Errorf("quarantine holds %d messages, want 1", n)
	}
}

// A message is acknowledged only after the handler succeeds: a consumer
// that stops mid-handler leaves it for the next run.
func TestUnacknowledgedMessageIsDeliveredAgain(t *testing.T) {
	d := startPhix(t)
	lab, ehr := d.connect(t, "lab-feed"), d.connect(t, "ehr-ingest")
	ctx := withTimeout(t, 30*time.Second)
	rc, err := lab.producer(t).Publish(ctx, []string{"ehr-ingest"}, []byte("synthetic result 2"))
	if err != nil {
		t.Fatal(err)
	}

	// The first run "crashes" inside the handler: its context ends before
	// the handler returns, so nothing is acknowledged.
	runCtx, cancel := context.WithCancel(ctx)
	first := ehr.consumer(t, consumer.Config{RetryDelay: 10 * time.Millisecond})
	err = first.Run(runCtx, 1, func(context.Context, *consumer.Message) error {
		cancel()
		return errors.New("crashed before storing")
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("first Run = %v, want context.Canceled", err)
	}

	var got *consumer.Message
	second := ehr.consumer(t, consumer.Config{})
	err = second.Run(ctx, 1, func(_ context.Context, m *consumer.Message) error {
		got = m
		return nil
	})
	if err != nil {
		t.Fatalf("second Run = %v", err)
	}
	if got.ID != rc.MessageID || got.Delivered != 2 {
		t.Errorf("second run got message %s delivery %d, want %s delivery 2", got.ID, got.Delivered, rc.MessageID)
	}
}

// A sender that stores a captured envelope again, beyond the broker's
// deduplication, does not get it handed over twice: the second copy is
// quarantined as replayed.
func TestReplayedEnvelopeIsQuarantined(t *testing.T) {
	d := startPhix(t)
	lab, ehr := d.connect(t, "lab-feed"), d.connect(t, "ehr-ingest")
	ctx := withTimeout(t, 30*time.Second)
	if _, err := lab.producer(t).Publish(ctx, []string{"ehr-ingest"}, []byte("synthetic order 3"), producer.WithType("hl7v2", "")); err != nil {
		t.Fatal(err)
	}
	subject, sealed := fetchRaw(t, ehr) // taken out of the inbox unopened

	// The same envelope stored twice more, without a deduplication ID.
	for range 2 {
		if _, err := lab.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: sealed}); err != nil {
			t.Fatal(err)
		}
	}
	var handed atomic.Int32
	var rejected atomic.Pointer[consumer.RejectError]
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := ehr.consumer(t, consumer.Config{OnReject: func(r *consumer.RejectError) {
		rejected.Store(r)
		cancel()
	}})
	err := c.Run(runCtx, 0, func(context.Context, *consumer.Message) error {
		handed.Add(1)
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want context.Canceled", err)
	}
	if n := handed.Load(); n != 1 {
		t.Errorf("handler got the message %d times, want once", n)
	}
	if r := rejected.Load(); r == nil || r.Reason != consumer.ReasonReplayed {
		t.Errorf("rejection = %v, want %s", r, consumer.ReasonReplayed)
	}
	if n := d.quarantined(t); n != 1 {
		t.Errorf("quarantine holds %d messages, want 1", n)
	}
}
