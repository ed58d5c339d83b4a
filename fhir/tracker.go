package fhir

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"
)

// SubscriptionState is what the bridge knows about one subscription.
type SubscriptionState struct {
	Subscription string
	Topic        string
	Status       string
	// LastEvent is the highest event number handled: published as an
	// event or covered by a catch-up. Zero before the first event.
	LastEvent uint64
	// LastNotification and LastHeartbeat are when the last notification
	// and the last heartbeat or handshake arrived.
	LastNotification time.Time
	LastHeartbeat    time.Time
	// Notifications counts the notifications received, duplicates
	// included.
	Notifications uint64
	// known is set once a notification set the baseline for gap
	// detection.
	known bool
}

// TODO(fhir-bridge): keep Tracker state in a JetStream key-value bucket so
// that gap detection survives a restart without Seed.

// Tracker follows subscriptions by their event numbers so that repeated
// notifications are ignored and missed ones are caught up. It is safe for
// concurrent use. The state lives in memory: after a restart the first
// notification of each subscription sets a new baseline.
type Tracker struct {
	mu   sync.Mutex
	subs map[string]*SubscriptionState // guarded by mu; by subscription reference
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	return &Tracker{subs: make(map[string]*SubscriptionState)}
}

// Seed records that events up to lastEvent of subscription were handled,
// as a baseline for gap detection, for example from a recipient's own
// records after a restart.
func (t *Tracker) Seed(subscription string, lastEvent uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.stateLocked(subscription)
	st.LastEvent, st.known = lastEvent, true
}

// Subscriptions returns a copy of every subscription's state, ordered by
// subscription reference.
func (t *Tracker) Subscriptions() []SubscriptionState {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]SubscriptionState, 0, len(t.subs))
	for _, st := range t.subs {
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Subscription < out[j].Subscription })
	return out
}

func (t *Tracker) stateLocked(subscription string) *SubscriptionState {
	st := t.subs[subscription]
	if st == nil {
		st = &SubscriptionState{Subscription: subscription}
		t.subs[subscription] = st
	}
	return st
}

// publishFunc publishes an event record and returns its message ID.
type publishFunc func(ctx context.Context, ev *Event) (string, error)

// handle decides what notification n means, publishes the resulting
// event record if any, and only then advances the state, so that a failed
// publish leaves the notification to be retried by its sender. It returns
// the message ID, or "" if nothing was published (heartbeat without a
// gap, repeated event). The lock is held across the publish so that two
// copies of one notification cannot both be published; notifications are
// small and rare enough for that.
func (t *Tracker) handle(ctx context.Context, n *Notification, ev *Event, publish publishFunc) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.stateLocked(n.Subscription)
	last := plan(st, n, ev)
	id := ""
	if ev.Kind != "" {
		var err error
		if id, err = publish(ctx, ev); err != nil {
			return "", err
		}
	}
	st.Topic, st.Status, st.known = n.Topic, n.Status, true
	st.LastNotification = ev.receivedAt
	if isHeartbeat(n.Type) {
		st.LastHeartbeat = ev.receivedAt
	}
	st.Notifications++
	st.LastEvent = max(st.LastEvent, last)
	return id, nil
}

// plan fills in ev for notification n given the subscription's state and
// returns the event number handled once ev is published. ev.Kind stays
// empty if there is nothing to publish.
func plan(st *SubscriptionState, n *Notification, ev *Event) uint64 {
	if isHeartbeat(n.Type) {
		switch {
		case !n.Counted:
			return 0
		case !st.known:
			// The first word from this subscription: its count is the
			// baseline, since earlier events are not this bridge's to
			// catch up.
			return n.EventsSinceStart
		case n.EventsSinceStart > st.LastEvent:
			ev.Kind = EventCatchUp
			ev.Gap = &Gap{From: st.LastEvent + 1, To: n.EventsSinceStart}
			return n.EventsSinceStart
		}
		return 0
	}
	if n.Type != "event-notification" {
		return 0 // query-status and query-event answer the bridge's own queries
	}
	events := n.Events
	if len(events) == 0 && n.Counted {
		// An "empty" payload names no event; the count stands for it.
		events = []NotificationEvent{{Number: n.EventsSinceStart}}
	}
	fresh := slices.DeleteFunc(slices.Clone(events), func(e NotificationEvent) bool {
		return st.known && e.Number <= st.LastEvent
	})
	if st.known && len(events) > 0 && len(fresh) == 0 {
		return 0 // a repeat of events already handled
	}
	ev.Kind, ev.Events = EventNotified, fresh
	var lo, hi uint64
	for i, e := range fresh {
		if i == 0 || e.Number < lo {
			lo = e.Number
		}
		hi = max(hi, e.Number)
	}
	if st.known && lo > st.LastEvent+1 {
		ev.Gap = &Gap{From: st.LastEvent + 1, To: lo - 1}
	}
	return hi
}

// isHeartbeat reports whether a notification type only shows liveness.
func isHeartbeat(typ string) bool { return typ == "heartbeat" || typ == "handshake" }
