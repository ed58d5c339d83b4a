package audit

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/internal/subjects"
)

// Retention is how long PHIX_AUDIT keeps records: six years and two
// days, covering the six years of 45 CFR 164.316(b)(2) whatever leap days
// fall in between.
const Retention = (6*365 + 2) * 24 * time.Hour

// StreamConfig returns the configuration of the audit stream: file
// storage, records kept for maxAge but never less than [Retention], and
// neither delete nor purge allowed, so that not even the broker's admin
// connection can remove a record before it ages out.
func StreamConfig(maxAge time.Duration) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        subjects.AuditStream,
		Description: "phix audit trail: records and signed merkle checkpoints",
		Subjects:    []string{subjects.AuditLogPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      max(maxAge, Retention),
		Discard:     jetstream.DiscardOld,
		DenyDelete:  true,
		DenyPurge:   true,
		// Direct gets let auditors read the trail by sequence quickly
		// without the right to create consumers.
		AllowDirect: true,
	}
}
