package broker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"phix.dev/phix/broker"
	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/keys"
	"phix.dev/phix/registry"
)

const keyAdmin = "keeper"

// newRegistryEnv starts a demo broker whose machines are alice, bob and
// mallory, with keeper as key administrator.
func newRegistryEnv(t testing.TB) *env {
	t.Helper()
	e := &env{pki: newTestPKI(t), dir: t.TempDir()}
	b, err := broker.New(broker.Config{
		StoreDir:  e.dir,
		Port:      broker.RandomPort,
		TLS:       e.pki.serverTLS(t),
		Machines:  machines,
		KeyAdmins: []string{keyAdmin},
	})
	if err != nil {
		t.Fatalf("broker.New(key admin %s) = %v", keyAdmin, err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.Start(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatalf("Start() = %v", err)
	}
	e.broker = b
	return e
}

func registryClient(t testing.TB, c *client, machine string) *registry.Client {
	t.Helper()
	rc, err := registry.NewClient(c.js, machine)
	if err != nil {
		t.Fatalf("registry.NewClient(%s) = %v", machine, err)
	}
	return rc
}

const dkid = "0123456789abcdef0123456789abcdef"

func TestRegistryMachinePermissions(t *testing.T) {
	e := newRegistryEnv(t)
	ctx := ctxFor(t, 20*time.Second)
	alice, bob := e.connect(t, "alice"), e.connect(t, "bob")
	ra, rb := registryClient(t, alice, "alice"), registryClient(t, bob, "bob")

	if err := ra.Put(ctx, dkid, "bob", []byte("wrapped for bob")); err != nil {
		t.Fatalf("alice: Put(for bob) = %v", err)
	}
	if err := ra.Put(ctx, dkid, "bob", []byte("wrapped for bob")); err != nil {
		t.Errorf("alice: Put(for bob) again = %v, want nil (a retried put)", err)
	}
	got, err := rb.Get(ctx, "alice", dkid)
	if err != nil || string(got) != "wrapped for bob" {
		t.Fatalf("bob: Get(alice, %s) = %q, %v; want the wrapped key", dkid, got, err)
	}
	if _, err := rb.Get(ctx, "alice", "ffff"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("bob: Get(unknown key) = %v, want ErrNotFound", err)
	}
	alice.wantNoErrors(t)
	bob.wantNoErrors(t)

	// Each refusal is the broker's: the request never reaches the stream.
	tests := []struct {
		name, machine, subject string
	}{
		{"store under another sender's name", "mallory",
			subjects.DataKeySubject(subjects.DataKeyKey("alice", dkid, "mallory"))},
		{"forge a tombstone for its own key", "alice",
			subjects.DataKeySubject(subjects.DataKeyKey("alice", dkid, subjects.DataKeyTombstone))},
		{"forge a grant record", "alice",
			subjects.DataKeySubject(subjects.DataKeyKey("alice", dkid, "_grant_mallory"))},
		{"fetch a key wrapped for another machine", "mallory",
			subjects.DataKeyGet(subjects.DataKeyKey("alice", dkid, "bob"))},
		{"fetch by sequence", "mallory", "$JS.API.DIRECT.GET." + subjects.DataKeyStream},
		{"read the bucket's stream info", "mallory", "$JS.API.STREAM.INFO." + subjects.DataKeyStream},
		{"delete an entry", "alice", "$JS.API.STREAM.MSG.DELETE." + subjects.DataKeyStream},
		{"purge the bucket", "alice", "$JS.API.STREAM.PURGE." + subjects.DataKeyStream},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.connect(t, tt.machine)
			if err := c.nc.Publish(tt.subject, []byte("x")); err != nil {
				t.Fatalf("Publish(%s) = %v", tt.subject, err)
			}
			c.wantViolation(t, tt.subject)
		})
	}
	if got, err := rb.Get(ctx, "alice", dkid); err != nil || string(got) != "wrapped for bob" {
		t.Errorf("bob: Get after the attempts = %q, %v; want it unchanged", got, err)
	}
}

// fakeVault stands in for keys.VaultAdmin: it "rewraps" and "grants" by
// rewriting the bytes, so the test sees which entries were processed.
type fakeVault struct{}

func (fakeVault) Rewrap(_ context.Context, ws []keys.VaultWrappedKey) ([][]byte, error) {
	out := make([][]byte, len(ws))
	for i, w := range ws {
		out[i] = append([]byte("rewrapped "), w.Wrapped...)
	}
	return out, nil
}

func (fakeVault) Grant(_ context.Context, ws []keys.VaultWrappedKey, to string) ([][]byte, error) {
	out := make([][]byte, len(ws))
	for i, w := range ws {
		out[i] = []byte("for " + to + " from " + w.Recipient)
	}
	return out, nil
}

func TestRegistryKeyAdmin(t *testing.T) {
	e := newRegistryEnv(t)
	ctx := ctxFor(t, 30*time.Second)
	alice, bob, mallory := e.connect(t, "alice"), e.connect(t, "bob"), e.connect(t, "mallory")
	ra, rb, rm := registryClient(t, alice, "alice"), registryClient(t, bob, "bob"),
		registryClient(t, mallory, "mallory")
	other := "fedcba9876543210fedcba9876543210"
	for _, put := range []struct{ id, reader string }{{dkid, "bob"}, {other, "bob"}, {dkid, "alice"}} {
		if err := ra.Put(ctx, put.id, put.reader, []byte("w-"+put.reader)); err != nil {
			t.Fatalf("Put(%s, %s) = %v", put.id, put.reader, err)
		}
	}

	keeper := e.connect(t, keyAdmin)
	admin, err := registry.NewAdmin(ctx, keeper.js)
	if err != nil {
		t.Fatalf("registry.NewAdmin(as %s) = %v", keyAdmin, err)
	}
	es, err := admin.Entries(ctx, registry.Filter{Reader: "bob"})
	if err != nil || len(es) != 2 {
		t.Fatalf("Entries(reader bob) = %d entries, %v; want 2", len(es), err)
	}

	res, err := admin.Rewrap(ctx, fakeVault{}, "bob")
	if err != nil || res.Rewrapped != 2 {
		t.Fatalf("Rewrap(bob) = %+v, %v; want 2 rewrapped", res, err)
	}
	if got, _ := rb.Get(ctx, "alice", dkid); string(got) != "rewrapped w-bob" {
		t.Errorf("bob: Get after rewrap = %q, want %q", got, "rewrapped w-bob")
	}

	recs, err := admin.Grant(ctx, fakeVault{}, registry.GrantRequest{
		To: "mallory", Keys: []registry.KeyRef{{Sender: "alice", DataKeyID: dkid, MessageIDs: []string{"m1"}}},
		By: "test", Reason: "audit",
	})
	if err != nil || len(recs) != 1 || recs[0].From != "alice" {
		t.Fatalf("Grant(to mallory) = %+v, %v; want one record granted from alice", recs, err)
	}
	if got, err := rm.Get(ctx, "alice", dkid); err != nil || string(got) != "for mallory from alice" {
		t.Errorf("mallory: Get after grant = %q, %v", got, err)
	}
	if recs, err := admin.Grant(ctx, fakeVault{}, registry.GrantRequest{
		To: "mallory", Keys: []registry.KeyRef{{Sender: "alice", DataKeyID: dkid}},
	}); err != nil || len(recs) != 0 {
		t.Errorf("Grant(again) = %+v, %v; want nothing new", recs, err)
	}

	tomb, err := admin.Destroy(ctx, "alice", dkid, "test", "patient request")
	if err != nil || len(tomb.Readers) != 3 {
		t.Fatalf("Destroy(%s) = %+v, %v; want a tombstone naming 3 readers", dkid, tomb, err)
	}
	for _, c := range []*registry.Client{ra, rb, rm} {
		if _, err := c.Get(ctx, "alice", dkid); !errors.Is(err, registry.ErrDestroyed) {
			t.Errorf("%s: Get(destroyed) = %v, want ErrDestroyed", c.Machine(), err)
		}
	}
	if got, err := rb.Get(ctx, "alice", other); err != nil || string(got) != "rewrapped w-bob" {
		t.Errorf("bob: Get(other key) after destroy = %q, %v; want it untouched", got, err)
	}
	if again, err := admin.Destroy(ctx, "alice", dkid, "someone", "again"); err != nil ||
		again.By != "test" {
		t.Errorf("Destroy(again) = %+v, %v; want the first tombstone", again, err)
	}
	if _, err := admin.Grant(ctx, fakeVault{}, registry.GrantRequest{
		To: "bob", Keys: []registry.KeyRef{{Sender: "alice", DataKeyID: dkid}},
	}); !errors.Is(err, registry.ErrDestroyed) {
		t.Errorf("Grant(destroyed key) = %v, want ErrDestroyed", err)
	}
	if err := ra.Put(ctx, dkid, "bob", []byte("resurrect")); err != nil {
		t.Fatalf("alice: Put(destroyed key) = %v", err)
	}
	if _, err := rb.Get(ctx, "alice", dkid); !errors.Is(err, registry.ErrDestroyed) {
		t.Errorf("bob: Get after alice re-put a destroyed key = %v, want ErrDestroyed", err)
	}

	// The key administrator is not a machine.
	for _, subj := range []string{
		subjects.Message(keyAdmin, "bob", "hl7v2"),
		"$JS.API.CONSUMER.MSG.NEXT." + subjects.MessageStream + "." + subjects.InboxConsumer("bob"),
		"$JS.API.STREAM.DELETE." + subjects.DataKeyStream,
	} {
		if err := keeper.nc.Publish(subj, []byte("x")); err != nil {
			t.Fatal(err)
		}
		keeper.wantViolation(t, subj)
	}
}

func TestKeyAdminMayNotBeAMachine(t *testing.T) {
	_, err := broker.New(broker.Config{
		StoreDir: t.TempDir(), Port: broker.RandomPort, TLS: newTestPKI(t).serverTLS(t),
		Machines: machines, KeyAdmins: []string{"bob"},
	})
	if !errors.Is(err, broker.ErrInvalidConfig) {
		t.Errorf("New(key admin bob, also a machine) = %v, want ErrInvalidConfig", err)
	}
}
