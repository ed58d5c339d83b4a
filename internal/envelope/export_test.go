package envelope

import (
	"io"
	"testing"

	"phix.dev/phix/schemas"
)

// SetRandom replaces the salt source for the rest of test t. Tests that
// call it must not run in parallel.
func SetRandom(t testing.TB, r io.Reader) {
	t.Helper()
	old := random
	random = r
	t.Cleanup(func() { random = old })
}

// SessionProto returns the delegation field that s attaches to envelopes.
func SessionProto(s *Session) *schemas.Delegation { return s.proto() }
