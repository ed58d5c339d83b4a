package fhir_test

import (
	"fmt"

	"phix.dev/phix/fhir"
)

func ExampleValidate() {
	body := []byte(`{"resourceType":"Observation","status":"final","code":{"text":"Heart rate"},
		"context":{"reference":"Encounter/1"},"valueQuantity":{"value":72.0}}`)
	r := fhir.Validate(body, fhir.Options{})
	fmt.Println(r.ResourceType, r.Valid())
	for _, is := range r.Issues {
		fmt.Println(is.Severity, is.Code, is.Expression, is.Diagnostics)
	}
	// Output:
	// Observation false
	// error structure Observation.context unknown element (did you send STU3? R4 uses 'encounter')
}
