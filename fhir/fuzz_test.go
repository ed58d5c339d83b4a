package fhir_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"phix.dev/phix/fhir"
)

// FuzzValidate checks that Validate never panics, never changes its input
// and answers the same way twice, on any bytes.
func FuzzValidate(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "shared", "cases", "hl7fhir", "*-fhir-*.json"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil && len(b) < 64<<10 {
			f.Add(b)
		}
	}
	for _, s := range []string{
		patient, `{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:1"},{"fullUrl":"urn:uuid:1"}]}`,
		`{"contained":[{"resourceType":"Patient"}],"resourceType":"Patient"}`, `{"resourceType":7}`, `{}`, `[]`,
		`{"resourceType":"Patient","name":[{"given":[null],"_given":[null]}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		a := fhir.Validate(body, fhir.Options{MaxBundleEntries: 5, MaxDepth: 20})
		if !bytes.Equal(body, orig) {
			t.Fatal("Validate changed its input")
		}
		b := fhir.Validate(body, fhir.Options{MaxBundleEntries: 5, MaxDepth: 20})
		if a.Valid() != b.Valid() || len(a.Issues) != len(b.Issues) {
			t.Fatalf("Validate is not deterministic: %d then %d issues", len(a.Issues), len(b.Issues))
		}
		if a.Valid() {
			if _, err := fhir.ParseNotification(body); err == nil && a.ResourceType != "Bundle" {
				t.Fatal("ParseNotification accepted a non-Bundle")
			}
		}
	})
}
