package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Day and Year are the calendar-free units the policy accepts beside Go's
// own: a day is 24 hours and a year 365 days, which is what retention
// periods such as HIPAA's six years (45 CFR 164.316(b)(2)) are counted in.
const (
	Day  = 24 * time.Hour
	Week = 7 * Day
	Year = 365 * Day
)

// Duration is a non-negative time.Duration that reads and writes the
// policy's duration syntax (see the package documentation).
type Duration time.Duration

// ParseDuration parses s in the policy's duration syntax.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "off" || s == "0" {
		return 0, nil
	}
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"d", Day}, {"w", Week}, {"y", Year}} {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n < 0 || n > int64(200*Year/u.unit) {
			return 0, fmt.Errorf("invalid duration %q: want a whole number of %s", s, u.suffix)
		}
		return Duration(time.Duration(n) * u.unit), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want e.g. 15m, 12h, 90d, 6y or off", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("invalid duration %q: negative", s)
	}
	return Duration(d), nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d in the largest unit that divides it: "6y", "90d", "2w"
// or Go's own form; zero is "off".
func (d Duration) String() string {
	td := time.Duration(d)
	switch {
	case td == 0:
		return "off"
	case td%Year == 0:
		return strconv.FormatInt(int64(td/Year), 10) + "y"
	case td%Week == 0:
		return strconv.FormatInt(int64(td/Week), 10) + "w"
	case td%Day == 0:
		return strconv.FormatInt(int64(td/Day), 10) + "d"
	}
	return td.String()
}

// UnmarshalYAML implements yaml.Unmarshaler for a scalar duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration such as 15m, 90d or 6y", n.Line)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		// yaml passes this error through as it is, so it must say where.
		return fmt.Errorf("line %d: %v", n.Line, err)
	}
	*d = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalText implements encoding.TextMarshaler, so reports in JSON show
// durations as the policy file writes them.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with [ParseDuration].
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}
