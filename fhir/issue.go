package fhir

import (
	"encoding/json"
	"strings"
)

// Severity is an OperationOutcome issue severity (R4 value set
// issue-severity).
type Severity string

// Issue severities. Only [SeverityError] and [SeverityFatal] make a request
// fail.
const (
	SeverityFatal       Severity = "fatal"
	SeverityError       Severity = "error"
	SeverityWarning     Severity = "warning"
	SeverityInformation Severity = "information"
)

// Issue type codes (R4 value set issue-type) that the validator uses.
const (
	CodeStructure     = "structure"     // not valid JSON, or not the R4 shape
	CodeRequired      = "required"      // a required element is missing
	CodeValue         = "value"         // a primitive has the wrong form
	CodeInvalid       = "invalid"       // content is invalid for another reason
	CodeInvariant     = "invariant"     // an R4 invariant (dom-3, bdl-7) fails
	CodeCodeInvalid   = "code-invalid"  // a code is not in its required value set
	CodeTooLong       = "too-long"      // a body or bundle is over a limit
	CodeNotSupported  = "not-supported" // a content type or route phix does not serve
	CodeTransient     = "transient"     // phix could not store the message; retry
	CodeInformational = "informational" // a note about a successful request
)

// Issue is one finding about a request, shaped like an R4
// OperationOutcome.issue. Diagnostics never repeat values from the body
// except references, fullUrls and element names, which the sender needs to
// find the fault.
type Issue struct {
	Severity Severity
	Code     string
	// Expression is a FHIRPath to the element, such as
	// "Observation.component[1].valueQuantity.value"; empty if the issue
	// concerns the whole request.
	Expression  string
	Diagnostics string
}

// IsError reports whether the issue makes the request fail.
func (i Issue) IsError() bool {
	return i.Severity == SeverityError || i.Severity == SeverityFatal
}

// OperationOutcome renders issues as an R4 OperationOutcome resource.
func OperationOutcome(issues []Issue) []byte {
	type ooIssue struct {
		Severity    Severity `json:"severity"`
		Code        string   `json:"code"`
		Diagnostics string   `json:"diagnostics,omitempty"`
		Expression  []string `json:"expression,omitempty"`
	}
	oo := struct {
		ResourceType string    `json:"resourceType"`
		Issue        []ooIssue `json:"issue"`
	}{ResourceType: "OperationOutcome"}
	for _, is := range issues {
		o := ooIssue{Severity: is.Severity, Code: is.Code, Diagnostics: is.Diagnostics}
		if is.Expression != "" {
			o.Expression = []string{is.Expression}
		}
		oo.Issue = append(oo.Issue, o)
	}
	if len(oo.Issue) == 0 {
		// R4 requires at least one issue (OperationOutcome.issue 1..*).
		oo.Issue = []ooIssue{{Severity: SeverityInformation, Code: CodeInformational, Diagnostics: "ok"}}
	}
	b, err := json.Marshal(oo)
	if err != nil {
		// Only strings are marshalled; this cannot fail.
		panic("fhir: marshalling OperationOutcome: " + err.Error())
	}
	return b
}

// errorCount returns how many issues make the request fail.
func errorCount(issues []Issue) int {
	n := 0
	for _, is := range issues {
		if is.IsError() {
			n++
		}
	}
	return n
}

// summary is a one-line description of the first failing issue, for
// errors returned to Go callers.
func summary(issues []Issue) string {
	var b strings.Builder
	for _, is := range issues {
		if !is.IsError() {
			continue
		}
		if is.Expression != "" {
			b.WriteString(is.Expression + ": ")
		}
		b.WriteString(is.Diagnostics)
		break
	}
	return b.String()
}
