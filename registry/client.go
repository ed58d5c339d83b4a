package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/internal/subjects"
)

// defaultTimeout bounds one registry request when the caller's context has
// no deadline.
const defaultTimeout = 5 * time.Second

// Headers of a JetStream direct-get reply and of key-value markers.
const (
	statusHeader    = "Status"
	notFoundStatus  = "404"
	kvOpHeader      = "KV-Operation"
	kvOpDelete      = "DEL"
	kvOpPurge       = "PURGE"
	maxWrappedBytes = 4096 // as envelope.MaxWrappedKeySize
)

// Client is one machine's access to the registry: as a sender it stores
// the data keys it wrapped for its readers ([Client.Put]), as a reader it
// fetches the keys wrapped for it ([Client.Get]). It needs only the
// permissions the broker gives every machine. It is safe for concurrent
// use.
type Client struct {
	js      jetstream.JetStream
	machine string
}

// NewClient returns the registry client of machine, which must be the
// machine js is connected as: the broker's permissions are checked
// against the connection, and the client names the machine in every key.
func NewClient(js jetstream.JetStream, machine string) (*Client, error) {
	if js == nil {
		return nil, errors.New("registry: nil JetStream")
	}
	if err := subjects.CheckName(machine); err != nil {
		return nil, fmt.Errorf("%w: machine: %v", ErrInvalid, err)
	}
	return &Client{js: js, machine: machine}, nil
}

// Machine returns the name of the machine the client acts as.
func (c *Client) Machine() string { return c.machine }

// Put stores the data key dataKeyID wrapped for reader, with the client's
// machine as sender, and returns once the broker has stored it. An entry
// is written once: data key IDs are random, so an entry that already
// exists was stored by an earlier attempt of the same Put, and Put
// reports success. Errors match [ErrInvalid] or [ErrUnavailable], or are
// the broker's refusal.
func (c *Client) Put(ctx context.Context, dataKeyID, reader string, wrapped []byte) error {
	key, err := entryKey(c.machine, dataKeyID, reader)
	if err != nil {
		return err
	}
	if len(wrapped) == 0 || len(wrapped) > maxWrappedBytes {
		return fmt.Errorf("%w: wrapped key of %d bytes", ErrInvalid, len(wrapped))
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	msg := &nats.Msg{Subject: subjects.DataKeySubject(key), Data: wrapped}
	_, err = c.js.PublishMsg(ctx, msg,
		jetstream.WithExpectStream(subjects.DataKeyStream),
		jetstream.WithExpectLastSequencePerSubject(0))
	if wrongLastSeq(err) {
		return nil
	}
	if err != nil {
		return natsError("storing "+key, err)
	}
	return nil
}

// Get fetches the data key dataKeyID of sender wrapped for the client's
// machine. It returns [ErrNotFound] if there is none, [ErrDestroyed] if
// the data key was destroyed, and [ErrUnavailable] if the registry did not
// answer.
func (c *Client) Get(ctx context.Context, sender, dataKeyID string) ([]byte, error) {
	key, err := entryKey(sender, dataKeyID, c.machine)
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	resp, err := c.js.Conn().RequestWithContext(ctx, subjects.DataKeyGet(key), nil)
	if err != nil {
		return nil, natsError("fetching "+key, err)
	}
	return entryValue(resp, subjects.DataKeySubject(key))
}

// entryValue interprets a direct-get reply for the entry on subject.
func entryValue(resp *nats.Msg, subject string) ([]byte, error) {
	switch status := resp.Header.Get(statusHeader); status {
	case "":
	case notFoundStatus:
		return nil, ErrNotFound
	default:
		return nil, fmt.Errorf("%w: direct get status %s", ErrUnavailable, status)
	}
	if got := resp.Header.Get(jetstream.SubjectHeader); got != subject {
		return nil, fmt.Errorf("registry: reply names subject %q, want %q", got, subject)
	}
	switch resp.Header.Get(kvOpHeader) {
	case kvOpDelete, kvOpPurge:
		return nil, ErrDestroyed
	}
	if len(resp.Data) == 0 || len(resp.Data) > maxWrappedBytes {
		return nil, fmt.Errorf("registry: entry %s holds %d bytes", subject, len(resp.Data))
	}
	return resp.Data, nil
}

// wrongLastSeq reports whether err is the broker's refusal of a write
// whose expected last sequence did not match: the entry exists.
func wrongLastSeq(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && (ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		ae.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// entryKey checks the three tokens of a registry key and joins them.
func entryKey(sender, dataKeyID, reader string) (string, error) {
	if !subjects.ValidName(sender) || !subjects.ValidName(reader) {
		return "", fmt.Errorf("%w: sender %q, reader %q", ErrInvalid, sender, reader)
	}
	if !subjects.ValidDataKeyID(dataKeyID) {
		return "", fmt.Errorf("%w: data key ID %q", ErrInvalid, dataKeyID)
	}
	return subjects.DataKeyKey(sender, dataKeyID, reader), nil
}

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultTimeout)
}
