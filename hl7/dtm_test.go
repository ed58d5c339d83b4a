package hl7_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"phix.dev/phix/hl7"
)

func TestParseDTMPrecisions(t *testing.T) {
	plus1 := time.FixedZone("", 3600)
	tests := []struct {
		in   string
		def  *time.Location
		want string
		prec hl7.Precision
		dig  int
	}{
		{"2025", nil, "2025", hl7.PrecisionYear, 0},
		{"202503", nil, "2025-03", hl7.PrecisionMonth, 0},
		{"20250314", nil, "2025-03-14", hl7.PrecisionDay, 0},
		{"2025031415", nil, "2025-03-14T15", hl7.PrecisionHour, 0},
		{"202503141530", nil, "2025-03-14T15:30", hl7.PrecisionMinute, 0},
		{"20250314153045", nil, "2025-03-14T15:30:45", hl7.PrecisionSecond, 0},
		{"20250314153045.1", nil, "2025-03-14T15:30:45.1", hl7.PrecisionSecond, 1},
		{"20250314153045.12", nil, "2025-03-14T15:30:45.12", hl7.PrecisionSecond, 2},
		{"20250314153045.123", nil, "2025-03-14T15:30:45.123", hl7.PrecisionSecond, 3},
		{"20250314153045.1234", nil, "2025-03-14T15:30:45.1234", hl7.PrecisionSecond, 4},
		{"20250314153045.0000+0800", nil, "2025-03-14T15:30:45.0000+08:00", hl7.PrecisionSecond, 4},
		{"20250314153045.123456", nil, "2025-03-14T15:30:45.123456", hl7.PrecisionSecond, 6},
		{"202503141530+0100", nil, "2025-03-14T15:30+01:00", hl7.PrecisionMinute, 0},
		{"2025031415-0330", nil, "2025-03-14T15-03:30", hl7.PrecisionHour, 0},
		{"20250314+0100", nil, "2025-03-14", hl7.PrecisionDay, 0},
		{"202503141530", plus1, "2025-03-14T15:30+01:00", hl7.PrecisionMinute, 0},
		{"202503141530-0500", plus1, "2025-03-14T15:30-05:00", hl7.PrecisionMinute, 0},
		{"20250314153045+0000", nil, "2025-03-14T15:30:45+00:00", hl7.PrecisionSecond, 0},
		{"20000229", nil, "2000-02-29", hl7.PrecisionDay, 0},
		{"20240229235959", nil, "2024-02-29T23:59:59", hl7.PrecisionSecond, 0},
		{"20251231+1400", nil, "2025-12-31", hl7.PrecisionDay, 0},
	}
	for _, tt := range tests {
		got, err := hl7.ParseDTM(tt.in, tt.def)
		if err != nil {
			t.Errorf("ParseDTM(%q) = %v, want %s", tt.in, err, tt.want)
			continue
		}
		if got.String() != tt.want || got.Precision != tt.prec || got.Digits != tt.dig {
			t.Errorf("ParseDTM(%q) = %s (precision %d, %d digits), want %s (%d, %d)",
				tt.in, got, got.Precision, got.Digits, tt.want, tt.prec, tt.dig)
		}
	}
}

func TestParseDTMInstant(t *testing.T) {
	got, err := hl7.ParseDTM("20250314153045.1234+0100", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2025, 3, 14, 14, 30, 45, 123400000, time.UTC)
	if !got.Time.Equal(want) {
		t.Errorf("ParseDTM instant = %v, want %v", got.Time, want)
	}
	local, _ := hl7.ParseDTM("202503141530", nil)
	if local.Offset != hl7.OffsetUnknown || strings.ContainsAny(local.String(), "+Z") {
		t.Errorf("ParseDTM without any offset = %s (offset %d), want no offset invented", local, local.Offset)
	}
}

func TestParseDTMInvalid(t *testing.T) {
	bad := []string{
		"", "202", "20250", "2025031", "20250314153", "2025031415304", "202503141530456",
		"20230230", "20240230", "20230229", "19000229", "20250431", "20250631", "20250931", "20251131",
		"20250000", "20251301", "20250100", "20250132", "2025031424", "202503142360", "20250314235960",
		"2025-03-14", "2025031415:30", "20250314T1530", "abcd", "２０２５",
		"20250314.5", "202503141530.5", "20250314153045.", "20250314153045.1234567890",
		"20250314153045.12a", "20250314+1", "20250314+01000", "20250314+2400", "20250314+0160",
		"20250314++0100", "+0100", "20250314153045-",
	}
	for _, in := range bad {
		_, err := hl7.ParseDTM(in, nil)
		if !errors.Is(err, hl7.ErrDate) {
			t.Errorf("ParseDTM(%q) = %v, want %v", in, err, hl7.ErrDate)
			continue
		}
		if in != "" && len(in) > 3 && strings.Contains(err.Error(), in) {
			t.Errorf("ParseDTM(%q) error %q quotes the value", in, err)
		}
	}
}

func TestParseDT(t *testing.T) {
	for in, want := range map[string]string{"1980": "1980", "198002": "1980-02", "19800229": "1980-02-29"} {
		if got, err := hl7.ParseDT(in); err != nil || got.String() != want {
			t.Errorf("ParseDT(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"1980022912", "19810229", "19800229+0100", ""} {
		if _, err := hl7.ParseDT(in); !errors.Is(err, hl7.ErrDate) {
			t.Errorf("ParseDT(%q) = %v, want %v", in, err, hl7.ErrDate)
		}
	}
}

// TestValidateDates checks that invalid dates anywhere phix knows a date
// field are reported at their exact location, and that nulls pass.
func TestValidateDates(t *testing.T) {
	msh := `MSH|^~\&|APP|FAC|BROKER|HIE|20250314083000+0100||ORU^R01|V1|P|2.5.1`
	tests := []struct {
		name string
		segs string
		erl  []string
	}{
		{"valid", "PID|1||X||A^B||19800229\rOBX|1|NM|X||1||||||F|||202503141530", nil},
		{"nulls pass", `PID|1||X||A^B||""` + "\rOBX|1|NM|X||1||||||F|||\"\"", nil},
		{"birth date 31 April", "PID|1||X||A^B||19800431", []string{"PID^1^7"}},
		{"second OBX", "OBX|1|NM|X||1||||||F|||20250314\rOBX|2|NM|X||1||||||F|||20250314246000", []string{"OBX^2^14"}},
		{"TQ component", "SCH|A|B|||||||30|MIN|^^30^20250230093000^20250320100000", []string{"SCH^1^11^1^4"}},
		{"second repetition", "TXA|1|DS|TX|||||20250314~20251301", []string{"TXA^1^8^2"}},
		{"DT with time", "AL1|1|DA|X|SV|Hives|202503141530", []string{"AL1^1^6"}},
		{"bad MSH-7", "", nil},
		{"invalid among valid", "PID|1||X||A^B||19800230\rPV1|1|I|||||||||||||||||||||||||||||||||||||||||||2025", []string{"PID^1^7"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := msh
			want := tt.erl
			if tt.name == "bad MSH-7" {
				header = strings.Replace(msh, "20250314083000+0100", "20250314083000+9900", 1)
				want = []string{"MSH^1^7"}
			}
			raw := header + "\r" + tt.segs + "\r"
			m := mustParse(t, []byte(raw))
			var got []string
			for _, e := range hl7.Errors(m.Validate()) {
				got = append(got, e.Location.String())
				a := checkAck(t, m, e, "AE", "V1")
				got[len(got)-1] = a.Raw("ERR-2")
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("Validate() locations = %v, want %v", got, want)
			}
		})
	}
}

func TestValidateRequired(t *testing.T) {
	m := mustParse(t, []byte(`MSH|^~\&|APP|FAC|BROKER|HIE|20250314083000||||P|2.5.1`+"\r"))
	errs := hl7.Errors(m.Validate())
	if len(errs) != 2 || !errors.Is(errs[0], hl7.ErrRequired) || errs[1].Location.String() != "MSH-10" {
		t.Fatalf("Validate() = %v, want MSH-9 and MSH-10 missing", errs)
	}
	a := checkAck(t, m, m.Validate(), "AE", "")
	checkRaws(t, a, "ERR(2)-2", "MSH^1^10", "ERR-3.1", "101")
}
