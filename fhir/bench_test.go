package fhir_test

import (
	"bytes"
	"fmt"
	"net/http"
	"runtime"
	"testing"

	"phix.dev/phix/fhir"
)

// bigBundle returns a batch Bundle of n Observations shaped like case 35.
func bigBundle(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"resourceType":"Bundle","type":"batch","entry":[`)
	for i := 1; i <= n; i++ {
		if i > 1 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"fullUrl":"urn:uuid:00000000-0000-4000-8000-%012d","resource":{"resourceType":"Observation",`+
			`"status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},`+
			`"subject":{"reference":"Patient/pat-1001"},"effectiveDateTime":"2025-03-14T00:01:00Z",`+
			`"valueQuantity":{"value":%d.50,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}},`+
			`"request":{"method":"POST","url":"Observation"}}`, i, 60+i%40)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

func BenchmarkValidateHugeBundle(b *testing.B) {
	body := readCase(b, "35-")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if r := fhir.Validate(body, fhir.Options{}); !r.Valid() {
			b.Fatal(r.Err())
		}
	}
}

// allocPerByte returns the bytes Validate allocates per body byte.
func allocPerByte(t *testing.T, body []byte) float64 {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := fhir.Validate(body, fhir.Options{MaxBundleEntries: -1})
	runtime.ReadMemStats(&after)
	if !r.Valid() {
		t.Fatalf("Validate: %v", r.Err())
	}
	return float64(after.TotalAlloc-before.TotalAlloc) / float64(len(body))
}

// TestMemoryGrowsLinearly scales case 35 to multi-MB bodies: the
// validator's garbage stays a small constant per body byte, and nothing
// holds a parsed copy of the Bundle.
func TestMemoryGrowsLinearly(t *testing.T) {
	if testing.Short() {
		t.Skip("large bodies")
	}
	small, large := bigBundle(1000), bigBundle(10_000)
	fhir.Validate(small, fhir.Options{}) // load the R4 table outside the measurement
	s, l := allocPerByte(t, small), allocPerByte(t, large)
	t.Logf("allocated %.1f B/B for %d KB, %.1f B/B for %d KB", s, len(small)>>10, l, len(large)>>10)
	if l > 1.5*s || l > 24 {
		t.Errorf("allocation per body byte = %.1f at %d bytes, %.1f at %d bytes; want flat and under 24",
			l, len(large), s, len(small))
	}
}

func TestMultiMegabyteBundleAccepted(t *testing.T) {
	if testing.Short() {
		t.Skip("large bodies")
	}
	body := bigBundle(10_000)
	h, s := newHandler(t, func(c *fhir.Config) { c.MaxBodyBytes, c.MaxBundleEntries = 8<<20, 10_000 })
	rec := send(t, h, "POST", "/", body)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("%d-byte Bundle: status %d, want 202", len(body), rec.Code)
	}
	if got := s.published(); len(got) != 1 || !bytes.Equal(got[0], body) {
		t.Fatal("the Bundle was not published once, byte-identical")
	}
}
