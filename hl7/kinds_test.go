package hl7_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"phix.dev/phix/hl7"
)

// segs is a small ADT message, one segment per entry, written with the
// default delimiters.
var segs = []string{
	`MSH|^~\&|APP|FAC|BROKER|HIE|20250314083000||ADT^A01^ADT_A01|KIND0001|P|2.5.1`,
	`EVN|A01|20250314082955`,
	`PID|1||MRN1^^^FAC^MR~MRN2^^^FAC^PI||Doe^Jane^Q||19850412|F|||1 Main St&Apt 2^^Town`,
	`NTE|1||esc \F\ \S\ \T\ \R\ \E\ end`,
	`PV1|1|I|4WEST^412^B`,
}

// checkKindMessage checks the values of a message built from segs,
// whatever its delimiters and terminators.
func checkKindMessage(t *testing.T, m *hl7.Message) {
	t.Helper()
	checkSegments(t, m, "MSH EVN PID NTE PV1")
	checkGets(t, m, "MSH-9.2", "A01", "MSH-10", "KIND0001", "PID-3[2].1", "MRN2", "PID-3[2].5", "PI",
		"PID-5.2", "Jane", "PV1-3.2", "412", "PV1-2", "I")
	if d := m.Delimiters(); d.Subcomponent != 0 {
		// The escapes decode to this message's own delimiters.
		want := fmt.Sprintf("esc %c %c %c %c %c end", d.Field, d.Component, d.Subcomponent, d.Repetition, d.Escape)
		checkGets(t, m, "PID-11.1.2", "Apt 2", "NTE-3", want)
	}
}

func TestTerminatorKinds(t *testing.T) {
	join := func(terms ...string) string {
		var b strings.Builder
		for i, s := range segs {
			b.WriteString(s)
			b.WriteString(terms[i%len(terms)])
		}
		return b.String()
	}
	tests := []struct {
		name     string
		raw      string
		warn     hl7.WarningKind
		strictOK bool
	}{
		{"CR", join("\r"), "", true},
		{"CRLF", join("\r\n"), "", true},
		{"LF only", join("\n"), hl7.WarnLFTerminators, false},
		{"CR and CRLF mixed", join("\r", "\r\n"), "", true},
		{"no final terminator", strings.TrimSuffix(join("\r"), "\r"), "", true},
		{"no final LF", strings.TrimSuffix(join("\n"), "\n"), hl7.WarnLFTerminators, false},
		{"trailing blank lines", join("\r") + "\r\n\r\n \t\r", hl7.WarnBlankSegment, false},
		{"blank line in the middle", strings.Replace(join("\r"), "\rNTE", "\r\rNTE", 1), hl7.WarnBlankSegment, false},
		{"LF blank line between CRLF segments", strings.Replace(join("\r\n"), "\r\nNTE", "\r\n\nNTE", 1), hl7.WarnLeadingSpace, false},
		{"leading blank lines", "\r\n\r\n" + join("\r"), hl7.WarnBlankSegment, false},
		{"byte order mark", "\ufeff" + join("\r"), hl7.WarnLeadingSpace, false},
		{"LF-only blank lines", join("\n") + "\n\n", hl7.WarnLFTerminators, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustParse(t, []byte(tt.raw))
			checkKindMessage(t, m)
			checkExact(t, m, []byte(tt.raw))
			if tt.warn != "" && !hasWarning(m, tt.warn) {
				t.Errorf("Warnings() = %v, want %s", m.Warnings(), tt.warn)
			}
			if tt.warn == "" && len(m.Warnings()) > 0 {
				t.Errorf("Warnings() = %v, want none", m.Warnings())
			}
			_, err := hl7.Parse([]byte(tt.raw), hl7.WithStrict())
			if (err == nil) != tt.strictOK {
				t.Errorf("Parse(WithStrict) = %v, want success %v", err, tt.strictOK)
			}
		})
	}
}

func TestLFInsideCRMessageIsData(t *testing.T) {
	raw := strings.Join(segs, "\r") + "\r"
	raw = strings.Replace(raw, "Jane", "Ja\nne", 1)
	m := mustParse(t, []byte(raw))
	checkGets(t, m, "PID-5.2", "Ja\nne")
	if !hasWarning(m, hl7.WarnLFInSegment) {
		t.Errorf("Warnings() = %v, want %s", m.Warnings(), hl7.WarnLFInSegment)
	}
}

// withDelims rewrites segs for other delimiters. Encoding characters
// beyond enc's length are left out of the message text, so those
// templates must not use them.
func withDelims(field byte, enc string) string {
	std := "^~\\&"
	repl := func(s string) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch k := strings.IndexByte(std, c); {
			case c == '|':
				b.WriteByte(field)
			case k >= 0 && k < len(enc):
				b.WriteByte(enc[k])
			default:
				b.WriteByte(c)
			}
		}
		return b.String()
	}
	var out []string
	for i, s := range segs {
		if i == 0 {
			s = "MSH" + string(field) + enc + repl(s[8:])
		} else {
			s = repl(s)
		}
		out = append(out, s)
	}
	return strings.Join(out, "\r") + "\r"
}

func TestDelimiterKinds(t *testing.T) {
	good := []struct {
		field byte
		enc   string
		warn  bool
	}{
		{'|', `^~\&`, false},
		{'|', `@~\&`, false},
		{'#', `$%*!`, false},
		{'|', `^~\&#`, false},
		{'!', `@#$%^`, false},
	}
	for _, tt := range good {
		t.Run(fmt.Sprintf("%c%s", tt.field, tt.enc), func(t *testing.T) {
			raw := []byte(withDelims(tt.field, tt.enc))
			m := mustParse(t, raw)
			checkKindMessage(t, m)
			checkExact(t, m, raw)
			_, ackRaw := ack(t, m, nil)
			if want := "MSH" + string(tt.field) + tt.enc + string(tt.field); !strings.HasPrefix(string(ackRaw), want) {
				t.Errorf("Ack = %q, want it to start %q", ackRaw, want)
			}
		})
	}
}

// TestShortEncodingCharacters covers MSH-2 of 1, 2 and 3 characters: the
// message is read positionally with a warning, and acknowledged with
// MSH-2 echoed exactly.
func TestShortEncodingCharacters(t *testing.T) {
	for _, enc := range []string{"^", "^~", "^~&"} {
		t.Run(enc, func(t *testing.T) {
			raw := "MSH|" + enc + "|APP|FAC|BROKER|HIE|20250314083000||ADT^A01|SHORT01|P|2.3\rPID|1||MRN1^^^FAC||Doe^Jane\r"
			m := mustParse(t, []byte(raw))
			checkGets(t, m, "MSH-2", enc, "MSH-10", "SHORT01", "PID-5.2", "Jane", "PID-3.4", "FAC")
			checkExact(t, m, []byte(raw))
			want := fmt.Sprintf("MSH-2 has %d encoding characters", len(enc))
			if w := m.Warnings(); len(w) != 1 || w[0].Text != want {
				t.Errorf("Warnings() = %v, want %q", w, want)
			}
			a, ackRaw := ack(t, m, nil)
			if !strings.HasPrefix(string(ackRaw), "MSH|"+enc+"|") {
				t.Errorf("Ack = %q, want MSH-2 %q echoed", ackRaw, enc)
			}
			checkGets(t, a, "MSA-1", "AA", "MSA-2", "SHORT01")
			_, err := hl7.Parse([]byte(raw), hl7.WithStrict())
			checkErr(t, err, hl7.ErrDelimiters, "MSH-2")
		})
	}
}

func TestBadDelimiters(t *testing.T) {
	tests := []struct{ name, header string }{
		{"empty MSH-2", "MSH||APP"},
		{"six encoding characters", `MSH|^~\&#!|APP`},
		{"repeated character", `MSH|^^\&|APP`},
		{"doubled escape", `MSH|^~\\&|APP`},
		{"letter as delimiter", `MSH|A~\&|APP`},
		{"digit as field separator", `MSH1^~\&1APP`},
		{"space as field separator", `MSH ^~\& APP`},
		{"non-ASCII delimiter", "MSH|\xa7~\\&|APP"},
		{"nothing after MSH", "MSH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := []byte(tt.header + "\rPID|1\r")
			_, err := hl7.Parse(raw)
			if !errors.Is(err, hl7.ErrDelimiters) {
				t.Fatalf("Parse(%q) = %v, want %v", tt.header, err, hl7.ErrDelimiters)
			}
			if e := hl7.Errors(err); len(e) != 1 || !e[0].Reject {
				t.Errorf("Parse error = %v, want one rejecting *Error", err)
			}
			h, _ := hl7.ParseHeader(raw)
			a := checkAck(t, h, err, "AR", "")
			if len(a.All("ERR")) != 1 {
				t.Errorf("ack has %d ERR segments, want 1", len(a.All("ERR")))
			}
		})
	}
}

func TestStructuralErrors(t *testing.T) {
	msh := `MSH|^~\&|APP|FAC|BROKER|HIE|20250314083000||ADT^A01|S1|P|2.5.1`
	tests := []struct {
		name string
		raw  string
		want error
	}{
		{"not HL7", "hello world\r", hl7.ErrNotHL7},
		{"empty", "", hl7.ErrNotHL7},
		{"batch header", "BHS|^~\\&|A\r" + msh + "\rBTS|1\r", hl7.ErrBatch},
		{"two messages glued", msh + "\rPID|1\r" + msh + "\rPID|2\r", hl7.ErrSegment},
		{"batch trailer inside", msh + "\rBTS|1\r", hl7.ErrSegment},
		{"lower-case segment", msh + "\rpid|1\r", hl7.ErrSegment},
		{"short segment name", msh + "\rPI|1\r", hl7.ErrSegment},
		{"name without separator", msh + "\rPIDX1\r", hl7.ErrSegment},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := hl7.Parse([]byte(tt.raw))
			if !errors.Is(err, tt.want) {
				t.Errorf("Parse = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEscapeKinds(t *testing.T) {
	d := hl7.DefaultDelimiters
	tests := []struct{ raw, want string }{
		{`\F\\S\\T\\R\\E\`, `|^&~\`},
		{`A\E\\F\B`, `A\|B`},
		{`\E\\E\`, `\\`},
		{`\X41\`, "A"},
		{`\X414243\`, "ABC"},
		{`\XC3A9\`, "é"},
		{`\X0D\\X0A\`, "\r\n"},
		{`\x41\`, `\x41\`},
		{`\XZZ\`, `\XZZ\`},
		{`\X4\`, `\X4\`},
		{`\XFF\`, `\XFF\`},
		{`\H\bold\N\`, "bold"},
		{`a\.br\b`, "a\nb"},
		{`a\.sp 2\b`, "a\n\nb"},
		{`\.in+4\\.ti-2\\.fi\\.nf\\.ce\\.sk 3\x`, "x"},
		{`\.zz\`, `\.zz\`},
		{`\Zlocal\`, `\Zlocal\`},
		{`\C2842\`, `\C2842\`},
		{`\M2442\`, `\M2442\`},
		{`\Q\`, `\Q\`},
		{`\P\`, `\P\`},
		{`lone \ here`, `lone \ here`},
		{`end \`, `end \`},
		{`\\`, `\\`},
		{"plain", "plain"},
	}
	for _, tt := range tests {
		if got := d.UnescapeText(tt.raw); got != tt.want {
			t.Errorf("UnescapeText(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
	trunc := hl7.DefaultDelimiters
	trunc.Truncation = '#'
	if got := trunc.UnescapeText(`a\P\b`); got != "a#b" {
		t.Errorf("UnescapeText with truncation = %q, want a#b", got)
	}
	custom := hl7.Delimiters{Field: '|', Component: '@', Repetition: '*', Escape: '!', Subcomponent: '%'}
	if got := custom.UnescapeText(`x!F!!S!!E!!R!!T!`); got != `x|@!*%` {
		t.Errorf("UnescapeText with escape '!' = %q, want x|@!*%%", got)
	}
}

func TestEscapeRoundTrip(t *testing.T) {
	alphabet := []rune("ab|^~\\&#\r\nXé\"")
	rng := rand.New(rand.NewPCG(1, 2))
	for _, d := range []hl7.Delimiters{
		hl7.DefaultDelimiters,
		{Field: '|', Component: '^', Repetition: '~', Escape: '\\', Subcomponent: '&', Truncation: '#'},
		{Field: '|', Component: '^', Repetition: '~', Escape: '&'},
	} {
		for i := 0; i < 2000; i++ {
			r := make([]rune, rng.IntN(12))
			for j := range r {
				r[j] = alphabet[rng.IntN(len(alphabet))]
			}
			s := string(r)
			enc, err := d.EscapeText(s)
			if err != nil {
				t.Fatalf("EscapeText(%q) = %v", s, err)
			}
			if got := d.UnescapeText(enc); got != s {
				t.Fatalf("UnescapeText(EscapeText(%q)) = %q via %q", s, got, enc)
			}
			if again, _ := d.EscapeText(d.UnescapeText(enc)); again != enc {
				t.Fatalf("EscapeText(UnescapeText(%q)) = %q", enc, again)
			}
		}
	}
	noEsc := hl7.Delimiters{Field: '|', Component: '^'}
	if _, err := noEsc.EscapeText("a^b"); !errors.Is(err, hl7.ErrCannotEscape) {
		t.Errorf("EscapeText without escape character = %v, want %v", err, hl7.ErrCannotEscape)
	}
}

func TestUndecodableEscapesAreWarned(t *testing.T) {
	raw := []byte(segs[0] + "\rNTE|1||\\Zlocal\\ and \\XZZ\\ and lone \\\r")
	m := mustParse(t, raw)
	checkGets(t, m, "NTE-3", `\Zlocal\ and \XZZ\ and lone \`)
	if !hasWarning(m, hl7.WarnEscape) {
		t.Errorf("Warnings() = %v, want %s", m.Warnings(), hl7.WarnEscape)
	}
	if _, err := hl7.Parse(raw, hl7.WithStrict()); err != nil {
		t.Errorf("Parse(WithStrict) = %v, want escape problems to stay warnings", err)
	}
	checkExact(t, m, raw)
}
