package hl7

import (
	"fmt"
	"strings"
	"time"
)

// Message is one parsed HL7 v2 message. It keeps the exact bytes it was
// parsed from, which are what phix forwards, and a tree of its segments
// for reading. A Message is immutable and safe for concurrent use.
type Message struct {
	raw      []byte
	c        *codec
	prefix   string // blank lines and whitespace before the first segment
	segments []*Segment
	around   map[*Segment]*surround // the few segments with lead or trail
	warnings []Warning
	// headerOnly marks a message from [ParseHeader], whose text is the
	// raw bytes of its MSH, not decoded from its character set.
	headerOnly bool
}

// WarningKind classifies what lenient parsing repaired or tolerated.
// Kinds are stable; feeds count them.
type WarningKind string

// Kinds of [Warning].
const (
	WarnLFTerminators WarningKind = "lf-terminators"     // no CR in the message; split on LF
	WarnBlankSegment  WarningKind = "blank-segment"      // empty or whitespace-only segment skipped
	WarnLeadingSpace  WarningKind = "leading-whitespace" // whitespace before a segment name skipped
	WarnShortEncoding WarningKind = "short-encoding"     // MSH-2 has fewer than 4 characters
	WarnLFInSegment   WarningKind = "lf-in-segment"      // LF kept as data in a CR-terminated segment
	WarnEscape        WarningKind = "escape"             // escape sequence kept verbatim
)

// Warning describes something lenient parsing repaired or tolerated, once
// per kind however often it happened. Text describes the first occurrence
// and never quotes message content.
type Warning struct {
	Kind  WarningKind
	Text  string
	Count int // occurrences in the message
}

// surround returns seg's surround record, creating it.
func (m *Message) surround(seg *Segment) *surround {
	if m.around == nil {
		m.around = make(map[*Segment]*surround)
	}
	sur := m.around[seg]
	if sur == nil {
		sur = &surround{}
		m.around[seg] = sur
	}
	return sur
}

func (m *Message) warn(k WarningKind, text string) {
	if !m.counted(k) {
		m.warnings = append(m.warnings, Warning{Kind: k, Text: text, Count: 1})
	}
}

// warnAt records a warning about line n, formatting its text only the
// first time: a message of a million blank lines must not cost a million
// strings.
func (m *Message) warnAt(k WarningKind, format string, n int) {
	if !m.counted(k) {
		m.warnings = append(m.warnings, Warning{Kind: k, Text: fmt.Sprintf(format, n), Count: 1})
	}
}

// counted counts another warning of kind k if there is one already.
func (m *Message) counted(k WarningKind) bool {
	for i := range m.warnings {
		if m.warnings[i].Kind == k {
			m.warnings[i].Count++
			return true
		}
	}
	return false
}

// Warnings returns what parsing repaired or tolerated, one entry per kind
// in order of first occurrence.
func (m *Message) Warnings() []Warning { return m.warnings }

// Bytes returns the bytes the message was parsed from, unchanged. The
// caller must not modify them.
func (m *Message) Bytes() []byte { return m.raw }

// Encode re-encodes the message from its parsed segments, in its own
// delimiters, character set and segment terminators. It reproduces
// [Message.Bytes] exactly; the parser's tests and fuzzing hold it to that.
func (m *Message) Encode() ([]byte, error) {
	var b strings.Builder
	b.WriteString(m.prefix)
	for _, s := range m.segments {
		sur := m.around[s]
		if sur != nil {
			b.WriteString(sur.lead)
		}
		s.encode(&b)
		b.WriteString(terminators[s.term])
		if sur != nil {
			b.WriteString(sur.trail)
		}
	}
	return m.encodeText(b.String())
}

func (m *Message) encodeText(s string) ([]byte, error) {
	if m.headerOnly {
		return []byte(s), nil
	}
	return m.c.cs.encode(s)
}

// Delimiters returns the delimiters declared in MSH-1 and MSH-2.
func (m *Message) Delimiters() Delimiters { return m.c.d }

// Charset returns the character set declared in MSH-18; nil means UTF-8.
func (m *Message) Charset() *Charset { return m.c.cs }

// Segments returns the message's segments in order, blank ones excluded.
// The caller must not modify the slice.
func (m *Message) Segments() []*Segment { return m.segments }

// All returns the segments with the given ID, in order.
func (m *Message) All(name string) []*Segment {
	var out []*Segment
	for _, s := range m.segments {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// Segment returns the n-th segment (1-based) with the given ID, or nil.
func (m *Message) Segment(name string, n int) *Segment {
	for _, s := range m.segments {
		if s.Name() == name {
			if n--; n <= 0 {
				return s
			}
		}
	}
	return nil
}

func (m *Message) find(path string) (*Segment, Location) {
	l := mustLocation(path)
	if l.Segment == "" {
		panic("hl7: location " + path + " names no segment")
	}
	return m.Segment(l.Segment, max(l.Occurrence, 1)), l
}

// Get returns the decoded text at path, such as "PID-5.1",
// "PID-3[2].5" or "OBX(2)-5", as [Segment.Get] does within a segment:
// omitted parts mean the first, and absent elements and HL7 nulls give "".
// It panics on a malformed path; check paths from input with
// [ParseLocation].
func (m *Message) Get(path string) string {
	s, l := m.find(path)
	if s == nil {
		return ""
	}
	return s.get(l)
}

// Raw returns the element at path as sent, as [Segment.Raw] does: "MSH-9"
// is "ADT^A01^ADT_A01".
func (m *Message) Raw(path string) string {
	s, l := m.find(path)
	if s == nil {
		return ""
	}
	return s.raw(l)
}

// State reports whether the element at path is absent, null or valued.
func (m *Message) State(path string) State { return stateOf(m.Raw(path)) }

// Reps returns how many repetitions the field at path has on the wire,
// as [Segment.Reps] does.
func (m *Message) Reps(path string) int {
	s, l := m.find(path)
	if s == nil {
		return 0
	}
	return s.Reps(l.Field)
}

// ControlID returns MSH-10, the message control ID.
func (m *Message) ControlID() string { return m.Get("MSH-10") }

// Version returns MSH-12's version ID, such as "2.5.1".
func (m *Message) Version() string { return m.Get("MSH-12") }

// Time parses the DTM at path (for TS fields, its first component). A
// value without a UTC offset takes MSH-7's offset, never the host's zone.
// Absent and null values give the zero Time and no error. Errors are
// [*Error] values naming path and matching [ErrDate].
func (m *Message) Time(path string) (Time, error) {
	s, l := m.find(path)
	if s == nil {
		return Time{}, nil
	}
	v := s.get(l)
	if stateOf(v) != Valued {
		return Time{}, nil
	}
	t, err := ParseDTM(v, m.defaultZone())
	if err != nil {
		e := *err.(*Error)
		e.Location = l
		return Time{}, &e
	}
	return t, nil
}

// defaultZone returns the zone of MSH-7's offset, or nil when MSH-7 has
// none.
func (m *Message) defaultZone() *time.Location {
	t, err := ParseDTM(m.Get("MSH-7"), nil)
	if err != nil || t.Offset != OffsetGiven {
		return nil
	}
	return t.Time.Location()
}

// ParseHeader reads just the MSH segment of raw, as leniently as it can,
// so that a message [Parse] refused can still be acknowledged to its
// sender with its control ID. Fields are the raw bytes, not decoded from
// MSH-18; when MSH-2 is unusable, HL7's default delimiters are assumed
// after MSH-1. raw may be just the start of a message.
func ParseHeader(raw []byte) (*Message, error) {
	hdr, err := headerLine(raw)
	if err != nil {
		return nil, err
	}
	d, _, err := readDelimiters(hdr)
	if err != nil {
		if len(hdr) < 4 || !usableDelimiter(hdr[3]) || DefaultDelimiters.isDelimiter(hdr[3]) && hdr[3] != '|' {
			return nil, err
		}
		d = DefaultDelimiters
		d.Field = hdr[3]
	}
	m := &Message{raw: raw, c: &codec{d: d}, headerOnly: true}
	seg, err := parseSegment(string(hdr), m.c)
	if err != nil {
		return nil, err
	}
	m.segments = []*Segment{seg}
	return m, nil
}
