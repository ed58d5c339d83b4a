package hl7

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
)

// Charset is a character set a message declares in MSH-18 (HL7 table
// 0211). Parsed text is always UTF-8; a Charset converts to and from the
// bytes on the wire. The nil *Charset is UTF-8.
type Charset struct {
	name  string
	enc   encoding.Encoding // nil for UTF-8 and ASCII
	ascii bool
}

// charsets maps normalised MSH-18 codes to encodings. Besides table 0211
// it accepts the spellings senders commonly use instead ("UTF-8",
// "ISO-8859-1", "WINDOWS-1252"). Table 0211's "UNICODE" predates the
// UTF variants; since MSH was readable as ASCII it cannot be UTF-16, so it
// is read as UTF-8.
var charsets = map[string]encoding.Encoding{
	"8859/1": charmap.ISO8859_1, "8859/2": charmap.ISO8859_2, "8859/3": charmap.ISO8859_3,
	"8859/4": charmap.ISO8859_4, "8859/5": charmap.ISO8859_5, "8859/6": charmap.ISO8859_6,
	"8859/7": charmap.ISO8859_7, "8859/8": charmap.ISO8859_8, "8859/9": charmap.ISO8859_9,
	"8859/15":       charmap.ISO8859_15,
	"WINDOWS-1252":  charmap.Windows1252,
	"CP1252":        charmap.Windows1252,
	"GB 18030-2000": simplifiedchinese.GB18030,
	"KS X 1001":     korean.EUCKR,
	"BIG-5":         traditionalchinese.Big5,
	"ISO IR87":      japanese.ISO2022JP,
	"SHIFT_JIS":     japanese.ShiftJIS,
}

var utf8Names = map[string]bool{"UNICODE UTF-8": true, "UTF-8": true, "UTF8": true, "UNICODE": true}

// LookupCharset returns the character set an MSH-18 value names. The
// empty name means the default, UTF-8 (a superset of HL7's default
// ASCII), and returns nil. An unsupported name returns an error matching
// [ErrCharset]; so do UTF-16 and UTF-32, which cannot carry an ASCII MSH.
func LookupCharset(name string) (*Charset, error) {
	n := strings.ToUpper(strings.TrimSpace(name))
	n = strings.ReplaceAll(n, "_", " ")
	if strings.HasPrefix(n, "ISO-8859-") || strings.HasPrefix(n, "ISO8859-") {
		n = "8859/" + n[strings.LastIndexByte(n, '-')+1:]
	}
	switch {
	case n == "":
		return nil, nil
	case utf8Names[n]:
		return &Charset{name: name}, nil
	case n == "ASCII" || n == "US-ASCII":
		return &Charset{name: name, ascii: true}, nil
	case n == "SHIFT JIS":
		n = "SHIFT_JIS"
	}
	enc, ok := charsets[n]
	if !ok {
		return nil, rejectf(ErrCharset, CodeDataType, "unsupported character set in MSH-18")
	}
	return &Charset{name: name, enc: enc}, nil
}

// Name returns the MSH-18 value the character set was looked up by, or
// "" for the default.
func (c *Charset) Name() string {
	if c == nil {
		return ""
	}
	return c.name
}

// decode converts wire bytes to UTF-8 text. It refuses bytes that are not
// valid in the character set, or that would not convert back to the same
// bytes, rather than substitute U+FFFD: a message must be forwarded
// exactly and mapped without silent loss.
func (c *Charset) decode(b []byte) (string, error) {
	switch {
	case c == nil || (c.enc == nil && !c.ascii):
		if !utf8.Valid(b) {
			return "", rejectf(ErrCharset, CodeDataType,
				"message is not valid UTF-8 and MSH-18 names no other character set")
		}
		return string(b), nil
	case c.ascii:
		for _, x := range b {
			if x >= 0x80 {
				return "", rejectf(ErrCharset, CodeDataType, "non-ASCII byte in a message declared ASCII")
			}
		}
		return string(b), nil
	}
	s, err := c.enc.NewDecoder().Bytes(b)
	if err == nil {
		var back []byte
		back, err = c.enc.NewEncoder().Bytes(s)
		if err == nil && !bytes.Equal(back, b) {
			err = ErrCharset
		}
	}
	if err != nil {
		return "", rejectf(ErrCharset, CodeDataType, "bytes not valid in the MSH-18 character set")
	}
	return string(s), nil
}

// encode converts UTF-8 text to wire bytes. Characters the set cannot
// represent are an error.
func (c *Charset) encode(s string) ([]byte, error) {
	if c == nil || c.enc == nil {
		if c != nil && c.ascii {
			for i := 0; i < len(s); i++ {
				if s[i] >= 0x80 {
					return nil, rejectf(ErrCharset, CodeDataType, "text not representable in ASCII")
				}
			}
		}
		return []byte(s), nil
	}
	b, err := c.enc.NewEncoder().Bytes([]byte(s))
	if err != nil {
		return nil, rejectf(ErrCharset, CodeDataType, "text not representable in the MSH-18 character set")
	}
	return b, nil
}

// decodeBytes converts bytes decoded from a \Xhh\ escape, which are in
// the message's character set, to UTF-8.
func (c *Charset) decodeBytes(b []byte) (string, bool) {
	s, err := c.decode(b)
	return s, err == nil
}
