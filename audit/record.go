package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Kind names what a [Record] describes. Kinds are stable: auditors and
// the monitor branch on them.
type Kind string

// Kinds the broker records itself.
const (
	KindStart             Kind = "broker-start"       // the audit writer started
	KindStop              Kind = "broker-stop"        // the audit writer stopped cleanly
	KindHeartbeat         Kind = "heartbeat"          // nothing else happened for a while
	KindConnect           Kind = "connect"            // a machine connected
	KindDisconnect        Kind = "disconnect"         // a machine's connection closed
	KindAuthFailure       Kind = "auth-failure"       // a client failed TLS or authentication
	KindPermissionRefusal Kind = "permission-refusal" // the broker refused a publish or subscribe
	KindDelivery          Kind = "delivery"           // a recipient acknowledged a stored message
	KindIdleLogoff        Kind = "idle-logoff"        // an idle session was disconnected
	KindAlert             Kind = "alert"              // the monitor raised an anomaly alert
)

// Kinds a machine or an operator tool reports.
const (
	KindPublish          Kind = "publish"           // one recipient copy was published
	KindOpen             Kind = "open"              // a message was verified and opened
	KindQuarantine       Kind = "quarantine"        // a recipient refused a message
	KindQuarantineAction Kind = "quarantine-action" // list, show, release or drop
	KindKeyRotation      Kind = "key-rotation"      // a key was rotated
	KindRewrap           Kind = "rewrap"            // data keys were rewrapped
	KindGrant            Kind = "grant"             // access to messages was granted
	KindKeyDestroy       Kind = "key-destroy"       // a data key was destroyed
	KindPolicyChange     Kind = "policy-change"     // the policy was changed
	KindReplay           Kind = "replay"            // stored messages were replayed for audit
	KindAuditExport      Kind = "audit-export"      // the audit trail was exported
)

// brokerKinds may be appended only by the broker, never reported by a
// machine: a machine must not be able to forge a connection record or an
// alert.
var brokerKinds = []Kind{
	KindStart, KindStop, KindHeartbeat, KindConnect, KindDisconnect, KindAuthFailure,
	KindPermissionRefusal, KindDelivery, KindIdleLogoff, KindAlert,
}

// machineKinds may be reported by a machine on its audit subject.
var machineKinds = []Kind{
	KindPublish, KindOpen, KindQuarantine, KindQuarantineAction, KindKeyRotation,
	KindRewrap, KindGrant, KindKeyDestroy, KindPolicyChange, KindReplay, KindAuditExport,
}

// Kinds returns every record kind, broker kinds first.
func Kinds() []Kind { return append(slices.Clone(brokerKinds), machineKinds...) }

// Reportable reports whether a machine may report records of kind k.
func Reportable(k Kind) bool { return slices.Contains(machineKinds, k) }

// Outcome is how an event ended.
type Outcome string

// Outcomes.
const (
	OutcomeOK        Outcome = "ok"
	OutcomeFailed    Outcome = "failed"    // an error, such as a failed publish
	OutcomeRefused   Outcome = "refused"   // a check refused it, such as a bad signature
	OutcomeDuplicate Outcome = "duplicate" // the broker already held it
)

// Sources of a record.
const (
	SourceBroker  = "broker"  // observed by the broker itself
	SourceMachine = "machine" // reported by the machine named in Actor
)

// Record is one audit event. The writer sets Index, Time, Actor and
// Source; everything else describes the event. No field may hold a
// payload, a key or PHI: message identity is the message ID and the
// SHA-256 digest of its ciphertext.
type Record struct {
	Index  uint64    `json:"index"`
	Time   time.Time `json:"time"`
	Kind   Kind      `json:"kind"`
	Actor  string    `json:"actor,omitempty"`  // authenticated machine or operator
	Source string    `json:"source,omitempty"` // SourceBroker or SourceMachine

	Outcome Outcome `json:"outcome,omitempty"`
	Reason  string  `json:"reason,omitempty"` // stable code, such as a quarantine reason

	MessageID  string   `json:"message_id,omitempty"`
	Subject    string   `json:"subject,omitempty"`
	Sender     string   `json:"sender,omitempty"`
	Recipient  string   `json:"recipient,omitempty"`
	Recipients []string `json:"recipients,omitempty"`
	Type       string   `json:"type,omitempty"`
	Digest     string   `json:"digest,omitempty"` // hex SHA-256 of the ciphertext
	Size       int      `json:"size,omitempty"`   // plaintext bytes, as reported
	Seq        uint64   `json:"seq,omitempty"`    // stream sequence of the message
	Deliveries uint64   `json:"deliveries,omitempty"`

	DataKeyID  string `json:"data_key_id,omitempty"`
	KeyVersion string `json:"key_version,omitempty"` // signer or wrapping key version
	KeyCached  bool   `json:"key_cached,omitempty"`  // data key came from a cache

	Action string `json:"action,omitempty"` // operator action, such as "release"
	Target string `json:"target,omitempty"` // grantee, key, policy or quarantine seq
	Remote string `json:"remote,omitempty"` // client address, for connection events
	ConnID uint64 `json:"conn_id,omitempty"`
	Detail string `json:"detail,omitempty"` // short text for people, never PHI

	// At is when the event happened, when that is known and earlier than
	// Time (when it was recorded), such as a connection's start.
	At time.Time `json:"at,omitzero"`
}

// Limits on what a machine may report, so that one machine cannot flood
// the trail with oversized records.
const (
	// MaxReportSize is the largest report a machine may send, in bytes.
	MaxReportSize = 16 << 10
	// MaxDetailLen is the longest Detail kept, in bytes; longer is cut.
	MaxDetailLen = 512
)

// ErrNotReportable is returned for a report of a kind only the broker may
// record.
var ErrNotReportable = errors.New("audit: kind may not be reported by a machine")

// ParseReport decodes a machine's report and checks its kind. It clears
// the fields the writer sets, so nothing a machine claims about index,
// time, actor or source survives.
func ParseReport(b []byte) (Record, error) {
	if len(b) > MaxReportSize {
		return Record{}, fmt.Errorf("audit: report of %d bytes over %d", len(b), MaxReportSize)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("audit: decoding report: %v", err)
	}
	if !Reportable(r.Kind) {
		return Record{}, fmt.Errorf("%w: %q", ErrNotReportable, r.Kind)
	}
	r.Index, r.Time, r.Actor, r.Source = 0, time.Time{}, "", ""
	return r, nil
}

// clean bounds free text before a record is stored.
func (r *Record) clean() {
	if len(r.Detail) > MaxDetailLen {
		r.Detail = r.Detail[:MaxDetailLen]
	}
}
