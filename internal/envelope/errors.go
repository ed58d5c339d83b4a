package envelope

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Callers branch on them with [errors.Is];
// the text after the sentinel's own is for people, not for matching.
var (
	// ErrVersion means the header names a format version other than
	// [Version1] and [Version2]. It is checked before anything else in the
	// header, so a newer envelope is reported as such rather than as
	// malformed.
	ErrVersion = errors.New("envelope: unsupported version")

	// ErrMalformed means the bytes are not a canonical envelope of the
	// version its header names: unparsable, non-canonical, unknown fields,
	// a required field empty, a fixed-size field of the wrong size, a name
	// of the wrong shape, or a batch proof that does not fit its tree.
	ErrMalformed = errors.New("envelope: malformed")

	// ErrDuplicateRecipient means a recipient is listed twice in the
	// header or has two wrapped keys.
	ErrDuplicateRecipient = errors.New("envelope: duplicate recipient")

	// ErrTooLarge means a field or the whole envelope is over its limit.
	// The error is a [*FieldError] naming the field.
	ErrTooLarge = errors.New("envelope: too large")

	// ErrSubjectMismatch means the header's subject does not name its
	// sender and one of its recipients, or the envelope arrived on a
	// subject other than the one its header names.
	ErrSubjectMismatch = errors.New("envelope: subject mismatch")

	// ErrSignature means the signature does not verify under the public
	// key given, or the key is not an Ed25519 public key.
	ErrSignature = errors.New("envelope: invalid signature")

	// ErrUnverified means [Envelope.Open] was called before a successful
	// [Envelope.Verify]. It is a programming error, not an attack.
	ErrUnverified = errors.New("envelope: signature not verified")

	// ErrOpen is the one opaque error for every failure to decrypt: a data
	// key with the wrong ID, a key commitment mismatch or an AEAD failure.
	// It deliberately does not say which, so that it cannot serve as an
	// oracle telling an attacker which check a forgery got past.
	ErrOpen = errors.New("envelope: cannot open")
)

// FieldError reports a field over its limit. It unwraps to [ErrTooLarge].
type FieldError struct {
	// Field is the field's path as in envelope.proto, such as "ciphertext",
	// "header.subject" or "wrapped_keys[].wrapped"; "envelope" is the
	// whole encoding and "plaintext" the payload given to [Seal].
	Field string
	// Limit is the field's maximum: in bytes for byte and string fields,
	// in entries for lists ("header.recipients", "wrapped_keys").
	Limit int
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("envelope: %s exceeds limit of %d", e.Field, e.Limit)
}

// Unwrap returns [ErrTooLarge].
func (e *FieldError) Unwrap() error { return ErrTooLarge }

// malformed returns an [ErrMalformed] error saying what is wrong.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// tooLarge returns the [*FieldError] for field over limit.
func tooLarge(field string, limit int) error {
	return &FieldError{Field: field, Limit: limit}
}

func errSubject(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrSubjectMismatch}, args...)...)
}

func errDuplicate(name string) error {
	return fmt.Errorf("%w %q", ErrDuplicateRecipient, name)
}
