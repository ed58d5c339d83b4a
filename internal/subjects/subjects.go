// Package subjects is the one place that names NATS subjects, JetStream
// streams and consumers, so that the broker's permissions and the client
// libraries cannot drift apart.
//
// A sealed message is stored once per recipient, on
//
//	phix.msg.<sender>.<recipient>.<type>
//
// so that the broker can grant "publish under your own name" with one
// subject pattern and "read what is addressed to you" with one consumer
// filter, without ever looking inside the envelope.
package subjects

import (
	"fmt"
	"regexp"
	"strings"
)

// Stream and subject names shared by the broker and its clients.
const (
	// MessageStream holds sealed messages on [MessagePrefix] subjects.
	MessageStream = "PHIX_MSGS"
	// QuarantineStream holds messages a consumer refused, with a reason.
	QuarantineStream = "PHIX_QUARANTINE"

	MessagePrefix    = "phix.msg"
	QuarantinePrefix = "phix.quarantine"
)

// NATS headers phix sets beside the envelope. They are routing hints only:
// nothing in them is trusted, everything is re-checked against the
// signed envelope header.
const (
	HeaderReason          = "Phix-Quarantine-Reason"
	HeaderOriginalSubject = "Phix-Original-Subject"
	HeaderOriginalSeq     = "Phix-Original-Seq"
	HeaderQuarantinedBy   = "Phix-Quarantined-By"
)

// nameRE is the shape of machine names and message types: they become
// single subject tokens, so no dots, wildcards or spaces.
var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidName reports whether s can be used as a machine name or type token.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// CheckName returns an error naming what is wrong with a machine name.
func CheckName(s string) error {
	if !ValidName(s) {
		return fmt.Errorf("invalid name %q: want 1-63 of [a-z0-9-], starting with a letter or digit", s)
	}
	return nil
}

// Message returns the subject of a message from sender to recipient.
func Message(sender, recipient, typ string) string {
	return MessagePrefix + "." + sender + "." + recipient + "." + typ
}

// ParseMessage splits a message subject into its tokens.
func ParseMessage(subject string) (sender, recipient, typ string, ok bool) {
	rest, found := strings.CutPrefix(subject, MessagePrefix+".")
	if !found {
		return "", "", "", false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 || !ValidName(parts[0]) || !ValidName(parts[1]) || !ValidName(parts[2]) {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// PublishFilter is the subject pattern a sender may publish on.
// It names exactly two more tokens, recipient and type, so nothing can be
// stored that no inbox would ever read.
func PublishFilter(sender string) string { return MessagePrefix + "." + sender + ".*.*" }

// InboxFilter is the subject pattern of messages addressed to recipient.
func InboxFilter(recipient string) string { return MessagePrefix + ".*." + recipient + ".*" }

// InboxConsumer is the durable consumer through which recipient reads.
func InboxConsumer(recipient string) string { return "inbox-" + recipient }

// Quarantine is the subject a machine quarantines refused messages on.
func Quarantine(machine string) string { return QuarantinePrefix + "." + machine }

// ReplyPrefix is the per-machine inbox prefix for request replies. Each
// machine may subscribe only below its own prefix, so no machine can read
// replies (such as pulled messages) meant for another.
func ReplyPrefix(machine string) string { return "_INBOX." + machine }

// Audit trail and monitoring names. Machines report their own audit events
// on [AuditReport]; only the broker's audit writer stores records, on the
// [AuditLogPrefix] subjects of [AuditStream], which no machine may publish
// on.
const (
	// AuditStream holds the append-only audit trail.
	AuditStream = "PHIX_AUDIT"
	// AuditPrefix is where machines report events: AuditPrefix.<machine>.
	AuditPrefix = "phix.audit"
	// AuditLogPrefix is where the writer stores records and checkpoints.
	AuditLogPrefix = "phix.auditlog"
	// AuditRecordSubject holds audit records in [AuditStream].
	AuditRecordSubject = AuditLogPrefix + ".record"
	// AuditCheckpointSubject holds signed checkpoints in [AuditStream].
	AuditCheckpointSubject = AuditLogPrefix + ".checkpoint"
	// Alerts is where the monitor publishes anomaly alerts.
	Alerts = "phix.alerts"
)

// AuditReport is the subject machine reports its audit events on. The
// broker lets each machine publish only on its own, so the subject names
// the authenticated reporter.
func AuditReport(machine string) string { return AuditPrefix + "." + machine }

// ParseAuditReport returns the machine named by an [AuditReport] subject.
func ParseAuditReport(subject string) (machine string, ok bool) {
	m, found := strings.CutPrefix(subject, AuditPrefix+".")
	if !found || !ValidName(m) {
		return "", false
	}
	return m, true
}

// QuarantineAdminPrefix is where operators ask the broker to list, show,
// release or drop quarantined messages: QuarantineAdminPrefix.<machine>.
// It is outside [QuarantinePrefix] so that no request is ever stored in
// the quarantine stream.
const QuarantineAdminPrefix = "phix.admin.quarantine"

// QuarantineAdmin is the subject machine sends quarantine requests on.
// The broker lets a machine publish only on its own, so the subject
// names the authenticated operator.
func QuarantineAdmin(machine string) string { return QuarantineAdminPrefix + "." + machine }
