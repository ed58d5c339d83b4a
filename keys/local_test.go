package keys_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"phix.dev/phix/keys"
)

// testFolders is a synthetic data folder: one key folder per machine and
// a shared directory.
type testFolders struct {
	root, directory string
}

func newTestFolders(t testing.TB, names ...string) *testFolders {
	t.Helper()
	root := t.TempDir()
	f := &testFolders{root: root, directory: filepath.Join(root, "directory")}
	for _, n := range names {
		f.generate(t, n)
	}
	return f
}

func (f *testFolders) keyDir(name string) string { return filepath.Join(f.root, name) }

func (f *testFolders) generate(t testing.TB, name string) {
	t.Helper()
	if err := keys.GenerateLocal(f.keyDir(name), f.directory, name); err != nil {
		t.Fatalf("GenerateLocal(%q) = %v, want nil", name, err)
	}
}

func (f *testFolders) open(t testing.TB, name string) *keys.Local {
	t.Helper()
	l, err := keys.OpenLocal(f.keyDir(name), f.directory, name)
	if err != nil {
		t.Fatalf("OpenLocal(%q) = %v, want nil", name, err)
	}
	return l
}

func wrap(t testing.TB, l *keys.Local, recipient string, dk *keys.DataKey) []byte {
	t.Helper()
	w, err := l.WrapKey(context.Background(), recipient, dk)
	if err != nil {
		t.Fatalf("WrapKey(%q) = %v, want nil", recipient, err)
	}
	return w
}

func TestWrapUnwrapRoundTrip(t *testing.T) {
	f := newTestFolders(t, "alice", "bob")
	alice, bob := f.open(t, "alice"), f.open(t, "bob")
	ctx := context.Background()

	for _, to := range []*keys.Local{bob, alice} {
		dk := keys.NewDataKey()
		w := wrap(t, alice, to.Identity(), dk)
		got, err := to.UnwrapKey(ctx, dk.ID(), w)
		if err != nil {
			t.Fatalf("%v.UnwrapKey = %v, want nil", to, err)
		}
		if got.ID() != dk.ID() || !bytes.Equal(got.Bytes(), dk.Bytes()) {
			t.Errorf("%v.UnwrapKey = %v with other bytes, want %v", to, got, dk)
		}
	}
}

func TestUnwrapRefused(t *testing.T) {
	f := newTestFolders(t, "alice", "bob", "carol")
	alice, bob, carol := f.open(t, "alice"), f.open(t, "bob"), f.open(t, "carol")
	dk := keys.NewDataKey()
	w := wrap(t, alice, "bob", dk)
	other := keys.NewDataKey()

	flip := func(i int) []byte {
		b := bytes.Clone(w)
		b[(i+len(b))%len(b)] ^= 0x01
		return b
	}
	tests := []struct {
		name    string
		by      *keys.Local
		id      string
		wrapped []byte
	}{
		{"another recipient cannot unwrap", carol, dk.ID(), w},
		{"the sender cannot unwrap", alice, dk.ID(), w},
		{"another data key id", bob, other.ID(), w},
		{"an empty data key id", bob, "", w},
		{"first encapsulated key byte flipped", bob, dk.ID(), flip(0)},
		{"last encapsulated key byte flipped", bob, dk.ID(), flip(1119)},
		{"first ciphertext byte flipped", bob, dk.ID(), flip(1120)},
		{"last tag byte flipped", bob, dk.ID(), flip(-1)},
		{"truncated", bob, dk.ID(), w[:len(w)-1]},
		{"extra byte", bob, dk.ID(), append(bytes.Clone(w), 0)},
		{"empty", bob, dk.ID(), nil},
		{"another wrapped key", bob, dk.ID(), wrap(t, alice, "bob", other)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.by.UnwrapKey(context.Background(), tt.id, tt.wrapped)
			if !errors.Is(err, keys.ErrUnwrap) || err.Error() != keys.ErrUnwrap.Error() {
				t.Errorf("%v.UnwrapKey(%q) = %v, %v, want nil, %v",
					tt.by, tt.id, got, err, keys.ErrUnwrap)
			}
		})
	}
}

func TestWrapUnknownMachine(t *testing.T) {
	f := newTestFolders(t, "alice")
	alice := f.open(t, "alice")

	for _, name := range []string{"nobody", "../alice", "Alice", ""} {
		_, err := alice.WrapKey(context.Background(), name, keys.NewDataKey())
		if !errors.Is(err, keys.ErrUnknownMachine) {
			t.Errorf("WrapKey(%q) = %v, want %v", name, err, keys.ErrUnknownMachine)
		}
	}
}

func TestSignVerify(t *testing.T) {
	f := newTestFolders(t, "alice", "bob")
	alice, bob := f.open(t, "alice"), f.open(t, "bob")
	ctx := context.Background()
	msg := []byte("synthetic header")

	sig, keyID, err := alice.Sign(ctx, msg)
	if err != nil {
		t.Fatalf("Sign = %v, want nil", err)
	}
	if !strings.HasPrefix(keyID, "ed25519:") || len(keyID) != len("ed25519:")+16 {
		t.Errorf("Sign key id = %q, want ed25519: and 16 hex digits", keyID)
	}
	pub, err := bob.PublicKey(ctx, "alice", keyID)
	if err != nil {
		t.Fatalf("PublicKey(alice, %q) = %v, want nil", keyID, err)
	}
	if !ed25519.Verify(pub, msg, sig) {
		t.Errorf("ed25519.Verify(PublicKey(alice), msg, Sign(msg)) = false, want true")
	}
	if ed25519.Verify(pub, []byte("other header"), sig) {
		t.Errorf("ed25519.Verify(other msg) = true, want false")
	}
}

func TestPublicKeyErrors(t *testing.T) {
	f := newTestFolders(t, "alice", "bob")
	alice := f.open(t, "alice")
	_, bobID, err := f.open(t, "bob").Sign(context.Background(), nil)
	if err != nil {
		t.Fatalf("Sign = %v, want nil", err)
	}

	tests := []struct {
		name           string
		machine, keyID string
		want           error
	}{
		{"unknown machine", "nobody", bobID, keys.ErrUnknownMachine},
		{"path in name", "../bob", bobID, keys.ErrUnknownMachine},
		{"unknown key of known machine", "bob", "ed25519:0000000000000000", keys.ErrUnknownKey},
		{"key id of another machine", "alice", bobID, keys.ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := alice.PublicKey(context.Background(), tt.machine, tt.keyID)
			if !errors.Is(err, tt.want) {
				t.Errorf("PublicKey(%q, %q) = %v, want %v", tt.machine, tt.keyID, err, tt.want)
			}
		})
	}
}

func TestDirectoryPicksUpNewMachines(t *testing.T) {
	f := newTestFolders(t, "alice")
	alice := f.open(t, "alice")
	dk := keys.NewDataKey()
	if _, err := alice.WrapKey(context.Background(), "dave", dk); !errors.Is(err, keys.ErrUnknownMachine) {
		t.Fatalf("WrapKey(dave) before generate = %v, want %v", err, keys.ErrUnknownMachine)
	}

	f.generate(t, "dave")
	w := wrap(t, alice, "dave", dk)
	if _, err := f.open(t, "dave").UnwrapKey(context.Background(), dk.ID(), w); err != nil {
		t.Errorf("UnwrapKey by new machine = %v, want nil", err)
	}
}

func TestDirectoryPicksUpNewKeys(t *testing.T) {
	f := newTestFolders(t, "alice", "bob")
	alice := f.open(t, "alice")
	wrap(t, alice, "bob", keys.NewDataKey()) // caches bob's record

	// bob loses his keys and generates new ones.
	for _, n := range []string{keys.SignKeyFile, keys.KEMKeyFile} {
		if err := os.Remove(filepath.Join(f.keyDir("bob"), n)); err != nil {
			t.Fatal(err)
		}
	}
	f.generate(t, "bob")

	dk := keys.NewDataKey()
	w := wrap(t, alice, "bob", dk)
	if _, err := f.open(t, "bob").UnwrapKey(context.Background(), dk.ID(), w); err != nil {
		t.Errorf("UnwrapKey with regenerated keys = %v, want nil", err)
	}
}

func TestInsecureKeyFileRefused(t *testing.T) {
	for _, file := range []string{keys.SignKeyFile, keys.KEMKeyFile} {
		for _, mode := range []os.FileMode{0o640, 0o604, 0o601, 0o610} {
			t.Run(fmt.Sprintf("%s %#o", file, mode), func(t *testing.T) {
				f := newTestFolders(t, "alice")
				if err := os.Chmod(filepath.Join(f.keyDir("alice"), file), mode); err != nil {
					t.Fatal(err)
				}
				_, err := keys.OpenLocal(f.keyDir("alice"), f.directory, "alice")
				if !errors.Is(err, keys.ErrInsecureFile) {
					t.Errorf("OpenLocal with %s mode %#o = %v, want %v",
						file, mode, err, keys.ErrInsecureFile)
				}
				err = keys.GenerateLocal(f.keyDir("alice"), f.directory, "alice")
				if !errors.Is(err, keys.ErrInsecureFile) {
					t.Errorf("GenerateLocal with %s mode %#o = %v, want %v",
						file, mode, err, keys.ErrInsecureFile)
				}
			})
		}
	}
}

func TestGenerateLocalFiles(t *testing.T) {
	f := newTestFolders(t, "alice")

	fi, err := os.Stat(f.keyDir("alice"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("key folder mode = %#o, want 0700", got)
	}
	for _, n := range []string{keys.SignKeyFile, keys.KEMKeyFile} {
		fi, err := os.Stat(filepath.Join(f.keyDir("alice"), n))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s mode = %#o, want 0600", n, got)
		}
	}
	if _, err := os.Stat(filepath.Join(f.directory, "alice.json")); err != nil {
		t.Errorf("directory record: %v", err)
	}
}

func TestGenerateLocalIdempotent(t *testing.T) {
	f := newTestFolders(t, "alice")
	before := readAll(t, f.keyDir("alice"), f.directory)

	f.generate(t, "alice")
	if diff := cmp.Diff(before, readAll(t, f.keyDir("alice"), f.directory)); diff != "" {
		t.Errorf("GenerateLocal twice changed files (-before +after):\n%s", diff)
	}

	// A lost directory record is rewritten from the existing keys.
	if err := os.Remove(filepath.Join(f.directory, "alice.json")); err != nil {
		t.Fatal(err)
	}
	f.generate(t, "alice")
	if diff := cmp.Diff(before, readAll(t, f.keyDir("alice"), f.directory)); diff != "" {
		t.Errorf("GenerateLocal did not restore the removed record (-want +got):\n%s", diff)
	}
}

func TestGenerateLocalBadName(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"", "a.b", "../x", "Alice", "a*"} {
		if err := keys.GenerateLocal(filepath.Join(dir, "k"), dir, name); err == nil {
			t.Errorf("GenerateLocal(%q) = nil, want error", name)
		}
	}
}

func TestOpenLocalMismatchedRecord(t *testing.T) {
	f := newTestFolders(t, "alice", "bob")
	// alice's record replaced by bob's keys under alice's name.
	g := newTestFolders(t)
	if err := keys.GenerateLocal(f.keyDir("bob"), g.directory, "alice"); err != nil {
		t.Fatal(err)
	}
	rec, err := os.ReadFile(filepath.Join(g.directory, "alice.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.directory, "alice.json"), rec, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.OpenLocal(f.keyDir("alice"), f.directory, "alice"); err == nil {
		t.Errorf("OpenLocal with another machine's record = nil, want error")
	}
}

func TestLocalNeverPrintsKeys(t *testing.T) {
	f := newTestFolders(t, "alice")
	l := f.open(t, "alice")
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("provider", "keys", l)

	for _, got := range []string{fmt.Sprint(l), fmt.Sprintf("%+v", l), fmt.Sprintf("%#v", l), buf.String()} {
		if !strings.Contains(got, "keys.Local(alice)") || strings.Contains(got, "[") {
			t.Errorf("printed provider = %q, want only its name", got)
		}
	}
}

// readAll returns the SHA-256 of each file in dirs, by path. Hashes keep
// key bytes out of failure messages.
func readAll(t testing.TB, dirs ...string) map[string]string {
	t.Helper()
	m := make(map[string]string)
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(d, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			m[filepath.Join(d, e.Name())] = fmt.Sprintf("%x", sha256.Sum256(b))
		}
	}
	return m
}

func TestGenerateLocalConcurrent(t *testing.T) {
	f := newTestFolders(t)
	errs := make(chan error, 4)
	for range cap(errs) {
		go func() { errs <- keys.GenerateLocal(f.keyDir("alice"), f.directory, "alice") }()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Errorf("concurrent GenerateLocal = %v, want nil", err)
		}
	}
	// Whichever keys won, the record matches them.
	f.open(t, "alice")
}
