package fhir_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"phix.dev/phix/fhir"
	"phix.dev/phix/internal/testcases"
)

// casesDir returns the shared HL7 v2 and FHIR test inputs.
func casesDir(t testing.TB) string {
	t.Helper()
	return testcases.Dir(t)
}

// readCase returns the JSON body of the case whose file name starts with
// prefix, such as "26-".
func readCase(t testing.TB, prefix string) []byte {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(casesDir(t), prefix+"*.json"))
	if len(matches) != 1 {
		t.Fatalf("case %s*.json: found %d files, want 1", prefix, len(matches))
	}
	b, err := os.ReadFile(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sink records what the handler publishes.
type sink struct {
	mu     sync.Mutex
	bodies [][]byte      // guarded by mu
	types  []string      // guarded by mu
	events []*fhir.Event // guarded by mu
	fail   error         // guarded by mu; returned by every publish if set
}

func (s *sink) publish(_ context.Context, resourceType string, raw []byte) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return "", s.fail
	}
	s.bodies = append(s.bodies, bytes.Clone(raw))
	s.types = append(s.types, resourceType)
	return fmt.Sprintf("msg-%d", len(s.bodies)), nil
}

func (s *sink) publishEvent(_ context.Context, ev *fhir.Event) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return "", s.fail
	}
	// Round-trip through the published JSON, as a recipient would see it.
	var got fhir.Event
	if err := json.Unmarshal(fhir.MarshalEvent(ev), &got); err != nil {
		return "", err
	}
	s.events = append(s.events, &got)
	return fmt.Sprintf("event-%d", len(s.events)), nil
}

func (s *sink) published() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bodies
}

func (s *sink) publishedEvents() []*fhir.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.events
}

var errStore = errors.New("store down")

// newHandler returns a handler publishing into a fresh sink; adjust may
// change the configuration first.
func newHandler(t testing.TB, adjust func(*fhir.Config)) (*fhir.Handler, *sink) {
	t.Helper()
	s := &sink{}
	cfg := fhir.Config{Publish: s.publish, PublishEvent: s.publishEvent}
	if adjust != nil {
		adjust(&cfg)
	}
	h, err := fhir.NewHandler(cfg)
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	return h, s
}

// send serves one request with FHIR JSON content and returns the response.
func send(t testing.TB, h http.Handler, method, path string, body []byte, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/fhir+json")
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// outcomeIssue is an issue as decoded from an OperationOutcome response.
type outcomeIssue struct {
	Severity    string   `json:"severity"`
	Code        string   `json:"code"`
	Diagnostics string   `json:"diagnostics"`
	Expression  []string `json:"expression"`
}

func (i outcomeIssue) String() string {
	return fmt.Sprintf("%s/%s %v: %s", i.Severity, i.Code, i.Expression, i.Diagnostics)
}

// outcome decodes an OperationOutcome response body.
func outcome(t testing.TB, rec *httptest.ResponseRecorder) []outcomeIssue {
	t.Helper()
	var oo struct {
		ResourceType string         `json:"resourceType"`
		Issue        []outcomeIssue `json:"issue"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &oo); err != nil || oo.ResourceType != "OperationOutcome" {
		t.Fatalf("response body is not an OperationOutcome (%v): %s", err, rec.Body.String())
	}
	return oo.Issue
}

// wantIssue is a pattern for an issue: empty fields match anything;
// diagnostics must contain diag.
type wantIssue struct {
	severity, code, expr, diag string
}

func (w wantIssue) matches(is outcomeIssue) bool {
	expr := ""
	if len(is.Expression) > 0 {
		expr = is.Expression[0]
	}
	return (w.severity == "" || w.severity == is.Severity) &&
		(w.code == "" || w.code == is.Code) &&
		(w.expr == "" || w.expr == expr) &&
		strings.Contains(is.Diagnostics, w.diag)
}

// checkIssues fails unless every wanted issue is among got.
func checkIssues(t testing.TB, got []outcomeIssue, want ...wantIssue) {
	t.Helper()
	for _, w := range want {
		found := false
		for _, is := range got {
			found = found || w.matches(is)
		}
		if !found {
			t.Errorf("issues = %v, want one matching %+v", got, w)
		}
	}
}

// resultIssues converts validation issues for checkIssues.
func resultIssues(r *fhir.Result) []outcomeIssue {
	var out []outcomeIssue
	for _, is := range r.Issues {
		oi := outcomeIssue{Severity: string(is.Severity), Code: is.Code, Diagnostics: is.Diagnostics}
		if is.Expression != "" {
			oi.Expression = []string{is.Expression}
		}
		out = append(out, oi)
	}
	return out
}

// decodeExact decodes JSON keeping numbers as their exact text.
func decodeExact(t testing.TB, b []byte) map[string]any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("decoding: %v", err)
	}
	return m
}

// at walks decoded JSON along a path of keys and indices.
func at(t testing.TB, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("at %v: %q of a non-object", path, k)
			}
			v = m[k]
		case int:
			a, ok := v.([]any)
			if !ok || k >= len(a) {
				t.Fatalf("at %v: index %d out of range", path, k)
			}
			v = a[k]
		}
	}
	return v
}

// errorCount counts the error issues of a validation result.
func errorCount(r *fhir.Result) int {
	n := 0
	for _, is := range r.Issues {
		if is.IsError() {
			n++
		}
	}
	return n
}
