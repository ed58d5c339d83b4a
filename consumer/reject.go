package consumer

import (
	"errors"
	"fmt"
)

// Reason is the stable code recorded with a quarantined message. Codes
// never change meaning; operators and the audit trail branch on them.
type Reason string

// Reasons a consumer refuses a message.
const (
	ReasonMalformed       Reason = "malformed"        // not a decodable envelope
	ReasonSubjectMismatch Reason = "subject-mismatch" // signed subject is not the arrival subject
	ReasonNotRecipient    Reason = "not-recipient"    // this machine is not addressed
	ReasonUnknownSender   Reason = "unknown-sender"   // no public key for the sender
	ReasonBadSignature    Reason = "bad-signature"    // signature does not verify
	ReasonOpenFailed      Reason = "open-failed"      // data key or payload cannot be opened
	ReasonKeyDestroyed    Reason = "key-destroyed"    // its data key was destroyed on purpose
	ReasonHandlerFailed   Reason = "handler-failed"   // the application refused it MaxDeliver times
	ReasonReplayed        Reason = "replayed"         // a message already received, stored again
)

// ErrRejected matches every [*RejectError] with [errors.Is].
var ErrRejected = errors.New("consumer: message rejected")

// RejectError reports a message the consumer refused and why. Err holds
// the underlying cause; for [ReasonOpenFailed] it is deliberately opaque.
type RejectError struct {
	Reason  Reason
	Subject string
	Seq     uint64 // stream sequence, 0 when not from the stream
	Err     error
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("consumer: rejected message (%s) on %s: %v", e.Reason, e.Subject, e.Err)
}

// Unwrap returns the cause.
func (e *RejectError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrRejected) true for every RejectError.
func (e *RejectError) Is(target error) bool { return target == ErrRejected }
