package hl7

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// AckCode is an acknowledgement code for MSA-1 (HL7 table 0008).
type AckCode string

// Acknowledgement codes. Original mode (MSH-15 and MSH-16 empty) uses the
// A codes; enhanced mode uses the commit (C) codes for the accept
// acknowledgement phix sends once a message is safely stored.
const (
	AckAccept    AckCode = "AA"
	AckError     AckCode = "AE"
	AckReject    AckCode = "AR"
	CommitAccept AckCode = "CA"
	CommitError  AckCode = "CE"
	CommitReject AckCode = "CR"
)

// Accepted reports whether the code says the message was accepted.
func (c AckCode) Accepted() bool { return c == AckAccept || c == CommitAccept }

// AckOption adjusts one [Ack] call.
type AckOption func(*ackConfig) error

type ackConfig struct {
	controlID string
	now       time.Time
}

// WithControlID sets the acknowledgement's own MSH-10 instead of a fresh
// random one. id must be 1 to 20 characters (the v2.5 length of MSH-10).
func WithControlID(id string) AckOption {
	return func(c *ackConfig) error {
		if id == "" || len(id) > 20 {
			return fmt.Errorf("hl7: ack control id must be 1-20 bytes")
		}
		c.controlID = id
		return nil
	}
}

// WithTime sets the acknowledgement's MSH-7 instead of the current time.
func WithTime(t time.Time) AckOption {
	return func(c *ackConfig) error {
		c.now = t
		return nil
	}
}

// AckCodeFor returns the MSA-1 code [Ack] sends for m and cause: accept
// when cause is nil; reject when cause holds an [*Error] with Reject set
// (the message could not be processed); error when it holds only content
// errors. Any other cause, such as a failure to store the message, is
// AR in original mode (the sender should retry later) and CE in enhanced
// mode. m may be nil.
func AckCodeFor(m *Message, cause error) AckCode {
	enh := enhanced(m)
	pick := func(orig, commit AckCode) AckCode {
		if enh {
			return commit
		}
		return orig
	}
	errs := Errors(cause)
	switch {
	case cause == nil:
		return pick(AckAccept, CommitAccept)
	case len(errs) == 0:
		return pick(AckReject, CommitError)
	}
	for _, e := range errs {
		if e.Reject {
			return pick(AckReject, CommitReject)
		}
	}
	return pick(AckError, CommitError)
}

// enhanced reports whether m asks for enhanced-mode acknowledgements: HL7
// uses them when MSH-15 or MSH-16 is valued.
func enhanced(m *Message) bool {
	return m != nil && (m.State("MSH-15") == Valued || m.State("MSH-16") == Valued)
}

// Ack builds the acknowledgement of m for the outcome cause (see
// [AckCodeFor]). It swaps sender and receiver (MSH-3/4 and MSH-5/6),
// echoes MSH-1, MSH-2, MSH-11, MSH-12 and MSH-18 as sent, sets MSH-9 to
// ACK^<event>^ACK and a new MSH-10, and echoes MSH-10 in MSA-2. Each
// [*Error] in cause becomes an ERR segment with its location (ERR-2) and
// code (ERR-3); any other cause becomes one ERR with code 207 and no
// detail, since its text may be internal. m may be nil when even the
// header was unreadable (see [ParseHeader]); the ACK then has default
// delimiters and an empty MSA-2. The result is in m's character set,
// segments terminated by CR, without MLLP framing.
func Ack(m *Message, cause error, opts ...AckOption) ([]byte, error) {
	cfg := &ackConfig{now: time.Now()}
	for _, o := range opts {
		if err := o(cfg); err != nil {
			return nil, err
		}
	}
	if cfg.controlID == "" {
		cfg.controlID = newControlID()
	}
	if m == nil {
		m = &Message{c: &codec{d: DefaultDelimiters}, headerOnly: true}
	}
	b := &ackBuilder{m: m, d: m.c.d, version: m.Raw("MSH-12"), vid: m.Get("MSH-12")}
	if b.version == "" {
		b.version, b.vid = "2.5.1", "2.5.1"
	}
	segs := []string{b.msh(cfg), b.msa(AckCodeFor(m, cause), cause)}
	for _, e := range ackErrors(cause) {
		segs = append(segs, b.err(e))
	}
	return m.encodeText(strings.Join(segs, "\r") + "\r")
}

// ackErrors returns the errors to report, replacing a cause that holds no
// [*Error] with a generic one.
func ackErrors(cause error) []*Error {
	if cause == nil {
		return nil
	}
	if errs := Errors(cause); len(errs) > 0 {
		return errs
	}
	return []*Error{{Code: CodeApplication, Reason: "message could not be stored"}}
}

type ackBuilder struct {
	m       *Message
	d       Delimiters
	version string // MSH-12 as sent, echoed
	vid     string // MSH-12.1, the version ID compared
}

func (b *ackBuilder) msh(cfg *ackConfig) string {
	m := b.m
	typ := "ACK"
	if ev := m.Raw("MSH-9.2"); ev != "" {
		typ += string(b.d.Component) + ev
		if versionAtLeast(b.vid, 2, 3, 1) {
			typ += string(b.d.Component) + "ACK"
		}
	}
	proc := m.Raw("MSH-11")
	if proc == "" {
		proc = "P"
	}
	// The ACK is in the message's character set, so it says so; but an
	// unsupported set was not used, and the ACK must not claim it.
	charset := m.Raw("MSH-18")
	if _, err := LookupCharset(m.Get("MSH-18")); err != nil {
		charset = ""
	}
	ts := cfg.now.UTC().Format("20060102150405.0000-0700")
	fields := []string{
		"MSH", b.d.Encoding(), m.Raw("MSH-5"), m.Raw("MSH-6"), m.Raw("MSH-3"), m.Raw("MSH-4"),
		ts, "", typ, cfg.controlID, proc, b.version, "", "", "", "", "", charset,
	}
	return b.join(fields)
}

func (b *ackBuilder) msa(code AckCode, cause error) string {
	fields := []string{"MSA", string(code), b.m.Raw("MSH-10")}
	// MSA-3 is deprecated from v2.4 on in favour of ERR; older receivers
	// only look there.
	if errs := ackErrors(cause); len(errs) > 0 && !versionAtLeast(b.vid, 2, 4) {
		fields = append(fields, b.text(truncate(errs[0].Reason, 80)))
	}
	return b.join(fields)
}

func (b *ackBuilder) err(e *Error) string {
	comp := string(b.d.Component)
	code := strings.Join([]string{strconv.Itoa(int(e.Code)), e.Code.Text(), "HL70357"}, comp)
	eld := ""
	if !versionAtLeast(b.vid, 2, 5) {
		// ERR-1 (ELD) is what receivers before v2.5 read.
		sub := strconv.Itoa(int(e.Code))
		if s := b.d.Subcomponent; s != 0 {
			sub = strings.Join([]string{sub, e.Code.Text(), "HL70357"}, string(s))
		}
		l := e.Location
		eld = strings.Join([]string{l.Segment, strconv.Itoa(max(l.Occurrence, 1)), strconv.Itoa(l.Field), sub}, comp)
	}
	erl := ""
	if e.Location.Segment != "" {
		erl = e.Location.erl(b.d)
	}
	return b.join([]string{"ERR", eld, erl, code, "E", "", "", "", b.text(e.Reason)})
}

// join joins fields with the field separator, dropping trailing empty
// ones.
func (b *ackBuilder) join(fields []string) string {
	for len(fields) > 1 && fields[len(fields)-1] == "" {
		fields = fields[:len(fields)-1]
	}
	return strings.Join(fields, string(b.d.Field))
}

// text escapes our own text for a field, replacing delimiters with spaces
// when the message declares no escape character.
func (b *ackBuilder) text(s string) string {
	if esc, err := b.d.EscapeText(s); err == nil {
		return esc
	}
	return strings.Map(func(r rune) rune {
		if r < 0x80 && b.d.isDelimiter(byte(r)) || r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// versionAtLeast compares an MSH-12 version ID such as "2.3.1" with the
// given parts. An unreadable version counts as new.
func versionAtLeast(v string, want ...int) bool {
	parts := strings.Split(v, ".")
	for i, w := range want {
		if i >= len(parts) {
			return false
		}
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			return true
		}
		if n != w {
			return n > w
		}
	}
	return true
}

// newControlID returns a random 20-character message control ID, the
// most MSH-10 holds before v2.7.
func newControlID() string {
	var b [10]byte
	rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}
