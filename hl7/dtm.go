package hl7

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Precision is how much of a date/time value was sent.
type Precision int

// Precisions of DTM and DT values, from coarsest to finest. Fractions of
// a second are [PrecisionSecond] with [Time.Digits] > 0.
const (
	PrecisionYear Precision = iota + 1
	PrecisionMonth
	PrecisionDay
	PrecisionHour
	PrecisionMinute
	PrecisionSecond
)

// OffsetSource says where a [Time]'s UTC offset came from.
type OffsetSource int

// Sources of a time's UTC offset.
const (
	// OffsetUnknown means neither the value nor the message gave one; the
	// Time is in UTC as a placeholder and must not be read as UTC.
	OffsetUnknown OffsetSource = iota
	// OffsetGiven means the value carried its own offset.
	OffsetGiven
	// OffsetDefault means the value had none and the message's default
	// (MSH-7's offset) was used, as HL7 v2.5 section 2.A.22 specifies.
	OffsetDefault
)

// Time is a parsed HL7 DTM or DT value that keeps the precision it was
// sent with, so that "202503141530" is not mistaken for a time with
// seconds.
type Time struct {
	// Time is the instant, in a fixed zone of the value's offset. Parts
	// beyond Precision are zero (or 1 for month and day).
	Time time.Time
	// Precision is the finest part sent.
	Precision Precision
	// Digits is the number of fractional-second digits sent, 0 to 9.
	Digits int
	// Offset says where the UTC offset came from.
	Offset OffsetSource
}

// IsZero reports whether t holds no value.
func (t Time) IsZero() bool { return t.Precision == 0 }

// String formats t as ISO 8601 with exactly the precision sent, and the
// offset when one is known and the value has a time of day:
// "2025-03-14T15:30+01:00", "1980-02-29", "2025-03-14T15:30:45.1234+01:00".
func (t Time) String() string {
	if t.IsZero() {
		return ""
	}
	layouts := map[Precision]string{
		PrecisionYear: "2006", PrecisionMonth: "2006-01", PrecisionDay: "2006-01-02",
		PrecisionHour: "2006-01-02T15", PrecisionMinute: "2006-01-02T15:04",
		PrecisionSecond: "2006-01-02T15:04:05",
	}
	s := t.Time.Format(layouts[t.Precision])
	if t.Digits > 0 {
		frac := fmt.Sprintf("%09d", t.Time.Nanosecond())
		s += "." + frac[:t.Digits]
	}
	if t.Precision >= PrecisionHour && t.Offset != OffsetUnknown {
		s += t.Time.Format("-07:00")
	}
	return s
}

// ParseDTM parses an HL7 DTM (or TS component 1) value:
// YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]. A value without an offset
// gets def, the message's default (nil for unknown). Impossible dates
// such as 30 February are errors, never rolled over. Errors match
// [ErrDate] and never quote the value, which may be PHI.
func ParseDTM(s string, def *time.Location) (Time, error) {
	body, off, hasOff, err := splitOffset(s)
	if err != nil {
		return Time{}, err
	}
	digits, frac, hasFrac := strings.Cut(body, ".")
	if hasFrac && (len(digits) != 14 || len(frac) < 1 || len(frac) > 9 || !allDigits(frac)) {
		return Time{}, dateErr("malformed fractional seconds")
	}
	t, err := parseDigits(digits, 14)
	if err != nil {
		return Time{}, err
	}
	var nsec int
	if hasFrac {
		n, _ := strconv.Atoi(frac + strings.Repeat("0", 9-len(frac)))
		nsec, t.Digits = n, len(frac)
	}
	loc := time.UTC
	switch {
	case hasOff:
		loc, t.Offset = time.FixedZone("", off), OffsetGiven
	case def != nil:
		loc, t.Offset = def, OffsetDefault
	}
	tm := t.Time
	t.Time = time.Date(tm.Year(), tm.Month(), tm.Day(), tm.Hour(), tm.Minute(), tm.Second(), nsec, loc)
	return t, nil
}

// ParseDT parses an HL7 DT value, YYYY[MM[DD]]. Errors match [ErrDate].
func ParseDT(s string) (Time, error) {
	return parseDigits(s, 8)
}

// splitOffset cuts a trailing +ZZZZ or -ZZZZ and returns it in seconds
// east of UTC.
func splitOffset(s string) (body string, secs int, ok bool, err error) {
	i := strings.IndexAny(s, "+-")
	if i < 0 {
		return s, 0, false, nil
	}
	z := s[i+1:]
	if len(z) != 4 || !allDigits(z) {
		return "", 0, false, dateErr("malformed UTC offset")
	}
	hh, _ := strconv.Atoi(z[:2])
	mm, _ := strconv.Atoi(z[2:])
	if hh > 14 || mm > 59 {
		return "", 0, false, dateErr("UTC offset out of range")
	}
	secs = (hh*60 + mm) * 60
	if s[i] == '-' {
		secs = -secs
	}
	return s[:i], secs, true, nil
}

// parseDigits parses YYYY[MM[DD[HH[MM[SS]]]]] up to maxLen digits into a
// UTC Time, checking every part against the calendar.
func parseDigits(s string, maxLen int) (Time, error) {
	n := len(s)
	if n < 4 || n > maxLen || n%2 != 0 || !allDigits(s) {
		return Time{}, dateErr("malformed date/time")
	}
	part := func(i int) int { v, _ := strconv.Atoi(s[i : i+2]); return v }
	year, _ := strconv.Atoi(s[:4])
	month, day, hour, minute, sec := 1, 1, 0, 0, 0
	p := PrecisionYear
	if n >= 6 {
		month, p = part(4), PrecisionMonth
		if month < 1 || month > 12 {
			return Time{}, dateErr("month out of range")
		}
	}
	if n >= 8 {
		day, p = part(6), PrecisionDay
		if day < 1 || day > daysIn(year, time.Month(month)) {
			return Time{}, dateErr("day out of range for its month")
		}
	}
	if n >= 10 {
		hour, p = part(8), PrecisionHour
	}
	if n >= 12 {
		minute, p = part(10), PrecisionMinute
	}
	if n >= 14 {
		sec, p = part(12), PrecisionSecond
	}
	if hour > 23 || minute > 59 || sec > 59 {
		return Time{}, dateErr("time of day out of range")
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC)
	return Time{Time: t, Precision: p}, nil
}

func daysIn(year int, m time.Month) int {
	return time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func dateErr(reason string) *Error {
	return &Error{Code: CodeDataType, Reason: "invalid date/time: " + reason, Err: ErrDate}
}
