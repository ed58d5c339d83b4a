package audit

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// DefaultMaxGap is the longest silence [Verify] accepts between two
// records by default: five heartbeats.
const DefaultMaxGap = 5 * DefaultHeartbeatInterval

// maxLine bounds one export line, in bytes.
const maxLine = 1 << 20

// VerifyOptions configures [Verify].
type VerifyOptions struct {
	// PublicKey is the broker's audit public key. Required.
	PublicKey ed25519.PublicKey
	// MaxGap is the longest time allowed between consecutive records,
	// except between a clean stop and the next start. Zero means
	// [DefaultMaxGap]; negative disables the check.
	MaxGap time.Duration
	// AllowUnsealed accepts records after the last valid checkpoint. By
	// default they are a problem, since nothing signed covers them.
	AllowUnsealed bool
}

// ProblemKind classifies a verification failure.
type ProblemKind string

// Problems [Verify] reports.
const (
	ProblemMalformed    ProblemKind = "malformed"     // a line that is not an entry
	ProblemSignature    ProblemKind = "bad-signature" // a checkpoint signature fails
	ProblemRootMismatch ProblemKind = "root-mismatch" // records do not hash to a signed root
	ProblemMissing      ProblemKind = "missing"       // an index is absent: a record was deleted
	ProblemDuplicate    ProblemKind = "duplicate"     // an index appears twice: a record was inserted
	ProblemReordered    ProblemKind = "reordered"     // an index appears after a later one
	ProblemTimeOrder    ProblemKind = "time-order"    // a record is older than the one before it
	ProblemTimeGap      ProblemKind = "time-gap"      // records are further apart than MaxGap
	ProblemUnsealed     ProblemKind = "unsealed"      // records no valid checkpoint covers
)

// Problem is one finding of [Verify].
type Problem struct {
	Kind   ProblemKind `json:"kind"`
	Line   int         `json:"line"`            // 1-based export line
	Index  uint64      `json:"index,omitempty"` // record index concerned
	Detail string      `json:"detail"`
}

// Span is a period of time.
type Span struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Report is the outcome of [Verify].
type Report struct {
	Records     int `json:"records"`
	Checkpoints int `json:"checkpoints"`
	// Sealed is the size of the largest checkpoint whose signature and
	// root both verified: records below it are proven untouched.
	Sealed   uint64    `json:"sealed"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	Downtime []Span    `json:"downtime,omitempty"` // clean stop to next start
	Problems []Problem `json:"problems,omitempty"`
}

// OK reports whether the trail verified without problems.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// ErrTampered is returned by [Verify] when the report has problems.
var ErrTampered = errors.New("audit: trail fails verification")

// Verify reads an export written by [Export] and checks it offline:
// every checkpoint's signature under opts.PublicKey, every checkpoint's
// root against the records before it, record indexes (no gap, repeat or
// reordering), record times (in order, no gap longer than opts.MaxGap)
// and that checkpoints cover every record. It returns the report, and
// [ErrTampered] with it if there is any problem. Other errors are read
// errors.
func Verify(r io.Reader, opts VerifyOptions) (*Report, error) {
	if len(opts.PublicKey) != ed25519.PublicKeySize {
		return nil, errors.New("audit: verify needs the audit public key")
	}
	if opts.MaxGap == 0 {
		opts.MaxGap = DefaultMaxGap
	}
	v := &verifier{opts: opts, tree: newTree(), seen: make(map[uint64]int)}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		v.line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		v.entry(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("audit: reading export: %w", err)
	}
	v.finish()
	if !v.rep.OK() {
		return &v.rep, ErrTampered
	}
	return &v.rep, nil
}

type verifier struct {
	opts VerifyOptions
	rep  Report
	line int
	tree *tree

	seen     map[uint64]int // index -> first line
	maxIndex uint64
	any      bool    // a record has been seen
	prev     *Record // previous record
	lastCP   int     // line of the last valid checkpoint
	cpSize   uint64  // largest size claimed by a valid-signature checkpoint
}

func (v *verifier) problem(k ProblemKind, idx uint64, format string, args ...any) {
	v.rep.Problems = append(v.rep.Problems, Problem{
		Kind: k, Line: v.line, Index: idx, Detail: fmt.Sprintf(format, args...),
	})
}

func (v *verifier) entry(line []byte) {
	var e Entry
	if err := json.Unmarshal(line, &e); err != nil || (e.Record == nil) == (e.Checkpoint == nil) {
		v.problem(ProblemMalformed, 0, "not an export entry")
		return
	}
	if e.Record != nil {
		v.record(e.Record)
		return
	}
	v.checkpoint(e.Checkpoint)
}

func (v *verifier) record(raw []byte) {
	var r Record
	if err := json.Unmarshal(raw, &r); err != nil {
		v.problem(ProblemMalformed, 0, "record does not decode")
		// Still a leaf: the checkpoint roots decide whether it belongs.
		v.tree.append(LeafHash(raw))
		return
	}
	v.rep.Records++
	v.tree.append(LeafHash(raw))
	v.checkIndex(&r)
	v.checkTime(&r)
	if v.rep.First.IsZero() {
		v.rep.First = r.Time
	}
	v.rep.Last = r.Time
	v.prev = &r
}

func (v *verifier) checkIndex(r *Record) {
	if first, dup := v.seen[r.Index]; dup {
		v.problem(ProblemDuplicate, r.Index, "index %d already on line %d", r.Index, first)
		return
	}
	v.seen[r.Index] = v.line
	switch {
	case !v.any:
		v.any, v.maxIndex = true, r.Index
	case r.Index < v.maxIndex:
		v.problem(ProblemReordered, r.Index, "index %d after index %d", r.Index, v.maxIndex)
	default:
		v.maxIndex = r.Index
	}
}

func (v *verifier) checkTime(r *Record) {
	p := v.prev
	if p == nil {
		return
	}
	if r.Time.Before(p.Time) {
		v.problem(ProblemTimeOrder, r.Index, "record %d at %s is older than record %d at %s",
			r.Index, r.Time.Format(time.RFC3339Nano), p.Index, p.Time.Format(time.RFC3339Nano))
		return
	}
	gap := r.Time.Sub(p.Time)
	if v.opts.MaxGap < 0 || gap <= v.opts.MaxGap {
		return
	}
	if p.Kind == KindStop && r.Kind == KindStart {
		v.rep.Downtime = append(v.rep.Downtime, Span{From: p.Time, To: r.Time})
		return
	}
	v.problem(ProblemTimeGap, r.Index, "no record for %s between %d and %d",
		gap.Round(time.Second), p.Index, r.Index)
}

func (v *verifier) checkpoint(raw []byte) {
	var cp Checkpoint
	if err := json.Unmarshal(raw, &cp); err != nil {
		v.problem(ProblemMalformed, 0, "checkpoint does not decode")
		return
	}
	v.rep.Checkpoints++
	if err := cp.VerifySignature(v.opts.PublicKey); err != nil {
		v.problem(ProblemSignature, cp.Size, "checkpoint of size %d: signature does not verify", cp.Size)
		return
	}
	v.cpSize = max(v.cpSize, cp.Size)
	if got := v.tree.size(); got != cp.Size {
		v.problem(ProblemRootMismatch, cp.Size,
			"checkpoint of size %d follows %d records: records were inserted or deleted", cp.Size, got)
		return
	}
	if !bytes.Equal(v.tree.root(), cp.Root) {
		v.problem(ProblemRootMismatch, cp.Size,
			"records below index %d do not hash to the signed root: "+
				"a record was modified, inserted, deleted or reordered",
			cp.Size)
		return
	}
	v.rep.Sealed = max(v.rep.Sealed, cp.Size)
	v.lastCP = v.line
}

// maxMissing is how many missing indexes are reported one by one; the
// rest of a run is summarised, so a forged huge index cannot flood the
// report.
const maxMissing = 100

func (v *verifier) finish() {
	v.line = 0
	idx := make([]uint64, 0, len(v.seen))
	for i := range v.seen {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	// Records deleted from the end are caught because a signed checkpoint
	// counted them.
	if v.cpSize > 0 {
		idx = append(idx, v.cpSize)
	}
	next, reported := uint64(0), 0
	for _, i := range idx {
		for ; next < i; next++ {
			if reported == maxMissing {
				v.problem(ProblemMissing, next, "records %d to %d are missing", next, i-1)
				next = i
				break
			}
			v.problem(ProblemMissing, next, "record %d is missing", next)
			reported++
		}
		next = i + 1
	}
	if n := v.tree.size(); n > v.rep.Sealed && !v.opts.AllowUnsealed {
		v.problem(ProblemUnsealed, v.rep.Sealed, "%d records after index %d are covered by no valid checkpoint",
			n-v.rep.Sealed, v.rep.Sealed)
	}
}
