package hl7_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"phix.dev/phix/hl7"
)

// caseTest checks every EXPECTED bullet of one case file.
type caseTest struct {
	file  string
	check func(t *testing.T, raw []byte)
}

// caseTests covers every HL7 v2 case, 01-25 and 39-44. The MLLP cases
// (20, 21, 23) are checked here for their payloads and in package mllp
// over TCP.
var caseTests = []caseTest{
	{"01-segterm-lf.hl7", case01},
	{"02-segterm-crlf.hl7", case02},
	{"04-empty-trailing-segments.hl7", case04},
	{"05-msh2-custom-delims.hl7", case05},
	{"07-msh2-three-chars.hl7", case07},
	{"08-escape-basic.hl7", case08},
	{"10-repetition.hl7", case10},
	{"11-null-empty-trailing-fields.hl7", case11},
	{"12-z-segment.hl7", case12},
	{"14-msh18-latin1.hl7", case14},
	{"16-batch-fhs-bhs.hl7", case16},
	{"17-large-obx-base64.hl7", case17},
	{"18-dtm-timezone.hl7", case18},
	{"20-mllp-split-reads.hl7", case20},
	{"21-mllp-two-frames-one-read.hl7", case21},
	{"23-mllp-junk-and-trailing-lf.hl7", case23},
	{"25-ack-build-v251.hl7", case25},
	{"39-adt-a01.hl7", case39},
	{"40-adt-a08.hl7", case40},
	{"41-oru-r01.hl7", case41},
	{"42-orm-o01.hl7", case42},
	{"43-siu-s12.hl7", case43},
	{"44-mdm-t02.hl7", case44},
}

func TestCases(t *testing.T) {
	for _, tc := range caseTests {
		t.Run(strings.TrimSuffix(tc.file, ".hl7"), func(t *testing.T) {
			tc.check(t, loadCase(t, tc.file))
		})
	}
}

// TestEveryCaseIsCovered fails when an HL7 case file in 01-25 or 39-44
// has no entry in caseTests, so a new case cannot be skipped silently.
func TestEveryCaseIsCovered(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(casesDir(t), "*.hl7"))
	if err != nil {
		t.Fatal(err)
	}
	var covered []string
	for _, tc := range caseTests {
		covered = append(covered, tc.file)
	}
	for _, f := range files {
		name := filepath.Base(f)
		if n := name[:2]; n > "25" && n < "39" || n > "44" {
			continue
		}
		if !slices.Contains(covered, name) {
			t.Errorf("case %s has no test in caseTests", name)
		}
	}
}

func case01(t *testing.T, raw []byte) {
	m := mustParse(t, raw)
	checkSegments(t, m, "MSH EVN PID PV1")
	checkGets(t, m, "MSH-10", "SEP0000001", "PID-3.1", "MRN100001",
		"PID-5.1", "Testperson", "PID-5.2", "Alex", "PV1-2", "I")
	checkAccepted(t, m, raw, "SEP0000001")
	if !hasWarning(m, hl7.WarnLFTerminators) {
		t.Errorf("Warnings() = %v, want %s", m.Warnings(), hl7.WarnLFTerminators)
	}

	_, err := hl7.Parse(raw, hl7.WithStrict())
	checkErr(t, err, hl7.ErrTerminator, "no segment terminator 0x0D found")
	h, _ := hl7.ParseHeader(raw)
	checkAck(t, h, err, "AR", "SEP0000001")
}

func case02(t *testing.T, raw []byte) {
	m := mustParse(t, raw)
	checkSegments(t, m, "MSH EVN PID PV1")
	checkGets(t, m, "PV1-3.1", "4WEST", "PV1-3.2", "412", "PV1-3.3", "B", "MSH-12", "2.5.1")
	checkRaws(t, m, "PV1-3", "4WEST^412^B^GENHOSP", "PID-11", "12 Example Street^^Springfield^ST^99999^USA^H")
	checkAccepted(t, m, raw, "SEP0000002")
	if len(m.Warnings()) != 0 {
		t.Errorf("Warnings() = %v, want none for CRLF", m.Warnings())
	}
}

func case04(t *testing.T, raw []byte) {
	m := mustParse(t, raw)
	checkSegments(t, m, "MSH EVN PID PV1")
	checkGets(t, m, "PV1-2", "O")
	checkRaws(t, m, "MSH-9", "ADT^A08^ADT_A01")
	checkAccepted(t, m, raw, "SEP0000004")
	if !hasWarning(m, hl7.WarnBlankSegment) {
		t.Errorf("Warnings() = %v, want %s", m.Warnings(), hl7.WarnBlankSegment)
	}
}

func case05(t *testing.T, raw []byte) {
	m := mustParse(t, raw)
	want := hl7.Delimiters{Field: '|', Component: '@', Repetition: '~', Escape: '\\', Subcomponent: '&'}
	if got := m.Delimiters(); got != want {
		t.Errorf("Delimiters() = %v, want %v", got, want)
	}
	checkGets(t, m, "MSH-9.1", "ORM", "MSH-9.2", "O01", "MSH-9.3", "ORM_O01", "MSH-10", "DLM0000005",
		"PID-3[1].1", "MRN100005", "PID-3[1].5", "MR", "PID-3[2].1", "ZZ0000005", "PID-3[2].5", "NI",
		"PID-5.1", "Doe", "PID-5.2", "Jane", "OBR-4.1", "2345-7", "NTE-3", "Fasting ^ 8h confirmed")
	if n := m.Reps("PID-3"); n != 2 {
		t.Errorf("Reps(PID-3) = %d, want 2", n)
	}
	// checkExact shows the '@' delimiters survive re-encoding.
	a := checkAccepted(t, m, raw, "DLM0000005")
	checkGets(t, a, "MSH-2", `@~\&`)
}

func case07(t *testing.T, raw []byte) {
	m := mustParse(t, raw)
	checkGets(t, m, "MSH-3", "CLINAPP", "MSH-9.1", "ORM", "MSH-10", "ENC0000007",
		"PID-5.1", "Doe", "PID-5.2", "Jamie", "MSH-2", "^~&")
	d := m.Delimiters()
	if d.Escape != '&' || d.Subcomponent != 0 {
		t.Errorf("Delimiters() = %+v, want escape '&' and no subcomponent separator", d)
	}
	_, ackRaw := ack(t, m, nil)
	if !bytes.HasPrefix(ackRaw, []byte("MSH|^~&|")) {
		t.Errorf("Ack = %q, want MSH-2 echoed as ^~&", ackRaw)
	}
	checkAccepted(t, m, raw, "ENC0000007")
	if got := m.Warnings(); len(got) != 1 || got[0].Text != "MSH-2 has 3 encoding characters" {
		t.Errorf("Warnings() = %v, want 'MSH-2 has 3 encoding characters'", got)
	}

	_, err := hl7.Parse(raw, hl7.WithStrict())
	checkErr(t, err, hl7.ErrDelimiters, "MSH-2")
	h, _ := hl7.ParseHeader(raw)
	checkAck(t, h, err, "AR", "ENC0000007")
}

func case08(t *testing.T, raw []byte) {
	m := mustParse(t, raw)
	checkGets(t, m,
		"OBX(1)-5", `Pipe | caret ^ amp & tilde ~ backslash \ end`,
		"OBX(2)-5", `A\|B`,
		"NTE-3", "Ref range per Smith & Jones 2019")
	// The escaped '|' never split a field: OBX(1) still has 11 fields.
	if n := m.Segment("OBX", 1).Len(); n != 11 {
		t.Errorf("OBX(1) Len() = %d, want 11", n)
	}
	for _, p := range []string{"OBX(1)-5", "OBX(2)-5", "NTE-3"} {
		enc, err := m.Delimiters().EscapeText(m.Get(p))
		if err != nil || enc != m.Raw(p) {
			t.Errorf("EscapeText(Get(%s)) = %q, %v; want %q", p, enc, err, m.Raw(p))
		}
	}
	checkAccepted(t, m, raw, "ESC0000008")
}

func case10(t *testing.T, raw []byte) {
	m := mustParse(t, raw)
	if n := m.Reps("PID-3"); n != 4 {
		t.Errorf("Reps(PID-3) = %d, want 4", n)
	}
	nonEmpty := 0
	for r := 1; r <= m.Reps("PID-3"); r++ {
		if m.State("PID-3["+string(rune('0'+r))+"]") == hl7.Valued {
			nonEmpty++
		}
	}
	if nonEmpty != 2 {
		t.Errorf("valued repetitions of PID-3 = %d, want 2", nonEmpty)
	}
	checkGets(t, m,
		"PID-3[1].1", "MRN100010", "PID-3[1].4", "GENHOSP", "PID-3[1].5", "MR",
		"PID-3[2].1", "ZZ0000010", "PID-3[2].4", "NATID", "PID-3[2].5", "NI",
		"PID-5[1].1", "Testperson", "PID-5[1].7", "L", "PID-5[2].1", "Oldname", "PID-5[2].7", "M",
		"PID-11[1].3", "Springfield", "PID-11[1].7", "H",
		"PID-11[2].1", "PO Box 9", "PID-11[2].3", "Shelbyville", "PID-11[2].7", "M",
		"PID-13[1].2", "PRN", "PID-13[1].7", "0100130",
		"PID-13[2].2", "NET", "PID-13[2].4", "casey@example.invalid",
		"PID-3[3].1", "", "PID-3[4].1", "")
	for _, p := range []string{"PID-3[1]", "PID-5[1]", "PID-11[1]", "PID-13[1]"} {
		if strings.ContainsRune(m.Raw(p), '~') {
			t.Errorf("Raw(%s) = %q, contains text of another repetition", p, m.Raw(p))
		}
	}
	checkAccepted(t, m, raw, "REP0000010")
}

func case11(t *testing.T, raw []byte) {
	m := mustParse(t, raw)
	checkGets(t, m, "PID-5.1", "Testperson", "PID-5.2", "Dana", "PID-18", "ACC7000011")
	states := map[string]hl7.State{
		"PID-5.3": hl7.Null, "PID-13": hl7.Null, "PID-14": hl7.Absent, "PID-16": hl7.Absent,
		"PID-18": hl7.Valued, "PID-22": hl7.Absent, "PID-40": hl7.Absent,
	}
	for p, want := range states {
		if got := m.State(p); got != want {
			t.Errorf("State(%s) = %v, want %v", p, got, want)
		}
	}
	if got := m.Get("PID-5.3"); got != "" {
		t.Errorf(`Get(PID-5.3) = %q, want "" for an HL7 null, never the text '""'`, got)
	}
	if n := m.Segment("PID", 1).Len(); n != 22 {
		t.Errorf("PID Len() = %d, want 22", n)
	}
	if n := m.Segment("PV1", 1).Len(); n != 23 {
		t.Errorf("PV1 Len() = %d, want 23", n)
	}
	checkAccepted(t, m, raw, "NUL0000011")
}

func case12(t *testing.T, raw []byte) {
	m := mustParse(t, raw)
	checkSegments(t, m, "MSH EVN PID ZPI PV1 ZIN")
	checkGets(t, m, "ZPI-2", "Blue", "ZPI-3.1", "QUIET", "ZIN-2", "PLAN77", "ZIN-4", "20251231")
	if got := m.Segment("ZPI", 1).String(); got != "ZPI|1|Blue|QUIET^Quiet room preferred^L" {
		t.Errorf("ZPI String() = %q, want it verbatim", got)
	}
	checkAccepted(t, m, raw, "ZSG0000012")
}

func case14(t *testing.T, raw []byte) {
	if utf8.Valid(raw) {
		t.Fatal("case 14 input is valid UTF-8, want Latin-1 bytes")
	}
	m := mustParse(t, raw)
	if got := m.Charset().Name(); got != "8859/1" {
		t.Errorf("Charset().Name() = %q, want 8859/1", got)
	}
	checkGets(t, m, "PID-5.1", "MÜLLER", "PID-5.2", "José",
		"PID-11.1", "Hauptstraße 1", "PID-11.3", "Köln", "PID-11.5", "50667")
	if strings.ContainsRune(m.Get("PID-5.1")+m.Get("PID-11.1"), utf8.RuneError) {
		t.Error("decoded text contains U+FFFD")
	}
	a := checkAccepted(t, m, raw, "CHS0000014")
	checkGets(t, a, "MSH-18", "8859/1")

	_, err := hl7.Parse(raw, hl7.WithDefaultCharset(""))
	if err != nil {
		t.Errorf("Parse with MSH-18 8859/1 = %v, want nil", err)
	}
}

func case16(t *testing.T, raw []byte) {
	_, err := hl7.Parse(raw)
	checkErr(t, err, hl7.ErrBatch, "batch file")

	f, err := hl7.ParseFile(raw)
	if err != nil {
		t.Fatalf("ParseFile = %v, want nil", err)
	}
	checkGets(t, f.Header, "9", "NIGHTLY-0314.hl7", "11", "FILE0314")
	if len(f.Batches) != 1 {
		t.Fatalf("batches = %d, want 1", len(f.Batches))
	}
	checkGets(t, f.Batches[0].Header, "11", "BATCH0314A")
	msgs := f.Messages()
	if len(msgs) != 2 {
		t.Fatalf("messages = %d, want 2", len(msgs))
	}
	checkGets(t, msgs[0], "MSH-10", "BAT0000161", "PID-3.1", "MRN100161", "PID-5.2", "Eli")
	checkGets(t, msgs[1], "MSH-10", "BAT0000162", "PID-3.1", "MRN100162", "PID-5.2", "Fay")
	checkGets(t, f.Batches[0].Trailer, "1", "2")
	checkGets(t, f.Trailer, "1", "1")
	var joined []byte
	for _, m := range msgs {
		checkAccepted(t, m, m.Bytes(), m.ControlID())
		joined = append(joined, m.Bytes()...)
	}
	if !bytes.Contains(raw, joined) {
		t.Error("messages' bytes are not the file's bytes")
	}

	bad := bytes.Replace(raw, []byte("BTS|2"), []byte("BTS|3"), 1)
	_, err = hl7.ParseFile(bad)
	checkErr(t, err, hl7.ErrBatchCount, "trailer counts 3 messages, found 2")
}

func case17(t *testing.T, raw []byte) {
	m := mustParse(t, raw)
	checkGets(t, m, "OBX-2", "ED", "OBX-5.2", "AP", "OBX-5.3", "PDF", "OBX-5.4", "Base64")
	data := m.Get("OBX-5.5")
	if len(data) != 100000 {
		t.Fatalf("len(OBX-5.5) = %d, want 100000", len(data))
	}
	pdf, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		t.Fatalf("base64 decoding OBX-5.5: %v", err)
	}
	sum := sha256.Sum256(pdf)
	const want = "4d8a082da09ab67a9879c1ffe788c77853eb3cabccd1c7353a48b5292baabd69"
	if len(pdf) != 75000 || hex.EncodeToString(sum[:]) != want || !bytes.HasPrefix(pdf, []byte("%PDF-1.4")) {
		t.Errorf("decoded OBX-5.5: %d bytes, sha256 %x, want 75000 bytes, %s, starting %%PDF-1.4", len(pdf), sum, want)
	}
	checkAccepted(t, m, raw, "BIG0000017")

	_, err = hl7.Parse(raw, hl7.WithMaxSize(len(raw)-1))
	checkErr(t, err, hl7.ErrTooLarge, "message exceeds 100364 bytes")
	h, _ := hl7.ParseHeader(raw)
	a := checkAck(t, h, err, "AR", "BIG0000017")
	checkGets(t, a, "ERR-8", "message exceeds 100364 bytes")
}
