package hl7

import (
	"bytes"
	"fmt"
	"strings"
)

// DefaultMaxSize is the largest message Parse accepts unless told
// otherwise, in bytes (16 MiB): ample for embedded PDFs and images in
// OBX-5, small enough to bound memory per connection.
const DefaultMaxSize = 16 << 20

// Option adjusts one [Parse] or [ParseFile] call.
type Option func(*config) error

type config struct {
	maxSize    int
	strict     bool
	defCharset *Charset
}

// WithMaxSize sets the largest message accepted, in bytes; larger input
// is refused with an error matching [ErrTooLarge]. n must be positive.
func WithMaxSize(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("hl7: max size must be positive")
		}
		c.maxSize = n
		return nil
	}
}

// WithStrict refuses what lenient parsing repairs with a warning: a
// message with no CR segment terminator, blank segments, whitespace
// before a segment, and an MSH-2 shorter than four characters. Problems
// with escape sequences stay warnings.
func WithStrict() Option {
	return func(c *config) error {
		c.strict = true
		return nil
	}
}

// WithDefaultCharset sets the character set of messages whose MSH-18 is
// empty, for feeds known to send, say, "8859/1" without declaring it.
// Without it such messages must be UTF-8.
func WithDefaultCharset(name string) Option {
	return func(c *config) error {
		cs, err := LookupCharset(name)
		c.defCharset = cs
		return err
	}
}

func configure(opts []Option) (*config, error) {
	c := &config{maxSize: DefaultMaxSize}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Parse parses one HL7 v2 message. raw is kept, not copied, as the
// message's original bytes; the caller must not modify it afterwards.
//
// Delimiters come from this message's MSH-1 and MSH-2, and the character
// set from its MSH-18. Segments end with CR, optionally followed by LF; a
// message with no CR at all is split on LF instead (with a warning). Blank
// segments are skipped with a warning. Errors are [*Error] values with
// Reject set; their reasons never quote the message.
func Parse(raw []byte, opts ...Option) (*Message, error) {
	cfg, err := configure(opts)
	if err != nil {
		return nil, err
	}
	if len(raw) > cfg.maxSize {
		return nil, tooLarge(cfg.maxSize)
	}
	hdr, err := headerLine(raw)
	if err != nil {
		return nil, err
	}
	d, n, err := readDelimiters(hdr)
	if err != nil {
		return nil, err
	}
	m := &Message{raw: raw, c: &codec{d: d}}
	if n < 4 {
		m.warn(WarnShortEncoding, fmt.Sprintf("MSH-2 has %d encoding characters", n))
	}
	if m.c.cs, err = headerCharset(hdr, d, cfg); err != nil {
		return nil, err
	}
	text, err := m.c.cs.decode(raw)
	if err != nil {
		return nil, err
	}
	if err := m.split(text, cfg.strict); err != nil {
		return nil, err
	}
	if cfg.strict {
		if err := m.strictCheck(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func tooLarge(limit int) *Error {
	return rejectf(ErrTooLarge, CodeApplication, "message exceeds %d bytes", limit)
}

// headerLine returns the first segment of raw, which must be MSH, as
// bytes: MSH-1, MSH-2 and MSH-18 are ASCII and must be read before the
// rest can be decoded.
func headerLine(raw []byte) ([]byte, error) {
	b := bytes.TrimLeft(raw, " \t\r\n\v\f")
	b = bytes.TrimPrefix(b, []byte("\ufeff"))
	if i := bytes.IndexAny(b, "\r\n"); i >= 0 {
		b = b[:i]
	}
	switch {
	case bytes.HasPrefix(b, []byte("MSH")):
		return b, nil
	case bytes.HasPrefix(b, []byte("FHS")), bytes.HasPrefix(b, []byte("BHS")):
		return nil, rejectf(ErrBatch, CodeUnsupportedType, "input is a batch file, not one message")
	}
	return nil, rejectf(ErrNotHL7, CodeSegmentSequence, "message does not start with an MSH segment")
}

// headerCharset looks up MSH-18's first repetition.
func headerCharset(hdr []byte, d Delimiters, cfg *config) (*Charset, error) {
	fields := bytes.Split(hdr, []byte{d.Field})
	if len(fields) < 18 || len(fields[17]) == 0 {
		return cfg.defCharset, nil
	}
	v := fields[17]
	if d.Repetition != 0 {
		v, _, _ = bytes.Cut(v, []byte{d.Repetition})
	}
	if len(v) == 0 {
		return cfg.defCharset, nil
	}
	return LookupCharset(string(v))
}

// split divides text into segments. The terminator is CR (a following LF
// is taken with it); only when the text has no CR at all is it split on
// LF, because an LF inside a CR-terminated message is data.
func (m *Message) split(text string, strict bool) error {
	sep := byte('\r')
	if strings.IndexByte(text, '\r') < 0 {
		if strict {
			return rejectf(ErrTerminator, CodeSegmentSequence, "no segment terminator 0x0D found")
		}
		if strings.IndexByte(text, '\n') >= 0 {
			m.warn(WarnLFTerminators, "segments end with LF, not CR")
		}
		sep = '\n'
	}
	full, pos := text, 0
	for n := 1; text != ""; n++ {
		var body, term string
		body, term, text = cutLine(text, sep)
		start := pos
		pos += len(body) + len(term)
		if strings.TrimSpace(body) == "" {
			m.addBlank(full, start, pos, n)
			continue
		}
		if err := m.addLine(body, term, n); err != nil {
			return err
		}
	}
	if len(m.segments) == 0 {
		return rejectf(ErrNotHL7, CodeSegmentSequence, "message has no segments")
	}
	return nil
}

// cutLine returns the first line of text, its terminator and the rest.
func cutLine(text string, sep byte) (body, term, rest string) {
	i := strings.IndexByte(text, sep)
	if i < 0 {
		return text, "", ""
	}
	term = text[i : i+1]
	if sep == '\r' && i+1 < len(text) && text[i+1] == '\n' {
		term = "\r\n"
	}
	return text[:i], term, text[i+len(term):]
}

// addBlank records the blank line n, full[start:end] with its terminator,
// verbatim with the segment before it. Blank lines follow one another in
// full, so the run after a segment is one slice of it.
func (m *Message) addBlank(full string, start, end, n int) {
	if k := len(m.segments); k > 0 {
		sur := m.surround(m.segments[k-1])
		sur.trail = full[start-len(sur.trail) : end]
	} else {
		m.prefix = full[:end]
	}
	m.warnAt(WarnBlankSegment, "blank segment at line %d ignored", n)
}

// addLine parses line n, which is not blank, and appends it.
func (m *Message) addLine(body, term string, n int) error {
	trimmed := strings.TrimLeft(body, " \t\n\v\f\ufeff")
	seg, err := parseSegment(trimmed, m.c)
	if err != nil {
		err.(*Error).Reason = fmt.Sprintf("line %d: %s", n, err.(*Error).Reason)
		return err
	}
	if err := m.checkOrder(seg, n); err != nil {
		return err
	}
	seg.term = terminatorOf(term)
	if lead := body[:len(body)-len(trimmed)]; lead != "" {
		m.surround(seg).lead = lead
		m.warnAt(WarnLeadingSpace, "whitespace before segment at line %d", n)
	}
	if strings.IndexByte(trimmed, '\n') >= 0 {
		m.warnAt(WarnLFInSegment, "segment at line %d contains a line feed", n)
	}
	if m.countEscapeProblems(seg) > 0 {
		m.warnAt(WarnEscape, "segment at line %d has undecodable escape sequences kept verbatim", n)
	}
	m.segments = append(m.segments, seg)
	return nil
}

// checkOrder refuses a message that does not start with MSH or that
// holds batch or second message headers: those mean several messages
// were glued together, and parsing them as one would duplicate segments.
func (m *Message) checkOrder(seg *Segment, n int) error {
	first := len(m.segments) == 0
	switch {
	case first && seg.Name() != "MSH":
		return rejectf(ErrNotHL7, CodeSegmentSequence, "message does not start with an MSH segment")
	case !first && seg.Name() == "MSH":
		return rejectf(ErrSegment, CodeSegmentSequence, "line %d: second MSH segment in one message", n)
	case seg.Name() == "FHS" || seg.Name() == "BHS" || seg.Name() == "BTS" || seg.Name() == "FTS":
		return rejectf(ErrSegment, CodeSegmentSequence, "line %d: batch segment %s inside a message", n, seg.Name())
	}
	return nil
}

func (m *Message) countEscapeProblems(seg *Segment) int {
	if e := m.c.d.Escape; e == 0 || strings.IndexByte(seg.text, e) < 0 {
		return 0
	}
	n := 0
	seg.leaves(func(v string) { n += escapeProblems(v, m.c) })
	return n
}

// strictCheck turns the warnings that lenient parsing tolerates into an
// error.
func (m *Message) strictCheck() error {
	for _, w := range m.warnings {
		switch w.Kind {
		case WarnEscape, WarnLFInSegment:
		case WarnShortEncoding:
			return rejectf(ErrDelimiters, CodeDataType, "strict parsing: %s", w.Text)
		default:
			return rejectf(ErrSegment, CodeSegmentSequence, "strict parsing: %s", w.Text)
		}
	}
	return nil
}
