package fhir

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

var kindNames = [...]string{kindString: "string", kindNumber: "number", kindBool: "boolean"}

// primitive checks one primitive value: its JSON type, its lexical form
// and, for codes with a required binding, its value set. Values are
// compared as text; nothing is converted, so a decimal keeps every digit.
func (w *walker) primitive(owner *typeDef, e *elemDef, tok json.Token) {
	t := e.typ
	var got jsonKind
	switch tok.(type) {
	case string:
		got = kindString
	case json.Number:
		got = kindNumber
	case bool:
		got = kindBool
	default:
		w.issue(SeverityError, CodeStructure, fmt.Sprintf("expected a primitive %s value", t.name))
		w.skipFrom(tok)
		return
	}
	if got != t.json {
		w.issue(SeverityError, CodeStructure, fmt.Sprintf(
			"%s is written as a JSON %s, not a %s", t.name, kindNames[t.json], kindNames[got]))
		return
	}
	switch v := tok.(type) {
	case string:
		w.checkString(t, e, v)
		w.capture(owner, e, v)
	case json.Number:
		w.checkNumber(t, string(v))
	}
}

func (w *walker) checkString(t *typeDef, e *elemDef, s string) {
	if t.re != nil && !t.re.MatchString(s) {
		w.issue(SeverityError, CodeValue, fmt.Sprintf("value is not a valid R4 %s", t.name))
		return
	}
	if e.codes != nil && !slices.Contains(e.codes, s) {
		w.issue(SeverityError, CodeCodeInvalid, fmt.Sprintf(
			"code %q is not in the required value set (%s)", s, allowed(e.codes)))
	}
}

func allowed(codes []string) string {
	const show = 12
	if len(codes) <= show {
		return "one of " + strings.Join(codes, ", ")
	}
	return fmt.Sprintf("one of %s and %d more", strings.Join(codes[:show], ", "), len(codes)-show)
}

// checkNumber checks a JSON number's text. R4 integers are 32-bit; a
// decimal may have any precision and is never rounded.
func (w *walker) checkNumber(t *typeDef, s string) {
	if t.re != nil && !t.re.MatchString(s) {
		w.issue(SeverityError, CodeValue, fmt.Sprintf("value is not a valid R4 %s", t.name))
		return
	}
	if t.name == "decimal" {
		if strings.ContainsAny(s, "eE") {
			w.issue(SeverityWarning, CodeValue,
				"decimal in exponent form is forwarded exactly as sent; some FHIR servers refuse this form")
		}
		return
	}
	if _, err := strconv.ParseInt(s, 10, 32); err != nil {
		w.issue(SeverityError, CodeValue, fmt.Sprintf("%s is out of the 32-bit range R4 allows", t.name))
	}
}
