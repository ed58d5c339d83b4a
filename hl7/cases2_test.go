package hl7_test

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"phix.dev/phix/hl7"
)

func case18(t *testing.T, raw []byte) {
	m := mustParse(t, raw)
	checkExact(t, m, raw)
	times := []struct {
		path, want string
		prec       hl7.Precision
		offset     hl7.OffsetSource
	}{
		{"MSH-7", "2025-03-14T15:30:45.1234+01:00", hl7.PrecisionSecond, hl7.OffsetGiven},
		{"PID-7", "1980-02-29", hl7.PrecisionDay, hl7.OffsetDefault},
		{"OBX(1)-14", "2025-03-14T15:30+01:00", hl7.PrecisionMinute, hl7.OffsetDefault},
		{"OBX(2)-14", "2025-03-14T16:00:00.5-05:00", hl7.PrecisionSecond, hl7.OffsetGiven},
	}
	for _, tt := range times {
		got, err := m.Time(tt.path)
		if err != nil {
			t.Errorf("Time(%s) = %v, want nil error", tt.path, err)
			continue
		}
		if got.String() != tt.want || got.Precision != tt.prec || got.Offset != tt.offset {
			t.Errorf("Time(%s) = %s (precision %d, offset %d), want %s (%d, %d)",
				tt.path, got, got.Precision, got.Offset, tt.want, tt.prec, tt.offset)
		}
	}
	msh7, _ := m.Time("MSH-7")
	if got := msh7.Time.UTC().Format(time.RFC3339Nano); got != "2025-03-14T14:30:45.1234Z" || msh7.Digits != 4 {
		t.Errorf("MSH-7 in UTC = %s with %d digits, want 2025-03-14T14:30:45.1234Z with 4", got, msh7.Digits)
	}

	_, err := m.Time("OBR-7")
	checkErr(t, err, hl7.ErrDate, "OBR-7")
	verr := m.Validate()
	errs := hl7.Errors(verr)
	if len(errs) != 1 || errs[0].Location.String() != "OBR-7" || errs[0].Reject {
		t.Fatalf("Validate() = %v, want one content error at OBR-7", verr)
	}
	a := checkAck(t, m, verr, "AE", "DTM0000018")
	checkRaws(t, a, "ERR-2", "OBR^1^7", "ERR-3", "102^Data type error^HL70357")
}

func case20(t *testing.T, raw []byte) {
	frames := unframe(raw)
	if len(frames) != 1 || len(frames[0]) != 235 || len(raw) != 238 {
		t.Fatalf("stream of %d bytes has %d frames, want 238 bytes, 1 frame of 235", len(raw), len(frames))
	}
	m := mustParse(t, frames[0])
	checkSegments(t, m, "MSH EVN PID PV1")
	checkAccepted(t, m, frames[0], "MLP0000020")
}

func case21(t *testing.T, raw []byte) {
	frames := unframe(raw)
	if len(frames) != 2 {
		t.Fatalf("frames = %d, want 2", len(frames))
	}
	for i, id := range []string{"MLP0000211", "MLP0000212"} {
		m := mustParse(t, frames[i])
		checkSegments(t, m, "MSH EVN PID PV1")
		checkAccepted(t, m, frames[i], id)
	}
}

func case23(t *testing.T, raw []byte) {
	if i := bytes.IndexByte(raw, 0x0b); i != 38 {
		t.Errorf("junk before the first start block = %d bytes, want 38", i)
	}
	frames := unframe(raw)
	if len(frames) != 2 {
		t.Fatalf("frames = %d, want 2", len(frames))
	}
	for i, id := range []string{"MLP0000231", "MLP0000232"} {
		m := mustParse(t, frames[i])
		checkAccepted(t, m, frames[i], id)
	}
}

func case25(t *testing.T, raw []byte) {
	m := mustParse(t, raw)
	checkExact(t, m, raw)
	a, ackRaw := ack(t, m, nil)
	if !bytes.HasPrefix(ackRaw, []byte(`MSH|^~\&|`)) {
		t.Errorf("Ack = %q, want it to start MSH|^~\\&|", ackRaw)
	}
	checkGets(t, a, "MSH-1", "|", "MSH-2", `^~\&`, "MSH-3", "BROKER", "MSH-4", "HIE",
		"MSH-5", "REGADT", "MSH-6", "GENHOSP", "MSH-11", "P", "MSH-12", "2.5.1",
		"MSA-1", "CA", "MSA-2", "ADT0000077")
	checkRaws(t, a, "MSH-9", "ACK^A04^ACK")
	b, _ := ack(t, m, nil)
	if id := a.ControlID(); id == "" || id == "ADT0000077" || id == b.ControlID() || len(id) > 20 {
		t.Errorf("ack MSH-10 = %q then %q, want new unique ids of at most 20 characters", id, b.ControlID())
	}
	if len(a.All("ERR")) != 0 {
		t.Errorf("accepting ack has ERR segments")
	}

	orig := mustParse(t, bytes.Replace(raw, []byte("2.5.1|||AL|NE"), []byte("2.5.1"), 1))
	checkAck(t, orig, nil, "AA", "ADT0000077")

	contentErr := &hl7.Error{Code: hl7.CodeDataType, Location: hl7.Location{Segment: "PID", Field: 7}, Reason: "bad"}
	rejectErr := &hl7.Error{Code: hl7.CodeSegmentSequence, Reject: true, Reason: "unreadable"}
	outcomes := []struct {
		msg   *hl7.Message
		cause error
		code  string
		erl   string
		err3  string
	}{
		{m, contentErr, "CE", "PID^1^7", "102^Data type error^HL70357"},
		{m, rejectErr, "CR", "", "100^Segment sequence error^HL70357"},
		{m, errors.New("broker unavailable"), "CE", "", "207^Application internal error^HL70357"},
		{orig, contentErr, "AE", "PID^1^7", "102^Data type error^HL70357"},
		{orig, rejectErr, "AR", "", "100^Segment sequence error^HL70357"},
		{orig, errors.New("broker unavailable"), "AR", "", "207^Application internal error^HL70357"},
	}
	for _, o := range outcomes {
		a := checkAck(t, o.msg, o.cause, o.code, "ADT0000077")
		checkRaws(t, a, "ERR-2", o.erl, "ERR-3", o.err3, "ERR-4", "E")
		if strings.Contains(string(a.Bytes()), "broker unavailable") {
			t.Errorf("ack for an internal error quotes its text")
		}
	}
}

func case39(t *testing.T, raw []byte) {
	m := mustParse(t, raw)
	checkSegments(t, m, "MSH EVN PID NK1 PV1 AL1 DG1")
	checkRaws(t, m, "MSH-9", "ADT^A01^ADT_A01")
	checkGets(t, m, "MSH-10", "ADT0000101", "MSH-12", "2.5.1", "MSH-18", "UNICODE UTF-8",
		"EVN-2", "20250315081455",
		"PID-3[1].1", "MRN300001", "PID-3[1].5", "MR", "PID-3[2].1", "ZZ3000001", "PID-3[2].5", "NI",
		"PID-5.1", "Examplename", "PID-5.2", "Morgan", "PID-5.3", "Lee", "PID-7", "19670921",
		"PID-8", "M", "PID-11.3", "Riverton", "PID-18", "ACC8000101",
		"NK1-3.1", "SPO", "PV1-2", "I", "PV1-3.1", "4WEST", "PV1-3.2", "418", "PV1-3.3", "A",
		"PV1-19", "VIS900101", "PV1-44", "20250315080000", "AL1-3.1", "7980", "DG1-3.1", "J18.9")
	checkTimes(t, m, "PID-7", "1967-09-21", "PV1-44", "2025-03-15T08:00:00")
	a := checkAccepted(t, m, raw, "ADT0000101")
	checkRaws(t, a, "MSH-9", "ACK^A01^ACK")
}

func case40(t *testing.T, raw []byte) {
	m := mustParse(t, raw)
	checkSegments(t, m, "MSH EVN PID PV1 IN1")
	checkRaws(t, m, "MSH-9", "ADT^A08^ADT_A01")
	checkGets(t, m, "MSH-10", "ADT0000102", "PID-3.1", "MRN300001",
		"PID-11.1", "5 New Lane", "PID-11.5", "99991",
		"PID-13[1].2", "PRN", "PID-13[1].7", "0100309",
		"PID-13[2].2", "NET", "PID-13[2].4", "morgan.e@example.invalid",
		"IN1-2.1", "PLANGOLD", "IN1-3", "PAYER42", "IN1-4", "Example Mutual Insurance",
		"IN1-17", "SEL", "IN1-36", "POL556677")
	if n := m.Reps("PID-13"); n != 2 {
		t.Errorf("Reps(PID-13) = %d, want 2", n)
	}
	for _, p := range []string{"PID-12", "PID-14", "PID-29"} {
		if st := m.State(p); st != hl7.Absent {
			t.Errorf("State(%s) = %v, want absent (stored value kept)", p, st)
		}
	}
	a := checkAccepted(t, m, raw, "ADT0000102")
	checkRaws(t, a, "MSH-9", "ACK^A08^ACK")
}

func case41(t *testing.T, raw []byte) {
	m := mustParse(t, raw)
	checkRaws(t, m, "MSH-9", "ORU^R01^ORU_R01")
	checkSegments(t, m, "MSH PID PV1 ORC OBR OBX OBX OBX OBX OBX NTE")
	checkGets(t, m, "MSH-10", "LAB0000103", "OBR-4.1", "58410-2", "OBR-25", "F", "OBR-7", "20250315090000")
	obx := []struct{ code, value, unit, rng, flag string }{
		{"6690-2", "11.8", "10*3/uL", "4.0-11.0", "H"},
		{"789-8", "4.62", "10*6/uL", "4.20-5.80", "N"},
		{"718-7", "13.9", "g/dL", "13.0-17.0", "N"},
		{"4544-3", "41.0", "%", "39.0-50.0", "N"},
		{"777-3", "142", "10*3/uL", "150-400", "L"},
	}
	for i, o := range obx {
		s := m.Segment("OBX", i+1)
		checkGets(t, s, "1", strconv.Itoa(i+1), "3.1", o.code, "5", o.value, "6.1", o.unit, "7", o.rng, "8", o.flag)
	}
	segs := m.Segments()
	if last, prev := segs[len(segs)-1], segs[len(segs)-2]; last.Name() != "NTE" || prev.Get("1") != "5" {
		t.Errorf("NTE does not follow OBX(5)")
	}
	checkGets(t, m, "NTE-3", "Platelet clumping not seen on smear.")
	a := checkAccepted(t, m, raw, "LAB0000103")
	checkRaws(t, a, "MSH-9", "ACK^R01^ACK")
}

func case42(t *testing.T, raw []byte) {
	m := mustParse(t, raw)
	checkSegments(t, m, "MSH PID PV1 ORC OBR DG1 NTE")
	checkRaws(t, m, "MSH-9", "ORM^O01^ORM_O01")
	checkGets(t, m, "MSH-10", "ORD0000104", "ORC-1", "NW", "ORC-2", "PL0104", "ORC-5", "SC",
		"ORC-12.1", "DOC101", "OBR-2", "PL0104", "OBR-4.1", "24331-1", "OBR-5", "R",
		"OBR-6", "20250316060000", "DG1-3.1", "E78.5", "NTE-3", "Patient fasting from midnight.")
	a := checkAccepted(t, m, raw, "ORD0000104")
	checkRaws(t, a, "MSH-9", "ACK^O01^ACK")
}

func case43(t *testing.T, raw []byte) {
	m := mustParse(t, raw)
	checkSegments(t, m, "MSH SCH PID PV1 RGS AIS AIG AIL AIP")
	checkRaws(t, m, "MSH-9", "SIU^S12^SIU_S12")
	checkGets(t, m, "MSH-10", "SCH0000105", "SCH-1.1", "APT0105", "SCH-2.1", "APT0105F",
		"SCH-9", "30", "SCH-10", "MIN", "SCH-11.4", "20250320093000", "SCH-11.5", "20250320100000",
		"SCH-25", "Booked", "AIS-3.1", "99213", "AIS-4", "20250320093000", "AIG-3.1", "ROOM12",
		"AIL-3.1", "CLINIC2", "AIP-3.1", "DOC101", "AIP-4.1", "ATT")
	checkTimes(t, m, "SCH-11.4", "2025-03-20T09:30:00", "SCH-11.5", "2025-03-20T10:00:00")
	a := checkAccepted(t, m, raw, "SCH0000105")
	checkRaws(t, a, "MSH-9", "ACK^S12^ACK")
}

func case44(t *testing.T, raw []byte) {
	m := mustParse(t, raw)
	checkSegments(t, m, "MSH EVN PID PV1 TXA OBX OBX OBX")
	checkRaws(t, m, "MSH-9", "MDM^T02^MDM_T02", "TXA-2", "DS")
	checkGets(t, m, "MSH-10", "DOC0000106", "TXA-2", "DS", "TXA-3", "TX", "TXA-12.1", "DOCID-0106",
		"TXA-17", "AU", "TXA-19", "AV",
		"OBX(3)-5", "Follow-up in clinic in 5 days & repeat chest film in 6 weeks.")
	var lines []string
	for i, s := range m.All("OBX") {
		if s.Get("1") != strconv.Itoa(i+1) {
			t.Errorf("OBX(%d)-1 = %q, want %d", i+1, s.Get("1"), i+1)
		}
		lines = append(lines, s.Get("5"))
	}
	doc := strings.Join(lines, "\n")
	want := "Admitted with community-acquired pneumonia.\n" +
		"Treated with IV then oral antibiotics; afebrile for 48 h.\n" +
		"Follow-up in clinic in 5 days & repeat chest film in 6 weeks."
	if doc != want {
		t.Errorf("document text = %q, want %q", doc, want)
	}
	a := checkAccepted(t, m, raw, "DOC0000106")
	checkRaws(t, a, "MSH-9", "ACK^T02^ACK")
}

// checkTimes checks pairs of path and wanted [hl7.Time] text.
func checkTimes(t testing.TB, m *hl7.Message, pairs ...string) {
	t.Helper()
	for i := 0; i+1 < len(pairs); i += 2 {
		got, err := m.Time(pairs[i])
		if err != nil || got.String() != pairs[i+1] {
			t.Errorf("Time(%s) = %s, %v; want %s", pairs[i], got, err, pairs[i+1])
		}
	}
}
