package fhir

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Defaults of [Config].
const (
	DefaultMaxBodyBytes     = 16 << 20 // bytes of one request body
	DefaultNotificationPath = "/subscription-notification"
)

// HeaderMessageID is the response header that carries the phix message ID
// of an accepted request.
const HeaderMessageID = "Phix-Message-Id"

// PublishFunc seals raw, the request body exactly as received, and stores
// it for the bridge's recipients. It returns only once every recipient's
// copy is stored, with the message ID; an error means the sender must
// retry. resourceType is the top-level resource type (Bundle for
// transactions).
type PublishFunc func(ctx context.Context, resourceType string, raw []byte) (messageID string, err error)

// EventPublishFunc publishes the record of a subscription notification
// (see [Event]) the same way.
type EventPublishFunc func(ctx context.Context, ev *Event) (messageID string, err error)

// Config configures a [Handler]. Publish is required; the zero value of
// every other field selects the documented default.
type Config struct {
	// Publish stores accepted resources and Bundles.
	Publish PublishFunc

	// PublishEvent stores subscription notification records. Nil turns
	// the notification endpoint off (404), so that notifications are
	// never accepted and then dropped.
	PublishEvent EventPublishFunc

	// Lenient accepts unknown elements with a warning instead of refusing
	// the request; they stay in the forwarded bytes. It is a per-feed
	// choice of the operator: a sender can ask for strict handling with
	// "Prefer: handling=strict" but cannot ask for lenient handling.
	Lenient bool

	// MaxBodyBytes limits a request body; larger bodies get 413 before
	// any parsing. Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64

	// MaxBundleEntries limits the entries of a Bundle; a larger Bundle
	// gets 413 and nothing is published. Zero means
	// DefaultMaxBundleEntries; negative means no limit.
	MaxBundleEntries int

	// NotificationPath is the path, relative to the handler, of the
	// rest-hook endpoint for subscription notifications. Empty means
	// DefaultNotificationPath. Notifications POSTed to the base are
	// recognised too.
	NotificationPath string

	// Tracker follows subscription event numbers. Nil means a fresh
	// tracker owned by the handler.
	Tracker *Tracker

	// Now returns the current time; nil means time.Now.
	Now func() time.Time

	// OnRequest, if set, is called after each request with a summary
	// that holds no payload, for logs and metrics. It must not block.
	OnRequest func(RequestInfo)
}

// RequestInfo summarises one request for [Config.OnRequest]. It carries
// no resource content and no resource ids.
type RequestInfo struct {
	// Interaction is create, update, transaction, batch, notification or
	// unknown.
	Interaction  string
	ResourceType string
	Status       int    // HTTP status sent
	MessageID    string // phix message ID; empty if nothing was published
	Errors       int    // error issues reported
	Warnings     int    // warning issues reported
	Bytes        int    // request body bytes read
	Duration     time.Duration
	// Err is the publish error behind a 503, for the operator's log.
	Err error
}

func (c Config) withDefaults() (Config, error) {
	if c.Publish == nil {
		return c, errors.New("fhir: Config.Publish is required")
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.NotificationPath == "" {
		c.NotificationPath = DefaultNotificationPath
	}
	if !strings.HasPrefix(c.NotificationPath, "/") {
		c.NotificationPath = "/" + c.NotificationPath
	}
	if c.Tracker == nil {
		c.Tracker = NewTracker()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}
