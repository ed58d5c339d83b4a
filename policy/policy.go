package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
)

// Version is the policy format version this package reads.
const Version = 1

// maxFileSize bounds a policy file, in bytes; real policies are a few KiB.
const maxFileSize = 1 << 20

// Policy is a parsed, validated access policy. Obtain one with [Parse] or
// [Load]; a Policy built by hand must pass [Policy.Validate] before its
// derivations mean anything. A Policy is not modified by any method, so
// it is safe for concurrent reads.
type Policy struct {
	// Version is the format version; it must be [Version].
	Version int `yaml:"version"`

	// Machines lists every machine identity, revoked ones included.
	Machines []Machine `yaml:"machines"`

	// Flows says who may send which message types to whom.
	Flows []Flow `yaml:"flows"`

	// Auditors names the machines that may read every stored message,
	// quarantined message and audit record, for audit and replay, and
	// publish nothing but their own audit reports. An auditor may receive
	// flows but never send one.
	Auditors []string `yaml:"auditors,omitempty"`

	// Keys sets key lifetimes.
	Keys Keys `yaml:"keys"`

	// Sessions sets session limits.
	Sessions Sessions `yaml:"sessions"`

	// Retention sets how long records are kept.
	Retention Retention `yaml:"retention"`

	// Monitoring sets anomaly thresholds; optional.
	Monitoring Monitoring `yaml:"monitoring,omitempty"`

	// name is where the policy came from, for error messages.
	name string
}

// Machine is one machine identity.
type Machine struct {
	// Name is the machine name: its certificate's common name, its broker
	// user and its subject token. It must pass subjects.CheckName.
	Name string `yaml:"name"`

	// Description is free text for operators.
	Description string `yaml:"description,omitempty"`

	// Revoked, if set, cuts the machine off: it gets no broker user, no
	// consumer and no Vault flow, and its live sessions are closed.
	Revoked *Revocation `yaml:"revoked,omitempty"`
}

// Revocation records when and why a machine was revoked.
type Revocation struct {
	At     time.Time `yaml:"at"`
	Reason string    `yaml:"reason,omitempty"`
}

// Flow lets From send messages of each of Types to each of To.
type Flow struct {
	From  string   `yaml:"from"`
	To    []string `yaml:"to"`
	Types []string `yaml:"types"`
}

// Keys sets key lifetimes.
type Keys struct {
	// RotationPeriod is the longest a machine's identity keys and
	// certificates may be in use before they must be rotated. Required.
	RotationPeriod Duration `yaml:"rotation_period"`
}

// Sessions sets session limits.
type Sessions struct {
	// IdleTimeout is how long a machine's broker session may go without
	// publishing or fetching before the broker disconnects it (automatic
	// logoff, 45 CFR 164.312(a)(2)(iii)). Required; "off" disables it,
	// which phix doctor reports as a failure.
	IdleTimeout Duration `yaml:"idle_timeout"`
}

// Retention sets how long records are kept. Zero keeps them until
// deleted by other means.
type Retention struct {
	// Messages is how long sealed messages stay in the message stream,
	// read or not.
	Messages Duration `yaml:"messages"`
	// Quarantine is how long refused messages stay in quarantine.
	Quarantine Duration `yaml:"quarantine"`
	// Audit is how long audit records are kept: at least six years
	// (45 CFR 164.316(b)(2)). Required.
	Audit Duration `yaml:"audit"`
}

// ErrInvalid is wrapped by every error [Parse] and [Load] return for a
// policy that cannot be decoded or fails validation; the error is then a
// [*ValidationError].
var ErrInvalid = errors.New("policy: invalid policy")

// ValidationError lists every problem found in a policy.
type ValidationError struct {
	// Name is the file name or label the policy was parsed under.
	Name     string
	Problems []Problem
}

// Problem is one invalid field.
type Problem struct {
	Line  int    // 1-based line in the file; 0 if unknown
	Field string // path such as flows[1].to[0]; empty for the document
	Msg   string
}

func (p Problem) String() string {
	var b bytes.Buffer
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists the problems, one a line after the first.
func (e *ValidationError) Error() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "policy: %s:", e.Name)
	if len(e.Problems) == 1 {
		return b.String() + " " + e.Problems[0].String()
	}
	fmt.Fprintf(&b, " %d problems", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

// Unwrap returns [ErrInvalid].
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// Load reads and parses the policy file at path.
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("policy: reading %s: %w", path, err)
	}
	return Parse(path, b)
}

// Parse decodes and validates a policy. name labels the policy in errors,
// usually its file name. Any problem yields a [*ValidationError].
func Parse(name string, data []byte) (*Policy, error) {
	fail := func(line int, msg string) error {
		return &ValidationError{Name: name, Problems: []Problem{{Line: line, Msg: msg}}}
	}
	if len(data) > maxFileSize {
		return nil, fail(0, fmt.Sprintf("larger than %d bytes", maxFileSize))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fail(0, yamlMsg(err))
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 ||
		doc.Content[0].Kind != yaml.MappingNode {
		return nil, fail(0, "want a YAML mapping")
	}

	p := &Policy{name: name}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(p); err != nil {
		return nil, fail(0, yamlMsg(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fail(0, "more than one YAML document")
	}

	lines := make(map[string]int)
	indexLines(doc.Content[0], "", lines)
	if probs := p.problems(lines); len(probs) > 0 {
		return nil, &ValidationError{Name: name, Problems: probs}
	}
	return p, nil
}

// yamlMsg strips the "yaml: " prefix from a decoding error; its text
// already names the line.
func yamlMsg(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return joinLines(te.Errors)
	}
	msg := err.Error()
	if len(msg) > 6 && msg[:6] == "yaml: " {
		return msg[6:]
	}
	return msg
}

func joinLines(ss []string) string {
	var b bytes.Buffer
	for i, s := range ss {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(s)
	}
	return b.String()
}

// indexLines records the line of every mapping key and sequence item
// below n, by field path, so that validation can point at the line.
func indexLines(n *yaml.Node, path string, lines map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			lines[p] = k.Line
			indexLines(v, p, lines)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = c.Line
			indexLines(c, p, lines)
		}
	}
}

// Name returns the file name or label the policy was parsed under.
func (p *Policy) Name() string { return p.name }

// Marshal returns the policy as YAML. Comments of the original file are
// not kept; use [Revoke] to change a file in place.
func (p *Policy) Marshal() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(p); err != nil {
		return nil, fmt.Errorf("policy: %v", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("policy: %v", err)
	}
	return b.Bytes(), nil
}
