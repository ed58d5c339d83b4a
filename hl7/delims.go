package hl7

import "fmt"

// Delimiters are the separator and escape characters that one message
// declares in MSH-1 and MSH-2 (or FHS/BHS-1 and -2). A zero byte means the
// message declares no such character.
//
// MSH-2 is read by position, as HL7 defines it: component, repetition,
// escape, subcomponent, truncation (v2.7). A sender that omits the escape
// character and writes "^~&" therefore declares '&' as its escape
// character and no subcomponent separator.
type Delimiters struct {
	Field        byte
	Component    byte
	Repetition   byte
	Escape       byte
	Subcomponent byte
	Truncation   byte
}

// DefaultDelimiters are HL7's recommended delimiters, MSH-2 = ^~\&.
var DefaultDelimiters = Delimiters{
	Field: '|', Component: '^', Repetition: '~', Escape: '\\', Subcomponent: '&',
}

// Encoding returns MSH-2 as these delimiters declare it.
func (d Delimiters) Encoding() string {
	var b []byte
	for _, c := range d.encodingChars() {
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	return string(b)
}

func (d Delimiters) encodingChars() [5]byte {
	return [5]byte{d.Component, d.Repetition, d.Escape, d.Subcomponent, d.Truncation}
}

// isDelimiter reports whether c is one of d's separators or its escape
// character.
func (d Delimiters) isDelimiter(c byte) bool {
	if c == 0 {
		return false
	}
	return c == d.Field || c == d.Component || c == d.Repetition ||
		c == d.Escape || c == d.Subcomponent || c == d.Truncation
}

// readDelimiters reads MSH-1 and MSH-2 from a header segment (MSH, FHS or
// BHS) at the start of hdr. It returns MSH-2's length so the caller can
// warn about short declarations; it fails on anything that would make the
// rest of the message ambiguous.
func readDelimiters(hdr []byte) (Delimiters, int, error) {
	if len(hdr) < 4 {
		return Delimiters{}, 0, rejectf(ErrDelimiters, CodeDataType, "%s-1 missing", name3(hdr))
	}
	d := Delimiters{Field: hdr[3]}
	if !usableDelimiter(d.Field) {
		return d, 0, rejectf(ErrDelimiters, CodeDataType, "%s-1 is not a usable field separator", name3(hdr))
	}
	enc := hdr[4:]
	for i, c := range enc {
		if c == d.Field || c == '\r' || c == '\n' {
			enc = enc[:i]
			break
		}
	}
	if len(enc) == 0 || len(enc) > 5 {
		return d, len(enc), rejectf(ErrDelimiters, CodeDataType,
			"%s-2 has %d encoding characters, want 1 to 5", name3(hdr), len(enc))
	}
	slots := []*byte{&d.Component, &d.Repetition, &d.Escape, &d.Subcomponent, &d.Truncation}
	seen := map[byte]bool{d.Field: true}
	for i, c := range enc {
		if !usableDelimiter(c) || seen[c] {
			return d, len(enc), rejectf(ErrDelimiters, CodeDataType,
				"%s-2 character %d is unusable or repeated", name3(hdr), i+1)
		}
		seen[c] = true
		*slots[i] = c
	}
	return d, len(enc), nil
}

// usableDelimiter reports whether c can separate values unambiguously:
// printable ASCII punctuation, never a letter, digit or space, which occur
// in data, and never a byte of a multibyte character.
func usableDelimiter(c byte) bool {
	switch {
	case c <= ' ' || c >= 0x7f:
		return false
	case c >= '0' && c <= '9', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		return false
	}
	return true
}

func name3(b []byte) string {
	if len(b) < 3 {
		return "MSH"
	}
	return string(b[:3])
}

// String returns MSH-1 followed by MSH-2, such as "|^~\&".
func (d Delimiters) String() string {
	return fmt.Sprintf("%c%s", d.Field, d.Encoding())
}
