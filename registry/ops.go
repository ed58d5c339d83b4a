package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/keys"
)

// rewrapChunk is how many entries go to the [Rewrapper] at a time.
const rewrapChunk = 256

// Rewrapper re-encrypts wrapped data keys under the newest version of
// each reader's key, returning them in input order; [keys.VaultAdmin]
// satisfies it.
type Rewrapper interface {
	Rewrap(ctx context.Context, wrapped []keys.VaultWrappedKey) ([][]byte, error)
}

// Granter wraps, for the reader to, the data keys that from holds wrapped
// for other readers, returning them in input order; [keys.VaultAdmin]
// satisfies it.
type Granter interface {
	Grant(ctx context.Context, from []keys.VaultWrappedKey, to string) ([][]byte, error)
}

// RewrapResult counts what [Admin.Rewrap] did.
type RewrapResult struct {
	// Rewrapped is how many entries now hold a key wrapped under the
	// reader's newest key version.
	Rewrapped int
	// Changed is how many entries changed or were destroyed while being
	// rewrapped and were left as they were.
	Changed int
}

// Rewrap re-encrypts every entry of reader with rw, without the data keys
// or any message being touched, so that the reader's older key versions
// can then be retired. Entries that change meanwhile (a concurrent
// destroy) are skipped and counted. It stops at the first failure;
// running it again is safe.
func (a *Admin) Rewrap(ctx context.Context, rw Rewrapper, reader string) (RewrapResult, error) {
	var res RewrapResult
	if reader == "" {
		return res, fmt.Errorf("%w: empty reader", ErrInvalid)
	}
	entries, err := a.Entries(ctx, Filter{Reader: reader})
	if err != nil {
		return res, err
	}
	for start := 0; start < len(entries); start += rewrapChunk {
		chunk := entries[start:min(start+rewrapChunk, len(entries))]
		out, err := rw.Rewrap(ctx, vaultKeys(chunk))
		if err != nil {
			return res, fmt.Errorf("registry: rewrapping for %s: %w", reader, err)
		}
		for i, e := range chunk {
			err := a.Replace(ctx, e, out[i])
			switch {
			case errors.Is(err, jetstream.ErrKeyRevisionMismatch) || wrongLastSeq(err):
				res.Changed++
			case err != nil:
				return res, err
			default:
				res.Rewrapped++
			}
		}
	}
	return res, nil
}

func vaultKeys(es []Entry) []keys.VaultWrappedKey {
	out := make([]keys.VaultWrappedKey, len(es))
	for i, e := range es {
		out[i] = keys.VaultWrappedKey{Recipient: e.Reader, DataKeyID: e.DataKeyID, Wrapped: e.Wrapped}
	}
	return out
}

// KeyRef names one data key of one sender, and optionally the messages
// sealed under it, for the record.
type KeyRef struct {
	Sender     string
	DataKeyID  string
	MessageIDs []string
}

// GrantRequest asks for access to past messages for one reader.
type GrantRequest struct {
	// To is the reader that gets access, such as an auditor. It needs a
	// key with the provider (a Vault wrap key) to unwrap with.
	To string
	// Keys are the data keys to grant.
	Keys []KeyRef
	// By names who asked, and Reason why; both go into the record.
	By, Reason string
	// OnGrant, if set, is called with each record once it is stored, for
	// the audit trail; a later failure does not undo earlier grants. It
	// must not block.
	OnGrant func(GrantRecord)
}

// GrantRecord is the lasting record of one grant, stored in the registry
// beside the wrapped key it added and returned to the caller for the
// audit trail. It holds no key material.
type GrantRecord struct {
	Sender     string    `json:"sender"`
	DataKeyID  string    `json:"data_key_id"`
	To         string    `json:"to"`
	From       string    `json:"from"` // the reader whose copy was re-wrapped
	MessageIDs []string  `json:"message_ids,omitempty"`
	GrantedAt  time.Time `json:"granted_at"`
	By         string    `json:"by"`
	Reason     string    `json:"reason,omitempty"`
}

// grantRecordPrefix starts the last key token of a grant record; the
// grantee's name follows.
const grantRecordPrefix = "_grant_"

// Grant wraps each requested data key for req.To, using g on a copy
// wrapped for an existing reader, and stores the new entry together with
// a [GrantRecord]. The messages themselves are not touched. Keys already
// granted to req.To are left alone and not recorded again. It returns the
// records written; a destroyed key fails the grant with [ErrDestroyed],
// and a key the registry has no copy of with [ErrNotFound].
func (a *Admin) Grant(ctx context.Context, g Granter, req GrantRequest) ([]GrantRecord, error) {
	if !subjects.ValidName(req.To) {
		return nil, fmt.Errorf("%w: reader %q", ErrInvalid, req.To)
	}
	var todo []Entry
	var refs []KeyRef
	for _, ref := range req.Keys {
		from, done, err := a.grantSource(ctx, ref, req.To)
		if err != nil {
			return nil, err
		}
		if !done {
			todo, refs = append(todo, from), append(refs, ref)
		}
	}
	if len(todo) == 0 {
		return nil, nil
	}
	wrapped, err := g.Grant(ctx, vaultKeys(todo), req.To)
	if err != nil {
		return nil, fmt.Errorf("registry: granting to %s: %w", req.To, err)
	}

	var recs []GrantRecord
	for i, from := range todo {
		rec := GrantRecord{
			Sender: from.Sender, DataKeyID: from.DataKeyID, To: req.To, From: from.Reader,
			MessageIDs: refs[i].MessageIDs, GrantedAt: a.now().UTC(), By: req.By, Reason: req.Reason,
		}
		e := Entry{Sender: from.Sender, DataKeyID: from.DataKeyID, Reader: req.To, Wrapped: wrapped[i]}
		if err := a.add(ctx, e); err != nil {
			return recs, err
		}
		if err := a.putRecord(ctx, rec); err != nil {
			return recs, err
		}
		if req.OnGrant != nil {
			req.OnGrant(rec)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// grantSource finds an existing copy of ref's data key to grant from;
// done reports that to already has one.
func (a *Admin) grantSource(ctx context.Context, ref KeyRef, to string) (from Entry, done bool, err error) {
	if _, err := a.Tombstone(ctx, ref.Sender, ref.DataKeyID); err == nil {
		return Entry{}, false, fmt.Errorf("%w: %s of %s", ErrDestroyed, ref.DataKeyID, ref.Sender)
	} else if !errors.Is(err, ErrNotFound) {
		return Entry{}, false, err
	}
	es, err := a.Entries(ctx, Filter{Sender: ref.Sender, DataKeyID: ref.DataKeyID})
	if err != nil {
		return Entry{}, false, err
	}
	for _, e := range es {
		if e.Reader == to {
			return Entry{}, true, nil
		}
	}
	if len(es) == 0 {
		return Entry{}, false, fmt.Errorf("%w: %s of %s", ErrNotFound, ref.DataKeyID, ref.Sender)
	}
	return es[0], false, nil
}

func (a *Admin) putRecord(ctx context.Context, rec GrantRecord) error {
	key, err := recordKey(rec.Sender, rec.DataKeyID, grantRecordPrefix+rec.To)
	if err != nil {
		return err
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("registry: encoding grant record: %v", err)
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	if _, err := a.kv.Put(ctx, key, b); err != nil {
		return natsError("recording grant "+key, err)
	}
	return nil
}
