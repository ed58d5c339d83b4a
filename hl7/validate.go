package hl7

import (
	"errors"
	"time"
)

// dateField is a field (or a component of one) whose type is DTM, TS or
// DT in HL7 v2.5.1.
type dateField struct {
	field, comp int
	dt          bool // DT: a date without time of day
}

// dateFields lists the date and date/time fields of the segments phix's
// feeds use. A TS component of a composite (TQ.4, DR.1) is read from its
// first subcomponent.
var dateFields = map[string][]dateField{
	"MSH": {{field: 7}},
	"EVN": {{field: 2}, {field: 3}, {field: 6}},
	"PID": {{field: 7}, {field: 29}, {field: 33}},
	"NK1": {{field: 8, dt: true}, {field: 9, dt: true}, {field: 16}},
	"GT1": {{field: 8}},
	"PV1": {{field: 44}, {field: 45}},
	"PV2": {{field: 8}, {field: 9}},
	"ORC": {{field: 7, comp: 4}, {field: 7, comp: 5}, {field: 9}, {field: 15}},
	"OBR": {
		{field: 6}, {field: 7}, {field: 8}, {field: 14}, {field: 22},
		{field: 27, comp: 4}, {field: 27, comp: 5}, {field: 36},
	},
	"OBX": {{field: 12}, {field: 14}, {field: 19}},
	"AL1": {{field: 6, dt: true}},
	"DG1": {{field: 5}, {field: 19}},
	"IN1": {{field: 12, dt: true}, {field: 13, dt: true}, {field: 18}, {field: 29}},
	"TXA": {{field: 4}, {field: 6}, {field: 7}, {field: 8}},
	"SCH": {{field: 11, comp: 4}, {field: 11, comp: 5}},
	"AIS": {{field: 4}},
	"AIG": {{field: 8}},
	"AIL": {{field: 6}},
	"AIP": {{field: 6}},
	"TQ1": {{field: 7}, {field: 8}},
	"SPM": {{field: 17, comp: 1}, {field: 17, comp: 2}, {field: 18}},
	"RXA": {{field: 3}, {field: 4}},
}

// Validate checks what the message needs to be accepted beyond parsing:
// MSH-9 and MSH-10 must be valued, and every date and date/time field
// that phix knows must hold a real calendar date (HL7 nulls and empty
// fields pass). It returns nil or the [errors.Join] of [*Error] values
// with Reject unset (an AE or CE acknowledgement), each naming its
// location; [Errors] lists them.
func (m *Message) Validate() error {
	var errs []error
	for _, p := range []string{"MSH-9", "MSH-10"} {
		if m.State(p) != Valued {
			errs = append(errs, &Error{
				Code: CodeRequiredMissing, Location: mustLocation(p),
				Reason: "required field missing", Err: ErrRequired,
			})
		}
	}
	zone := m.defaultZone()
	seen := map[string]int{}
	for _, s := range m.segments {
		seen[s.Name()]++
		for _, df := range dateFields[s.Name()] {
			errs = append(errs, s.checkDates(df, seen[s.Name()], zone)...)
		}
	}
	return errors.Join(errs...)
}

// checkDates validates every repetition of one date field of segment
// occurrence occ.
func (s *Segment) checkDates(df dateField, occ int, zone *time.Location) []error {
	var errs []error
	for r := 1; r <= s.Reps(df.field); r++ {
		l := Location{Field: df.field, Rep: r, Comp: max(df.comp, 1), Sub: 1}
		v := s.get(l)
		if stateOf(v) != Valued {
			continue
		}
		var err error
		if df.dt {
			_, err = ParseDT(v)
		} else {
			_, err = ParseDTM(v, zone)
		}
		if err == nil {
			continue
		}
		e := *err.(*Error)
		e.Location = Location{Segment: s.Name(), Occurrence: occ, Field: df.field, Comp: df.comp}
		if r > 1 {
			e.Location.Rep = r
		}
		errs = append(errs, &e)
	}
	return errs
}
