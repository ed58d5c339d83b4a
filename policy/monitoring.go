package policy

import (
	"fmt"
	"strings"
	"time"
)

// Monitoring holds the thresholds of anomaly detection over the broker's
// traffic, under the policy's "monitoring:" section. The section is
// optional and every zero threshold means "not monitored". The monitor
// (package monitor) evaluates the rules over audit records as they are
// stored.
type Monitoring struct {
	// RefusalsPerMinute is how many refused operations (permission
	// violations and failed authentications) per minute, across all
	// machines, are tolerated before an anomaly is raised.
	RefusalsPerMinute int `yaml:"refusals_per_minute,omitempty"`

	// MessagesPerMinute is the highest publish rate per machine, in
	// messages per minute, that is considered normal.
	MessagesPerMinute int `yaml:"messages_per_minute,omitempty"`

	// FailuresPerMinute is how many messages per minute, across all
	// recipients, may fail verification or opening (and so be
	// quarantined) before an anomaly is raised.
	FailuresPerMinute int `yaml:"failures_per_minute,omitempty"`

	// RateFactor raises an anomaly when a machine publishes more than
	// RateFactor times its own usual rate per minute (its baseline,
	// learnt from earlier minutes). Zero disables it; otherwise it must
	// be above 1.
	RateFactor float64 `yaml:"rate_factor,omitempty"`

	// Hours declares when flows are expected to be active; a publish on
	// a listed flow outside its hours raises an anomaly. Flows not listed
	// may be active at any time.
	Hours []FlowHours `yaml:"hours,omitempty"`
}

// FlowHours is the daily window in which the flows from From to each of
// To with any of Types (every type if empty) are expected.
type FlowHours struct {
	From  string   `yaml:"from"`
	To    []string `yaml:"to"`
	Types []string `yaml:"types,omitempty"`
	// Between is "HH:MM-HH:MM", start inclusive, end exclusive; a window
	// that ends before it starts spans midnight.
	Between string `yaml:"between"`
	// Zone is an IANA time zone name; empty means UTC.
	Zone string `yaml:"zone,omitempty"`
}

// Window parses Between and Zone: the start and end as offsets from
// midnight, and the location.
func (h *FlowHours) Window() (start, end time.Duration, loc *time.Location, err error) {
	a, b, ok := strings.Cut(h.Between, "-")
	if !ok {
		return 0, 0, nil, fmt.Errorf("between %q: want HH:MM-HH:MM", h.Between)
	}
	if start, err = clock(a); err == nil {
		end, err = clock(b)
	}
	if err != nil {
		return 0, 0, nil, fmt.Errorf("between %q: want HH:MM-HH:MM", h.Between)
	}
	loc = time.UTC
	if h.Zone != "" {
		if loc, err = time.LoadLocation(h.Zone); err != nil {
			return 0, 0, nil, fmt.Errorf("zone %q: %v", h.Zone, err)
		}
	}
	return start, end, loc, nil
}

// Contains reports whether t falls in the window. It assumes Window
// succeeds, as it does for every validated policy.
func (h *FlowHours) Contains(t time.Time) bool {
	start, end, loc, err := h.Window()
	if err != nil {
		return true
	}
	lt := t.In(loc)
	since := time.Duration(lt.Hour())*time.Hour + time.Duration(lt.Minute())*time.Minute +
		time.Duration(lt.Second())*time.Second
	if start <= end {
		return since >= start && since < end
	}
	return since >= start || since < end
}

func clock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		return 0, err
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// check reports problems with the thresholds to add.
func (m *Monitoring) check(add func(field, format string, args ...any)) {
	if m.RefusalsPerMinute < 0 {
		add("monitoring.refusals_per_minute", "must not be negative")
	}
	if m.MessagesPerMinute < 0 {
		add("monitoring.messages_per_minute", "must not be negative")
	}
	if m.FailuresPerMinute < 0 {
		add("monitoring.failures_per_minute", "must not be negative")
	}
	if m.RateFactor != 0 && m.RateFactor <= 1 {
		add("monitoring.rate_factor", "must be above 1, or 0 to disable")
	}
	for i, h := range m.Hours {
		if _, _, _, err := h.Window(); err != nil {
			add(fmt.Sprintf("monitoring.hours[%d]", i), "%v", err)
		}
		if h.From == "" || len(h.To) == 0 {
			add(fmt.Sprintf("monitoring.hours[%d]", i), "needs from and to")
		}
	}
}
