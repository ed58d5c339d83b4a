package fhir_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"phix.dev/phix/fhir"
)

// kindTest is one body and the issues Validate must report for it (none
// if want is empty and valid is true).
type kindTest struct {
	name  string
	body  string
	valid bool
	want  []wantIssue
}

func runKindTests(t *testing.T, opts fhir.Options, tests []kindTest) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := fhir.Validate([]byte(tc.body), opts)
			if r.Valid() != tc.valid {
				t.Fatalf("Validate().Valid() = %v, want %v; issues %v", r.Valid(), tc.valid, resultIssues(r))
			}
			checkIssues(t, resultIssues(r), tc.want...)
		})
	}
}

// Case 30 generalised: an unknown element is refused wherever it is.
func TestUnknownElementsAnywhere(t *testing.T) {
	unknown := func(expr string) wantIssue { return wantIssue{"error", "structure", expr, "unknown element"} }
	runKindTests(t, fhir.Options{}, []kindTest{
		{"top level of another resource type", `{"resourceType":"Patient","shoeSize":42}`,
			false, []wantIssue{unknown("Patient.shoeSize")}},
		{"nested four levels deep", `{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"1","colour":"red"}]}}]}`,
			false, []wantIssue{unknown("Observation.component[0].code.coding[0].colour")}},
		{"in a data type inside a choice", `{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"valueQuantity":{"value":1,"precision":2}}`, false, []wantIssue{unknown("Observation.valueQuantity.precision")}},
		{"in a Bundle entry resource", `{"resourceType":"Bundle","type":"collection",
			"entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","hair":"brown"}}]}`,
			false, []wantIssue{unknown("Bundle.entry[0].resource.hair")}},
		{"in a Bundle entry itself", `{"resourceType":"Bundle","type":"collection",
			"entry":[{"fullUrl":"urn:uuid:1","priority":1,"resource":{"resourceType":"Patient"}}]}`,
			false, []wantIssue{unknown("Bundle.entry[0].priority")}},
		{"in a contained resource", `{"resourceType":"MedicationRequest","status":"active","intent":"order",
			"subject":{"reference":"Patient/1"},"medicationReference":{"reference":"#m"},
			"contained":[{"resourceType":"Medication","id":"m","strength":"5mg"}]}`,
			false, []wantIssue{unknown("MedicationRequest.contained[0].strength")}},
		{"in a resource inside a Bundle inside a Bundle", `{"resourceType":"Bundle","type":"collection",
			"entry":[{"resource":{"resourceType":"Bundle","type":"collection",
			"entry":[{"resource":{"resourceType":"Patient","nickname":"x"}}]}}]}`,
			false, []wantIssue{unknown("Bundle.entry[0].resource.entry[0].resource.nickname")}},
		{"in Parameters.parameter.resource", `{"resourceType":"Parameters","parameter":[{"name":"p",
			"resource":{"resourceType":"Patient","mood":"ok"}}]}`,
			false, []wantIssue{unknown("Parameters.parameter[0].resource.mood")}},
		{"a primitive extension of an unknown element", `{"resourceType":"Patient","_nickname":{"id":"a"}}`,
			false, []wantIssue{unknown("Patient._nickname")}},
		{"inside a primitive extension", `{"resourceType":"Patient","birthDate":"2000-01-01",
			"_birthDate":{"id":"a","note":"x"}}`, false, []wantIssue{unknown("Patient._birthDate.note")}},
		{"an extension on a complex element", `{"resourceType":"Patient","_name":[{"id":"a"}],"name":[{"family":"x"}]}`,
			false, []wantIssue{unknown("Patient._name")}},
		{"an unknown choice type", `{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"valueMoney":{"value":1}}`, false, []wantIssue{unknown("Observation.valueMoney")}},
		{"a choice base without type", `{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"value":1}`, false, []wantIssue{unknown("Observation.value")}},
		{"wrong case", `{"resourceType":"Patient","BirthDate":"2000-01-01"}`,
			false, []wantIssue{{"error", "structure", "Patient.BirthDate", "did you mean 'birthDate'"}}},
		{"STU3 name on another resource", `{"resourceType":"Procedure","status":"completed",
			"subject":{"reference":"Patient/1"},"context":{"reference":"Encounter/1"}}`,
			false, []wantIssue{{"error", "structure", "Procedure.context", "R4 uses 'encounter'"}}},
		{"resourceType inside a data type", `{"resourceType":"Patient","name":[{"resourceType":"HumanName"}]}`,
			false, []wantIssue{unknown("Patient.name[0].resourceType")}},
		{"before resourceType", `{"mood":"ok","resourceType":"Patient"}`,
			false, []wantIssue{unknown("Patient.mood")}},
		{"fhir_comments", `{"resourceType":"Patient","fhir_comments":["x"]}`,
			false, []wantIssue{unknown("Patient.fhir_comments")}},
	})
}

func TestLenientKeepsUnknownElementsAnywhere(t *testing.T) {
	body := `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient",
		"hair":"brown","name":[{"family":"x","title":"Dr"}]}}]}`
	r := fhir.Validate([]byte(body), fhir.Options{Lenient: true})
	if !r.Valid() {
		t.Fatalf("lenient Validate: issues %v, want only warnings", resultIssues(r))
	}
	checkIssues(t, resultIssues(r),
		wantIssue{"warning", "structure", "Bundle.entry[0].resource.hair", "kept as sent"},
		wantIssue{"warning", "structure", "Bundle.entry[0].resource.name[0].title", "kept as sent"})
	// Lenient is about unknown elements only: a bad value is still refused.
	r = fhir.Validate([]byte(`{"resourceType":"Patient","hair":1,"birthDate":"soon"}`), fhir.Options{Lenient: true})
	checkIssues(t, resultIssues(r), wantIssue{"error", "value", "Patient.birthDate", "date"})
}

// Case 26 generalised: every decimal, wherever it is, is validated as text
// and forwarded untouched.
func TestDecimalsAnywhere(t *testing.T) {
	decimals := []string{"7.10", "0.10000000000000000555", "12345678901234567890.0", "1.20E+2",
		"-0.000", "1e-7", "3.141592653589793238462643383279", "100000000000000000000000000000001"}
	places := []string{
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":%s}}`,
		`{"resourceType":"Patient","extension":[{"url":"http://x","valueDecimal":%s}]}`,
		`{"resourceType":"Patient","birthDate":"2000-01-01","_birthDate":{"extension":[{"url":"http://x","valueDecimal":%s}]}}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueRange":{"low":{"value":%s}}}`,
		`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueSampledData":{"origin":{"value":1},"period":%s,"dimensions":1}}`,
		`{"resourceType":"Invoice","status":"draft","totalNet":{"value":%s,"currency":"EUR"}}`,
		`{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"RiskAssessment","status":"final",
			"subject":{"reference":"Patient/1"},"prediction":[{"probabilityDecimal":%s}]}}]}`,
		`{"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"},
			"medicationReference":{"reference":"#m"},"contained":[{"resourceType":"Medication","id":"m",
			"ingredient":[{"itemCodeableConcept":{"text":"x"},"strength":{"numerator":{"value":%s}}}]}]}`,
	}
	for _, place := range places {
		for _, d := range decimals {
			body := []byte(fmt.Sprintf(place, d))
			orig := bytes.Clone(body)
			r := fhir.Validate(body, fhir.Options{})
			if !r.Valid() {
				t.Errorf("Validate(%s) issues %v, want valid", body, resultIssues(r))
			}
			if !bytes.Equal(body, orig) {
				t.Fatalf("Validate changed its input")
			}
			// The lexical form survives a parse that does not use float64.
			if !bytes.Contains(body, []byte(d)) {
				t.Fatalf("test body lost %s", d)
			}
			var v any
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			if err := dec.Decode(&v); err != nil || !strings.Contains(fmt.Sprint(v), d) {
				t.Errorf("UseNumber decode of %s lost %s", body, d)
			}
		}
	}
}

func TestDecimalsMustBeNumbers(t *testing.T) {
	runKindTests(t, fhir.Options{}, []kindTest{
		{"decimal as a string", `{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"valueQuantity":{"value":"7.10"}}`, false,
			[]wantIssue{{"error", "structure", "Observation.valueQuantity.value", "JSON number"}}},
		{"integer with a fraction", `{"resourceType":"Patient","multipleBirthInteger":2.0}`, false,
			[]wantIssue{{"error", "value", "Patient.multipleBirthInteger", "integer"}}},
		{"integer out of 32-bit range", `{"resourceType":"Patient","multipleBirthInteger":2147483648}`, false,
			[]wantIssue{{"error", "value", "Patient.multipleBirthInteger", "32-bit"}}},
		{"positiveInt zero", `{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"valueSampledData":{"origin":{"value":1},"period":1,"dimensions":0}}`, false,
			[]wantIssue{{"error", "value", "Observation.valueSampledData.dimensions", "positiveInt"}}},
	})
}

// Case 27 generalised: local references must resolve in their container,
// wherever the container is.
func TestLocalReferencesAnywhere(t *testing.T) {
	mr := func(contained, ref string) string {
		return `{"resourceType":"MedicationRequest","status":"active","intent":"order",
			"subject":{"reference":"Patient/1"},"medicationReference":{"reference":"` + ref + `"},
			"contained":[` + contained + `]}`
	}
	med := `{"resourceType":"Medication","id":"med1"}`
	runKindTests(t, fhir.Options{}, []kindTest{
		{"resolving reference", mr(med, "#med1"), true, nil},
		{"broken reference inside a Bundle entry", `{"resourceType":"Bundle","type":"collection","entry":[
			{"fullUrl":"urn:uuid:1","resource":` + mr(med, "#med1") + `},
			{"fullUrl":"urn:uuid:2","resource":` + mr(med, "#med9") + `}]}`, false,
			[]wantIssue{{"error", "invalid", "Bundle.entry[1].resource.medicationReference",
				"reference #med9 does not match any contained resource id"}}},
		{"entries do not share contained resources", `{"resourceType":"Bundle","type":"collection","entry":[
			{"resource":` + mr(med, "#med1") + `},
			{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"subject":{"reference":"#med1"}}}]}`, false,
			[]wantIssue{{"error", "invalid", "Bundle.entry[1].resource.subject", "#med1"}}},
		{"reference from a contained resource to a missing sibling", mr(med+`,{"resourceType":"Organization",
			"id":"o","partOf":{"reference":"#nope"}}`, "#med1"), false,
			[]wantIssue{{"error", "invalid", "MedicationRequest.contained[1].partOf", "#nope"},
				{"error", "invariant", "MedicationRequest.contained[1]", "dom-3"}}},
		{"contained referenced only by a sibling", `{"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Patient/1"},
			"medicationReference":{"reference":"#med1"},"contained":[{"resourceType":"Medication","id":"med1",
			"manufacturer":{"reference":"#o"}},{"resourceType":"Organization","id":"o"}]}`, true, nil},
		{"contained that refers to its container", `{"resourceType":"Patient","contained":[
			{"resourceType":"Observation","id":"o","status":"final","code":{"text":"x"},"subject":{"reference":"#"}}]}`,
			true, nil},
		{"contained referenced by a canonical", `{"resourceType":"Questionnaire","status":"active",
			"contained":[{"resourceType":"ValueSet","id":"vs","status":"active"}],
			"item":[{"linkId":"1","type":"choice","answerValueSet":"#vs"}]}`, true, nil},
		{"local reference with nothing contained", `{"resourceType":"Observation","status":"final",
			"code":{"text":"x"},"subject":{"reference":"#p"}}`, false,
			[]wantIssue{{"error", "invalid", "Observation.subject", "#p"}}},
		{"deep reference in an extension", mr(med, "#med1")[:len(mr(med, "#med1"))-1] +
			`,"extension":[{"url":"http://x","valueReference":{"reference":"#gone"}}]}`, false,
			[]wantIssue{{"error", "invalid", "MedicationRequest.extension[0].valueReference", "#gone"}}},
		{"contained without id", mr(`{"resourceType":"Medication"}`, "Medication/1"), false,
			[]wantIssue{{"error", "required", "MedicationRequest.contained[0]", "no id"}}},
		{"duplicate contained ids", mr(med+","+med, "#med1"), false,
			[]wantIssue{{"error", "invalid", "MedicationRequest.contained[1]", "duplicate contained resource id"}}},
		{"contained inside contained (dom-2)", mr(`{"resourceType":"Medication","id":"med1",
			"contained":[{"resourceType":"Substance","id":"s"}]}`, "#med1"), false,
			[]wantIssue{{"error", "invariant", "MedicationRequest.contained[0].contained[0]", "dom-2"}}},
		{"contained with versionId (dom-4)", mr(`{"resourceType":"Medication","id":"med1","meta":{"versionId":"2"}}`,
			"#med1"), false, []wantIssue{{"error", "invariant", "MedicationRequest.contained[0]", "dom-4"}}},
		{"contained with security labels (dom-5)", mr(`{"resourceType":"Medication","id":"med1",
			"meta":{"security":[{"code":"R"}]}}`, "#med1"), false,
			[]wantIssue{{"error", "invariant", "MedicationRequest.contained[0]", "dom-5"}}},
	})
}

// Case 33 generalised: fullUrl duplicates anywhere in any Bundle but a
// history, unless they are different versions.
func TestDuplicateFullURLs(t *testing.T) {
	entry := func(url, version string) string {
		meta := ""
		if version != "" {
			meta = `,"meta":{"versionId":"` + version + `"}`
		}
		return `{"fullUrl":"` + url + `","resource":{"resourceType":"Patient"` + meta + `},
			"request":{"method":"POST","url":"Patient"},"response":{"status":"201"}}`
	}
	bundle := func(typ string, entries ...string) string {
		return `{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`
	}
	const u = "urn:uuid:6f1c2d3e-0000-4000-8000-000000000033"
	runKindTests(t, fhir.Options{}, []kindTest{
		{"three entries share one fullUrl", bundle("transaction", entry(u, ""), entry(u, ""), entry(u, "")), false,
			[]wantIssue{
				{"error", "invariant", "Bundle.entry[1].fullUrl", "in entry[0] and entry[1] (bdl-7)"},
				{"error", "invariant", "Bundle.entry[2].fullUrl", "in entry[0] and entry[2] (bdl-7)"}}},
		{"in a batch", bundle("batch", entry("Patient/1", ""), entry("Patient/1", "")), false,
			[]wantIssue{{"error", "invariant", "Bundle.entry[1].fullUrl", "bdl-7"}}},
		{"different versions are allowed", bundle("collection", entry(u, "1"), entry(u, "2")), true, nil},
		{"same version is not", bundle("collection", entry(u, "1"), entry(u, "1")), false,
			[]wantIssue{{"error", "invariant", "Bundle.entry[1].fullUrl", "bdl-7"}}},
		{"a history may repeat", bundle("history", entry(u, ""), entry(u, "")), true, nil},
		{"in a nested Bundle", bundle("collection", `{"resource":`+bundle("collection", entry(u, ""), entry(u, ""))+`}`),
			false, []wantIssue{{"error", "invariant", "Bundle.entry[0].resource.entry[1].fullUrl", "bdl-7"}}},
		{"version-specific fullUrl (bdl-8)", bundle("collection", entry("https://x/fhir/Patient/1/_history/2", "")),
			false, []wantIssue{{"error", "invariant", "Bundle.entry[0].fullUrl", "bdl-8"}}},
	})
}

// Case 31 generalised.
func TestResourceTypeVariants(t *testing.T) {
	txn := func(method, url, resource string) string {
		return `{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:1",
			"resource":` + resource + `,"request":{"method":"` + method + `","url":"` + url + `"}}]}`
	}
	org := `{"resourceType":"Organization","id":"x","name":"Org"}`
	runKindTests(t, fhir.Options{}, []kindTest{
		{"resourceType last", `{"name":[{"family":"x"}],"resourceType":"Patient"}`, true, nil},
		{"resourceType not a string", `{"resourceType":7}`, false,
			[]wantIssue{{"error", "structure", "", "resourceType must be a JSON string"}}},
		{"unknown resourceType", `{"resourceType":"Patients"}`, false,
			[]wantIssue{{"error", "invalid", "", `"Patients" is not an R4 resource type`}}},
		{"STU3-only resourceType", `{"resourceType":"ProcedureRequest","status":"active"}`, false,
			[]wantIssue{{"error", "invalid", "", "not an R4 resource type"}}},
		{"missing in a Bundle entry", `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"id":"x"}}]}`,
			false, []wantIssue{{"error", "required", "Bundle.entry[0].resource", "missing required property resourceType"}}},
		{"missing in a contained resource", `{"resourceType":"Patient","contained":[{"id":"x"}]}`, false,
			[]wantIssue{{"error", "required", "Patient.contained[0]", "missing required property resourceType"}}},
		{"duplicate resourceType", `{"resourceType":"Patient","resourceType":"Observation"}`, false,
			[]wantIssue{{"error", "structure", "Patient.resourceType", "duplicate property"}}},
		{"PUT Patient/x with an Organization", txn("PUT", "Patient/x", org), false,
			[]wantIssue{{"error", "invalid", "Bundle.entry[0].request.url", "names Patient"}}},
		{"POST Patient with an Organization", txn("POST", "Patient", org), false,
			[]wantIssue{{"error", "invalid", "Bundle.entry[0].request.url", "names Patient"}}},
		{"conditional PUT of the wrong type", txn("PUT", "Patient?identifier=a|b", org), false,
			[]wantIssue{{"error", "invalid", "Bundle.entry[0].request.url", "names Patient"}}},
		{"absolute URL of the wrong type", txn("PUT", "https://h/fhir/Patient/x", org), false,
			[]wantIssue{{"error", "invalid", "Bundle.entry[0].request.url", "names Patient"}}},
		{"PUT with another id", txn("PUT", "Organization/y", org), false,
			[]wantIssue{{"error", "invalid", "Bundle.entry[0].request.url", "does not match resource id x"}}},
		{"url that names no type", txn("POST", "Bogus", org), false,
			[]wantIssue{{"error", "invalid", "Bundle.entry[0].request.url", "does not name an R4 resource type"}}},
		{"matching PUT", txn("PUT", "Organization/x", org), true, nil},
		{"unresolved urn:uuid in a transaction", txn("POST", "Observation", `{"resourceType":"Observation",
			"status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:0000"}}`), false,
			[]wantIssue{{"error", "invalid", "Bundle.entry[0].resource.subject", "does not match any fullUrl"}}},
	})
}

// Case 28 generalised: primitive extensions on other elements and arrays.
func TestPrimitiveExtensionsAnywhere(t *testing.T) {
	runKindTests(t, fhir.Options{}, []kindTest{
		{"extension without value", `{"resourceType":"Observation","code":{"text":"x"},
			"_status":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"unknown"}]}}`,
			true, nil},
		{"aligned line arrays", `{"resourceType":"Patient","address":[{"line":["a",null],"_line":[null,{"id":"l2"}]}]}`,
			true, nil},
		{"misaligned arrays", `{"resourceType":"Patient","name":[{"given":["a","b"],"_given":[null]}]}`, false,
			[]wantIssue{{"error", "structure", "Patient.name[0].given", "aligned"}}},
		{"null in both", `{"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,null]}]}`, false,
			[]wantIssue{{"error", "structure", "Patient.name[0].given", "index 1 is null in both"}}},
		{"null without twin", `{"resourceType":"Patient","name":[{"given":["a",null]}]}`, false,
			[]wantIssue{{"error", "structure", "Patient.name[0].given", "null at index 1"}}},
		{"extension on a choice primitive", `{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"valueString":"a","_valueString":{"id":"v"}}`, true, nil},
		{"extension on another choice type", `{"resourceType":"Observation","status":"final","code":{"text":"x"},
			"valueString":"a","_valueBoolean":{"id":"v"}}`, false,
			[]wantIssue{{"error", "structure", "Observation._valueBoolean", "only one type of value[x]"}}},
		{"extension in a Bundle entry", `{"resourceType":"Bundle","type":"collection","entry":[{"resource":
			{"resourceType":"Patient","gender":"male","_gender":{"extension":[{"url":"http://x","valueString":"s"}]}}}]}`,
			true, nil},
		{"scalar where extension object belongs", `{"resourceType":"Patient","birthDate":"2000-01-01","_birthDate":"x"}`,
			false, []wantIssue{{"error", "structure", "Patient._birthDate", "JSON object"}}},
	})
}

func TestStructureRules(t *testing.T) {
	runKindTests(t, fhir.Options{MaxDepth: 8}, []kindTest{
		{"required element missing", `{"resourceType":"Observation","code":{"text":"x"}}`, false,
			[]wantIssue{{"error", "required", "Observation.status", "missing required element status"}}},
		{"required choice missing", `{"resourceType":"Task","status":"draft","intent":"order",
			"input":[{"type":{"text":"x"}}]}`, false,
			[]wantIssue{{"error", "required", "Task.input[0].value[x]", "missing required element value[x]"}}},
		{"code outside its value set", `{"resourceType":"Patient","gender":"m"}`, false,
			[]wantIssue{{"error", "code-invalid", "Patient.gender", `"m"`}}},
		{"bad date", `{"resourceType":"Patient","birthDate":"12.04.1985"}`, false,
			[]wantIssue{{"error", "value", "Patient.birthDate", "date"}}},
		{"empty object", `{"resourceType":"Patient","maritalStatus":{}}`, false,
			[]wantIssue{{"error", "invariant", "Patient.maritalStatus", "ele-1"}}},
		{"empty array", `{"resourceType":"Patient","name":[]}`, false,
			[]wantIssue{{"error", "structure", "Patient.name", "empty"}}},
		{"null value", `{"resourceType":"Patient","active":null}`, false,
			[]wantIssue{{"error", "structure", "Patient.active", "null"}}},
		{"array for a single element", `{"resourceType":"Patient","gender":["male"]}`, false,
			[]wantIssue{{"error", "structure", "Patient.gender", "not an array"}}},
		{"too deep", `{"resourceType":"Patient","extension":[{"url":"a","extension":[{"url":"b","extension":[
			{"url":"c","extension":[{"url":"d","valueString":"x"}]}]}]}]}`, false,
			[]wantIssue{{"error", "structure", "", "nested deeper than 8"}}},
		{"not UTF-8", "{\"resourceType\":\"Patient\",\"id\":\"\xff\"}", false,
			[]wantIssue{{"error", "structure", "", "UTF-8"}}},
		{"trailing data", `{"resourceType":"Patient"}{}`, false,
			[]wantIssue{{"error", "structure", "", "not valid JSON"}}},
		{"not an object", `"Patient"`, false, []wantIssue{{"error", "structure", "", "JSON object"}}},
		{"document without Composition first (bdl-11)", `{"resourceType":"Bundle","type":"document",
			"entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient"}}]}`, false,
			[]wantIssue{{"error", "invariant", "Bundle.entry[0]", "bdl-11"}}},
		{"transaction entry without request (bdl-3)", `{"resourceType":"Bundle","type":"transaction",
			"entry":[{"resource":{"resourceType":"Patient"}}]}`, false,
			[]wantIssue{{"error", "invariant", "Bundle.entry[0]", "bdl-3"}}},
		{"total outside a searchset (bdl-1)", `{"resourceType":"Bundle","type":"collection","total":1}`, false,
			[]wantIssue{{"error", "invariant", "Bundle.total", "bdl-1"}}},
	})
}

// Objects with very many members and resources with very many contained
// resources cost linear time: a quadratic check would take minutes here.
func TestLargeShapesStayLinear(t *testing.T) {
	if testing.Short() {
		t.Skip("large bodies")
	}
	var b strings.Builder
	b.WriteString(`{"resourceType":"Patient"`)
	for i := range 50_000 {
		fmt.Fprintf(&b, `,"x%d":1`, i)
	}
	b.WriteString(`}`)
	start := time.Now()
	r := fhir.Validate([]byte(b.String()), fhir.Options{Lenient: true})
	if len(r.Issues) != 50_000 || time.Since(start) > 10*time.Second {
		t.Errorf("50000 unknown members: %d issues in %v, want 50000 in well under 10s", len(r.Issues), time.Since(start))
	}

	b.Reset()
	b.WriteString(`{"resourceType":"List","status":"current","mode":"working","contained":[`)
	for i := range 10_000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"resourceType":"Basic","id":"b%d","code":{"text":"x"}}`, i)
	}
	b.WriteString(`],"entry":[`)
	for i := range 10_000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"item":{"reference":"#b%d"}}`, i)
	}
	b.WriteString(`]}`)
	start = time.Now()
	if r := fhir.Validate([]byte(b.String()), fhir.Options{}); !r.Valid() || time.Since(start) > 10*time.Second {
		t.Errorf("10000 contained resources: valid %v in %v, want valid in well under 10s", r.Valid(), time.Since(start))
	}
}
