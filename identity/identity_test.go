package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"phix.dev/phix/identity"
	"phix.dev/phix/keys"
)

func initData(t testing.TB, machines ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := identity.Init(dir, machines); err != nil {
		t.Fatalf("Init(%q) = %v, want nil", machines, err)
	}
	return dir
}

func load(t testing.TB, dir, name string) *identity.Machine {
	t.Helper()
	m, err := identity.Load(identity.IdentityDir(dir, name))
	if err != nil {
		t.Fatalf("Load(%s) = %v, want nil", name, err)
	}
	return m
}

// snapshot returns the SHA-256 and mode of every file below dir, by
// path. Hashes keep key bytes out of failure messages.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	m := make(map[string]string)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		m[rel] = fmt.Sprintf("%v %x", fi.Mode(), sha256.Sum256(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestInitIdempotent(t *testing.T) {
	dir := initData(t, "alice", "bob")
	before := snapshot(t, dir)

	if err := identity.Init(dir, []string{"alice", "bob"}); err != nil {
		t.Fatalf("second Init = %v, want nil", err)
	}
	if diff := cmp.Diff(before, snapshot(t, dir)); diff != "" {
		t.Errorf("second Init changed files (-first +second):\n%s", diff)
	}
}

func TestInitLayout(t *testing.T) {
	dir := initData(t, "alice")
	tests := []struct {
		path string
		mode fs.FileMode
	}{
		{"ca", fs.ModeDir | 0o700},
		{"ca/ca.crt", 0o644},
		{"ca/ca.key", 0o600},
		{"broker/server.crt", 0o644},
		{"broker/server.key", 0o600},
		{"directory/alice.json", 0o644},
		{"identities/alice", fs.ModeDir | 0o700},
		{"identities/alice/identity.json", 0o644},
		{"identities/alice/ca.crt", 0o644},
		{"identities/alice/tls.crt", 0o644},
		{"identities/alice/tls.key", 0o600},
		{"identities/alice/sign.key", 0o600},
		{"identities/alice/kem.key", 0o600},
	}
	for _, tt := range tests {
		fi, err := os.Stat(filepath.Join(dir, tt.path))
		if err != nil {
			t.Errorf("Stat(%s) = %v, want nil", tt.path, err)
			continue
		}
		if got := fi.Mode() & (fs.ModeDir | fs.ModePerm); got != tt.mode {
			t.Errorf("mode of %s = %v, want %v", tt.path, got, tt.mode)
		}
	}
	// Only the machine's own files are in its folder: no CA key.
	if _, err := os.Stat(filepath.Join(dir, "identities/alice/ca.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(identities/alice/ca.key) = %v, want %v", err, fs.ErrNotExist)
	}
}

func TestInitAddsMachines(t *testing.T) {
	dir := initData(t, "alice")
	ca := snapshot(t, filepath.Join(dir, "ca"))
	alice := snapshot(t, identity.IdentityDir(dir, "alice"))

	if err := identity.Init(dir, []string{"bob"}); err != nil {
		t.Fatalf("Init(bob) = %v, want nil", err)
	}
	if diff := cmp.Diff(ca, snapshot(t, filepath.Join(dir, "ca"))); diff != "" {
		t.Errorf("Init(bob) changed the CA (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(alice, snapshot(t, identity.IdentityDir(dir, "alice"))); diff != "" {
		t.Errorf("Init(bob) changed alice (-before +after):\n%s", diff)
	}
	got, err := identity.Machines(dir)
	if err != nil {
		t.Fatalf("Machines = %v, want nil", err)
	}
	if diff := cmp.Diff([]string{"alice", "bob"}, got); diff != "" {
		t.Errorf("Machines mismatch (-want +got):\n%s", diff)
	}
}

func TestInitBadName(t *testing.T) {
	for _, name := range []string{"", "Alice", "a.b", "../x", "a b", "*"} {
		dir := t.TempDir()
		if err := identity.Init(dir, []string{"ok", name}); err == nil {
			t.Errorf("Init(%q) = nil, want error", name)
		}
		if _, err := os.Stat(filepath.Join(dir, "ca")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Init(%q) created files before refusing the name", name)
		}
	}
}

func TestClientCertificate(t *testing.T) {
	dir := initData(t, "alice")
	c := readCert(t, filepath.Join(identity.IdentityDir(dir, "alice"), "tls.crt"))

	if c.Subject.CommonName != "alice" || !cmp.Equal(c.Subject.Organization, []string{"phix"}) {
		t.Errorf("subject = %v, want CN=alice,O=phix", c.Subject)
	}
	if n := len(c.DNSNames) + len(c.IPAddresses) + len(c.EmailAddresses) + len(c.URIs); n != 0 {
		t.Errorf("client certificate has %d SANs, want 0", n)
	}
	if !cmp.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("ExtKeyUsage = %v, want [ClientAuth]", c.ExtKeyUsage)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key = %T, want ECDSA P-256", c.PublicKey)
	}
	if life := c.NotAfter.Sub(c.NotBefore); life < 30*24*time.Hour || life > 31*24*time.Hour {
		t.Errorf("lifetime = %v, want 30 days", life)
	}
	ca := readCert(t, filepath.Join(dir, "ca", "ca.crt"))
	if err := c.CheckSignatureFrom(ca); err != nil {
		t.Errorf("CheckSignatureFrom(CA) = %v, want nil", err)
	}
}

func readCert(t testing.TB, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

func TestLoad(t *testing.T) {
	dir := initData(t, "alice")
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}

	got := load(t, dir, "alice")
	want := &identity.Machine{
		Name:         "alice",
		Dir:          filepath.Join(abs, "identities", "alice"),
		CAFile:       filepath.Join(abs, "identities", "alice", "ca.crt"),
		DirectoryDir: filepath.Join(abs, "directory"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load mismatch (-want +got):\n%s", diff)
	}
}

func TestSetURL(t *testing.T) {
	dir := initData(t, "alice", "bob")
	const url = "tls://127.0.0.1:4222"
	if err := identity.SetURL(dir, url); err != nil {
		t.Fatalf("SetURL = %v, want nil", err)
	}
	// Init at the next start must keep the URL.
	if err := identity.Init(dir, []string{"alice", "bob"}); err != nil {
		t.Fatalf("Init = %v, want nil", err)
	}
	for _, n := range []string{"alice", "bob"} {
		if got := load(t, dir, n).URL; got != url {
			t.Errorf("Load(%s).URL = %q, want %q", n, got, url)
		}
	}
}

func TestLoadMissing(t *testing.T) {
	dir := initData(t, "alice")
	tests := []struct {
		name, path string
	}{
		{"missing folder", filepath.Join(dir, "identities", "nobody")},
		{"folder without identity.json", filepath.Join(dir, "ca")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := identity.Load(tt.path)
			if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), tt.path) {
				t.Errorf("Load(%s) = %v, want an error naming the path and wrapping %v",
					tt.path, err, fs.ErrNotExist)
			}
		})
	}
}

func TestMachinesNotInitialised(t *testing.T) {
	_, err := identity.Machines(t.TempDir())
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Machines(empty folder) = %v, want %v", err, fs.ErrNotExist)
	}
}

func TestMachineKeys(t *testing.T) {
	dir := initData(t, "alice", "bob")
	alice, err := load(t, dir, "alice").Keys()
	if err != nil {
		t.Fatalf("Keys(alice) = %v, want nil", err)
	}
	bob, err := load(t, dir, "bob").Keys()
	if err != nil {
		t.Fatalf("Keys(bob) = %v, want nil", err)
	}

	ctx := context.Background()
	dk := keys.NewDataKey()
	w, err := alice.WrapKey(ctx, "bob", dk)
	if err != nil {
		t.Fatalf("WrapKey(bob) = %v, want nil", err)
	}
	if _, err := bob.UnwrapKey(ctx, dk.ID(), w); err != nil {
		t.Errorf("UnwrapKey by bob = %v, want nil", err)
	}
}

func TestInsecureTLSKeyRefused(t *testing.T) {
	dir := initData(t, "alice")
	m := load(t, dir, "alice")
	if err := os.Chmod(filepath.Join(m.Dir, "tls.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := m.TLSConfig(); !errors.Is(err, keys.ErrInsecureFile) {
		t.Errorf("TLSConfig with tls.key mode 0644 = %v, want %v", err, keys.ErrInsecureFile)
	}
	if err := identity.Init(dir, []string{"alice"}); !errors.Is(err, keys.ErrInsecureFile) {
		t.Errorf("Init with tls.key mode 0644 = %v, want %v", err, keys.ErrInsecureFile)
	}
}

func TestTLSConfigRefusesAnotherMachinesCertificate(t *testing.T) {
	dir := t.TempDir()
	if err := identity.Init(dir, []string{"lab-feed", "billing"}); err != nil {
		t.Fatal(err)
	}
	lab, bil := identity.IdentityDir(dir, "lab-feed"), identity.IdentityDir(dir, "billing")
	for _, f := range []string{"tls.crt", "tls.key"} {
		b, err := os.ReadFile(filepath.Join(bil, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(lab, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m, err := identity.Load(lab)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.TLSConfig(); err == nil || !strings.Contains(err.Error(), `"billing"`) {
		t.Errorf("TLSConfig with billing's certificate in lab-feed's folder = %v, want an error naming billing", err)
	}
}
