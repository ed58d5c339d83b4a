package hl7_test

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/text/encoding/charmap"

	"phix.dev/phix/hl7"
)

func latin1Message(t testing.TB, msh18, name string) []byte {
	t.Helper()
	enc, err := charmap.ISO8859_1.NewEncoder().String(name)
	if err != nil {
		t.Fatal(err)
	}
	return []byte("MSH|^~\\&|APP|FAC|BROKER|HIE|20250314083000||ADT^A01|CS1|P|2.5.1||||||" + msh18 +
		"\rPID|1||X||" + enc + "\r")
}

func TestCharsets(t *testing.T) {
	tests := []struct {
		msh18, text string
		set         *charmap.Charmap
	}{
		{"8859/1", "Müller^José", charmap.ISO8859_1},
		{"8859/2", "Dvořák^Łukasz", charmap.ISO8859_2},
		{"8859/5", "Иванов^Пётр", charmap.ISO8859_5},
		{"8859/7", "Παπαδόπουλος", charmap.ISO8859_7},
		{"8859/9", "Yılmaz^Şule", charmap.ISO8859_9},
		{"8859/15", "Lefèvre^€", charmap.ISO8859_15},
		{"ISO-8859-1", "Müller", charmap.ISO8859_1},
		{"WINDOWS-1252", "Müller “quoted”", charmap.Windows1252},
	}
	for _, tt := range tests {
		t.Run(tt.msh18, func(t *testing.T) {
			name, err := tt.set.NewEncoder().String(tt.text)
			if err != nil {
				t.Fatal(err)
			}
			raw := []byte("MSH|^~\\&|APP|FAC|BROKER|HIE|20250314083000||ADT^A01|CS1|P|2.5.1||||||" + tt.msh18 +
				"\rPID|1||X||" + name + "\r")
			m := mustParse(t, raw)
			if got := m.Raw("PID-5"); got != tt.text {
				t.Errorf("Raw(PID-5) = %q, want %q", got, tt.text)
			}
			checkExact(t, m, raw)
			checkAck(t, m, nil, "AA", "CS1")
		})
	}
}

func TestUTF8Charsets(t *testing.T) {
	for _, name := range []string{"", "UNICODE UTF-8", "UTF-8", "UNICODE", "ASCII"} {
		text := "Müller"
		if name == "ASCII" {
			text = "Muller"
		}
		raw := []byte("MSH|^~\\&|A|F|B|H|20250314||ADT^A01|U1|P|2.5.1||||||" + name + "\rPID|1||X||" + text + "\r")
		m := mustParse(t, raw)
		checkGets(t, m, "PID-5", text)
		checkExact(t, m, raw)
	}
}

func TestCharsetErrors(t *testing.T) {
	tests := []struct {
		name string
		raw  []byte
		opts []hl7.Option
	}{
		{"Latin-1 bytes without MSH-18", latin1Message(t, "", "Müller"), nil},
		{"Latin-1 bytes declared UTF-8", latin1Message(t, "UNICODE UTF-8", "Müller"), nil},
		{"Latin-1 bytes declared ASCII", latin1Message(t, "ASCII", "Müller"), nil},
		{"unknown character set", latin1Message(t, "EBCDIC", "Muller"), nil},
		{"UTF-16", latin1Message(t, "UNICODE UTF-16", "Muller"), nil},
		{"undefined Windows-1252 byte", append(latin1Message(t, "WINDOWS-1252", "M"), 0x81), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := hl7.Parse(tt.raw, tt.opts...)
			if !errors.Is(err, hl7.ErrCharset) {
				t.Fatalf("Parse = %v, want %v", err, hl7.ErrCharset)
			}
			h, herr := hl7.ParseHeader(tt.raw)
			if herr != nil {
				t.Fatalf("ParseHeader = %v, want the header readable", herr)
			}
			checkAck(t, h, err, "AR", "CS1")
		})
	}
}

func TestDefaultCharset(t *testing.T) {
	raw := latin1Message(t, "", "Müller")
	m := mustParse(t, raw, hl7.WithDefaultCharset("8859/1"))
	checkGets(t, m, "PID-5", "Müller")
	checkExact(t, m, raw)
	if _, err := hl7.Parse(raw, hl7.WithDefaultCharset("KLINGON")); !errors.Is(err, hl7.ErrCharset) {
		t.Errorf("WithDefaultCharset(unknown) = %v, want %v", err, hl7.ErrCharset)
	}
}

// TestAckInMessageCharset checks that an ACK to a Latin-1 message echoes
// non-ASCII sender names in Latin-1, not UTF-8.
func TestAckInMessageCharset(t *testing.T) {
	app, _ := charmap.ISO8859_1.NewEncoder().String("KÖLN")
	raw := []byte("MSH|^~\\&|" + app + "|FAC|BROKER|HIE|20250314083000||ADT^A01|CS2|P|2.5.1||||||8859/1\rPID|1\r")
	m := mustParse(t, raw)
	ackRaw, err := hl7.Ack(m, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(ackRaw, []byte("|"+app+"|")) {
		t.Errorf("Ack = %q, want MSH-5 in Latin-1", ackRaw)
	}
	a := mustParse(t, ackRaw)
	checkGets(t, a, "MSH-5", "KÖLN", "MSH-18", "8859/1")
}

func TestHexEscapeInMessageCharset(t *testing.T) {
	raw := []byte("MSH|^~\\&|A|F|B|H|20250314||ADT^A01|X1|P|2.5.1||||||8859/1\rPID|1||X||M\\XDC\\LLER\r")
	m := mustParse(t, raw)
	checkGets(t, m, "PID-5", "MÜLLER")
}
