package e2e_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"phix.dev/phix/consumer"
	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/producer"
)

// BenchmarkPublish compares a sealed publish with a plain JetStream publish
// of the same number of bytes, on the same broker, TLS connection and
// stream, in the same run. The ratio of the two is the cost of sealing.
//
//	go test ./e2e -run '^$' -bench Publish -benchmem
func BenchmarkPublish(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		payload := make([]byte, size)
		rand.Read(payload)
		b.Run(fmt.Sprintf("plain/%dKiB", size>>10), func(b *testing.B) {
			d := startPhix(b)
			lab := d.connect(b, "lab-feed")
			subject := subjects.Message("lab-feed", "ehr-ingest", "bin")
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := lab.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: payload}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("sealed/%dKiB", size>>10), func(b *testing.B) {
			d := startPhix(b)
			p := d.connect(b, "lab-feed").producer(b)
			ctx := context.Background()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Publish(ctx, []string{"ehr-ingest"}, payload); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(p.DataKeysIssued()), "datakeys")
		})
	}
}

// BenchmarkReceive compares pulling, verifying and opening sealed messages
// with pulling plain ones through the same inbox consumer.
func BenchmarkReceive(b *testing.B) {
	const size = 1 << 10
	payload := make([]byte, size)
	rand.Read(payload)

	b.Run("plain/1KiB", func(b *testing.B) {
		d := startPhix(b)
		lab, ehr := d.connect(b, "lab-feed"), d.connect(b, "ehr-ingest")
		subject := subjects.Message("lab-feed", "ehr-ingest", "bin")
		for range b.N {
			if _, err := lab.js.PublishMsg(context.Background(), &nats.Msg{Subject: subject, Data: payload}); err != nil {
				b.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cons, err := ehr.js.Consumer(ctx, subjects.MessageStream, subjects.InboxConsumer("ehr-ingest"))
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(size)
		b.ReportAllocs()
		b.ResetTimer()
		for got := 0; got < b.N; {
			batch, err := cons.Fetch(min(64, b.N-got))
			if err != nil {
				b.Fatal(err)
			}
			for m := range batch.Messages() {
				if err := m.DoubleAck(ctx); err != nil {
					b.Fatal(err)
				}
				got++
			}
		}
	})
	b.Run("sealed/1KiB", func(b *testing.B) {
		d := startPhix(b)
		lab, ehr := d.connect(b, "lab-feed"), d.connect(b, "ehr-ingest")
		p := lab.producer(b)
		for range b.N {
			if _, err := p.Publish(context.Background(), []string{"ehr-ingest"}, payload, producer.WithType("bin", "")); err != nil {
				b.Fatal(err)
			}
		}
		c := ehr.consumer(b, consumer.Config{})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		b.SetBytes(size)
		b.ReportAllocs()
		b.ResetTimer()
		if err := c.Run(ctx, b.N, func(context.Context, *consumer.Message) error { return nil }); err != nil {
			b.Fatal(err)
		}
	})
}
