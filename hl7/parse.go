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

// line is one segment (or one blank line) of a message with the text
// around it, kept so that encoding reproduces the input exactly.
type line struct {
	lead  string   // whitespace before the segment name
	seg   *Segment // nil for a blank line
	blank string   // a blank line's text
	term  string   // "\r", "\r\n", "\n" or "" for the last line
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
	for n := 1; text != ""; n++ {
		var ln line
		ln, text = cutLine(text, sep)
		if err := m.addLine(ln, n); err != nil {
			return err
		}
	}
	if len(m.segments) == 0 {
		return rejectf(ErrNotHL7, CodeSegmentSequence, "message has no segments")
	}
	return nil
}

func cutLine(text string, sep byte) (line, string) {
	i := strings.IndexByte(text, sep)
	if i < 0 {
		return line{blank: text}, ""
	}
	term := text[i : i+1]
	if sep == '\r' && i+1 < len(text) && text[i+1] == '\n' {
		term = "\r\n"
	}
	return line{blank: text[:i], term: term}, text[i+len(term):]
}

// addLine parses line n (which arrives with its text in blank) and
// appends it.
func (m *Message) addLine(ln line, n int) error {
	body := ln.blank
	if strings.TrimSpace(body) == "" {
		m.lines = append(m.lines, ln)
		m.warn(WarnBlankSegment, fmt.Sprintf("blank segment at line %d ignored", n))
		return nil
	}
	trimmed := strings.TrimLeft(body, " \t\n\v\f\ufeff")
	ln.lead, ln.blank = body[:len(body)-len(trimmed)], ""
	if ln.lead != "" {
		m.warn(WarnLeadingSpace, fmt.Sprintf("whitespace before segment at line %d", n))
	}
	seg, err := parseSegment(trimmed, m.c)
	if err != nil {
		err.(*Error).Reason = fmt.Sprintf("line %d: %s", n, err.(*Error).Reason)
		return err
	}
	if err := m.checkOrder(seg, n); err != nil {
		return err
	}
	if strings.IndexByte(trimmed, '\n') >= 0 {
		m.warn(WarnLFInSegment, fmt.Sprintf("%s segment contains a line feed", seg.name))
	}
	if k := m.countEscapeProblems(seg); k > 0 {
		m.warn(WarnEscape, fmt.Sprintf("%s segment has %d undecodable escape sequences kept verbatim", seg.name, k))
	}
	ln.seg = seg
	m.lines = append(m.lines, ln)
	m.segments = append(m.segments, seg)
	return nil
}

// checkOrder refuses a message that does not start with MSH or that
// holds batch or second message headers: those mean several messages
// were glued together, and parsing them as one would duplicate segments.
func (m *Message) checkOrder(seg *Segment, n int) error {
	first := len(m.segments) == 0
	switch {
	case first && seg.name != "MSH":
		return rejectf(ErrNotHL7, CodeSegmentSequence, "message does not start with an MSH segment")
	case !first && seg.name == "MSH":
		return rejectf(ErrSegment, CodeSegmentSequence, "line %d: second MSH segment in one message", n)
	case seg.name == "FHS" || seg.name == "BHS" || seg.name == "BTS" || seg.name == "FTS":
		return rejectf(ErrSegment, CodeSegmentSequence, "line %d: batch segment %s inside a message", n, seg.name)
	}
	return nil
}

func (m *Message) countEscapeProblems(seg *Segment) int {
	n := 0
	for i, f := range seg.fields {
		if i == 0 || (seg.header && i <= 2) {
			continue
		}
		for _, rep := range f {
			for _, comp := range rep {
				for _, sub := range comp {
					n += escapeProblems(sub, m.c)
				}
			}
		}
	}
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
