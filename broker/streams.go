package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/policy"
)

// InboxAckWait is how long a message pulled through an inbox consumer may
// stay unacknowledged before JetStream redelivers it. Inbox consumers
// redeliver without limit; the consumer library decides when a message
// goes to quarantine instead.
const InboxAckWait = 30 * time.Second

// provision creates or updates the streams and one inbox consumer per
// machine, through an in-process connection authenticated with the
// broker's in-memory admin key. Running it on every start keeps existing
// messages and consumer state and applies configuration changes.
func (b *Broker) provision(ctx context.Context) error {
	nc, err := nats.Connect("",
		nats.InProcessServer(b.srv),
		nats.Nkey(b.adminPub, b.admin.Sign),
		nats.CustomInboxPrefix(adminInbox),
		nats.Name("phix-broker-admin"),
		nats.NoReconnect())
	if err != nil {
		return fmt.Errorf("connecting in-process: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return fmt.Errorf("opening jetstream: %v", err)
	}
	b.mu.Lock()
	b.nc, b.js = nc, js
	b.mu.Unlock()
	return b.provisionAccess(ctx, b.currentAccess())
}

// provisionAccess creates or updates the streams with a's retention and
// the inbox consumers of a. Inbox consumers of machines a no longer lets
// read are kept, unreachable, so that a machine that is let back in
// resumes where it stopped instead of receiving everything again.
func (b *Broker) provisionAccess(ctx context.Context, a *access) error {
	b.mu.Lock()
	js := b.js
	b.mu.Unlock()
	for _, cfg := range b.streamConfigs(a) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("creating stream %s: %w", cfg.Name, err)
		}
		b.log.LogAttrs(ctx, slog.LevelDebug, "stream ready", slog.String("stream", cfg.Name))
	}
	for _, ic := range a.consumers {
		if err := ensureConsumer(ctx, js, ic); err != nil {
			return err
		}
		b.log.LogAttrs(ctx, slog.LevelDebug, "consumer ready",
			slog.String("stream", ic.Stream),
			slog.String("consumer", ic.Durable))
	}
	return nil
}

// errFiltersNotApplied means the server answered a consumer update with
// filters other than those asked for.
var errFiltersNotApplied = errors.New("filters not applied")

// consumerUpdateAttempts bounds how often ensureConsumer asks for a
// consumer's configuration before giving up.
const consumerUpdateAttempts = 3

// ensureConsumer creates or updates ic and checks that its filters took
// effect. nats-server v2.15.3 answers the first update of a durable
// consumer recovered from disk with its old configuration, unchanged (to
// nats.go, a change from one filter to several then looks like
// [jetstream.ErrConsumerMultipleFilterSubjectsNotSupported]); asking
// again applies it. A filter must never silently stay wider than the
// policy, so the result is checked rather than trusted.
func ensureConsumer(ctx context.Context, js jetstream.JetStream, ic policy.InboxConsumer) error {
	cfg := inboxConsumerConfig(ic)
	var err error
	for range consumerUpdateAttempts {
		var c jetstream.Consumer
		c, err = js.CreateOrUpdateConsumer(ctx, ic.Stream, cfg)
		if err == nil && slices.Equal(consumerFilters(c.CachedInfo().Config), ic.Filters) {
			return nil
		}
		if err == nil {
			err = errFiltersNotApplied
		}
		if !errors.Is(err, errFiltersNotApplied) &&
			!errors.Is(err, jetstream.ErrConsumerMultipleFilterSubjectsNotSupported) {
			break
		}
	}
	return fmt.Errorf("creating consumer %s: %w", ic.Durable, err)
}

// consumerFilters returns the sorted filters of a consumer configuration.
func consumerFilters(c jetstream.ConsumerConfig) []string {
	out := slices.Clone(c.FilterSubjects)
	if c.FilterSubject != "" {
		out = append(out, c.FilterSubject)
	}
	slices.Sort(out)
	return out
}

func (b *Broker) streamConfigs(a *access) []jetstream.StreamConfig {
	return []jetstream.StreamConfig{
		{
			Name:        subjects.MessageStream,
			Description: "phix sealed messages, one copy per recipient",
			Subjects:    []string{subjects.MessagePrefix + ".*.*.*"},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Duplicates:  b.cfg.DuplicateWindow,
			MaxMsgSize:  int32(b.cfg.MaxPayload),
			MaxAge:      a.retention.Messages.D(),
			// Only the admin connection may call the stream API at all;
			// DenyDelete also stops it from removing single messages.
			DenyDelete: true,
		},
		{
			Name:        subjects.QuarantineStream,
			Description: "phix messages refused by their recipient, with a reason",
			Subjects:    []string{subjects.QuarantinePrefix + ".>"},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Duplicates:  b.cfg.DuplicateWindow,
			MaxAge:      a.retention.Quarantine.D(),
		},
		registryStreamConfig(b.cfg.MaxPayload), // registry.go
	}
}

// inboxConsumerConfig returns the JetStream configuration of ic. One
// filter goes in FilterSubject, as before policies existed, so that an
// unchanged consumer is not rewritten.
func inboxConsumerConfig(ic policy.InboxConsumer) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:       ic.Durable,
		Description:   "phix inbox of " + ic.Machine,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       InboxAckWait,
		MaxDeliver:    -1,
		// Every ack is sampled so the audit trail records each delivery.
		SampleFrequency: "100%",
	}
	if len(ic.Filters) == 1 {
		cfg.FilterSubject = ic.Filters[0]
	} else {
		cfg.FilterSubjects = ic.Filters
	}
	return cfg
}
