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

// Segment is one segment of a message, kept as the tree of fields,
// repetitions, components and subcomponents it was sent as. Leaves hold
// the text as sent (escapes not decoded), so the segment re-encodes to
// exactly its input. A Segment is immutable and safe for concurrent use.
type Segment struct {
	name string
	// fields[i] is field i; fields[0] is unused. Each field is a list of
	// repetitions, each a list of components, each a list of
	// subcomponents.
	fields [][][][]string
	// header marks MSH, FHS and BHS, whose field 1 is the field separator
	// itself and whose field 2 holds the encoding characters unsplit.
	header bool
	c      *codec
}

func isHeaderName(name string) bool {
	return name == "MSH" || name == "FHS" || name == "BHS"
}

// parseSegment splits one segment's text. The caller has checked that
// text is not blank.
func parseSegment(text string, c *codec) (*Segment, error) {
	name := text
	if len(name) > 3 {
		name = text[:3]
	}
	if !validSegmentName(name) || (len(text) > 3 && text[3] != c.d.Field) {
		return nil, rejectf(ErrSegment, CodeSegmentSequence, "segment with an invalid name")
	}
	s := &Segment{name: name, header: isHeaderName(name), c: c}
	if len(text) == 3 {
		s.fields = make([][][][]string, 1)
		return s, nil
	}
	parts := strings.Split(text[4:], string(c.d.Field))
	if s.header {
		// parts[0] is MSH-2; the field separator is MSH-1.
		s.fields = make([][][][]string, 0, len(parts)+2)
		s.fields = append(s.fields, nil, leaf(string(c.d.Field)), leaf(parts[0]))
		parts = parts[1:]
	} else {
		s.fields = make([][][][]string, 1, len(parts)+1)
	}
	for _, p := range parts {
		s.fields = append(s.fields, splitField(p, c.d))
	}
	return s, nil
}

func leaf(s string) [][][]string { return [][][]string{{{s}}} }

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

// Name returns the segment ID, such as "PID" or "ZPI".
func (s *Segment) Name() string { return s.name }

// Len returns the number of the last field present, counting empty
// fields that trailing separators delimit: "PV1|1|O||" has 4. For MSH, FHS
// and BHS, field 1 is the field separator.
func (s *Segment) Len() int { return len(s.fields) - 1 }

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
	if n < 1 || n >= len(s.fields) || s.rawField(n) == "" {
		return 0
	}
	return len(s.fields[n])
}

func (s *Segment) loc(path string) Location {
	l := mustLocation(path)
	if l.Segment != "" && l.Segment != s.name {
		panic("hl7: location " + path + " is not in segment " + s.name)
	}
	return l
}

// get returns the decoded leaf at l, defaulting omitted parts to 1.
func (s *Segment) get(l Location) string {
	if s.header && l.Field <= 2 {
		if l.Comp > 1 || l.Rep > 1 {
			return ""
		}
		return s.raw(Location{Field: l.Field})
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
	if l.Field < 1 || l.Field >= len(s.fields) {
		return ""
	}
	f := s.fields[l.Field]
	if l.Rep == 0 && l.Comp == 0 {
		return s.rawField(l.Field)
	}
	r := max(l.Rep, 1)
	if r > len(f) {
		return ""
	}
	rep := f[r-1]
	if l.Comp == 0 {
		return joinRep(rep, s.c.d)
	}
	if l.Comp > len(rep) {
		return ""
	}
	comp := rep[l.Comp-1]
	if l.Sub == 0 {
		return joinOn(comp, s.c.d.Subcomponent)
	}
	if l.Sub > len(comp) {
		return ""
	}
	return comp[l.Sub-1]
}

func (s *Segment) rawField(n int) string {
	var b strings.Builder
	writeField(&b, s.fields[n], s.c.d)
	return b.String()
}

// encode writes the segment as sent, without its terminator.
func (s *Segment) encode(b *strings.Builder) {
	b.WriteString(s.name)
	first := 1
	if s.header {
		first = 2
	}
	for i := first; i < len(s.fields); i++ {
		b.WriteByte(s.c.d.Field)
		writeField(b, s.fields[i], s.c.d)
	}
}

// String returns the segment as sent, without its terminator, in UTF-8.
func (s *Segment) String() string {
	var b strings.Builder
	s.encode(&b)
	return b.String()
}

func writeField(b *strings.Builder, f [][][]string, d Delimiters) {
	for i, rep := range f {
		if i > 0 {
			b.WriteByte(d.Repetition)
		}
		b.WriteString(joinRep(rep, d))
	}
}

func joinRep(rep [][]string, d Delimiters) string {
	if len(rep) == 1 {
		return joinOn(rep[0], d.Subcomponent)
	}
	parts := make([]string, len(rep))
	for i, c := range rep {
		parts[i] = joinOn(c, d.Subcomponent)
	}
	return strings.Join(parts, string(d.Component))
}

func joinOn(parts []string, sep byte) string {
	if len(parts) == 1 {
		return parts[0]
	}
	return strings.Join(parts, string(sep))
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

func (st State) String() string {
	switch st {
	case Null:
		return "null"
	case Valued:
		return "valued"
	}
	return "absent"
}
