package hl7

import (
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
)

// ErrCannotEscape is returned by [Delimiters.EscapeText] when text contains a
// delimiter but the message declares no escape character to encode it.
var ErrCannotEscape = errors.New("hl7: text contains a delimiter and there is no escape character")

// UnescapeText decodes the escape sequences in raw, a leaf value as sent:
// the delimiter escapes \F\ \S\ \T\ \R\ \E\ \P\, \Xhh..\ hex bytes (read
// as UTF-8 here; [Segment.Get] and [Message.Get] use the message's
// character set), the highlighting marks \H\ and \N\ (dropped) and the
// formatted-text commands (\.br\ and \.sp n\ become line breaks, the
// others are dropped). Sequences it cannot decode, such as \Z..\ local
// escapes, \C..\ and \M..\ character set switches, unknown codes and a
// lone escape character, are kept verbatim so no text is lost.
func (d Delimiters) UnescapeText(raw string) string { return unescape(raw, &codec{d: d}) }

// EscapeText encodes text for a leaf value: the escape character becomes
// \E\, the field, component, subcomponent, repetition and truncation
// characters become \F\ \S\ \T\ \R\ \P\, and CR and LF become \X0D\ and
// \X0A\ so they cannot end a segment. UnescapeText(EscapeText(s)) == s
// for every s, and EscapeText(UnescapeText(r)) == r for every r whose
// only escapes are those. When text needs escaping but d has no escape
// character, EscapeText returns [ErrCannotEscape].
func (d Delimiters) EscapeText(text string) (string, error) {
	if !d.needsEscape(text) {
		return text, nil
	}
	if d.Escape == 0 {
		return "", ErrCannotEscape
	}
	var b strings.Builder
	for i := 0; i < len(text); i++ {
		c := text[i]
		code := d.escapeCode(c)
		if code == "" {
			b.WriteByte(c)
			continue
		}
		b.WriteByte(d.Escape)
		b.WriteString(code)
		b.WriteByte(d.Escape)
	}
	return b.String(), nil
}

func (d Delimiters) needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if d.escapeCode(s[i]) != "" {
			return true
		}
	}
	return false
}

func (d Delimiters) escapeCode(c byte) string {
	switch {
	case c == 0:
		return ""
	case c == d.Escape:
		return "E"
	case c == d.Field:
		return "F"
	case c == d.Component:
		return "S"
	case c == d.Subcomponent:
		return "T"
	case c == d.Repetition:
		return "R"
	case c == d.Truncation:
		return "P"
	case c == '\r':
		return "X0D"
	case c == '\n':
		return "X0A"
	}
	return ""
}

// unescape decodes raw as [Delimiters.UnescapeText] describes, reading
// hex escapes in c's character set. Decoding happens after splitting, so
// a decoded delimiter never splits anything.
func unescape(raw string, c *codec) string {
	e := c.d.Escape
	if e == 0 || strings.IndexByte(raw, e) < 0 {
		return raw
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(raw, e)
		if i < 0 {
			b.WriteString(raw)
			return b.String()
		}
		b.WriteString(raw[:i])
		j := strings.IndexByte(raw[i+1:], e)
		if j < 0 {
			b.WriteString(raw[i:])
			return b.String()
		}
		seq := raw[i+1 : i+1+j]
		if out, ok := decodeEscape(seq, c); ok {
			b.WriteString(out)
		} else {
			b.WriteString(raw[i : i+j+2])
		}
		raw = raw[i+j+2:]
	}
}

// decodeEscape returns the text for the escape sequence seq (without its
// escape characters), or false to keep it verbatim.
func decodeEscape(seq string, c *codec) (string, bool) {
	if len(seq) == 1 {
		if ch := c.d.escaped(seq[0]); ch != 0 {
			return string(ch), true
		}
	}
	switch {
	case seq == "H" || seq == "N":
		return "", true
	case len(seq) > 1 && seq[0] == 'X':
		b, err := hex.DecodeString(seq[1:])
		if err != nil {
			return "", false
		}
		return c.cs.decodeBytes(b)
	case len(seq) > 1 && seq[0] == '.':
		return formatting(seq[1:])
	}
	return "", false
}

// escaped returns the delimiter that the one-letter escape code stands
// for, or 0.
func (d Delimiters) escaped(code byte) byte {
	switch code {
	case 'F':
		return d.Field
	case 'S':
		return d.Component
	case 'T':
		return d.Subcomponent
	case 'R':
		return d.Repetition
	case 'E':
		return d.Escape
	case 'P':
		return d.Truncation
	}
	return 0
}

// formatting interprets a formatted-text command (HL7 v2 section 2.7.6)
// as plain text: line breaks are kept, layout commands dropped.
func formatting(cmd string) (string, bool) {
	switch {
	case cmd == "br":
		return "\n", true
	case cmd == "sp":
		return "\n", true
	case strings.HasPrefix(cmd, "sp"):
		n, err := strconv.Atoi(strings.TrimSpace(cmd[2:]))
		if err != nil || n < 0 || n > 100 {
			return "", false
		}
		return strings.Repeat("\n", max(n, 1)), true
	case cmd == "fi" || cmd == "nf" || cmd == "ce":
		return "", true
	case strings.HasPrefix(cmd, "in") || strings.HasPrefix(cmd, "ti") || strings.HasPrefix(cmd, "sk"):
		return "", true
	}
	return "", false
}

// escapeProblems counts the escape sequences in raw that unescape keeps
// verbatim.
func escapeProblems(raw string, c *codec) int {
	e := c.d.Escape
	if e == 0 || strings.IndexByte(raw, e) < 0 {
		return 0
	}
	n := 0
	for {
		i := strings.IndexByte(raw, e)
		if i < 0 {
			return n
		}
		j := strings.IndexByte(raw[i+1:], e)
		if j < 0 {
			return n + 1
		}
		if _, ok := decodeEscape(raw[i+1:i+1+j], c); !ok {
			n++
		}
		raw = raw[i+j+2:]
	}
}
