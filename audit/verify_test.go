package audit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"phix.dev/phix/audit"
)

// sealedTrail returns an export of a closed trail of some records with
// checkpoints every 4 records, and the key that signed it. The clock
// moves one second per record so that times are distinct.
func sealedTrail(t *testing.T) ([]byte, *audit.Signer) {
	t.Helper()
	_, js := newJetStream(t)
	s, clk := newSigner(t), newClock()
	w := newWriter(t, js, audit.WriterConfig{
		Signer: s, Now: clk.Now, CheckpointRecords: 4,
		HeartbeatInterval: time.Hour, CheckpointInterval: time.Hour,
	})
	for range 10 {
		clk.advance(time.Second)
		appendN(t, w, 1)
	}
	if err := w.Close(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatalf("Close() = %v, want nil", err)
	}
	return export(t, js), s
}

func lines(b []byte) [][]byte {
	return bytes.SplitAfter(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

// recordLines returns the positions of record lines.
func recordLines(ls [][]byte) []int {
	var out []int
	for i, l := range ls {
		if bytes.HasPrefix(l, []byte(`{"record"`)) {
			out = append(out, i)
		}
	}
	return out
}

func TestVerifyAcceptsUntouchedTrail(t *testing.T) {
	exp, s := sealedTrail(t)
	rep, err := audit.Verify(bytes.NewReader(exp), audit.VerifyOptions{PublicKey: s.Public()})
	if err != nil {
		t.Fatalf("Verify(untouched) = %+v, %v; want nil error", rep.Problems, err)
	}
	// start, 10 records, stop
	if rep.Records != 12 || rep.Sealed != 12 {
		t.Errorf("Verify(untouched) records %d sealed %d, want 12 12", rep.Records, rep.Sealed)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	exp, s := sealedTrail(t)
	tests := []struct {
		name   string
		tamper func(ls [][]byte) [][]byte
		want   []audit.ProblemKind
	}{
		{
			name: "a modified record",
			tamper: func(ls [][]byte) [][]byte {
				i := recordLines(ls)[3]
				ls[i] = bytes.Replace(ls[i], []byte("lab-feed"), []byte("lab-fed2"), 1)
				return ls
			},
			want: []audit.ProblemKind{audit.ProblemRootMismatch},
		},
		{
			name: "a deleted record",
			tamper: func(ls [][]byte) [][]byte {
				i := recordLines(ls)[2]
				return slices.Delete(ls, i, i+1)
			},
			want: []audit.ProblemKind{audit.ProblemMissing, audit.ProblemRootMismatch},
		},
		{
			name: "an inserted record",
			tamper: func(ls [][]byte) [][]byte {
				i := recordLines(ls)[5]
				return slices.Insert(ls, i, ls[i])
			},
			want: []audit.ProblemKind{audit.ProblemDuplicate, audit.ProblemRootMismatch},
		},
		{
			name: "two reordered records",
			tamper: func(ls [][]byte) [][]byte {
				r := recordLines(ls)
				ls[r[1]], ls[r[2]] = ls[r[2]], ls[r[1]]
				return ls
			},
			want: []audit.ProblemKind{audit.ProblemReordered, audit.ProblemRootMismatch, audit.ProblemTimeOrder},
		},
		{
			name: "records deleted from the end",
			tamper: func(ls [][]byte) [][]byte {
				r := recordLines(ls)
				// keep the last checkpoint, drop the last two records
				return slices.Delete(ls, r[len(r)-2], r[len(r)-1]+1)
			},
			want: []audit.ProblemKind{audit.ProblemMissing, audit.ProblemRootMismatch},
		},
		{
			name: "a forged checkpoint",
			tamper: func(ls [][]byte) [][]byte {
				last := len(ls) - 1
				ls[last] = bytes.Replace(ls[last], []byte(`"size":12`), []byte(`"size":11`), 1)
				return ls
			},
			want: []audit.ProblemKind{audit.ProblemSignature, audit.ProblemUnsealed},
		},
		{
			name: "a record shifted in time",
			tamper: func(ls [][]byte) [][]byte {
				i := recordLines(ls)[6]
				var e audit.Entry
				json.Unmarshal(ls[i], &e)
				var r audit.Record
				json.Unmarshal(e.Record, &r)
				r.Time = r.Time.Add(-time.Hour)
				e.Record, _ = json.Marshal(r)
				b, _ := json.Marshal(e)
				ls[i] = append(b, '\n')
				return ls
			},
			want: []audit.ProblemKind{audit.ProblemTimeOrder, audit.ProblemTimeGap, audit.ProblemRootMismatch},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ls := tc.tamper(lines(bytes.Clone(exp)))
			rep, err := audit.Verify(bytes.NewReader(bytes.Join(ls, nil)),
				audit.VerifyOptions{PublicKey: s.Public(), MaxGap: 10 * time.Minute})
			if !errors.Is(err, audit.ErrTampered) {
				t.Fatalf("Verify(%s) = %v, want ErrTampered", tc.name, err)
			}
			got := kinds(rep.Problems)
			for _, k := range tc.want {
				if !slices.Contains(got, k) {
					t.Errorf("Verify(%s) problems = %v, want %s among them", tc.name, rep.Problems, k)
				}
			}
		})
	}
}

func kinds(ps []audit.Problem) []audit.ProblemKind {
	var out []audit.ProblemKind
	for _, p := range ps {
		out = append(out, p.Kind)
	}
	return out
}

func TestVerifyTimeGaps(t *testing.T) {
	_, js := newJetStream(t)
	s, clk := newSigner(t), newClock()
	cfg := audit.WriterConfig{Signer: s, Now: clk.Now, HeartbeatInterval: time.Hour, CheckpointInterval: time.Hour}
	w := newWriter(t, js, cfg)
	appendN(t, w, 2)
	clk.advance(3 * time.Hour) // the writer was silenced
	appendN(t, w, 2)
	w.Close(ctxFor(t, 5*time.Second))
	clk.advance(24 * time.Hour) // a clean stop and start: downtime
	w2 := newWriter(t, js, cfg)
	appendN(t, w2, 1)
	w2.Close(ctxFor(t, 5*time.Second))

	rep, err := audit.Verify(bytes.NewReader(export(t, js)), audit.VerifyOptions{PublicKey: s.Public()})
	if !errors.Is(err, audit.ErrTampered) {
		t.Fatalf("Verify() = %v, want ErrTampered", err)
	}
	if got := kinds(rep.Problems); !slices.Equal(got, []audit.ProblemKind{audit.ProblemTimeGap}) {
		t.Errorf("Verify() problems = %+v, want one time-gap", rep.Problems)
	}
	if len(rep.Downtime) != 1 || rep.Downtime[0].To.Sub(rep.Downtime[0].From) != 24*time.Hour {
		t.Errorf("Verify() downtime = %v, want one span of 24h", rep.Downtime)
	}
}

func TestVerifyHeartbeatsFillQuietPeriods(t *testing.T) {
	_, js := newJetStream(t)
	s := newSigner(t)
	w := newWriter(t, js, audit.WriterConfig{
		Signer: s, HeartbeatInterval: 20 * time.Millisecond, CheckpointInterval: 20 * time.Millisecond,
	})
	time.Sleep(300 * time.Millisecond) // a quiet period that the heartbeats must cover
	w.Close(ctxFor(t, 5*time.Second))

	exp := export(t, js)
	rep, err := audit.Verify(bytes.NewReader(exp), audit.VerifyOptions{PublicKey: s.Public(), MaxGap: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("Verify() = %+v, %v; want nil", rep.Problems, err)
	}
	if n := strings.Count(string(exp), `"kind":"heartbeat"`); n < 3 {
		t.Errorf("trail has %d heartbeats over 300ms at 20ms, want at least 3", n)
	}
	if rep.Checkpoints < 2 {
		t.Errorf("trail has %d checkpoints, want periodic ones", rep.Checkpoints)
	}
}
