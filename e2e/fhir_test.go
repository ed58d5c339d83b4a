package e2e_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"phix.dev/phix/consumer"
	"phix.dev/phix/fhir"
	"phix.dev/phix/producer"
)

// TestFHIRBridgeDeliversOriginalBytes posts the ordinary FHIR cases (45 to
// 48) through the bridge handler as lab-feed and receives them as
// ehr-ingest, byte for byte, with the message IDs the bridge answered.
func TestFHIRBridgeDeliversOriginalBytes(t *testing.T) {
	dir := casesDir(t)
	d := startPhix(t)
	lab, ehr := d.connect(t, "lab-feed"), d.connect(t, "ehr-ingest")
	p := lab.producer(t)

	h, err := fhir.NewHandler(fhir.Config{
		Publish: func(ctx context.Context, resourceType string, raw []byte) (string, error) {
			rc, err := p.Publish(ctx, []string{"ehr-ingest"}, raw,
				producer.WithType("fhir", "application/fhir+json"),
				producer.WithSchemaID("http://hl7.org/fhir/StructureDefinition/"+resourceType))
			if err != nil {
				return "", err
			}
			return rc.MessageID, nil
		},
	})
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.StripPrefix("/fhir", h))
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS13}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	posts := []struct{ file, method, path string }{
		{"45-fhir-patient.json", "PUT", "/fhir/Patient/pat-1001"},
		{"46-fhir-observation.json", "POST", "/fhir/Observation"},
		{"47-fhir-bundle-transaction.json", "POST", "/fhir"},
		{"48-fhir-bundle-contained.json", "POST", "/fhir/Bundle"},
	}
	sent := make(map[string][]byte)
	for _, pc := range posts {
		body, err := os.ReadFile(filepath.Join(dir, pc.file))
		if err != nil {
			t.Fatal(err)
		}
		id := postFHIR(t, srv, pc.method, pc.path, body)
		sent[id] = body
	}

	got := make(map[string]*consumer.Message)
	c := ehr.consumer(t, consumer.Config{})
	err = c.Run(withTimeout(t, 30*time.Second), len(sent), func(_ context.Context, m *consumer.Message) error {
		cp := *m
		cp.Payload = bytes.Clone(m.Payload)
		got[m.ID] = &cp
		return nil
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	for id, want := range sent {
		m := got[id]
		switch {
		case m == nil:
			t.Errorf("message %s was not received", id)
		case !bytes.Equal(m.Payload, want):
			t.Errorf("message %s: payload differs from the posted body (%d bytes, want %d)", id, len(m.Payload), len(want))
		case m.Sender != "lab-feed" || m.ContentType != "application/fhir+json":
			t.Errorf("message %s: sender %s, content type %s; want lab-feed, application/fhir+json", id, m.Sender, m.ContentType)
		}
	}
}

// postFHIR sends body and returns the phix message ID of a 202 answer.
func postFHIR(t *testing.T, srv *httptest.Server, method, path string, body []byte) string {
	t.Helper()
	req, err := http.NewRequestWithContext(withTimeout(t, 30*time.Second), method, srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	id := res.Header.Get(fhir.HeaderMessageID)
	if res.StatusCode != http.StatusAccepted || id == "" {
		t.Fatalf("%s %s = %d with message id %q, want 202 and an id", method, path, res.StatusCode, id)
	}
	if res.TLS == nil || res.TLS.Version != tls.VersionTLS13 {
		t.Errorf("%s %s: not served over TLS 1.3", method, path)
	}
	return id
}
