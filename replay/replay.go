// Package replay re-examines stored messages for an audit: it verifies
// every stored copy without decrypting it, matches the audit trail (who
// published, who received, who opened what) to the messages, and names
// the messages that failed verification or are missing.
//
// # What is checked
//
// For each stored copy, replay decodes the envelope strictly, checks that
// its signed subject is the subject it is stored on and names its sender
// and a listed recipient, that the key commitment is present, and that
// the sender's signature (and batch proof, if any) verifies under the
// sender's public key from the directory. Nothing is unwrapped or
// decrypted for that. A copy whose sender recorded a publish with another
// digest fails too. A stream sequence that holds nothing, or a publish
// record whose copy is not stored, is reported missing.
//
// # Decryption
//
// With [Config].Decrypt, replay opens the messages its identity can open
// — those that carry a data key wrapped for it, because it is a recipient
// or was granted access — and hands the plaintext to [Config].OnPlaintext.
// Each opening is reported to the audit trail. The report never holds
// plaintext.
package replay

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/audit"
	"phix.dev/phix/consumer"
	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/keys"
)

// Filter selects messages. Zero fields select everything.
type Filter struct {
	From      time.Time `json:"from,omitzero"` // stored at or after
	To        time.Time `json:"to,omitzero"`   // stored before
	Sender    string    `json:"sender,omitempty"`
	Recipient string    `json:"recipient,omitempty"`
	Type      string    `json:"type,omitempty"`
	MessageID string    `json:"message_id,omitempty"`
}

func (f *Filter) matchTime(t time.Time) bool {
	return (f.From.IsZero() || !t.Before(f.From)) && (f.To.IsZero() || t.Before(f.To))
}

func (f *Filter) matchNames(sender, recipient, typ, id string) bool {
	return (f.Sender == "" || f.Sender == sender) &&
		(f.Recipient == "" || f.Recipient == recipient) &&
		(f.Type == "" || f.Type == typ) &&
		(f.MessageID == "" || f.MessageID == id)
}

// Config configures [Run].
type Config struct {
	// JS reads the message and audit streams by sequence; the identity
	// needs STREAM.INFO and STREAM.MSG.GET (or DIRECT.GET) on both, as
	// auditors have. Required.
	JS jetstream.JetStream
	// Keys is the replaying identity: it looks up senders' public keys,
	// signs the report and, with Decrypt, unwraps data keys. Required.
	Keys keys.Provider
	// Registry, if set, is where data keys granted to Keys's identity are
	// looked up when a copy carries none inline (Vault deployments keep
	// wrapped keys in the registry, so that they can be granted and
	// destroyed).
	Registry consumer.Registry

	Filter Filter

	// AuditKey, if set, is the broker's audit public key: the audit trail
	// is verified (see audit.Verify) before it is trusted for matching.
	AuditKey ed25519.PublicKey

	// Decrypt opens the messages Keys's identity may open.
	Decrypt bool
	// OnPlaintext receives each decrypted payload; it must not keep it
	// beyond the call. Required with Decrypt.
	OnPlaintext func(m *Message, payload []byte) error
	// Report, if set, records decryptions and the replay itself in the
	// audit trail (an audit.Reporter's Report fits).
	Report func(audit.Record) bool

	// Progress, if set, is called after each stored message is examined
	// with how many of total are done.
	Progress func(done, total uint64)

	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Run replays the stored messages that cfg.Filter selects and returns the
// report, signed by cfg.Keys. It fails only when the message stream cannot
// be read; an unreadable audit trail is noted in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.JS == nil || cfg.Keys == nil || (cfg.Decrypt && cfg.OnPlaintext == nil) {
		return nil, errors.New("replay: missing stream, keys or plaintext handler")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &run{cfg: cfg, rep: &Report{Generated: cfg.Now().UTC(), By: cfg.Keys.Identity(), Filter: cfg.Filter}}
	if cfg.Report != nil {
		cfg.Report(audit.Record{
			Kind: audit.KindReplay, Detail: filterText(cfg.Filter), Action: decryptAction(cfg.Decrypt),
		})
	}
	r.loadTrail(ctx)
	if err := r.scan(ctx); err != nil {
		return nil, err
	}
	r.findMissing()
	r.count()
	if err := r.rep.Sign(ctx, cfg.Keys); err != nil {
		return nil, err
	}
	return r.rep, nil
}

func decryptAction(d bool) string {
	if d {
		return "decrypt"
	}
	return "verify"
}

func filterText(f Filter) string {
	b, _ := json.Marshal(f)
	return string(b)
}

type run struct {
	cfg Config
	rep *Report

	publishes []audit.Record            // publish records, in trail order
	published map[uint64]*audit.Record  // by stream sequence
	delivered map[uint64][]audit.Record // by stream sequence
	opened    map[string][]audit.Record // by message ID + "/" + opener
	seen      map[uint64]bool           // stored sequences examined
	copies    map[string]uint64         // first sequence by message ID + "/" + subject
}

// loadTrail reads (and, with an audit key, verifies) the audit trail.
func (r *run) loadTrail(ctx context.Context) {
	r.published = map[uint64]*audit.Record{}
	r.delivered = map[uint64][]audit.Record{}
	r.opened = map[string][]audit.Record{}
	var buf bytes.Buffer
	if _, err := audit.Export(ctx, r.cfg.JS, &buf); err != nil {
		r.rep.AuditTrail.Error = "reading the audit trail: " + err.Error()
		return
	}
	if r.cfg.AuditKey != nil {
		// The newest records may not be sealed by a checkpoint yet; they
		// are counted as such rather than failing the trail.
		v, err := audit.Verify(bytes.NewReader(buf.Bytes()), audit.VerifyOptions{
			PublicKey: r.cfg.AuditKey, MaxGap: -1, AllowUnsealed: true,
		})
		switch {
		case v == nil:
			r.rep.AuditTrail.Error = err.Error()
		default:
			r.rep.AuditTrail.Verified, r.rep.AuditTrail.Problems = v.OK(), len(v.Problems)
			r.rep.AuditTrail.Sealed = v.Sealed
		}
	}
	for _, line := range bytes.Split(buf.Bytes(), []byte("\n")) {
		var e audit.Entry
		if json.Unmarshal(line, &e) != nil || e.Record == nil {
			continue
		}
		var rec audit.Record
		if json.Unmarshal(e.Record, &rec) != nil {
			continue
		}
		r.rep.AuditTrail.Records++
		r.index(rec)
	}
}

func (r *run) index(rec audit.Record) {
	switch rec.Kind {
	case audit.KindPublish:
		// Only what the sender itself reported about its own messages.
		if rec.Actor != rec.Sender || rec.Seq == 0 ||
			(rec.Outcome != audit.OutcomeOK && rec.Outcome != audit.OutcomeDuplicate) {
			return
		}
		r.publishes = append(r.publishes, rec)
		if _, dup := r.published[rec.Seq]; !dup {
			r.published[rec.Seq] = &r.publishes[len(r.publishes)-1]
		}
	case audit.KindDelivery:
		r.delivered[rec.Seq] = append(r.delivered[rec.Seq], rec)
	case audit.KindOpen:
		if rec.MessageID != "" {
			k := rec.MessageID + "/" + rec.Actor
			r.opened[k] = append(r.opened[k], rec)
		}
	}
}

// scan examines every stored message the filter selects.
func (r *run) scan(ctx context.Context) error {
	s, err := r.cfg.JS.Stream(ctx, subjects.MessageStream)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	st := s.CachedInfo().State
	r.rep.FirstSeq, r.rep.LastSeq = st.FirstSeq, st.LastSeq
	r.seen = map[uint64]bool{}
	total := uint64(0)
	if st.LastSeq >= st.FirstSeq && st.FirstSeq > 0 {
		total = st.LastSeq - st.FirstSeq + 1
	}
	for i := uint64(0); i < total; i++ {
		seq := st.FirstSeq + i
		m, err := s.GetMsg(ctx, seq)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
			r.gap(seq)
		case err != nil:
			return fmt.Errorf("replay: reading seq %d: %w", seq, err)
		default:
			r.seen[seq] = true
			if err := r.examine(ctx, m); err != nil {
				return err
			}
		}
		if r.cfg.Progress != nil {
			r.cfg.Progress(i+1, total)
		}
	}
	return nil
}

// gap reports a sequence that holds nothing: the stream denies deletes,
// so only tampering with the store leaves one.
func (r *run) gap(seq uint64) {
	m := Message{Seq: seq, Status: StatusMissing, Problem: ProblemSequenceGap}
	if p := r.published[seq]; p != nil {
		m = fromRecord(p, ProblemSequenceGap)
		if !r.selects(&m, p.Time) {
			return
		}
	}
	r.rep.Messages = append(r.rep.Messages, m)
}

func (r *run) selects(m *Message, t time.Time) bool {
	return r.cfg.Filter.matchTime(t) && r.cfg.Filter.matchNames(m.Sender, m.Recipient, m.Type, m.MessageID)
}

// examine verifies one stored copy and matches it to the trail.
func (r *run) examine(ctx context.Context, sm *jetstream.RawStreamMsg) error {
	m := Message{Seq: sm.Sequence, Stored: sm.Time.UTC(), Subject: sm.Subject, Size: len(sm.Data)}
	m.Sender, m.Recipient, m.Type, _ = subjects.ParseMessage(sm.Subject)
	env, problem := r.verify(ctx, sm.Subject, sm.Data)
	if env != nil {
		h := env.Header()
		d := env.CiphertextDigest()
		m.MessageID, m.Recipients, m.ContentType, m.Created = h.MessageID, h.Recipients, h.ContentType, h.Created
		m.DataKeyID, m.SignerKeyID, m.Digest = h.DataKeyID, h.SignerKeyID, hex.EncodeToString(d[:])
	}
	if !r.selects(&m, m.Stored) {
		return nil
	}
	if p := r.published[m.Seq]; p != nil {
		m.Published, m.PublishedAt = true, p.Time
		if problem == "" && (p.MessageID != m.MessageID || p.Digest != m.Digest) {
			problem = ProblemNotRecorded
		}
	}
	if problem == "" && m.MessageID != "" {
		key := m.MessageID + "/" + m.Subject
		if first, ok := r.copies[key]; ok && first != m.Seq {
			problem = ProblemDuplicate
		} else if !ok {
			if r.copies == nil {
				r.copies = make(map[string]uint64)
			}
			r.copies[key] = m.Seq
		}
	}
	m.Status = StatusValid
	if problem != "" {
		m.Status, m.Problem = StatusFailed, problem
	}
	r.match(&m)
	if m.Status == StatusValid && r.cfg.Decrypt {
		if err := r.decrypt(ctx, &m, env); err != nil {
			return err
		}
	}
	r.rep.Messages = append(r.rep.Messages, m)
	return nil
}

// verify runs the structural and signature checks. It returns the
// decoded envelope (nil if it does not decode) and the first problem.
func (r *run) verify(ctx context.Context, subject string, data []byte) (*envelope.Envelope, string) {
	env, err := envelope.Decode(data)
	if err != nil {
		return nil, ProblemMalformed
	}
	if err := env.CheckSubject(subject); err != nil {
		return env, ProblemSubjectMismatch
	}
	h := env.Header()
	if h.KeyCommitment == ([envelope.CommitmentSize]byte{}) {
		return env, ProblemNoCommitment
	}
	pub, err := r.cfg.Keys.PublicKey(ctx, h.Sender, h.SignerKeyID)
	if err != nil {
		return env, ProblemUnknownSender
	}
	if err := env.Verify(pub); err != nil {
		return env, ProblemBadSignature
	}
	return env, ""
}

func (r *run) match(m *Message) {
	for _, d := range r.delivered[m.Seq] {
		m.Deliveries = append(m.Deliveries, Delivery{To: d.Actor, At: d.Time, Deliveries: d.Deliveries})
	}
	if m.MessageID == "" || m.Recipient == "" {
		return
	}
	for _, o := range r.opened[m.MessageID+"/"+m.Recipient] {
		// An opening recorded from the stream names the copy it opened;
		// it belongs to that copy only, not to every copy of the message.
		if o.Seq != 0 && o.Seq != m.Seq {
			continue
		}
		m.Openings = append(m.Openings, Opening{
			By: o.Actor, At: o.Time, KeyVersion: o.KeyVersion, KeyCached: o.KeyCached, Replay: o.Action == "replay",
		})
	}
}

// decrypt opens m if this identity holds a data key for it, and reports
// the opening. Only a verified envelope gets here.
func (r *run) decrypt(ctx context.Context, m *Message, env *envelope.Envelope) error {
	me := r.cfg.Keys.Identity()
	wrapped, ok := env.WrappedKey(me)
	if !ok && r.cfg.Registry != nil {
		if w, err := r.cfg.Registry.Get(ctx, m.Sender, m.DataKeyID); err == nil {
			wrapped, ok = w, true
		}
	}
	if !ok {
		return nil // not a recipient and not granted: stays sealed
	}
	dk, err := r.cfg.Keys.UnwrapKey(ctx, m.DataKeyID, wrapped)
	if err != nil {
		return nil
	}
	defer dk.Destroy()
	pt, err := env.Open(dk)
	if err != nil {
		m.Status, m.Problem = StatusFailed, "open-failed"
		return nil
	}
	m.Decrypted = true
	if r.cfg.Report != nil {
		r.cfg.Report(audit.Record{
			Kind: audit.KindOpen, Action: "replay", Outcome: audit.OutcomeOK, MessageID: m.MessageID,
			Subject: m.Subject, Sender: m.Sender, Recipient: me, Seq: m.Seq,
			DataKeyID: m.DataKeyID, KeyVersion: m.SignerKeyID, Digest: m.Digest,
		})
	}
	err = r.cfg.OnPlaintext(m, pt)
	clear(pt)
	return err
}

// findMissing reports publish records whose copy is not stored.
func (r *run) findMissing() {
	for i := range r.publishes {
		p := &r.publishes[i]
		if r.seen[p.Seq] || r.published[p.Seq] != p {
			continue // stored and examined, or a repeat of a record
		}
		if p.Seq >= r.rep.FirstSeq && p.Seq <= r.rep.LastSeq && r.rep.FirstSeq > 0 {
			continue // a sequence gap, reported by scan
		}
		m := fromRecord(p, ProblemNotStored)
		if r.selects(&m, p.Time) {
			r.rep.Messages = append(r.rep.Messages, m)
		}
	}
}

func fromRecord(p *audit.Record, problem string) Message {
	return Message{
		Seq: p.Seq, Subject: p.Subject, MessageID: p.MessageID, Sender: p.Sender,
		Recipient: p.Recipient, Recipients: p.Recipients, Type: p.Type, Digest: p.Digest,
		DataKeyID: p.DataKeyID, Status: StatusMissing, Problem: problem, Published: true,
		PublishedAt: p.Time,
	}
}

func (r *run) count() {
	c := &r.rep.Counts
	for _, m := range r.rep.Messages {
		c.Total++
		switch m.Status {
		case StatusValid:
			c.Valid++
		case StatusFailed:
			c.Failed++
		case StatusMissing:
			c.Missing++
		}
		if m.Decrypted {
			c.Decrypted++
		}
	}
}
