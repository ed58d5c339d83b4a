package securefile_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"phix.dev/phix/internal/securefile"
)

func TestWriteNewNeverReplaces(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sign.key")
	if err := securefile.WriteNew(path, []byte("first"), 0o600); err != nil {
		t.Fatalf("WriteNew = %v, want nil", err)
	}
	if err := securefile.WriteNew(path, []byte("second"), 0o600); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second WriteNew = %v, want fs.ErrExist", err)
	}
	assertFile(t, path, "first", 0o600)
}

func TestReplaceSwapsContentAndMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.json")
	if err := securefile.Replace(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := securefile.Replace(path, []byte("new"), 0o644); err != nil {
		t.Fatalf("Replace = %v, want nil", err)
	}
	assertFile(t, path, "new", 0o644)
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries after Replace, want 1 (no temporary left)", len(entries))
	}
}

func assertFile(t *testing.T, path, want string, mode fs.FileMode) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || string(b) != want {
		t.Fatalf("ReadFile(%s) = %q, %v; want %q", path, b, err, want)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != mode {
		t.Errorf("mode of %s = %v, want %v", path, fi.Mode().Perm(), mode)
	}
}
