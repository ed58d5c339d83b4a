package hl7

import (
	"strings"
)

// codec is what reading a value needs from its message: the delimiters
// and the character set of \Xhh\ escapes.
type codec struct {
	d  Delimiters
	cs *Charset
}

// Segment is one segment of a message. It keeps the segment's text as
// sent (decoded to UTF-8, escapes not decoded) and finds fields,
// repetitions and components by scanning it when they are read, so a
// message costs little more memory than its text whatever its shape. A
// Segment is immutable and safe for concurrent use.
type Segment struct {
	// text is the segment without leading whitespace and terminator. The
	// struct is kept small: a message may hold millions of segments.
	text string
	c    *codec
	term terminator
}

// terminator is a segment's terminator on the wire.
type terminator uint8

const (
	termNone terminator = iota // the end of the input
	termCR
	termCRLF
	termLF
)

var terminators = [...]string{termNone: "", termCR: "\r", termCRLF: "\r\n", termLF: "\n"}

func terminatorOf(s string) terminator {
	for i, t := range terminators {
		if t == s {
			return terminator(i)
		}
	}
	return termNone
}

// surround is what lies around a segment on the wire besides its
// terminator; rare, so kept apart from [Segment].
type surround struct {
	lead  string // whitespace before the segment name
	trail string // blank lines after the segment, with their terminators
}

func isHeaderName(name string) bool {
	return name == "MSH" || name == "FHS" || name == "BHS"
}

// parseSegment checks one segment's name and field separator. The caller
// has checked that text is not blank.
func parseSegment(text string, c *codec) (*Segment, error) {
	name := text[:min(3, len(text))]
	if !validSegmentName(name) || (len(text) > 3 && text[3] != c.d.Field) {
		return nil, rejectf(ErrSegment, CodeSegmentSequence, "segment with an invalid name")
	}
	return &Segment{text: text, c: c}, nil
}

// nth returns the n-th (1-based) piece of s split at sep, without
// allocating, and whether there is one. A zero sep means s is one piece.
func nth(s string, sep byte, n int) (string, bool) {
	if n < 1 || (sep == 0 && n > 1) {
		return "", false
	}
	if sep == 0 {
		return s, true
	}
	for ; n > 1; n-- {
		i := strings.IndexByte(s, sep)
		if i < 0 {
			return "", false
		}
		s = s[i+1:]
	}
	if i := strings.IndexByte(s, sep); i >= 0 {
		s = s[:i]
	}
	return s, true
}

func pieces(s string, sep byte) int {
	if sep == 0 {
		return 1
	}
	return strings.Count(s, string(sep)) + 1
}

// Name returns the segment ID, such as "PID" or "ZPI".
func (s *Segment) Name() string { return s.text[:3] }

// header reports whether s is MSH, FHS or BHS, whose field 1 is the field
// separator itself and whose field 2 holds the encoding characters
// unsplit.
func (s *Segment) header() bool { return isHeaderName(s.text[:3]) }

// Len returns the number of the last field present, counting empty
// fields that trailing separators delimit: "PV1|1|O||" has 4. For MSH, FHS
// and BHS, field 1 is the field separator.
func (s *Segment) Len() int {
	if len(s.text) <= 3 {
		return 0
	}
	n := pieces(s.text[4:], s.c.d.Field)
	if s.header() {
		n++
	}
	return n
}

// field returns field n as sent and whether the segment reaches it.
func (s *Segment) field(n int) (string, bool) {
	if n < 1 || len(s.text) <= 3 {
		return "", false
	}
	if s.header() {
		if n == 1 {
			return string(s.c.d.Field), true
		}
		n--
	}
	return nth(s.text[4:], s.c.d.Field, n)
}

// Get returns the decoded text at path within the segment, such as "3.1"
// or "5[2].1"; a path may also name the segment, as in "PID-3.1". An
// omitted repetition, component or subcomponent means the first, so "5"
// is the first component of the first repetition of field 5. Get
// returns "" for elements that are not present and for HL7 nulls (""),
// which [Segment.State] tells apart. It panics on a malformed path, as it
// is meant for constant paths; check others with [ParseLocation].
func (s *Segment) Get(path string) string { return s.get(s.loc(path)) }

// Raw returns the element at path as sent, with delimiters and escape
// sequences kept. Unlike [Segment.Get], an omitted part means the whole:
// "3" is every repetition of field 3.
func (s *Segment) Raw(path string) string { return s.raw(s.loc(path)) }

// State reports whether the element at path (addressed as by
// [Segment.Raw]) is absent, an HL7 null or valued.
func (s *Segment) State(path string) State { return stateOf(s.raw(s.loc(path))) }

// Reps returns how many repetitions field n has on the wire, counting
// empty ones: "a~~" has 3. An empty field has 0.
func (s *Segment) Reps(n int) int {
	f, ok := s.field(n)
	switch {
	case !ok || f == "":
		return 0
	case s.header() && n <= 2:
		return 1
	}
	return pieces(f, s.c.d.Repetition)
}

func (s *Segment) loc(path string) Location {
	l := mustLocation(path)
	if l.Segment != "" && l.Segment != s.Name() {
		panic("hl7: location " + path + " is not in segment " + s.Name())
	}
	return l
}

// get returns the decoded leaf at l, defaulting omitted parts to 1.
func (s *Segment) get(l Location) string {
	if s.header() && l.Field <= 2 {
		return s.raw(l)
	}
	l.Rep, l.Comp, l.Sub = max(l.Rep, 1), max(l.Comp, 1), max(l.Sub, 1)
	v := s.raw(l)
	if v == `""` {
		return "" // the HL7 null
	}
	return unescape(v, s.c)
}

// raw returns the encoded element at l exactly as addressed.
func (s *Segment) raw(l Location) string {
	f, ok := s.field(l.Field)
	switch {
	case !ok:
		return ""
	case s.header() && l.Field <= 2:
		// MSH-1 and MSH-2 hold delimiters: they have no parts.
		if l.Rep > 1 || l.Comp > 1 || l.Sub > 1 {
			return ""
		}
		return f
	case l.Rep == 0 && l.Comp == 0:
		return f
	}
	d := s.c.d
	r, _ := nth(f, d.Repetition, max(l.Rep, 1))
	if l.Comp == 0 {
		return r
	}
	c, _ := nth(r, d.Component, l.Comp)
	if l.Sub == 0 {
		return c
	}
	sub, _ := nth(c, d.Subcomponent, l.Sub)
	return sub
}

// encode writes the segment, without its terminator, by splitting every
// field into its parts and joining them again: the tests and fuzzing
// hold this to reproducing the input, which checks the splitting.
func (s *Segment) encode(b *strings.Builder) {
	if len(s.text) <= 3 {
		b.WriteString(s.text)
		return
	}
	d := s.c.d
	b.WriteString(s.text[:4])
	rest := s.text[4:]
	if s.header() {
		enc, after, found := strings.Cut(rest, string(d.Field))
		b.WriteString(enc)
		if !found {
			return
		}
		b.WriteByte(d.Field)
		rest = after
	}
	for i, f := range strings.Split(rest, string(d.Field)) {
		if i > 0 {
			b.WriteByte(d.Field)
		}
		writeField(b, splitField(f, d), d)
	}
}

// leaves calls fn with every leaf value of the segment's fields beyond
// the header's delimiters.
func (s *Segment) leaves(fn func(string)) {
	for i := 1; i <= s.Len(); i++ {
		if s.header() && i <= 2 {
			continue
		}
		f, _ := s.field(i)
		for _, rep := range splitField(f, s.c.d) {
			for _, comp := range rep {
				for _, sub := range comp {
					fn(sub)
				}
			}
		}
	}
}

// String returns the segment as sent, without its terminator, in UTF-8.
func (s *Segment) String() string { return s.text }

func splitField(raw string, d Delimiters) [][][]string {
	reps := splitOn(raw, d.Repetition)
	f := make([][][]string, len(reps))
	for i, r := range reps {
		comps := splitOn(r, d.Component)
		f[i] = make([][]string, len(comps))
		for j, cp := range comps {
			f[i][j] = splitOn(cp, d.Subcomponent)
		}
	}
	return f
}

func splitOn(s string, sep byte) []string {
	if sep == 0 || strings.IndexByte(s, sep) < 0 {
		return []string{s}
	}
	return strings.Split(s, string(sep))
}

func writeField(b *strings.Builder, f [][][]string, d Delimiters) {
	for i, rep := range f {
		if i > 0 {
			b.WriteByte(d.Repetition)
		}
		for j, comp := range rep {
			if j > 0 {
				b.WriteByte(d.Component)
			}
			for k, sub := range comp {
				if k > 0 {
					b.WriteByte(d.Subcomponent)
				}
				b.WriteString(sub)
			}
		}
	}
}

// State tells an element's presence apart, which HL7 gives different
// meanings in updates: an absent element leaves a stored value alone, a
// null ("") deletes it.
type State int

// States of an element.
const (
	// Absent means not sent: empty, or beyond the end of its segment.
	Absent State = iota
	// Null means the HL7 null "": delete the stored value.
	Null
	// Valued means the element has a value.
	Valued
)

func stateOf(raw string) State {
	switch raw {
	case "":
		return Absent
	case `""`:
		return Null
	}
	return Valued
}

// String returns "absent", "null" or "valued".
func (st State) String() string {
	switch st {
	case Null:
		return "null"
	case Valued:
		return "valued"
	}
	return "absent"
}
