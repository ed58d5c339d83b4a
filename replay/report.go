package replay

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"phix.dev/phix/keys"
)

// Status is a replayed message's verdict.
type Status string

// Statuses.
const (
	StatusValid   Status = "valid"   // every check passed
	StatusFailed  Status = "failed"  // stored, but a check failed
	StatusMissing Status = "missing" // recorded as published, not stored
)

// Problems name why a message failed. They are stable codes.
const (
	ProblemMalformed       = "malformed"        // not a decodable envelope
	ProblemSubjectMismatch = "subject-mismatch" // signed subject is not the stored subject
	ProblemNoCommitment    = "no-commitment"    // the key commitment is missing
	ProblemUnknownSender   = "unknown-sender"   // no public key for the signer
	ProblemBadSignature    = "bad-signature"    // signature or batch proof does not verify
	ProblemNotRecorded     = "differs-from-publish-record"
	ProblemSequenceGap     = "sequence-gap"      // a stream sequence holds nothing
	ProblemNotStored       = "publish-not-found" // a publish record names no stored message
	// ProblemDuplicate marks a second stored copy of a message already
	// stored on the same subject: a replay, or a retry outside the
	// broker's deduplication window.
	ProblemDuplicate = "duplicate"
)

// Message is one stored (or missing) message copy, as replay found it.
type Message struct {
	Seq         uint64    `json:"seq,omitempty"`
	Stored      time.Time `json:"stored,omitzero"`
	Subject     string    `json:"subject,omitempty"`
	MessageID   string    `json:"message_id,omitempty"`
	Sender      string    `json:"sender,omitempty"`
	Recipient   string    `json:"recipient,omitempty"`
	Recipients  []string  `json:"recipients,omitempty"`
	Type        string    `json:"type,omitempty"`
	ContentType string    `json:"content_type,omitempty"`
	Created     time.Time `json:"created,omitzero"`
	DataKeyID   string    `json:"data_key_id,omitempty"`
	SignerKeyID string    `json:"signer_key_id,omitempty"`
	Digest      string    `json:"digest,omitempty"` // hex SHA-256 of the ciphertext
	Size        int       `json:"size,omitempty"`   // sealed bytes

	Status  Status `json:"status"`
	Problem string `json:"problem,omitempty"`

	// Published reports that the audit trail holds the sender's publish
	// record for this copy; PublishedAt is that record's time.
	Published   bool       `json:"published"`
	PublishedAt time.Time  `json:"published_at,omitzero"`
	Deliveries  []Delivery `json:"deliveries,omitempty"`
	Openings    []Opening  `json:"openings,omitempty"`
	// Decrypted reports that this replay opened the message, for an
	// identity allowed to; the opening is itself audited.
	Decrypted bool `json:"decrypted,omitempty"`
}

// Delivery is an acknowledged delivery from the audit trail.
type Delivery struct {
	To         string    `json:"to"`
	At         time.Time `json:"at"`
	Deliveries uint64    `json:"deliveries"`
}

// Opening is an opening recorded in the audit trail.
type Opening struct {
	By         string    `json:"by"`
	At         time.Time `json:"at"`
	KeyVersion string    `json:"key_version,omitempty"`
	KeyCached  bool      `json:"key_cached,omitempty"`
	Replay     bool      `json:"replay,omitempty"` // opened by a replay
}

// Counts summarises a report.
type Counts struct {
	Total     int `json:"total"`
	Valid     int `json:"valid"`
	Failed    int `json:"failed"`
	Missing   int `json:"missing"`
	Decrypted int `json:"decrypted"`
}

// AuditTrail says what replay made of the audit trail it matched.
type AuditTrail struct {
	Records  int    `json:"records"`
	Sealed   uint64 `json:"sealed"`             // records covered by a valid checkpoint
	Verified bool   `json:"verified"`           // checked against the audit key, no problems
	Problems int    `json:"problems,omitempty"` // verification problems found
	Error    string `json:"error,omitempty"`    // why it could not be read or checked
}

// Signature signs a report: Ed25519 by the replaying identity's key over
// [Report.SignedMessage].
type Signature struct {
	Signer string `json:"signer"`
	KeyID  string `json:"key_id"`
	Value  []byte `json:"value"`
}

// Report is the outcome of a replay.
type Report struct {
	Generated  time.Time  `json:"generated"`
	By         string     `json:"by"` // the replaying identity
	Filter     Filter     `json:"filter"`
	FirstSeq   uint64     `json:"first_seq"`
	LastSeq    uint64     `json:"last_seq"`
	Counts     Counts     `json:"counts"`
	AuditTrail AuditTrail `json:"audit_trail"`
	Messages   []Message  `json:"messages"`

	Signature *Signature `json:"signature,omitempty"`
}

// Bad returns the messages that failed or are missing.
func (r *Report) Bad() []Message {
	var out []Message
	for _, m := range r.Messages {
		if m.Status != StatusValid {
			out = append(out, m)
		}
	}
	return out
}

// SignedMessage returns the bytes the signature covers: a domain
// separator and the SHA-256 of the report's JSON without its signature.
func (r *Report) SignedMessage() ([]byte, error) {
	c := *r
	c.Signature = nil
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("replay: encoding report: %v", err)
	}
	sum := sha256.Sum256(b)
	return append([]byte("phix/v1/replay-report\x00"), sum[:]...), nil
}

// Sign signs r as kp's identity.
func (r *Report) Sign(ctx context.Context, kp keys.Provider) error {
	r.Signature = nil
	msg, err := r.SignedMessage()
	if err != nil {
		return err
	}
	sig, keyID, err := kp.Sign(ctx, msg)
	if err != nil {
		return fmt.Errorf("replay: signing report: %w", err)
	}
	r.Signature = &Signature{Signer: kp.Identity(), KeyID: keyID, Value: sig}
	return nil
}

// ErrSignature means a report's signature does not verify.
var ErrSignature = errors.New("replay: report signature does not verify")

// VerifySignature checks r's signature with kp's directory of public keys.
func (r *Report) VerifySignature(ctx context.Context, kp keys.Provider) error {
	if r.Signature == nil {
		return ErrSignature
	}
	pub, err := kp.PublicKey(ctx, r.Signature.Signer, r.Signature.KeyID)
	if err != nil {
		return fmt.Errorf("replay: signer key: %w", err)
	}
	msg, err := r.SignedMessage()
	if err != nil {
		return err
	}
	if r.Signature.Signer != r.By || !ed25519.Verify(pub, msg, r.Signature.Value) {
		return ErrSignature
	}
	return nil
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadJSON reads a report written by [Report.WriteJSON].
func ReadJSON(rd io.Reader) (*Report, error) {
	var r Report
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, fmt.Errorf("replay: decoding report: %v", err)
	}
	return &r, nil
}

// WriteCSV writes one row per message. The last row carries the
// signature over the JSON form of the report.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	header := []string{"seq", "stored", "status", "problem", "message_id", "sender", "recipient",
		"type", "created", "digest", "published", "delivered_to", "opened_by", "decrypted"}
	cw.Write(header)
	for _, m := range r.Messages {
		cw.Write([]string{
			strconv.FormatUint(m.Seq, 10), timeText(m.Stored), string(m.Status), m.Problem,
			m.MessageID, m.Sender, m.Recipient, m.Type, timeText(m.Created), m.Digest,
			strconv.FormatBool(m.Published), deliveredTo(m), openedBy(m), strconv.FormatBool(m.Decrypted),
		})
	}
	if r.Signature != nil {
		// Padded to the header's width, so the file stays rectangular.
		row := make([]string, len(header))
		copy(row, []string{"#signature", r.Signature.Signer, r.Signature.KeyID, hex.EncodeToString(r.Signature.Value)})
		cw.Write(row)
	}
	cw.Flush()
	return cw.Error()
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func deliveredTo(m Message) string {
	s := ""
	for i, d := range m.Deliveries {
		if i > 0 {
			s += ";"
		}
		s += d.To
	}
	return s
}

func openedBy(m Message) string {
	s := ""
	for i, o := range m.Openings {
		if i > 0 {
			s += ";"
		}
		s += o.By
	}
	return s
}
