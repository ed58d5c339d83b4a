package fhir_test

import (
	"testing"

	"phix.dev/phix/fhir"
)

func TestResourceTypes(t *testing.T) {
	for _, name := range []string{"Patient", "Observation", "Bundle", "Parameters", "MedicationRequest",
		"Subscription", "OperationOutcome", "Binary", "VisionPrescription"} {
		if !fhir.IsResourceType(name) {
			t.Errorf("IsResourceType(%s) = false, want true", name)
		}
	}
	// Abstract types, data types and STU3/R5-only names are not R4 resources.
	for _, name := range []string{"Resource", "DomainResource", "HumanName", "string", "ProcedureRequest",
		"SubscriptionStatus", "patient", ""} {
		if fhir.IsResourceType(name) {
			t.Errorf("IsResourceType(%q) = true, want false", name)
		}
	}
}
