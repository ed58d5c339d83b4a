// Package audit keeps phix's tamper-evident audit trail: who did what to
// which message, when, and with what outcome.
//
// # Records
//
// A [Record] describes one security event: a connection, a failed
// authentication, a permission refusal, a publish, a delivery, an opening
// (with the key version and whether the data key came from a cache), a
// quarantine and every operator action on it, key rotations, rewraps,
// grants, policy changes and idle logoffs. Records carry identifiers,
// subjects, digests and outcomes; never a payload, a key or any PHI.
//
// # Single writer
//
// Exactly one [Writer], inside the broker process, appends records to the
// JetStream stream PHIX_AUDIT ([StreamConfig]), which denies delete and
// purge and keeps records for [Retention]. The writer assigns each record
// its index and time, and stamps the authenticated actor: a machine
// reports its own events on subjects.AuditReport(machine), which only that
// machine may publish on, so the subject and not the report names who
// acted. Every append is made with an expected last stream sequence, so a
// second writer is refused rather than interleaved.
//
// # Tamper evidence
//
// The records, in index order, are the leaves of a Merkle tree with
// RFC 6962 hashing (leaf = SHA-256(0x00 || record JSON), node =
// SHA-256(0x01 || left || right)). The writer periodically appends a
// [Checkpoint]: tree size, root hash and time, signed with the broker's
// Ed25519 audit key ([Signer]). [Export] writes the trail as JSON lines;
// [Verify] checks an export offline against the audit public key and
// reports every modified, deleted, inserted or reordered record and every
// gap in time longer than the configured maximum. The writer appends a
// heartbeat record when it has been quiet, so a quiet period is not a gap.
//
// # Reporting from machines
//
// [Reporter] sends a machine's events to the writer asynchronously, with
// a bounded buffer, so that auditing never blocks a publish or an open;
// it counts what it had to drop.
package audit
