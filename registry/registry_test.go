package registry

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestFilterSubject(t *testing.T) {
	tests := []struct {
		name string
		f    Filter
		want string
		err  error
	}{
		{"everything", Filter{}, "$KV.PHIX_DATAKEYS.*.*.*", nil},
		{"one reader", Filter{Reader: "billing"}, "$KV.PHIX_DATAKEYS.*.*.billing", nil},
		{"one data key", Filter{Sender: "lab-feed", DataKeyID: "ab12"}, "$KV.PHIX_DATAKEYS.lab-feed.ab12.*", nil},
		{"a wildcard smuggled in", Filter{Reader: "*"}, "", ErrInvalid},
		{"a dot in a data key ID", Filter{DataKeyID: "a.b"}, "", ErrInvalid},
		{"a record name", Filter{Reader: "_destroyed"}, "", ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.f.subject()
			if got != tt.want || !errors.Is(err, tt.err) {
				t.Errorf("Filter%+v.subject() = %q, %v; want %q, %v", tt.f, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestEntryFromMsg(t *testing.T) {
	msg := func(subject string, data string, op string) *jetstream.RawStreamMsg {
		h := nats.Header{}
		if op != "" {
			h.Set(kvOpHeader, op)
		}
		return &jetstream.RawStreamMsg{Subject: subject, Data: []byte(data), Header: h, Sequence: 7}
	}
	tests := []struct {
		name string
		m    *jetstream.RawStreamMsg
		ok   bool
	}{
		{"a wrapped key", msg("$KV.PHIX_DATAKEYS.lab-feed.ab12.billing", "w", ""), true},
		{"a tombstone", msg("$KV.PHIX_DATAKEYS.lab-feed.ab12._destroyed", "{}", ""), false},
		{"a grant record", msg("$KV.PHIX_DATAKEYS.lab-feed.ab12._grant_auditor", "{}", ""), false},
		{"a purge marker", msg("$KV.PHIX_DATAKEYS.lab-feed.ab12.billing", "", kvOpPurge), false},
		{"a delete marker", msg("$KV.PHIX_DATAKEYS.lab-feed.ab12.billing", "", kvOpDelete), false},
		{"another bucket", msg("$KV.OTHER.lab-feed.ab12.billing", "w", ""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, ok := entryFromMsg(tt.m)
			if ok != tt.ok {
				t.Fatalf("entryFromMsg(%s) = _, %v; want %v", tt.m.Subject, ok, tt.ok)
			}
			want := Entry{Sender: "lab-feed", DataKeyID: "ab12", Reader: "billing", Wrapped: []byte("w"), Revision: 7}
			if ok && !cmp.Equal(e, want) {
				t.Errorf("entryFromMsg = %+v, want %+v", e, want)
			}
		})
	}
}

func TestEntryValue(t *testing.T) {
	const subj = "$KV.PHIX_DATAKEYS.lab-feed.ab12.billing"
	reply := func(status, subject, op, data string) *nats.Msg {
		m := nats.NewMsg("_INBOX.billing.x")
		if status != "" {
			m.Header.Set(statusHeader, status)
		}
		if subject != "" {
			m.Header.Set(jetstream.SubjectHeader, subject)
		}
		if op != "" {
			m.Header.Set(kvOpHeader, op)
		}
		m.Data = []byte(data)
		return m
	}
	tests := []struct {
		name string
		m    *nats.Msg
		want error
	}{
		{"found", reply("", subj, "", "w"), nil},
		{"not found", reply(notFoundStatus, "", "", ""), ErrNotFound},
		{"purged", reply("", subj, kvOpPurge, ""), ErrDestroyed},
		{"deleted", reply("", subj, kvOpDelete, ""), ErrDestroyed},
		{"the server timed out", reply("408", "", "", ""), ErrUnavailable},
		{"another entry's value", reply("", "$KV.PHIX_DATAKEYS.lab-feed.ab12.ehr", "", "w"), errAny},
		{"empty", reply("", subj, "", ""), errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := entryValue(tt.m, subj)
			switch {
			case tt.want == errAny && err == nil:
				t.Errorf("entryValue = nil error, want one")
			case tt.want != errAny && !errors.Is(err, tt.want):
				t.Errorf("entryValue = %v, want %v", err, tt.want)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestKeyRefs(t *testing.T) {
	msgs := []Message{
		{ID: "m1", Sender: "lab", DataKeyID: "k1", Recipient: "a"},
		{ID: "m1", Sender: "lab", DataKeyID: "k1", Recipient: "b"},
		{ID: "m2", Sender: "lab", DataKeyID: "k1", Recipient: "a"},
		{ID: "m3", Sender: "lab", DataKeyID: "k2", Recipient: "a"},
	}
	want := []KeyRef{
		{Sender: "lab", DataKeyID: "k1", MessageIDs: []string{"m1", "m2"}},
		{Sender: "lab", DataKeyID: "k2", MessageIDs: []string{"m3"}},
	}
	if diff := cmp.Diff(want, KeyRefs(msgs)); diff != "" {
		t.Errorf("KeyRefs mismatch (-want +got):\n%s", diff)
	}
}
