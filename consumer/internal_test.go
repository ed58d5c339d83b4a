package consumer

import "testing"

func TestWrapVersion(t *testing.T) {
	tests := []struct {
		wrapped string
		want    string
	}{
		{"vault:v3:b64ciphertext", "vault:v3"},
		{"vault:v12:x", "vault:v12"},
		{"\x01\x02hpke-encapsulated-key", "local:hpke"},
		{"vault", "local:hpke"},
		{"", "local:hpke"},
	}
	for _, tc := range tests {
		if got := wrapVersion([]byte(tc.wrapped)); got != tc.want {
			t.Errorf("wrapVersion(%q) = %q, want %q", tc.wrapped, got, tc.want)
		}
	}
}

func TestSeenMessagesTellsReplayFromRedelivery(t *testing.T) {
	s := newSeenMessages()
	const subj = "phix.msg.lab-feed.ehr-ingest.hl7v2"
	steps := []struct {
		name    string
		id      string
		subject string
		seq     uint64
		want    bool
	}{
		{"first delivery", "m1", subj, 7, false},
		{"redelivery of the same copy", "m1", subj, 7, false},
		{"the same message stored again", "m1", subj, 9, true},
		{"the same id on another subject is another copy", "m1", "phix.msg.lab-feed.billing.hl7v2", 8, false},
		{"another message", "m2", subj, 10, false},
	}
	for _, st := range steps {
		if got := s.replayed(st.id, st.subject, st.seq); got != st.want {
			t.Errorf("%s: replayed(%s, seq %d) = %v, want %v", st.name, st.id, st.seq, got, st.want)
		}
	}
}
