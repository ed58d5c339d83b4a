package fhir_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"phix.dev/phix/fhir"
)

const patient = `{"resourceType":"Patient","id":"p1","name":[{"family":"Testperson"}]}`

func TestNewHandlerNeedsPublish(t *testing.T) {
	if _, err := fhir.NewHandler(fhir.Config{}); err == nil {
		t.Fatal("NewHandler(Config{}) = nil error, want an error naming Publish")
	}
}

func TestHandlerRefusals(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		header                   []string
		status                   int
		want                     wantIssue
	}{
		{"XML content type", "POST", "/Patient", patient, []string{"Content-Type", "application/fhir+xml"},
			http.StatusUnsupportedMediaType, wantIssue{"error", "not-supported", "", "application/fhir+json"}},
		{"STU3 fhirVersion", "POST", "/Patient", patient, []string{"Content-Type", "application/fhir+json; fhirVersion=3.0"},
			http.StatusUnsupportedMediaType, wantIssue{"error", "not-supported", "", "R4"}},
		{"GET", "GET", "/Patient", "", nil, http.StatusMethodNotAllowed, wantIssue{diag: "use POST"}},
		{"PUT without id", "PUT", "/Patient", patient, nil, http.StatusMethodNotAllowed, wantIssue{diag: "use POST"}},
		{"POST to an instance", "POST", "/Patient/p1", patient, nil, http.StatusMethodNotAllowed, wantIssue{diag: "use PUT"}},
		{"unknown type", "POST", "/Patients", patient, nil, http.StatusNotFound, wantIssue{diag: "Patients is not an R4"}},
		{"history path", "PUT", "/Patient/p1/_history/2", patient, nil, http.StatusNotFound, wantIssue{code: "not-supported"}},
		{"conditional create", "POST", "/Patient", patient, []string{"If-None-Exist", "identifier=a|b"},
			http.StatusBadRequest, wantIssue{"error", "not-supported", "", "transaction Bundle"}},
		{"conditional update", "PUT", "/Patient?identifier=a|b", patient, nil,
			http.StatusBadRequest, wantIssue{"error", "not-supported", "", "transaction Bundle"}},
		{"update without id in the body", "PUT", "/Patient/p1", `{"resourceType":"Patient"}`, nil,
			http.StatusBadRequest, wantIssue{"error", "required", "Patient.id", "needs the resource id"}},
		{"non-Bundle to the base", "POST", "/", patient, nil,
			http.StatusBadRequest, wantIssue{"error", "invalid", "", "accepts transaction and batch Bundles"}},
		{"invalid JSON", "POST", "/Patient", `{"resourceType":"Patient",}`, nil,
			http.StatusBadRequest, wantIssue{"error", "structure", "", "not valid JSON"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, s := newHandler(t, nil)
			rec := send(t, h, tc.method, tc.path, []byte(tc.body), tc.header...)
			if rec.Code != tc.status {
				t.Fatalf("%s %s = %d, want %d: %s", tc.method, tc.path, rec.Code, tc.status, rec.Body)
			}
			checkIssues(t, outcome(t, rec), tc.want)
			wantNothingPublished(t, s)
		})
	}
}

func TestBodyLimitWithoutContentLength(t *testing.T) {
	h, s := newHandler(t, func(c *fhir.Config) { c.MaxBodyBytes = 100 })
	body := strings.Repeat(" ", 200) + patient
	r := httptest.NewRequest("POST", "/Patient", io.NopCloser(strings.NewReader(body)))
	r.ContentLength = -1 // chunked: only the reader limit can stop it
	r.Header.Set("Content-Type", "application/fhir+json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413", rec.Code)
	}
	wantNothingPublished(t, s)
}

func TestPublishFailureIsRetryable(t *testing.T) {
	var info fhir.RequestInfo
	h, s := newHandler(t, func(c *fhir.Config) { c.OnRequest = func(ri fhir.RequestInfo) { info = ri } })
	s.fail = errStore
	rec := send(t, h, "POST", "/Patient", []byte(patient))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", rec.Code)
	}
	checkIssues(t, outcome(t, rec), wantIssue{"error", "transient", "", "retry"})
	if strings.Contains(rec.Body.String(), errStore.Error()) {
		t.Error("response reveals the internal publish error")
	}
	if info.Status != 503 || info.Err != errStore || info.MessageID != "" {
		t.Errorf("RequestInfo = %+v, want status 503 with the publish error", info)
	}
}

func TestAcceptedResponse(t *testing.T) {
	var info fhir.RequestInfo
	h, s := newHandler(t, func(c *fhir.Config) { c.OnRequest = func(ri fhir.RequestInfo) { info = ri } })
	rec := send(t, h, "POST", "/Patient", []byte(patient))
	wantAccepted(t, rec, s, []byte(patient))
	checkIssues(t, outcome(t, rec), wantIssue{"information", "informational", "", "msg-1"})
	want := fhir.RequestInfo{Interaction: "create", ResourceType: "Patient", Status: 202, MessageID: "msg-1",
		Bytes: len(patient), Duration: info.Duration}
	if info != want {
		t.Errorf("RequestInfo = %+v, want %+v", info, want)
	}
	if s.types[0] != "Patient" {
		t.Errorf("published resource type %q, want Patient", s.types[0])
	}

	h, _ = newHandler(t, nil)
	rec = send(t, h, "POST", "/Patient", []byte(patient), "Prefer", "return=minimal")
	if rec.Code != http.StatusAccepted || rec.Body.Len() != 0 || rec.Header().Get(fhir.HeaderMessageID) == "" {
		t.Errorf("return=minimal: status %d, %d body bytes; want 202, empty body, message id", rec.Code, rec.Body.Len())
	}
}

func TestBatchResponseCarriesEntryWarnings(t *testing.T) {
	h, _ := newHandler(t, func(c *fhir.Config) { c.Lenient = true })
	body := `{"resourceType":"Bundle","type":"batch","entry":[
		{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
		{"resource":{"resourceType":"Patient","hair":"brown"},"request":{"method":"POST","url":"Patient"}}]}`
	rec := send(t, h, "POST", "/", []byte(body))
	var resp struct {
		Entry []struct {
			Response struct {
				Status  string
				Outcome *struct{ Issue []outcomeIssue }
			}
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || len(resp.Entry) != 2 {
		t.Fatalf("batch-response = %s (%v), want 2 entries", rec.Body, err)
	}
	if resp.Entry[0].Response.Outcome != nil {
		t.Errorf("entry[0] outcome = %v, want none", resp.Entry[0].Response.Outcome)
	}
	if o := resp.Entry[1].Response.Outcome; o == nil {
		t.Fatal("entry[1] has no outcome, want the unknown-element warning")
	} else {
		checkIssues(t, o.Issue, wantIssue{"warning", "structure", "Bundle.entry[1].resource.hair", "kept"})
	}
}

// notification builds a backport notification for sub-42.
func notification(typ string, since string, events ...string) []byte {
	params := []string{
		`{"name":"subscription","valueReference":{"reference":"https://ehr.example.invalid/fhir/Subscription/sub-42"}}`,
		`{"name":"status","valueCode":"active"}`,
		`{"name":"type","valueCode":"` + typ + `"}`,
		`{"name":"events-since-subscription-start","valueString":"` + since + `"}`,
	}
	for _, n := range events {
		params = append(params, `{"name":"notification-event","part":[{"name":"event-number","valueString":"`+n+
			`"},{"name":"focus","valueReference":{"reference":"Encounter/e`+n+`"}}]}`)
	}
	return []byte(`{"resourceType":"Bundle","type":"history","entry":[{"fullUrl":"urn:uuid:1",
		"resource":{"resourceType":"Parameters","parameter":[` + strings.Join(params, ",") + `]},
		"request":{"method":"GET","url":"Subscription/sub-42/$status"},"response":{"status":"200"}}]}`)
}

func TestNotificationSequence(t *testing.T) {
	tr := fhir.NewTracker()
	h, s := newHandler(t, func(c *fhir.Config) { c.Tracker = tr })
	steps := []struct {
		name    string
		body    []byte
		kind    string    // "" if nothing is published
		numbers []uint64  // event numbers published
		gap     *fhir.Gap // gap published
	}{
		{"first event sets the baseline", notification("event-notification", "5", "5"), fhir.EventNotified, []uint64{5}, nil},
		{"next event in order", notification("event-notification", "6", "6"), fhir.EventNotified, []uint64{6}, nil},
		{"repeat is ignored", notification("event-notification", "6", "6"), "", nil, nil},
		{"heartbeat in step", notification("heartbeat", "6"), "", nil, nil},
		{"jump publishes the gap with the event", notification("event-notification", "9", "9"),
			fhir.EventNotified, []uint64{9}, &fhir.Gap{From: 7, To: 8}},
		{"batched events, one already seen", notification("event-notification", "11", "9", "10", "11"),
			fhir.EventNotified, []uint64{10, 11}, nil},
		{"heartbeat ahead asks for catch-up", notification("heartbeat", "13"), fhir.EventCatchUp, nil, &fhir.Gap{From: 12, To: 13}},
		{"empty payload counts as its event", notification("event-notification", "14"), fhir.EventNotified, []uint64{14}, nil},
		{"handshake", notification("handshake", "14"), "", nil, nil},
	}
	published := 0
	for _, st := range steps {
		rec := send(t, h, "POST", fhir.DefaultNotificationPath, st.body)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: status %d, want 200: %s", st.name, rec.Code, rec.Body)
		}
		evs := s.publishedEvents()
		if st.kind == "" {
			if len(evs) != published {
				t.Errorf("%s: published %+v, want nothing", st.name, evs[published:])
			}
			continue
		}
		if len(evs) != published+1 {
			t.Fatalf("%s: %d events, want %d", st.name, len(evs), published+1)
		}
		ev := evs[published]
		published++
		var nums []uint64
		for _, e := range ev.Events {
			nums = append(nums, e.Number)
		}
		if ev.Kind != st.kind || !equalNums(nums, st.numbers) || !equalGap(ev.Gap, st.gap) {
			t.Errorf("%s: event %s %v gap %v, want %s %v gap %v", st.name, ev.Kind, nums, ev.Gap, st.kind, st.numbers, st.gap)
		}
	}
	if got := tr.Subscriptions(); len(got) != 1 || got[0].LastEvent != 14 || got[0].Notifications != uint64(len(steps)) {
		t.Errorf("state = %+v, want last event 14 after %d notifications", got, len(steps))
	}
}

func TestHeartbeatSetsBaseline(t *testing.T) {
	h, s := newHandler(t, nil)
	for _, body := range [][]byte{notification("heartbeat", "310"), notification("event-notification", "311", "311")} {
		if rec := send(t, h, "POST", fhir.DefaultNotificationPath, body); rec.Code != http.StatusOK {
			t.Fatalf("status = %d, want 200", rec.Code)
		}
	}
	evs := s.publishedEvents()
	if len(evs) != 1 || evs[0].Kind != fhir.EventNotified || evs[0].Gap != nil {
		t.Fatalf("events = %+v, want event 311 without a gap after a first heartbeat at 310", evs)
	}
}

func equalNums(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalGap(a, b *fhir.Gap) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

func TestNotificationPublishFailureKeepsState(t *testing.T) {
	tr := fhir.NewTracker()
	tr.Seed("https://ehr.example.invalid/fhir/Subscription/sub-42", 4)
	h, s := newHandler(t, func(c *fhir.Config) { c.Tracker = tr })
	s.fail = errStore
	if rec := send(t, h, "POST", fhir.DefaultNotificationPath, notification("event-notification", "5", "5")); rec.Code != 503 {
		t.Fatalf("status = %d, want 503 so that the sender retries", rec.Code)
	}
	s.fail = nil
	if rec := send(t, h, "POST", fhir.DefaultNotificationPath, notification("event-notification", "5", "5")); rec.Code != 200 {
		t.Fatalf("retry: status = %d, want 200", rec.Code)
	}
	if evs := s.publishedEvents(); len(evs) != 1 || evs[0].Events[0].Number != 5 {
		t.Errorf("after the retry events = %+v, want event 5 once", evs)
	}
}

func TestNotificationRouting(t *testing.T) {
	hb := notification("heartbeat", "1")
	t.Run("at the base", func(t *testing.T) {
		h, s := newHandler(t, nil)
		if rec := send(t, h, "POST", "/", hb); rec.Code != http.StatusOK {
			t.Errorf("status = %d, want 200", rec.Code)
		}
		wantNothingPublished(t, s)
	})
	t.Run("disabled without PublishEvent", func(t *testing.T) {
		h, _ := newHandler(t, func(c *fhir.Config) { c.PublishEvent = nil })
		if rec := send(t, h, "POST", fhir.DefaultNotificationPath, hb); rec.Code != http.StatusNotFound {
			t.Errorf("status = %d, want 404", rec.Code)
		}
		if rec := send(t, h, "POST", "/", hb); rec.Code != http.StatusBadRequest {
			t.Errorf("at the base: status = %d, want 400", rec.Code)
		}
	})
	t.Run("not a notification", func(t *testing.T) {
		h, _ := newHandler(t, nil)
		rec := send(t, h, "POST", fhir.DefaultNotificationPath, []byte(`{"resourceType":"Bundle","type":"history",
			"entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"PUT","url":"Patient/1"},
			"response":{"status":"200"}}]}`))
		if rec.Code != http.StatusBadRequest {
			t.Errorf("status = %d, want 400", rec.Code)
		}
		checkIssues(t, outcome(t, rec), wantIssue{diag: "not a subscription notification"})
	})
	t.Run("invalid notification", func(t *testing.T) {
		h, _ := newHandler(t, nil)
		bad := bytes.Replace(hb, []byte(`"type":"history"`), []byte(`"type":"history","colour":1`), 1)
		if rec := send(t, h, "POST", fhir.DefaultNotificationPath, bad); rec.Code != http.StatusBadRequest {
			t.Errorf("status = %d, want 400", rec.Code)
		}
	})
}
