package hl7

import (
	"errors"
	"fmt"
)

// Sentinel errors that [*Error] values wrap, for branching with
// [errors.Is].
var (
	// ErrTooLarge means the message is longer than the configured limit.
	ErrTooLarge = errors.New("hl7: message too large")
	// ErrNotHL7 means the input does not start with an MSH segment.
	ErrNotHL7 = errors.New("hl7: not an HL7 v2 message")
	// ErrBatch means [Parse] was given a batch file (FHS or BHS first);
	// use [ParseFile].
	ErrBatch = errors.New("hl7: batch file")
	// ErrDelimiters means MSH-1 or MSH-2 declares unusable delimiters.
	ErrDelimiters = errors.New("hl7: bad delimiters")
	// ErrTerminator means strict parsing found no CR segment terminator.
	ErrTerminator = errors.New("hl7: no segment terminator")
	// ErrCharset means MSH-18 names an unsupported character set, or the
	// bytes are not valid in the one it names.
	ErrCharset = errors.New("hl7: character set")
	// ErrSegment means a segment is malformed: a bad name or a second
	// MSH inside one message.
	ErrSegment = errors.New("hl7: malformed segment")
	// ErrBatchCount means a BTS or FTS count disagrees with the number of
	// messages or batches found, or a trailer is missing.
	ErrBatchCount = errors.New("hl7: batch count mismatch")
	// ErrDate means a DTM or DT value is malformed or not a calendar date.
	ErrDate = errors.New("hl7: invalid date")
	// ErrRequired means a field the message needs is not valued.
	ErrRequired = errors.New("hl7: required field missing")
)

// ErrorCode is a condition code from HL7 table 0357, sent in ERR-3.
type ErrorCode int

// Error codes of HL7 table 0357 that phix uses.
const (
	CodeSegmentSequence  ErrorCode = 100
	CodeRequiredMissing  ErrorCode = 101
	CodeDataType         ErrorCode = 102
	CodeTableValue       ErrorCode = 103
	CodeUnsupportedType  ErrorCode = 200
	CodeUnsupportedEvent ErrorCode = 201
	CodeApplication      ErrorCode = 207
)

// Text returns the code's description from table 0357.
func (c ErrorCode) Text() string {
	switch c {
	case CodeSegmentSequence:
		return "Segment sequence error"
	case CodeRequiredMissing:
		return "Required field missing"
	case CodeDataType:
		return "Data type error"
	case CodeTableValue:
		return "Table value not found"
	case CodeUnsupportedType:
		return "Unsupported message type"
	case CodeUnsupportedEvent:
		return "Unsupported event code"
	default:
		return "Application internal error"
	}
}

// Error is a problem with one message, of the kind an acknowledgement
// reports to its sender in an ERR segment. Reason never contains values
// from the message, so an Error may be logged and sent back safely.
type Error struct {
	// Code is the HL7 table 0357 code for ERR-3.
	Code ErrorCode
	// Location is where the problem is; the zero Location means the
	// problem concerns the message as a whole.
	Location Location
	// Reject reports that the message could not be processed at all (an
	// AR or CR acknowledgement); otherwise its content is in error (AE
	// or CE).
	Reject bool
	// Reason is a short lowercase description for ERR-8.
	Reason string
	// Err is the sentinel this error matches with [errors.Is].
	Err error
}

func (e *Error) Error() string {
	if e.Location.Field == 0 && e.Location.Segment == "" {
		return "hl7: " + e.Reason
	}
	return fmt.Sprintf("hl7: %s: %s", e.Location, e.Reason)
}

// Unwrap returns the sentinel the error matches.
func (e *Error) Unwrap() error { return e.Err }

// Errors returns every [*Error] in err's tree, in order, looking through
// [errors.Join] and wrapping.
func Errors(err error) []*Error {
	var out []*Error
	var walk func(error)
	walk = func(err error) {
		switch x := err.(type) {
		case nil:
		case *Error:
			out = append(out, x)
		case interface{ Unwrap() []error }:
			for _, e := range x.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(x.Unwrap())
		}
	}
	walk(err)
	return out
}

func rejectf(sentinel error, code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Reject: true, Reason: fmt.Sprintf(format, args...), Err: sentinel}
}
