package registry

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors returned by this package. Callers branch on them with
// [errors.Is].
var (
	// ErrNotFound means the registry holds no wrapped key for the reader.
	ErrNotFound = errors.New("registry: no wrapped key")
	// ErrDestroyed means the data key was destroyed: its wrapped copies
	// are gone for good and its messages cannot be opened.
	ErrDestroyed = errors.New("registry: data key destroyed")
	// ErrUnavailable means the registry could not be reached or did not
	// answer in time. Retrying later may succeed.
	ErrUnavailable = errors.New("registry: unavailable")
	// ErrInvalid means a name or data key ID cannot be a registry key.
	ErrInvalid = errors.New("registry: invalid key")
)

// natsError classifies an error from a request to the broker: anything
// that is not an answer becomes [ErrUnavailable].
func natsError(op string, err error) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, nats.ErrTimeout), errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, jetstream.ErrNoStreamResponse):
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
	}
	return fmt.Errorf("registry: %s: %w", op, err)
}
