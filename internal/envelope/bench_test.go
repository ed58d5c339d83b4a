package envelope_test

import (
	"context"
	"testing"

	"phix.dev/phix/internal/envelope"
)

var benchSizes = []struct {
	name string
	n    int
}{
	{"1KiB", 1 << 10},
	{"64KiB", 64 << 10},
}

// BenchmarkSeal measures one Seal with a Signer that names its key ID in
// advance, so it signs once.
func BenchmarkSeal(b *testing.B) {
	f := newFixture(b)
	s := aheadSigner{f.signer}
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			pt := make([]byte, sz.n)
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				if _, err := envelope.Seal(context.Background(), s, f.meta, f.dk, f.wrapped, pt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpen measures a reader's whole path: Decode, CheckSubject,
// Verify and Open (unwrapping excluded).
func BenchmarkOpen(b *testing.B) {
	f := newFixture(b)
	pub := f.signer.public()
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			f.plaintext = make([]byte, sz.n)
			env := f.seal(b)
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				e, err := envelope.Decode(env)
				if err != nil {
					b.Fatal(err)
				}
				if err := e.CheckSubject(f.meta.Subject); err != nil {
					b.Fatal(err)
				}
				if err := e.Verify(pub); err != nil {
					b.Fatal(err)
				}
				if _, err := e.Open(f.dk); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
