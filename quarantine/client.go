package quarantine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"phix.dev/phix/internal/subjects"
)

// Client asks the broker's [Service] for quarantine operations as one
// machine (the operator). It is safe for concurrent use.
type Client struct {
	nc      *nats.Conn
	subject string
}

// NewClient returns a client that sends requests over nc, which must be
// connected as operator.
func NewClient(nc *nats.Conn, operator string) *Client {
	return &Client{nc: nc, subject: subjects.QuarantineAdmin(operator)}
}

// DefaultTimeout bounds a request whose context has no deadline. A
// machine the broker does not let send quarantine requests gets no answer
// at all (its publish is refused), so the wait must end.
const DefaultTimeout = 30 * time.Second

func (c *Client) do(ctx context.Context, req Request) (*Response, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	m, err := c.nc.RequestWithContext(ctx, c.subject, b)
	if err != nil {
		return nil, fmt.Errorf("quarantine: %s: %w", req.Action, err)
	}
	var resp Response
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return nil, fmt.Errorf("quarantine: %s: bad response", req.Action)
	}
	if resp.Error != "" {
		if e, ok := codes[resp.Code]; ok {
			return &resp, e
		}
		return &resp, errors.New("quarantine: " + resp.Error)
	}
	return &resp, nil
}

// List returns every quarantined message, oldest first.
func (c *Client) List(ctx context.Context) ([]Item, error) {
	resp, err := c.do(ctx, Request{Action: ActionList})
	if err != nil {
		return nil, err
	}
	return resp.Items, nil
}

// Show describes the quarantined message seq. It returns [ErrNotFound]
// if there is none.
func (c *Client) Show(ctx context.Context, seq uint64) (Item, error) {
	return c.one(ctx, Request{Action: ActionShow, Seq: seq})
}

// Release republishes message seq on its original subject, so that its
// recipient tries it again, and removes it from quarantine. It returns
// the message's new sequence in the message stream.
func (c *Client) Release(ctx context.Context, seq uint64) (Item, uint64, error) {
	resp, err := c.do(ctx, Request{Action: ActionRelease, Seq: seq})
	if err != nil {
		return Item{}, 0, err
	}
	if len(resp.Items) != 1 {
		return Item{}, 0, errors.New("quarantine: release: bad response")
	}
	return resp.Items[0], resp.ReleasedAs, nil
}

// Drop deletes message seq from quarantine for good.
func (c *Client) Drop(ctx context.Context, seq uint64) (Item, error) {
	return c.one(ctx, Request{Action: ActionDrop, Seq: seq})
}

func (c *Client) one(ctx context.Context, req Request) (Item, error) {
	resp, err := c.do(ctx, req)
	if err != nil {
		return Item{}, err
	}
	if len(resp.Items) != 1 {
		return Item{}, fmt.Errorf("quarantine: %s: bad response", req.Action)
	}
	return resp.Items[0], nil
}
