package hl7

import (
	"fmt"
	"strconv"
	"strings"
)

// Location addresses an element of a message. All numbers are 1-based, as
// in HL7; zero means "not given".
//
// The text form is SEG(n)-F[r].C.S, for example "PID-3[2].5" (component 5
// of the second repetition of PID-3) or "OBX(2)-5" (OBX-5 of the second
// OBX segment). Within a segment the "SEG(n)-" prefix is left out: "3.1".
type Location struct {
	Segment    string // segment ID such as "PID"; "" within a segment
	Occurrence int    // which segment of that ID, 0 meaning the first
	Field      int
	Rep        int // field repetition
	Comp       int // component
	Sub        int // subcomponent
}

// ParseLocation parses a location's text form.
func ParseLocation(s string) (Location, error) {
	var l Location
	orig := s
	bad := func() (Location, error) { return Location{}, fmt.Errorf("hl7: bad location %q", orig) }
	if i := strings.IndexByte(s, '-'); i >= 0 {
		seg := s[:i]
		s = s[i+1:]
		if j := strings.IndexByte(seg, '('); j >= 0 {
			n, ok := bracketed(seg[j:], '(', ')')
			if !ok {
				return bad()
			}
			l.Occurrence, seg = n, seg[:j]
		}
		if !validSegmentName(seg) {
			return bad()
		}
		l.Segment = seg
	}
	parts := strings.Split(s, ".")
	if len(parts) > 3 {
		return bad()
	}
	f := parts[0]
	if j := strings.IndexByte(f, '['); j >= 0 {
		n, ok := bracketed(f[j:], '[', ']')
		if !ok {
			return bad()
		}
		l.Rep, f = n, f[:j]
	}
	nums := []*int{&l.Field, &l.Comp, &l.Sub}
	parts[0] = f
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return bad()
		}
		*nums[i] = n
	}
	return l, nil
}

// bracketed parses "(n)" or "[n]" with n >= 1.
func bracketed(s string, open, close byte) (int, bool) {
	if len(s) < 3 || s[0] != open || s[len(s)-1] != close {
		return 0, false
	}
	n, err := strconv.Atoi(s[1 : len(s)-1])
	return n, err == nil && n >= 1
}

func mustLocation(path string) Location {
	l, err := ParseLocation(path)
	if err != nil {
		panic(err)
	}
	return l
}

// String returns the location's text form.
func (l Location) String() string {
	var b strings.Builder
	if l.Segment != "" {
		b.WriteString(l.Segment)
		if l.Occurrence > 1 {
			fmt.Fprintf(&b, "(%d)", l.Occurrence)
		}
		if l.Field == 0 {
			return b.String()
		}
		b.WriteByte('-')
	}
	fmt.Fprintf(&b, "%d", l.Field)
	if l.Rep > 0 {
		fmt.Fprintf(&b, "[%d]", l.Rep)
	}
	if l.Comp > 0 {
		fmt.Fprintf(&b, ".%d", l.Comp)
		if l.Sub > 0 {
			fmt.Fprintf(&b, ".%d", l.Sub)
		}
	}
	return b.String()
}

// erl renders the location as an HL7 ERL data type for ERR-2: segment ID,
// segment sequence, field, repetition, component, subcomponent, leaving
// out trailing parts that were not given (so OBR-7 is "OBR^1^7").
func (l Location) erl(d Delimiters) string {
	parts := []string{l.Segment, strconv.Itoa(max(l.Occurrence, 1))}
	if l.Field > 0 {
		parts = append(parts, strconv.Itoa(l.Field))
	}
	if l.Comp > 0 || l.Rep > 1 {
		parts = append(parts, strconv.Itoa(max(l.Rep, 1)))
	}
	if l.Comp > 0 {
		parts = append(parts, strconv.Itoa(l.Comp))
		if l.Sub > 0 {
			parts = append(parts, strconv.Itoa(l.Sub))
		}
	}
	return strings.Join(parts, string(d.Component))
}

// validSegmentName reports whether s is a segment ID: an upper-case
// letter followed by two upper-case letters or digits.
func validSegmentName(s string) bool {
	if len(s) != 3 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < 3; i++ {
		c := s[i]
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}
