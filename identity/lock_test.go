package identity_test

import (
	"errors"
	"testing"

	"phix.dev/phix/identity"
)

func TestLockRefusesSecondHolder(t *testing.T) {
	dir := t.TempDir()
	release, err := identity.Lock(dir)
	if err != nil {
		t.Fatalf("Lock(%s) = %v, want nil", dir, err)
	}
	if _, err := identity.Lock(dir); !errors.Is(err, identity.ErrInUse) {
		t.Fatalf("second Lock(%s) = %v, want ErrInUse", dir, err)
	}
	release()
	again, err := identity.Lock(dir)
	if err != nil {
		t.Fatalf("Lock after release = %v, want nil", err)
	}
	again()
}
