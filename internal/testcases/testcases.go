// Package testcases locates the shared synthetic HL7 v2 and FHIR inputs
// that tests across phix read: ../shared/cases/hl7fhir beside the module
// root, or $PHIX_CASES. In CI (CI=true) missing inputs fail the test; on a
// developer machine without them it is skipped.
package testcases

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the folder of shared test inputs.
func Dir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("PHIX_CASES")
	if dir == "" {
		dir = filepath.Join(moduleRoot(), "..", "shared", "cases", "hl7fhir")
	}
	if _, err := os.Stat(dir); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("test cases not found at %s (set PHIX_CASES): %v", dir, err)
		}
		t.Skipf("test cases not found at %s (set PHIX_CASES)", dir)
	}
	return dir
}

// Read returns the contents of the named input file.
func Read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(Dir(t), name))
	if err != nil {
		t.Fatalf("reading case %s: %v", name, err)
	}
	return b
}

// moduleRoot returns the nearest folder above the working directory that
// holds go.mod: tests run in their package's folder, at any depth.
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}
