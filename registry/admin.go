package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/internal/subjects"
)

// Entry is one data key wrapped for one reader, as the registry holds it.
type Entry struct {
	Sender    string
	DataKeyID string
	Reader    string
	Wrapped   []byte
	// Revision is the entry's stream sequence, for replacing it only if
	// nobody changed it in between.
	Revision uint64
}

// Filter selects registry entries; an empty field matches anything.
type Filter struct {
	Sender    string
	DataKeyID string
	Reader    string
}

// Tombstone is the record a destroyed data key leaves behind. The sealed
// messages stay in the message stream with their signed headers; the
// tombstone says that their data key was destroyed on purpose, by whom and
// when, and which readers lost their copy.
type Tombstone struct {
	Sender      string    `json:"sender"`
	DataKeyID   string    `json:"data_key_id"`
	Readers     []string  `json:"readers"`
	DestroyedAt time.Time `json:"destroyed_at"`
	By          string    `json:"by"`
	Reason      string    `json:"reason,omitempty"`
}

// Admin manages the registry with the key administrator's permissions:
// it lists and replaces entries, erases them and writes records. It is
// safe for concurrent use.
type Admin struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	stream jetstream.Stream
	now    func() time.Time
}

// NewAdmin binds the registry bucket through js, which must carry the key
// administrator's permissions (or the broker's own). It fails if the
// broker has not created the bucket.
func NewAdmin(ctx context.Context, js jetstream.JetStream) (*Admin, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	kv, err := js.KeyValue(ctx, subjects.DataKeyBucket)
	if err != nil {
		return nil, natsError("binding bucket "+subjects.DataKeyBucket, err)
	}
	st, err := js.Stream(ctx, subjects.DataKeyStream)
	if err != nil {
		return nil, natsError("binding stream "+subjects.DataKeyStream, err)
	}
	return &Admin{js: js, kv: kv, stream: st, now: time.Now}, nil
}

// Entries returns the wrapped keys that match f, sorted by sender, data
// key ID and reader. Destroyed entries and records are left out. It reads
// the bucket one entry per request, so its cost grows with the number of
// matching entries.
func (a *Admin) Entries(ctx context.Context, f Filter) ([]Entry, error) {
	filter, err := f.subject()
	if err != nil {
		return nil, err
	}
	var out []Entry
	err = a.scan(ctx, a.stream, filter, func(m *jetstream.RawStreamMsg) error {
		e, ok := entryFromMsg(m)
		if ok {
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(x, y Entry) int {
		return strings.Compare(x.Sender+"."+x.DataKeyID+"."+x.Reader,
			y.Sender+"."+y.DataKeyID+"."+y.Reader)
	})
	return out, nil
}

// subject returns the stream subject filter of f.
func (f Filter) subject() (string, error) {
	tok := func(s string, valid func(string) bool) (string, error) {
		if s == "" {
			return "*", nil
		}
		if !valid(s) {
			return "", fmt.Errorf("%w: filter token %q", ErrInvalid, s)
		}
		return s, nil
	}
	s, err := tok(f.Sender, subjects.ValidName)
	if err != nil {
		return "", err
	}
	d, err := tok(f.DataKeyID, subjects.ValidDataKeyID)
	if err != nil {
		return "", err
	}
	r, err := tok(f.Reader, subjects.ValidName)
	if err != nil {
		return "", err
	}
	return subjects.DataKeySubject(subjects.DataKeyKey(s, d, r)), nil
}

// entryFromMsg turns a stored message into an entry; ok is false for
// records, delete and purge markers and anything malformed.
func entryFromMsg(m *jetstream.RawStreamMsg) (Entry, bool) {
	key, found := strings.CutPrefix(m.Subject, subjects.DataKeyPrefix+".")
	parts := strings.Split(key, ".")
	if !found || len(parts) != 3 || !subjects.ValidName(parts[0]) ||
		!subjects.ValidDataKeyID(parts[1]) || !subjects.ValidName(parts[2]) {
		return Entry{}, false
	}
	if op := m.Header.Get(kvOpHeader); op != "" || len(m.Data) == 0 {
		return Entry{}, false
	}
	return Entry{
		Sender: parts[0], DataKeyID: parts[1], Reader: parts[2],
		Wrapped: m.Data, Revision: m.Sequence,
	}, true
}

// scan calls fn for the latest message of every subject matching filter
// in st, in stream order.
func (a *Admin) scan(ctx context.Context, st jetstream.Stream, filter string,
	fn func(*jetstream.RawStreamMsg) error) error {
	for seq := uint64(1); ; {
		rctx, cancel := withDefaultTimeout(ctx)
		m, err := st.GetMsg(rctx, seq, jetstream.WithGetMsgSubject(filter))
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return natsError("reading "+filter, err)
		}
		if err := fn(m); err != nil {
			return err
		}
		seq = m.Sequence + 1
	}
}

// Replace stores wrapped as the new value of entry e, unless e changed
// since it was read; then it returns an error wrapping
// [jetstream.ErrKeyRevisionMismatch] and changes nothing.
func (a *Admin) Replace(ctx context.Context, e Entry, wrapped []byte) error {
	key, err := entryKey(e.Sender, e.DataKeyID, e.Reader)
	if err != nil {
		return err
	}
	if len(wrapped) == 0 || len(wrapped) > maxWrappedBytes {
		return fmt.Errorf("%w: wrapped key of %d bytes", ErrInvalid, len(wrapped))
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if _, err := a.kv.Update(ctx, key, wrapped, e.Revision); err != nil {
		return natsError("replacing "+key, err)
	}
	return nil
}

// add stores a new entry; it fails if the entry exists.
func (a *Admin) add(ctx context.Context, e Entry) error {
	key, err := entryKey(e.Sender, e.DataKeyID, e.Reader)
	if err != nil {
		return err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if _, err := a.kv.Create(ctx, key, e.Wrapped); err != nil {
		return natsError("adding "+key, err)
	}
	return nil
}

// Tombstone returns the record of the destroyed data key dataKeyID of
// sender, or [ErrNotFound] if it was not destroyed.
func (a *Admin) Tombstone(ctx context.Context, sender, dataKeyID string) (*Tombstone, error) {
	key, err := recordKey(sender, dataKeyID, subjects.DataKeyTombstone)
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	kve, err := a.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, natsError("reading "+key, err)
	}
	t := new(Tombstone)
	if err := json.Unmarshal(kve.Value(), t); err != nil {
		return nil, fmt.Errorf("registry: tombstone %s: %v", key, err)
	}
	return t, nil
}

// Destroy erases every wrapped copy of the data key dataKeyID of sender,
// so that no reader can open the messages sealed under it, and leaves a
// [Tombstone] naming by and reason. The tombstone is written first, so an
// interrupted Destroy never leaves keys erased without a record, and
// running Destroy again finishes the job and returns the first record.
// Each copy is overwritten in the store (a secure delete) before a purge
// marker takes its place, so readers see [ErrDestroyed].
//
// Destroy returns [ErrNotFound] if the registry holds neither copies nor
// a tombstone of the key: a key whose only copies travel inline in
// envelopes (the local provider) cannot be destroyed here.
//
// A reader that has the data key in its cache can still open messages
// until the cache entry expires (see consumer.Config.KeyCacheTTL).
func (a *Admin) Destroy(ctx context.Context, sender, dataKeyID, by, reason string) (*Tombstone, error) {
	entries, err := a.Entries(ctx, Filter{Sender: sender, DataKeyID: dataKeyID})
	if err != nil {
		return nil, err
	}
	t, err := a.Tombstone(ctx, sender, dataKeyID)
	switch {
	case errors.Is(err, ErrNotFound) && len(entries) == 0:
		return nil, ErrNotFound
	case errors.Is(err, ErrNotFound):
		if t, err = a.writeTombstone(ctx, sender, dataKeyID, entries, by, reason); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	}

	for _, e := range entries {
		if err := a.erase(ctx, e); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (a *Admin) writeTombstone(ctx context.Context, sender, dataKeyID string, entries []Entry,
	by, reason string) (*Tombstone, error) {
	t := &Tombstone{
		Sender: sender, DataKeyID: dataKeyID, DestroyedAt: a.now().UTC(),
		By: by, Reason: reason,
	}
	for _, e := range entries {
		t.Readers = append(t.Readers, e.Reader)
	}
	b, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("registry: encoding tombstone: %v", err)
	}
	key, err := recordKey(sender, dataKeyID, subjects.DataKeyTombstone)
	if err != nil {
		return nil, err
	}
	wctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if _, err := a.kv.Create(wctx, key, b); err != nil {
		if wrongLastSeq(err) {
			// Someone destroyed it at the same time: theirs is the record.
			return a.Tombstone(ctx, sender, dataKeyID)
		}
		return nil, natsError("writing tombstone "+key, err)
	}
	return t, nil
}

// erase overwrites the stored copy of e and leaves a purge marker.
func (a *Admin) erase(ctx context.Context, e Entry) error {
	key := subjects.DataKeyKey(e.Sender, e.DataKeyID, e.Reader)
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if err := a.stream.SecureDeleteMsg(ctx, e.Revision); err != nil &&
		!errors.Is(err, jetstream.ErrMsgNotFound) {
		return natsError("erasing "+key, err)
	}
	if err := a.kv.Purge(ctx, key); err != nil {
		return natsError("purging "+key, err)
	}
	return nil
}

// recordKey returns the key of a record (tombstone or grant) of a data key.
func recordKey(sender, dataKeyID, record string) (string, error) {
	if !subjects.ValidName(sender) || !subjects.ValidDataKeyID(dataKeyID) {
		return "", fmt.Errorf("%w: sender %q, data key ID %q", ErrInvalid, sender, dataKeyID)
	}
	return subjects.DataKeyKey(sender, dataKeyID, record), nil
}
