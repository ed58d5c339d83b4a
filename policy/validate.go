package policy

import (
	"fmt"
	"math"
	"sort"
	"time"

	"phix.dev/phix/internal/subjects"
)

// Limits on policy values. They catch typos ("15s" for "15m") rather
// than encode a rule.
const (
	minIdleTimeout    = time.Second
	maxIdleTimeout    = 24 * time.Hour
	minRotationPeriod = time.Hour
	maxRotationPeriod = 2 * Year
	// minAuditRetention is HIPAA's documentation retention,
	// 45 CFR 164.316(b)(2): six years.
	minAuditRetention = 6 * Year
)

// Validate checks a policy built in code, such as one a test constructs,
// with the same rules as [Parse]. Its errors carry no line numbers.
func (p *Policy) Validate() error {
	if probs := p.problems(nil); len(probs) > 0 {
		return &ValidationError{Name: p.name, Problems: probs}
	}
	return nil
}

// checker accumulates problems with the line of each field.
type checker struct {
	lines map[string]int // nil: lines unknown
	probs []Problem
}

func (c *checker) add(field, format string, args ...any) {
	c.probs = append(c.probs, Problem{
		Line:  c.lines[field],
		Field: field,
		Msg:   fmt.Sprintf(format, args...),
	})
}

// present reports whether field was written in the file. Without line
// information (a policy built in code) every field counts as present.
func (c *checker) present(field string) bool {
	if c.lines == nil {
		return true
	}
	_, ok := c.lines[field]
	return ok
}

// problems returns every problem with p, ordered by line.
func (p *Policy) problems(lines map[string]int) []Problem {
	c := &checker{lines: lines}
	if p.Version != Version {
		c.add("version", "got %d, want %d", p.Version, Version)
	}
	known := p.checkMachines(c)
	senders := p.checkFlows(c, known)
	p.checkAuditors(c, known, senders)
	p.checkDurations(c)
	p.Monitoring.check(c.add)

	// Problems with a line come first, in file order; missing fields
	// have no line and follow.
	key := func(p Problem) int {
		if p.Line == 0 {
			return math.MaxInt
		}
		return p.Line
	}
	sort.SliceStable(c.probs, func(i, j int) bool { return key(c.probs[i]) < key(c.probs[j]) })
	return c.probs
}

// checkMachines returns the index of each valid machine name.
func (p *Policy) checkMachines(c *checker) map[string]int {
	if len(p.Machines) == 0 {
		c.add("machines", "at least one machine is required")
	}
	known := make(map[string]int, len(p.Machines))
	for i, m := range p.Machines {
		field := fmt.Sprintf("machines[%d]", i)
		if err := subjects.CheckName(m.Name); err != nil {
			c.add(field+".name", "%v", err)
			continue
		}
		if j, dup := known[m.Name]; dup {
			c.add(field+".name", "machine %q is already machines[%d]", m.Name, j)
			continue
		}
		known[m.Name] = i
		if m.Revoked != nil && m.Revoked.At.IsZero() {
			c.add(field+".revoked.at", "revocation time is required")
		}
	}
	return known
}

// checkFlows returns the set of machines that send a flow.
func (p *Policy) checkFlows(c *checker, known map[string]int) map[string]string {
	senders := make(map[string]string)
	seen := make(map[string]string) // "from to type" -> first field
	for i, f := range p.Flows {
		field := fmt.Sprintf("flows[%d]", i)
		if _, ok := known[f.From]; !ok {
			c.add(field+".from", "unknown machine %q", f.From)
		} else if _, dup := senders[f.From]; !dup {
			senders[f.From] = field + ".from"
		}
		if len(f.To) == 0 {
			c.add(field+".to", "at least one recipient is required")
		}
		if len(f.Types) == 0 {
			c.add(field+".types", "at least one message type is required")
		}
		for j, to := range f.To {
			tf := fmt.Sprintf("%s.to[%d]", field, j)
			switch _, ok := known[to]; {
			case !ok:
				c.add(tf, "unknown machine %q", to)
			case to == f.From:
				c.add(tf, "%q may not send to itself", to)
			}
		}
		for j, typ := range f.Types {
			tf := fmt.Sprintf("%s.types[%d]", field, j)
			if err := subjects.CheckName(typ); err != nil {
				c.add(tf, "message type: %v", err)
				continue
			}
			for _, to := range f.To {
				key := f.From + " " + to + " " + typ
				if first, dup := seen[key]; dup {
					c.add(tf, "%s -> %s of type %s is already allowed by %s",
						f.From, to, typ, first)
					continue
				}
				seen[key] = field
			}
		}
	}
	return senders
}

func (p *Policy) checkAuditors(c *checker, known map[string]int, senders map[string]string) {
	seen := make(map[string]bool)
	for i, a := range p.Auditors {
		field := fmt.Sprintf("auditors[%d]", i)
		switch _, ok := known[a]; {
		case !ok:
			c.add(field, "unknown machine %q", a)
		case seen[a]:
			c.add(field, "auditor %q listed twice", a)
		case senders[a] != "":
			// An auditor reads everything; if it could also send, a
			// compromised auditor could inject as well as read.
			c.add(field, "auditor %q also sends messages (%s); auditors must be read-only",
				a, senders[a])
		}
		seen[a] = true
	}
}

func (p *Policy) checkDurations(c *checker) {
	required := func(field string) bool {
		if !c.present(field) {
			c.add(field, "required")
			return false
		}
		return true
	}
	if required("keys.rotation_period") {
		inRange(c, "keys.rotation_period", p.Keys.RotationPeriod, minRotationPeriod, maxRotationPeriod)
	}
	if required("sessions.idle_timeout") && p.Sessions.IdleTimeout != 0 {
		inRange(c, "sessions.idle_timeout", p.Sessions.IdleTimeout, minIdleTimeout, maxIdleTimeout)
	}
	if required("retention.audit") && p.Retention.Audit.D() < minAuditRetention {
		c.add("retention.audit", "%s is shorter than the six years of 45 CFR 164.316(b)(2)",
			p.Retention.Audit)
	}
}

func inRange(c *checker, field string, d Duration, lo, hi time.Duration) {
	if d.D() < lo || d.D() > hi {
		c.add(field, "%s is outside %s..%s", d, Duration(lo), Duration(hi))
	}
}
