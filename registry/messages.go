package registry

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/internal/subjects"
)

// Message is one stored copy of a message, still sealed, as
// [Admin.FindMessages] finds it.
type Message struct {
	ID        string
	Sender    string
	Recipient string // the copy's recipient
	Subject   string
	DataKeyID string
	Seq       uint64
	// Data is the sealed envelope. It is safe to hand to a reader that
	// was granted its key: nothing in it is readable without the key.
	Data []byte
}

// FindMessages returns every stored copy of the messages with the given
// IDs, in stream order, reading the message stream one message per
// request. It fails if any ID is not found. Envelopes that do not decode
// are passed over.
func (a *Admin) FindMessages(ctx context.Context, ids []string) ([]Message, error) {
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	rctx, cancel := withDefaultTimeout(ctx)
	st, err := a.js.Stream(rctx, subjects.MessageStream)
	cancel()
	if err != nil {
		return nil, natsError("binding stream "+subjects.MessageStream, err)
	}

	var out []Message
	found := make(map[string]bool)
	err = a.scan(ctx, st, subjects.MessagePrefix+".>", func(m *jetstream.RawStreamMsg) error {
		env, err := envelope.Decode(m.Data)
		if err != nil {
			return nil
		}
		h := env.Header()
		if !want[h.MessageID] {
			return nil
		}
		_, rcpt, _, _ := subjects.ParseMessage(m.Subject)
		found[h.MessageID] = true
		out = append(out, Message{
			ID: h.MessageID, Sender: h.Sender, Recipient: rcpt, Subject: m.Subject,
			DataKeyID: h.DataKeyID, Seq: m.Sequence, Data: m.Data,
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, id := range ids {
		if !found[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return out, fmt.Errorf("%w: messages %s", ErrNotFound, strings.Join(missing, ", "))
	}
	return out, nil
}

// KeyRefs returns the distinct data keys of msgs, each with the IDs of
// its messages, in the order first seen.
func KeyRefs(msgs []Message) []KeyRef {
	var refs []KeyRef
	at := make(map[string]int)
	for _, m := range msgs {
		k := m.Sender + "." + m.DataKeyID
		i, ok := at[k]
		if !ok {
			i = len(refs)
			at[k] = i
			refs = append(refs, KeyRef{Sender: m.Sender, DataKeyID: m.DataKeyID})
		}
		if !slices.Contains(refs[i].MessageIDs, m.ID) {
			refs[i].MessageIDs = append(refs[i].MessageIDs, m.ID)
		}
	}
	return refs
}
