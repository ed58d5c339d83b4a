package fhir_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"phix.dev/phix/fhir"
)

// caseTests checks each EXPECTED bullet of the shared FHIR cases that
// applies to a broker. The key is the case number prefix.
var caseTests = map[string]func(t *testing.T, body []byte){
	"26-": testCaseDecimals,
	"27-": testCaseContainedMissingRef,
	"28-": testCasePrimitiveExtensions,
	"30-": testCaseUnknownElements,
	"31-": testCaseWrongResourceType,
	"33-": testCaseDuplicateFullURL,
	"35-": testCaseHugeBundle,
	"37-": testCaseHeartbeat,
	"38-": testCaseIDOnly,
	"45-": testCasePatient,
	"46-": testCaseObservation,
	"47-": testCaseTransaction,
	"48-": testCaseBundleContained,
}

func TestCases(t *testing.T) {
	dir := casesDir(t)
	files, _ := filepath.Glob(filepath.Join(dir, "*-fhir-*.json"))
	if len(files) == 0 {
		t.Fatalf("no FHIR cases in %s", dir)
	}
	for _, f := range files {
		name := filepath.Base(f)
		if _, ok := caseTests[name[:3]]; !ok {
			t.Errorf("case %s has no test: add it to caseTests", name)
		}
	}
	for prefix, test := range caseTests {
		body := readCase(t, prefix)
		t.Run(prefix, func(t *testing.T) { test(t, body) })
	}
}

// wantAccepted checks a 202 with a message ID and that exactly body was
// published, byte for byte.
func wantAccepted(t *testing.T, rec interface {
	Result() *http.Response
}, s *sink, body []byte) {
	t.Helper()
	res := rec.Result()
	if res.StatusCode != http.StatusAccepted || res.Header.Get(fhir.HeaderMessageID) == "" {
		t.Fatalf("status = %d, message id %q; want 202 with an id", res.StatusCode, res.Header.Get(fhir.HeaderMessageID))
	}
	if res.Header.Get("Location") != "" {
		t.Errorf("Location = %q, want none: phix assigns no server ids", res.Header.Get("Location"))
	}
	got := s.published()
	if len(got) != 1 || !bytes.Equal(got[0], body) {
		t.Fatalf("published %d messages; want the original body once, byte-identical", len(got))
	}
}

func wantNothingPublished(t *testing.T, s *sink) {
	t.Helper()
	if n := len(s.published()); n != 0 {
		t.Errorf("published %d messages, want none", n)
	}
}

func testCaseDecimals(t *testing.T, body []byte) {
	h, s := newHandler(t, nil)
	rec := send(t, h, "POST", "/Observation", body)
	wantAccepted(t, rec, s, body)
	checkIssues(t, outcome(t, rec), wantIssue{severity: "warning", code: "value",
		expr: "Observation.component[2].valueQuantity.value", diag: "exponent form"})

	// What a recipient reads back, decoded without float64, is the exact text.
	m := decodeExact(t, s.published()[0])
	for _, c := range []struct {
		path []any
		want string
	}{
		{[]any{"valueQuantity", "value"}, "7.10"},
		{[]any{"referenceRange", 0, "low", "value"}, "3.90"},
		{[]any{"referenceRange", 0, "high", "value"}, "5.50"},
		{[]any{"component", 0, "valueQuantity", "value"}, "0.10000000000000000555"},
		{[]any{"component", 1, "valueQuantity", "value"}, "12345678901234567890.0"},
		{[]any{"component", 2, "valueQuantity", "value"}, "1.20E+2"},
	} {
		if got := at(t, m, c.path...); got != json.Number(c.want) {
			t.Errorf("published %v = %v, want %s", c.path, got, c.want)
		}
	}
	// Numeric comparison is exact while the stated precision is kept.
	a, _ := fhir.ParseDecimal("7.10")
	b, _ := fhir.ParseDecimal("7.1")
	if a.Cmp(b) != 0 || a.Scale() != 2 || a.String() != "7.10" {
		t.Errorf("7.10 vs 7.1: Cmp %d, Scale %d, String %s; want 0, 2, 7.10", a.Cmp(b), a.Scale(), a)
	}
}

func testCaseContainedMissingRef(t *testing.T, body []byte) {
	h, s := newHandler(t, nil)
	rec := send(t, h, "POST", "/MedicationRequest", body)
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("status = %d, want 400", rec.Code)
	}
	checkIssues(t, outcome(t, rec),
		wantIssue{"error", "invalid", "MedicationRequest.medicationReference",
			"reference #med2 does not match any contained resource id"},
		wantIssue{"error", "invariant", "MedicationRequest.contained[1]", "org-unreferenced"},
		wantIssue{"error", "invariant", "MedicationRequest.contained[1]", "dom-3"})
	wantNothingPublished(t, s)
}

func testCasePrimitiveExtensions(t *testing.T, body []byte) {
	h, s := newHandler(t, nil)
	wantAccepted(t, send(t, h, "POST", "/Patient", body), s, body)
	m := decodeExact(t, s.published()[0])
	checks := []struct {
		path []any
		want any
	}{
		{[]any{"birthDate"}, "1985-04-12"},
		{[]any{"_birthDate", "id"}, "bd1"},
		{[]any{"_birthDate", "extension", 0, "valueDateTime"}, "1985-04-12T06:15:00+02:00"},
		{[]any{"_gender", "extension", 0, "valueString"}, "self-reported"},
		{[]any{"name", 0, "given"}, []any{"Alex", nil, "Quinn"}},
		{[]any{"name", 0, "_given", 0}, nil},
		{[]any{"name", 0, "_given", 1, "extension", 0, "valueCode"}, "masked"},
		{[]any{"name", 0, "_given", 2}, nil},
	}
	for _, c := range checks {
		if diff := cmp.Diff(c.want, at(t, m, c.path...)); diff != "" {
			t.Errorf("published %v differs (-want +got):\n%s", c.path, diff)
		}
	}
}

func testCaseUnknownElements(t *testing.T, body []byte) {
	t.Run("strict refuses each unknown element", func(t *testing.T) {
		h, s := newHandler(t, nil)
		rec := send(t, h, "POST", "/Observation", body)
		if rec.Code != http.StatusBadRequest {
			t.Fatalf("status = %d, want 400", rec.Code)
		}
		checkIssues(t, outcome(t, rec),
			wantIssue{"error", "structure", "Observation.context", "unknown element"},
			wantIssue{"error", "structure", "Observation.context", "R4 uses 'encounter'"},
			wantIssue{"error", "structure", "Observation.favouriteColour", "unknown element"})
		wantNothingPublished(t, s)
	})
	t.Run("lenient feed warns and keeps them", func(t *testing.T) {
		h, s := newHandler(t, func(c *fhir.Config) { c.Lenient = true })
		rec := send(t, h, "POST", "/Observation", body)
		wantAccepted(t, rec, s, body)
		checkIssues(t, outcome(t, rec),
			wantIssue{"warning", "structure", "Observation.context", "kept as sent"},
			wantIssue{"warning", "structure", "Observation.favouriteColour", "kept as sent"})
		m := decodeExact(t, s.published()[0])
		if at(t, m, "favouriteColour") != "green" || at(t, m, "context", "reference") != "Encounter/enc-30" {
			t.Errorf("unknown elements were not kept in the published body")
		}
	})
	t.Run("a sender can ask for strict on a lenient feed", func(t *testing.T) {
		h, s := newHandler(t, func(c *fhir.Config) { c.Lenient = true })
		rec := send(t, h, "POST", "/Observation", body, "Prefer", "handling=strict")
		if rec.Code != http.StatusBadRequest {
			t.Errorf("status = %d, want 400", rec.Code)
		}
		wantNothingPublished(t, s)
	})
}

func testCaseWrongResourceType(t *testing.T, body []byte) {
	noType := regexp.MustCompile(`(?m)^\s*"resourceType": "Observation",\n`).ReplaceAll(body, nil)
	if bytes.Contains(noType, []byte("resourceType")) {
		t.Fatal("could not remove the resourceType line for variant 2")
	}
	tests := []struct {
		name, path string
		body       []byte
		want       wantIssue
	}{
		{"variant 1: Observation posted to Patient", "/Patient", body,
			wantIssue{"error", "invalid", "", "resourceType Observation does not match endpoint type Patient"}},
		{"variant 2: no resourceType", "/Observation", noType,
			wantIssue{"error", "", "", "missing required property resourceType"}},
		{"Bundle entry: PUT Patient/x with an Organization", "/", []byte(`{"resourceType":"Bundle",
			"type":"transaction","entry":[{"resource":{"resourceType":"Organization","id":"x","name":"Org"},
			"request":{"method":"PUT","url":"Patient/x"}}]}`),
			wantIssue{"error", "invalid", "Bundle.entry[0].request.url",
				"request.url names Patient but the entry's resource is Organization"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, s := newHandler(t, nil)
			rec := send(t, h, "POST", tc.path, tc.body)
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400", rec.Code)
			}
			checkIssues(t, outcome(t, rec), tc.want)
			wantNothingPublished(t, s)
		})
	}
}

func testCaseDuplicateFullURL(t *testing.T, body []byte) {
	h, s := newHandler(t, nil)
	rec := send(t, h, "POST", "/", body)
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("status = %d, want 400", rec.Code)
	}
	checkIssues(t, outcome(t, rec), wantIssue{"error", "invariant", "Bundle.entry[1].fullUrl",
		"duplicate fullUrl urn:uuid:6f1c2d3e-0000-4000-8000-000000000033 in entry[0] and entry[1] (bdl-7)"})
	wantNothingPublished(t, s)
}

func testCaseHugeBundle(t *testing.T, body []byte) {
	t.Run("within limits: one batch-response entry per entry", func(t *testing.T) {
		h, s := newHandler(t, func(c *fhir.Config) { c.MaxBodyBytes, c.MaxBundleEntries = 1<<20, 1000 })
		rec := send(t, h, "POST", "/", body)
		wantAccepted(t, rec, s, body)
		var resp struct {
			Type  string
			Entry []struct {
				Response struct{ Status, Location string }
			}
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Type != "batch-response" || len(resp.Entry) != 1000 {
			t.Fatalf("response: type %s with %d entries, want batch-response with 1000", resp.Type, len(resp.Entry))
		}
		for i, e := range resp.Entry {
			if e.Response.Status != "202 Accepted" || e.Response.Location != "" {
				t.Fatalf("entry[%d].response = %+v, want 202 Accepted without location", i, e.Response)
			}
		}
	})
	t.Run("entry limit 500: 413 up front", func(t *testing.T) {
		h, s := newHandler(t, func(c *fhir.Config) { c.MaxBundleEntries = 500 })
		rec := send(t, h, "POST", "/", body)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("status = %d, want 413", rec.Code)
		}
		checkIssues(t, outcome(t, rec), wantIssue{"error", "too-long", "Bundle.entry", "bundle has 1000 entries, limit 500"})
		wantNothingPublished(t, s)
	})
	t.Run("body limit: 413 before parsing", func(t *testing.T) {
		h, s := newHandler(t, func(c *fhir.Config) { c.MaxBodyBytes = 64 << 10 })
		// Broken JSON past the limit still gets 413, not 400: it was never parsed.
		broken := append(bytes.Clone(body), "}}}"...)
		rec := send(t, h, "POST", "/", broken)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("status = %d, want 413", rec.Code)
		}
		checkIssues(t, outcome(t, rec), wantIssue{"error", "too-long", "", "larger than the limit"})
		wantNothingPublished(t, s)
	})
}

func testCaseHeartbeat(t *testing.T, body []byte) {
	tr := fhir.NewTracker()
	tr.Seed("https://ehr.example.invalid/fhir/Subscription/sub-42", 308)
	h, s := newHandler(t, func(c *fhir.Config) { c.Tracker = tr })
	rec := send(t, h, "POST", fhir.DefaultNotificationPath, body)
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Fatalf("status = %d with %d body bytes, want 200 and no body", rec.Code, rec.Body.Len())
	}
	wantNothingPublished(t, s)
	evs := s.publishedEvents()
	if len(evs) != 1 || evs[0].Kind != fhir.EventCatchUp || evs[0].Gap == nil ||
		*evs[0].Gap != (fhir.Gap{From: 309, To: 310}) || len(evs[0].Notification) != 0 {
		t.Fatalf("events = %+v, want one catch-up for 309..310 without payload", evs)
	}
	st := h.Subscriptions()
	if len(st) != 1 || st[0].LastHeartbeat.IsZero() || st[0].LastEvent != 310 || st[0].Status != "active" {
		t.Errorf("subscription state = %+v, want alive with last event 310", st)
	}
	// The same heartbeat again reveals no new gap.
	send(t, h, "POST", fhir.DefaultNotificationPath, body)
	if n := len(s.publishedEvents()); n != 1 {
		t.Errorf("after a repeated heartbeat %d events, want still 1", n)
	}
}

func testCaseIDOnly(t *testing.T, body []byte) {
	const sub = "https://ehr.example.invalid/fhir/Subscription/sub-42"
	tr := fhir.NewTracker()
	tr.Seed(sub, 310)
	h, s := newHandler(t, func(c *fhir.Config) { c.Tracker = tr })
	for range 2 { // the second is a repeat and must be ignored
		if rec := send(t, h, "POST", fhir.DefaultNotificationPath, body); rec.Code != http.StatusOK {
			t.Fatalf("status = %d, want 200", rec.Code)
		}
	}
	wantNothingPublished(t, s)
	evs := s.publishedEvents()
	want := &fhir.Event{
		Kind: fhir.EventNotified, Subscription: sub,
		Topic:            "http://example.org/fhir/SubscriptionTopic/encounter-start",
		NotificationType: "event-notification", EventsSinceStart: 311,
		Events: []fhir.NotificationEvent{{Number: 311, Timestamp: "2025-03-14T10:04:59Z",
			Focus: "https://ehr.example.invalid/fhir/Encounter/enc-9001"}},
		Notification: body,
	}
	if len(evs) != 1 {
		t.Fatalf("published %d events, want 1 (the repeat is ignored)", len(evs))
	}
	if diff := cmp.Diff(want, evs[0], cmp.FilterPath(func(p cmp.Path) bool {
		return p.String() == "Received"
	}, cmp.Ignore()), cmp.AllowUnexported(fhir.Event{})); diff != "" {
		t.Errorf("event differs (-want +got):\n%s", diff)
	}
	if st := h.Subscriptions(); len(st) != 1 || st[0].LastEvent != 311 || st[0].Notifications != 2 {
		t.Errorf("subscription state = %+v, want last event 311 after 2 notifications", st)
	}
}

func testCasePatient(t *testing.T, body []byte) {
	for _, tc := range []struct{ method, path string }{{"POST", "/Patient"}, {"PUT", "/Patient/pat-1001"}} {
		h, s := newHandler(t, nil)
		wantAccepted(t, send(t, h, tc.method, tc.path, body), s, body)
		m := decodeExact(t, s.published()[0])
		checkValues(t, m, map[string]any{
			"identifier.0.value": "MRN300001", "identifier.0.system": "http://hospital.example.org/mrn",
			"identifier.0.type.coding.0.code": "MR", "name.0.family": "Examplename",
			"name.0.given": []any{"Morgan", "Lee"}, "telecom.0.value": "+1-555-0100301",
			"gender": "male", "birthDate": "1967-09-21", "address.0.city": "Riverton",
			"managingOrganization.reference": "Organization/org-genhosp",
		})
	}
	h, s := newHandler(t, nil)
	rec := send(t, h, "PUT", "/Patient/pat-9999", body)
	if rec.Code != http.StatusBadRequest {
		t.Errorf("PUT to another id: status = %d, want 400", rec.Code)
	}
	checkIssues(t, outcome(t, rec), wantIssue{"error", "invalid", "Patient.id", "does not match the id pat-9999"})
	wantNothingPublished(t, s)
}

func testCaseObservation(t *testing.T, body []byte) {
	h, s := newHandler(t, nil)
	wantAccepted(t, send(t, h, "POST", "/Observation", body), s, body)
	m := decodeExact(t, s.published()[0])
	checkValues(t, m, map[string]any{
		"code.coding.0.code": "85354-9", "category.0.coding.0.code": "vital-signs",
		"subject.reference": "Patient/pat-1001", "effectiveDateTime": "2025-03-15T08:30:00+01:00",
		"component.0.code.coding.0.code": "8480-6", "component.0.valueQuantity.value": json.Number("128"),
		"component.0.valueQuantity.code": "mm[Hg]", "component.1.code.coding.0.code": "8462-4",
		"component.1.valueQuantity.value": json.Number("82"),
	})
	for k := range m {
		if strings.HasPrefix(k, "value") {
			t.Errorf("published top-level %s, want no value[x] on the panel", k)
		}
	}
}

func testCaseTransaction(t *testing.T, body []byte) {
	h, s := newHandler(t, nil)
	rec := send(t, h, "POST", "/", body)
	wantAccepted(t, rec, s, body)
	var resp map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"resourceType": "Bundle", "type": "transaction-response", "entry": []any{
		map[string]any{"response": map[string]any{"status": "202 Accepted"}},
		map[string]any{"response": map[string]any{"status": "202 Accepted"}},
		map[string]any{"response": map[string]any{"status": "202 Accepted"}},
	}}
	if diff := cmp.Diff(want, resp); diff != "" {
		t.Errorf("transaction-response differs (-want +got):\n%s", diff)
	}
	// The urn:uuid references travel as sent; the FHIR server that runs
	// the transaction rewrites them to the ids it assigns.
	if !bytes.Contains(s.published()[0], []byte(`"reference": "urn:uuid:3c9d6b7a-1111-4aaa-8bbb-000000000047"`)) {
		t.Error("urn:uuid reference was not forwarded as sent")
	}

	// All or nothing: one bad entry refuses the whole transaction, naming it.
	bad := bytes.Replace(body, []byte(`"status": "final"`), []byte(`"status": "done"`), 1)
	h, s = newHandler(t, nil)
	rec = send(t, h, "POST", "/", bad)
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("bad entry: status = %d, want 400", rec.Code)
	}
	checkIssues(t, outcome(t, rec), wantIssue{"error", "code-invalid", "Bundle.entry[2].resource.status", "done"})
	wantNothingPublished(t, s)
}

func testCaseBundleContained(t *testing.T, body []byte) {
	h, s := newHandler(t, nil)
	wantAccepted(t, send(t, h, "POST", "/Bundle", body), s, body)
	m := decodeExact(t, s.published()[0])
	checkValues(t, m, map[string]any{
		"entry.0.resource.contained.0.id":                                       "med1",
		"entry.0.resource.contained.0.code.coding.0.code":                       "197361",
		"entry.0.resource.medicationReference.reference":                        "#med1",
		"entry.0.resource.dosageInstruction.0.doseAndRate.0.doseQuantity.value": json.Number("5"),
		"entry.1.resource.id":                                                   "pat-1001",
	})
	// A collection is not a transaction: the base refuses it.
	h, s = newHandler(t, nil)
	if rec := send(t, h, "POST", "/", body); rec.Code != http.StatusBadRequest {
		t.Errorf("collection posted to the base: status = %d, want 400", rec.Code)
	}
	wantNothingPublished(t, s)
}

// checkValues compares values at dotted paths ("name.0.given").
func checkValues(t *testing.T, m map[string]any, want map[string]any) {
	t.Helper()
	for path, w := range want {
		var keys []any
		for _, k := range strings.Split(path, ".") {
			if n, ok := atoiOK(k); ok {
				keys = append(keys, n)
			} else {
				keys = append(keys, k)
			}
		}
		if diff := cmp.Diff(w, at(t, m, keys...)); diff != "" {
			t.Errorf("published %s differs (-want +got):\n%s", path, diff)
		}
	}
}

func atoiOK(s string) (int, bool) {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, s != ""
}
