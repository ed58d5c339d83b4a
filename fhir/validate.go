package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Default limits of [Options].
const (
	DefaultMaxBundleEntries = 10_000 // entries per Bundle
	DefaultMaxDepth         = 100    // nested JSON objects and arrays
)

// Options adjusts [Validate]. The zero value is strict validation with the
// default limits.
type Options struct {
	// Lenient accepts unknown elements with a warning issue instead of
	// refusing the resource. The elements stay in the bytes that are
	// forwarded: lenient never means dropped.
	Lenient bool
	// MaxBundleEntries is the most entries one Bundle may hold; entries
	// past it are counted but not validated. Zero means
	// DefaultMaxBundleEntries; negative means no limit.
	MaxBundleEntries int
	// MaxDepth is the deepest nesting of JSON objects and arrays. Zero
	// means DefaultMaxDepth.
	MaxDepth int
}

func (o Options) withDefaults() Options {
	if o.MaxBundleEntries == 0 {
		o.MaxBundleEntries = DefaultMaxBundleEntries
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = DefaultMaxDepth
	}
	return o
}

// Result is what [Validate] found out about a FHIR R4 JSON resource.
type Result struct {
	// ResourceType and ID are those of the top-level resource; empty if
	// absent or unreadable.
	ResourceType string
	ID           string
	// BundleType is Bundle.type when the resource is a Bundle.
	BundleType string
	// Entries is the number of entries of a top-level Bundle.
	Entries int
	// TooManyEntries reports that a Bundle held more entries than
	// Options.MaxBundleEntries allows.
	TooManyEntries bool
	// Issues lists everything found, errors and warnings, mostly in
	// document order (rules checked at the end of a resource or Bundle
	// come after its elements).
	Issues []Issue
}

// Valid reports whether no issue is an error.
func (r *Result) Valid() bool { return errorCount(r.Issues) == 0 }

// Err returns nil if the resource is valid and a *[ValidationError]
// otherwise.
func (r *Result) Err() error {
	if r.Valid() {
		return nil
	}
	return &ValidationError{Issues: r.Issues}
}

// ValidationError reports a resource that is not valid R4 JSON or breaks a
// phix rule. Issues holds every finding, warnings included.
type ValidationError struct {
	Issues []Issue
}

func (e *ValidationError) Error() string {
	n := errorCount(e.Issues)
	msg := "fhir: invalid resource: " + summary(e.Issues)
	if n > 1 {
		msg += fmt.Sprintf(" (and %d more)", n-1)
	}
	return msg
}

// Validate checks body, one FHIR R4 resource in JSON, against the R4
// element definitions and the phix rules described in the package
// documentation. It never changes or re-encodes body: numbers are read as
// their exact text, so what is validated is what is forwarded.
//
// Validate reads body as a stream of tokens and keeps per-element state
// only for the current path, so its memory beyond body grows with the
// number of Bundle entries, contained resources and references, not with
// the size of their content. It is safe for concurrent use.
func Validate(body []byte, opts Options) *Result {
	opts = opts.withDefaults()
	res := &Result{}
	if issue, ok := checkSyntax(body); !ok {
		res.Issues = []Issue{issue}
		return res
	}
	d, err := r4()
	if err != nil {
		res.Issues = []Issue{{SeverityFatal, CodeStructure, "", err.Error()}}
		return res
	}
	w := newWalker(body, d, opts)
	w.root(res)
	res.Issues = w.issues
	return res
}

// checkSyntax makes sure body is one well-formed JSON object in UTF-8
// before anything is walked, so that a malformed body gets one clear
// issue and the walker never sees a syntax error half-way.
func checkSyntax(body []byte) (Issue, bool) {
	bad := func(diag string) (Issue, bool) {
		return Issue{SeverityError, CodeStructure, "", diag}, false
	}
	if !utf8.Valid(body) {
		// encoding/json would silently replace bad bytes with U+FFFD, so
		// the validated text would differ from the forwarded bytes.
		return bad("body is not valid UTF-8")
	}
	if !json.Valid(body) {
		var se *json.SyntaxError
		if err := json.Unmarshal(body, new(json.RawMessage)); errors.As(err, &se) {
			return bad(fmt.Sprintf("body is not valid JSON: %v at byte %d", se, se.Offset))
		}
		return bad("body is not valid JSON")
	}
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return bad("body must be a JSON object holding one FHIR resource")
	}
	return Issue{}, true
}
