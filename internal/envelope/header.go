package envelope

import (
	"math"
	"slices"
	"time"

	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/schemas"
)

// Header is a plain copy of an envelope's signed header. Until
// [Envelope.Verify] succeeds nothing in it is authenticated: use it to find
// the sender's public key, not to act on.
type Header struct {
	// Version is the format version, [Version1] or [Version2].
	Version uint32
	// MessageID is the producer's unique ID for the message.
	MessageID string
	// Sender is the machine that sealed and signed the envelope.
	Sender string
	// Recipients lists every recipient of the message, sorted.
	Recipients []string
	// Subject is the subject this copy is published on.
	Subject string
	// ContentType is the media type of the plaintext.
	ContentType string
	// SchemaID identifies the payload schema; it may be empty.
	SchemaID string
	// Created is when the sender sealed the message, in UTC.
	Created time.Time
	// DataKeyID is the ID of the data key the payload key derives from.
	DataKeyID string
	// KeyCommitment commits the envelope to one data key.
	KeyCommitment [CommitmentSize]byte
	// Salt is the envelope's random HKDF salt.
	Salt [SaltSize]byte
	// SignerKeyID names the sender's key version that signed. Version 1
	// carries it in the signed header; version 2 in the envelope, outside
	// the signature, where a changed ID only names a key the signature
	// does not verify under.
	SignerKeyID string
}

// maxCreated is the latest time a header can carry: int64 nanoseconds
// since the epoch end in April 2262.
var maxCreated = time.Unix(0, math.MaxInt64)

// checkHeader checks every header field except Version (checked first, on
// its own, by [Decode]) and SignerKeyID (known to [Seal] only after
// signing, and checked by version). Each field is checked for size before shape, in field order;
// the subject's consistency with sender and recipients comes last.
func checkHeader(h *Header) error {
	if err := checkToken("header.message_id", h.MessageID, MaxMessageIDLen); err != nil {
		return err
	}
	if err := checkName("header.sender", h.Sender); err != nil {
		return err
	}
	if err := checkRecipients(h.Recipients); err != nil {
		return err
	}
	if len(h.Subject) > MaxSubjectLen {
		return tooLarge("header.subject", MaxSubjectLen)
	}
	if err := checkText("header.content_type", h.ContentType, MaxContentTypeLen); err != nil {
		return err
	}
	if h.ContentType == "" {
		return malformed("header.content_type is empty")
	}
	if err := checkText("header.schema_id", h.SchemaID, MaxSchemaIDLen); err != nil {
		return err
	}
	if !h.Created.After(time.Unix(0, 0)) || h.Created.After(maxCreated) {
		return malformed("header.created_unix_nano out of range")
	}
	if err := checkToken("header.data_key_id", h.DataKeyID, MaxKeyIDLen); err != nil {
		return err
	}
	return checkSubjectNames(h)
}

// checkSubjectNames checks that the subject is the message subject from
// the sender to one of the recipients. Without it a copy could name one
// recipient in its subject and be routed to another.
func checkSubjectNames(h *Header) error {
	sender, recipient, _, ok := subjects.ParseMessage(h.Subject)
	if !ok {
		return malformed("header.subject %q is not a message subject", h.Subject)
	}
	if sender != h.Sender {
		return errSubject("header.subject %q does not name sender %q", h.Subject, h.Sender)
	}
	if _, found := slices.BinarySearch(h.Recipients, recipient); !found {
		return errSubject("header.subject %q names a recipient not in header.recipients", h.Subject)
	}
	return nil
}

func checkRecipients(rs []string) error {
	if len(rs) > MaxRecipients {
		return tooLarge("header.recipients", MaxRecipients)
	}
	if len(rs) == 0 {
		return malformed("header.recipients is empty")
	}
	for _, r := range rs {
		if err := checkName("header.recipients[]", r); err != nil {
			return err
		}
	}
	return checkSortedUnique("header.recipients", rs)
}

// checkSortedUnique reports duplicates before order, so that a list with
// both faults is reported as having a duplicate whatever its order.
func checkSortedUnique(field string, names []string) error {
	sorted := slices.Sorted(slices.Values(names))
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return errDuplicate(sorted[i])
		}
	}
	if !slices.Equal(sorted, names) {
		return malformed("%s not sorted", field)
	}
	return nil
}

// checkName checks a machine name: one subject token.
func checkName(field, s string) error {
	if len(s) > MaxNameLen {
		return tooLarge(field, MaxNameLen)
	}
	if !subjects.ValidName(s) {
		return malformed("%s %q is not a valid name", field, s)
	}
	return nil
}

// checkToken checks a required identifier: visible ASCII (0x21-0x7e), so
// that it can travel in a NATS header and be printed without escaping.
func checkToken(field, s string, limit int) error {
	if len(s) > limit {
		return tooLarge(field, limit)
	}
	if s == "" {
		return malformed("%s is empty", field)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return malformed("%s has a byte outside visible ASCII", field)
		}
	}
	return nil
}

// checkText checks a possibly empty printable ASCII (0x20-0x7e) string.
func checkText(field, s string, limit int) error {
	if len(s) > limit {
		return tooLarge(field, limit)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return malformed("%s has a byte outside printable ASCII", field)
		}
	}
	return nil
}

// headerFromProto converts a parsed header whose version has been checked.
// It checks the fixed sizes that the Go type cannot hold otherwise.
func headerFromProto(p *schemas.Header) (Header, error) {
	h := Header{
		Version:     p.GetVersion(),
		MessageID:   p.GetMessageId(),
		Sender:      p.GetSender(),
		Recipients:  p.GetRecipients(),
		Subject:     p.GetSubject(),
		ContentType: p.GetContentType(),
		SchemaID:    p.GetSchemaId(),
		DataKeyID:   p.GetDataKeyId(),
		SignerKeyID: p.GetSignerKeyId(),
	}
	if p.GetCreatedUnixNano() <= 0 {
		return Header{}, malformed("header.created_unix_nano out of range")
	}
	h.Created = time.Unix(0, p.GetCreatedUnixNano()).UTC()
	if len(p.GetKeyCommitment()) != CommitmentSize {
		return Header{}, malformed("header.key_commitment is not %d bytes", CommitmentSize)
	}
	if len(p.GetSalt()) != SaltSize {
		return Header{}, malformed("header.salt is not %d bytes", SaltSize)
	}
	copy(h.KeyCommitment[:], p.GetKeyCommitment())
	copy(h.Salt[:], p.GetSalt())
	return h, nil
}

func headerToProto(h *Header) *schemas.Header {
	return &schemas.Header{
		Version:         h.Version,
		MessageId:       h.MessageID,
		Sender:          h.Sender,
		Recipients:      h.Recipients,
		Subject:         h.Subject,
		ContentType:     h.ContentType,
		SchemaId:        h.SchemaID,
		CreatedUnixNano: h.Created.UnixNano(),
		DataKeyId:       h.DataKeyID,
		KeyCommitment:   h.KeyCommitment[:],
		Salt:            h.Salt[:],
		SignerKeyId:     h.SignerKeyID,
	}
}
