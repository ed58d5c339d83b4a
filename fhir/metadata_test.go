package fhir_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
)

func TestMetadataServesCapabilityStatement(t *testing.T) {
	h, s := newHandler(t, nil)
	rec := send(t, h, "GET", "/metadata", nil)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metadata = %d, want 200: %s", rec.Code, rec.Body)
	}
	var cs struct {
		ResourceType, FhirVersion, Kind, Date string
		Format                                []string
		Rest                                  []struct {
			Mode     string
			Resource []struct {
				Type        string
				Interaction []struct{ Code string }
			}
			Interaction []struct{ Code string }
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &cs); err != nil {
		t.Fatalf("GET /metadata body: %v", err)
	}
	if cs.ResourceType != "CapabilityStatement" || cs.FhirVersion != "4.0.1" || cs.Date == "" ||
		!slices.Equal(cs.Format, []string{"json"}) || len(cs.Rest) != 1 {
		t.Fatalf("GET /metadata = %s, want an R4 4.0.1 json CapabilityStatement with one rest", rec.Body)
	}
	codes := func(is []struct{ Code string }) []string {
		var out []string
		for _, i := range is {
			out = append(out, i.Code)
		}
		return out
	}
	if got := codes(cs.Rest[0].Interaction); !slices.Equal(got, []string{"transaction", "batch"}) {
		t.Errorf("system interactions = %q, want [transaction batch]", got)
	}
	found := false
	for _, r := range cs.Rest[0].Resource {
		if r.Type == "Patient" {
			found = slices.Equal(codes(r.Interaction), []string{"create", "update"})
		}
	}
	if !found {
		t.Error("CapabilityStatement lacks Patient with create and update")
	}
	wantNothingPublished(t, s)

	if rec := send(t, h, "POST", "/metadata", []byte("{}")); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /metadata = %d, want 405", rec.Code)
	}
}
