// Package policy reads phix's access policy, the one file that says which
// machines exist, which of them may send which message types to whom, who
// may read everything for audit, and how long keys, sessions and records
// live. Everything that enforces access is derived from it by this
// package and never written by hand: the broker's users and subject
// permissions, the JetStream inbox consumers, the Vault flows (and so the
// Vault ACL policies) and the producer's recipient check.
//
// # File format
//
// The policy is YAML, decoded strictly: an unknown field, a wrong type or
// a second document is an error. [Parse] reports every problem it finds
// at once, each with its line and field path:
//
//	version: 1
//	machines:
//	  - name: lab-feed
//	  - name: ehr-ingest
//	  - name: auditor
//	flows:
//	  - from: lab-feed
//	    to: [ehr-ingest]
//	    types: [hl7v2, fhir]
//	auditors: [auditor]
//	keys:
//	  rotation_period: 90d
//	sessions:
//	  idle_timeout: 15m
//	retention:
//	  messages: 30d
//	  quarantine: 90d
//	  audit: 6y
//
// Durations are Go durations ("15m", "1h30m") or a whole number of days
// ("90d"), weeks ("2w") or 365-day years ("6y"); "off" or "0" is zero.
//
// # Least privilege
//
// A machine may publish exactly the subjects phix.msg.S.R.T of the flows
// it sends (never a wildcard), and may read only through its inbox
// consumer, whose filter lists exactly the flows addressed to it. A
// machine that receives nothing has no inbox consumer and no JetStream
// permission at all. Every machine may report audit events on its own
// audit subject (subjects.AuditReport). Auditors get read-only access to
// the message, quarantine and audit streams (stream info and message get
// by sequence) and send nothing. A revoked machine gets nothing,
// and flows from or to it are dropped from every derived artefact.
//
// # Compatibility
//
// The format is versioned by the "version" field; this package reads
// version 1 only.
package policy
