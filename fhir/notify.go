package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// ErrNotNotification is returned by [ParseNotification] for a body that is
// not a subscription notification.
var ErrNotNotification = errors.New("fhir: not a subscription notification")

// Notification is an R4 subscription notification in the shape of the
// Subscriptions R5 Backport IG: a history Bundle whose first entry is a
// Parameters resource with the subscription status.
type Notification struct {
	// Subscription is the reference to the Subscription, such as
	// "https://ehr.example/fhir/Subscription/sub-42".
	Subscription string
	Topic        string
	Status       string
	// Type is handshake, heartbeat, event-notification, query-status or
	// query-event.
	Type string
	// EventsSinceStart is events-since-subscription-start, if Counted.
	EventsSinceStart uint64
	Counted          bool
	// Events lists the notification-event parameters.
	Events []NotificationEvent
}

// NotificationEvent is one notification-event of a [Notification]. It
// names the changed resource but does not carry it.
type NotificationEvent struct {
	Number    uint64 `json:"eventNumber"`
	Timestamp string `json:"timestamp,omitempty"`
	// Focus is the reference of the resource the event is about, which
	// the recipient fetches from the source server.
	Focus string `json:"focus,omitempty"`
}

// notifBundle is the part of a notification Bundle the bridge reads.
type notifBundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		Resource *struct {
			ResourceType string       `json:"resourceType"`
			Parameter    []notifParam `json:"parameter"`
		} `json:"resource"`
	} `json:"entry"`
}

type notifParam struct {
	Name           string                      `json:"name"`
	ValueReference *struct{ Reference string } `json:"valueReference"`
	ValueCanonical string                      `json:"valueCanonical"`
	ValueCode      string                      `json:"valueCode"`
	ValueString    string                      `json:"valueString"`
	ValueInstant   string                      `json:"valueInstant"`
	ValueUnsigned  json.Number                 `json:"valueUnsignedInt"`
	Part           []notifParam                `json:"part"`
}

func (p *notifParam) ref() string {
	if p.ValueReference == nil {
		return ""
	}
	return p.ValueReference.Reference
}

// number reads a parameter that holds an event count: valueString in the
// R4 backport (R4 has no 64-bit integer), valueUnsignedInt in older drafts.
func (p *notifParam) number() (uint64, bool, error) {
	s := p.ValueString
	if s == "" {
		s = p.ValueUnsigned.String()
	}
	if s == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("fhir: %s is not an event number", p.Name)
	}
	return n, true, nil
}

// ParseNotification reads a subscription notification. body should have
// passed [Validate]; ParseNotification checks only the notification shape.
// It returns [ErrNotNotification] if body is not a history Bundle that
// starts with a subscription status.
func ParseNotification(body []byte) (*Notification, error) {
	var b notifBundle
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&b); err != nil {
		return nil, ErrNotNotification
	}
	if b.ResourceType != "Bundle" || b.Type != "history" || len(b.Entry) == 0 ||
		b.Entry[0].Resource == nil || b.Entry[0].Resource.ResourceType != "Parameters" {
		return nil, ErrNotNotification
	}
	n := &Notification{}
	for i := range b.Entry[0].Resource.Parameter {
		if err := n.param(&b.Entry[0].Resource.Parameter[i]); err != nil {
			return nil, err
		}
	}
	if n.Subscription == "" || n.Type == "" {
		return nil, ErrNotNotification
	}
	return n, nil
}

func (n *Notification) param(p *notifParam) error {
	var err error
	switch p.Name {
	case "subscription":
		n.Subscription = p.ref()
	case "topic":
		n.Topic = p.ValueCanonical
	case "status":
		n.Status = p.ValueCode
	case "type":
		n.Type = p.ValueCode
	case "events-since-subscription-start":
		n.EventsSinceStart, n.Counted, err = p.number()
	case "notification-event":
		err = n.event(p.Part)
	}
	return err
}

func (n *Notification) event(parts []notifParam) error {
	var ev NotificationEvent
	numbered := false
	for i := range parts {
		p := &parts[i]
		switch p.Name {
		case "event-number":
			var err error
			if ev.Number, numbered, err = p.number(); err != nil {
				return err
			}
		case "timestamp":
			ev.Timestamp = p.ValueInstant
		case "focus":
			ev.Focus = p.ref()
		}
	}
	if !numbered {
		return errors.New("fhir: notification-event without an event-number")
	}
	n.Events = append(n.Events, ev)
	return nil
}

// Event kinds of an [Event].
const (
	// EventNotified reports events the source server notified: the
	// recipient fetches each focus (id-only) or queries for changes
	// (empty payload).
	EventNotified = "event"
	// EventCatchUp reports events that were never notified, found as a
	// gap in the event numbers: the recipient runs $events or a search
	// for them.
	EventCatchUp = "catch-up"
)

// Event is the record the bridge publishes for a subscription
// notification. Heartbeats and handshakes carry no clinical data and
// produce an Event only when they reveal missed events.
type Event struct {
	Kind             string              `json:"kind"`
	Subscription     string              `json:"subscription"`
	Topic            string              `json:"topic,omitempty"`
	NotificationType string              `json:"notificationType"`
	EventsSinceStart uint64              `json:"eventsSinceSubscriptionStart,omitempty"`
	Events           []NotificationEvent `json:"events,omitempty"`
	// Gap, if set, is the range of event numbers that were never
	// notified and must be caught up.
	Gap      *Gap   `json:"gap,omitempty"`
	Received string `json:"received"` // RFC 3339
	// Notification is the notification exactly as received (base64 in
	// JSON), so that a full-resource payload reaches the recipient.
	Notification []byte `json:"notification,omitempty"`

	receivedAt time.Time
}

// Gap is an inclusive range of missed event numbers.
type Gap struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// MarshalEvent encodes ev as the JSON published to recipients.
func MarshalEvent(ev *Event) []byte {
	b, err := json.Marshal(ev)
	if err != nil {
		// Only strings, numbers and bytes: this cannot fail.
		panic("fhir: marshalling event: " + err.Error())
	}
	return b
}
