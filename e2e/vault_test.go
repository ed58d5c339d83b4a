package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"phix.dev/phix/broker"
	"phix.dev/phix/consumer"
	"phix.dev/phix/identity"
	"phix.dev/phix/internal/envelope"
	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/internal/vaulttest"
	"phix.dev/phix/keys"
	"phix.dev/phix/policy"
	"phix.dev/phix/producer"
	"phix.dev/phix/registry"
	"phix.dev/phix/replay"
)

// The Vault deployment: the demo machines plus an auditor, whose keys all
// live in Vault, and a key administrator for the wrapped-key registry.
var (
	vaultMachines = []string{"lab-feed", "ehr-ingest", "billing", "auditor"}
	vaultFlows    = []keys.Flow{{Sender: "lab-feed", Recipients: []string{"ehr-ingest", "billing"}}}
)

const keyAdminName = "keyadmin"

// vaultPolicy is the access policy of the Vault deployments: the machines
// and flow of vaultMachines and vaultFlows, with auditor as the auditor.
func vaultPolicy(t testing.TB) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("vault-test-policy.yaml", []byte(vaultPolicyYAML))
	if err != nil {
		t.Fatalf("policy.Parse: %v", err)
	}
	return p
}

const vaultPolicyYAML = `version: 1
machines:
  - name: lab-feed
  - name: ehr-ingest
  - name: billing
  - name: auditor
flows:
  - from: lab-feed
    to: [ehr-ingest, billing]
    types: [bin, hl7v2, fhir]
auditors: [auditor]
keys:
  rotation_period: 90d
sessions:
  idle_timeout: 15m
retention:
  audit: 6y
`

// vaultDeployment is a running broker whose machines use the Vault key
// provider of a real Vault server.
type vaultDeployment struct {
	*deployment
	vault *vaulttest.Server
	admin *keys.VaultAdmin
	audit *recorded // every audit record the broker stored
}

func startVaultPhix(t testing.TB, start func(testing.TB) *vaulttest.Server) *vaultDeployment {
	t.Helper()
	srv := start(t)
	dir := t.TempDir()
	if err := identity.Init(dir, append(slices.Clone(vaultMachines), keyAdminName)); err != nil {
		t.Fatalf("identity.Init: %v", err)
	}
	tlsConf, err := identity.BrokerTLS(dir)
	if err != nil {
		t.Fatalf("identity.BrokerTLS: %v", err)
	}
	rec := &recorded{}
	b, err := broker.New(broker.Config{
		StoreDir: dir, Port: broker.RandomPort, TLS: tlsConf,
		Policy: vaultPolicy(t), KeyAdmins: []string{keyAdminName},
		Audit: broker.AuditConfig{OnRecord: rec.add},
	})
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.Start(withTimeout(t, 30*time.Second)); err != nil {
		t.Fatalf("broker.Start: %v", err)
	}
	if err := identity.SetURL(dir, b.ClientURL()); err != nil {
		t.Fatalf("identity.SetURL: %v", err)
	}

	admin, err := keys.NewVaultAdmin(keys.VaultAdminConfig{Address: srv.Addr, CACert: srv.CACert}, srv.RootToken)
	if err != nil {
		t.Fatalf("NewVaultAdmin: %v", err)
	}
	if err := admin.Provision(withTimeout(t, 30*time.Second), vaultMachines, vaultFlows); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	return &vaultDeployment{deployment: &deployment{dir: dir, b: b}, vault: srv, admin: admin, audit: rec}
}

// vaultMachine is one machine connected to the broker with its Vault
// provider and registry client.
type vaultMachine struct {
	name string
	nc   *nats.Conn
	js   jetstream.JetStream
	kp   *keys.Vault
	reg  *registry.Client
}

func (d *vaultDeployment) machine(t testing.TB, name string) *vaultMachine {
	t.Helper()
	nc, js := d.dial(t, name)
	ctx := withTimeout(t, 30*time.Second)
	secretFile := filepath.Join(t.TempDir(), name+".secret-id")
	roleID, err := d.admin.IssueSecretID(ctx, name, secretFile, 0)
	if err != nil {
		t.Fatalf("IssueSecretID(%s): %v", name, err)
	}
	kp, err := keys.NewVault(ctx, keys.VaultConfig{
		Address: d.vault.Addr, CACert: d.vault.CACert, Machine: name,
		RoleID: roleID, SecretIDFile: secretFile,
	})
	if err != nil {
		t.Fatalf("NewVault(%s): %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		kp.Close(ctx)
	})
	reg, err := registry.NewClient(js, name)
	if err != nil {
		t.Fatalf("registry.NewClient(%s): %v", name, err)
	}
	return &vaultMachine{name: name, nc: nc, js: js, kp: kp, reg: reg}
}

func (m *vaultMachine) producer(t testing.TB, cfg producer.Config) *producer.Producer {
	t.Helper()
	cfg.Registry = m.reg
	p, err := producer.New(m.js, m.kp, cfg)
	if err != nil {
		t.Fatalf("producer.New(%s): %v", m.name, err)
	}
	return p
}

// consumer returns a new consumer, with a cache of its own: a fresh one
// has to fetch and unwrap every data key again.
func (m *vaultMachine) consumer(t testing.TB) *consumer.Consumer {
	t.Helper()
	c, err := consumer.New(m.js, m.kp, consumer.Config{Registry: m.reg, PollWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("consumer.New(%s): %v", m.name, err)
	}
	return c
}

// registryAdmin connects as the key administrator.
func (d *vaultDeployment) registryAdmin(t testing.TB) *registry.Admin {
	t.Helper()
	_, js := d.dial(t, keyAdminName)
	a, err := registry.NewAdmin(withTimeout(t, 10*time.Second), js)
	if err != nil {
		t.Fatalf("registry.NewAdmin: %v", err)
	}
	return a
}

// receive runs c until it has accepted n messages and returns their
// payloads by message ID.
func receive(t testing.TB, c *consumer.Consumer, n int) map[string][]byte {
	t.Helper()
	got := make(map[string][]byte)
	var mu sync.Mutex
	err := c.Run(withTimeout(t, 60*time.Second), n, func(_ context.Context, m *consumer.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got[m.ID] = bytes.Clone(m.Payload)
		return nil
	})
	if err != nil {
		t.Fatalf("Run(%d): %v", n, err)
	}
	return got
}

// openAll opens each stored copy with c (OpenGranted when granted) and
// returns the reject reason of each, "" for opened, by message ID.
func openAll(t testing.TB, c *consumer.Consumer, msgs []registry.Message, granted bool,
	want map[string][]byte) map[string]consumer.Reason {
	t.Helper()
	ctx := withTimeout(t, 60*time.Second)
	out := make(map[string]consumer.Reason)
	for _, m := range msgs {
		open := c.Open
		if granted {
			open = c.OpenGranted
		}
		got, err := open(ctx, m.Subject, m.Data)
		var rej *consumer.RejectError
		switch {
		case errors.As(err, &rej):
			out[m.ID] = rej.Reason
		case err != nil:
			t.Fatalf("Open(%s) = %v, want an opened message or a refusal", m.ID, err)
		default:
			out[m.ID] = ""
			if !bytes.Equal(got.Payload, want[m.ID]) {
				t.Errorf("Open(%s) payload differs from what was sent", m.ID)
			}
		}
	}
	return out
}

func copiesFor(msgs []registry.Message, recipient string) []registry.Message {
	var out []registry.Message
	for _, m := range msgs {
		if m.Recipient == recipient {
			out = append(out, m)
		}
	}
	return out
}

func wantReasons(t testing.TB, who string, got map[string]consumer.Reason,
	want func(id string) consumer.Reason) {
	t.Helper()
	for id, r := range got {
		if w := want(id); r != w {
			t.Errorf("%s: message %s: reason %q, want %q", who, id, r, w)
		}
	}
}

// TestVaultEndToEnd runs the life of messages under the Vault provider
// against a real Vault server: delivery to each recipient, refusal of an
// outsider, key rotation with rewrap and retirement of the old key
// versions, a grant to an auditor, and the destruction of one data key.
func TestVaultEndToEnd(t *testing.T) {
	d := startVaultPhix(t, vaulttest.Start)
	lab, ehr, billing, auditor := d.machine(t, "lab-feed"), d.machine(t, "ehr-ingest"),
		d.machine(t, "billing"), d.machine(t, "auditor")
	reg := d.registryAdmin(t)
	ctx := withTimeout(t, 3*time.Minute)

	// Two messages per data key, so that destroying one key affects
	// exactly two messages.
	p := lab.producer(t, producer.Config{KeyMessages: 2})
	sent := make(map[string][]byte)
	var ids []string
	publish := func(n int) {
		t.Helper()
		for range n {
			payload := fmt.Appendf(nil, "MSH|^~\\&|LAB|SYN|EHR|SYN|20250101||ORU^R01|%d|P|2.5.1\r", len(ids))
			rc, err := p.Publish(ctx, []string{"ehr-ingest", "billing"}, payload, producer.WithType("hl7v2", ""))
			if err != nil {
				t.Fatalf("Publish: %v", err)
			}
			sent[rc.MessageID] = payload
			ids = append(ids, rc.MessageID)
		}
	}
	publish(6)

	t.Run("each recipient opens its copy", func(t *testing.T) {
		for _, m := range []*vaultMachine{ehr, billing} {
			got := receive(t, m.consumer(t), 6)
			for _, id := range ids {
				if !bytes.Equal(got[id], sent[id]) {
					t.Errorf("%s: message %s not received intact", m.name, id)
				}
			}
		}
	})

	stored, err := reg.FindMessages(ctx, ids)
	if err != nil {
		t.Fatalf("FindMessages: %v", err)
	}
	ehrCopies := copiesFor(stored, "ehr-ingest")

	t.Run("wrapped keys are in the registry, not in the envelopes", func(t *testing.T) {
		refs := registry.KeyRefs(stored)
		if len(refs) != 3 {
			t.Errorf("data keys of 6 messages = %d, want 3", len(refs))
		}
		for _, ref := range refs {
			es, err := reg.Entries(ctx, registry.Filter{Sender: "lab-feed", DataKeyID: ref.DataKeyID})
			if err != nil || len(es) != 2 {
				t.Errorf("entries of data key %s = %d, %v; want one per recipient", ref.DataKeyID, len(es), err)
			}
		}
		for _, m := range stored {
			e, err := envelope.Decode(m.Data)
			if err != nil {
				t.Fatalf("Decode(stored %s): %v", m.ID, err)
			}
			if v, ws := e.Header().Version, e.WrappedKeys(); v != envelope.Version2 || len(ws) != 0 {
				t.Errorf("stored copy %s: version %d with %d inline keys, want version 2 with none",
					m.ID, v, len(ws))
			}
		}
	})

	t.Run("an outsider is refused", func(t *testing.T) {
		es, err := reg.Entries(ctx, registry.Filter{Reader: "billing"})
		if err != nil || len(es) == 0 {
			t.Fatalf("Entries(billing) = %v, %v", es, err)
		}
		// Vault refuses to open billing's wrapped key with the auditor's
		// key, and its policy refuses the auditor billing's key.
		if _, err := auditor.kp.UnwrapKey(ctx, es[0].DataKeyID, es[0].Wrapped); !errors.Is(err, keys.ErrUnwrap) ||
			errors.Is(err, keys.ErrUnavailable) {
			t.Errorf("auditor: UnwrapKey(billing's key) = %v, want ErrUnwrap", err)
		}
		if _, err := auditor.kp.WrapKey(ctx, "billing", keys.NewDataKey()); !errors.Is(err, keys.ErrDenied) {
			t.Errorf("auditor: WrapKey(for billing) = %v, want ErrDenied", err)
		}
		// The registry has nothing for it, and the broker will not let it
		// fetch another reader's entry.
		reasons := openAll(t, auditor.consumer(t), ehrCopies, true, sent)
		wantReasons(t, "auditor before the grant", reasons, func(string) consumer.Reason {
			return consumer.ReasonNotRecipient
		})
	})

	t.Run("rotate, rewrap, retire old versions; earlier messages still open", func(t *testing.T) {
		for _, m := range []string{"ehr-ingest", "billing"} {
			if v, err := d.admin.RotateKey(ctx, m, keys.VaultWrapKey); err != nil || v != 2 {
				t.Fatalf("RotateKey(%s, wrap) = %d, %v; want 2", m, v, err)
			}
		}
		if v, err := d.admin.RotateKey(ctx, "lab-feed", keys.VaultSignKey); err != nil || v != 2 {
			t.Fatalf("RotateKey(lab-feed, sign) = %d, %v; want 2", v, err)
		}
		// Signed by the session key whose delegation key version 1 made:
		// it stays valid until it expires.
		publish(2)

		for _, m := range []string{"ehr-ingest", "billing"} {
			before, err := reg.Entries(ctx, registry.Filter{Reader: m})
			if err != nil {
				t.Fatalf("Entries(%s): %v", m, err)
			}
			// The producer may register the next data key in the
			// background meanwhile, so Rewrap can find more than before.
			res, err := reg.Rewrap(ctx, d.admin, m)
			if err != nil || res.Rewrapped < len(before) {
				t.Fatalf("Rewrap(%s) = %+v, %v; want all %d entries rewrapped", m, res, err, len(before))
			}
			if err := d.admin.SetMinDecryptionVersion(ctx, m, 2); err != nil {
				t.Fatalf("SetMinDecryptionVersion(%s, 2): %v", m, err)
			}
			if latest, minV, err := d.admin.KeyVersions(ctx, m, keys.VaultWrapKey); err != nil ||
				latest != 2 || minV != 2 {
				t.Errorf("KeyVersions(%s) = %d, %d, %v; want 2, 2", m, latest, minV, err)
			}
		}
		es, _ := reg.Entries(ctx, registry.Filter{Sender: "lab-feed"})
		for _, e := range es {
			if !strings.HasPrefix(string(e.Wrapped), "vault:v2:") {
				t.Errorf("entry %s.%s after rewrap = %.9s..., want vault:v2:", e.DataKeyID, e.Reader, e.Wrapped)
			}
		}

		var err error
		if stored, err = reg.FindMessages(ctx, ids); err != nil {
			t.Fatalf("FindMessages: %v", err)
		}
		ehrCopies = copiesFor(stored, "ehr-ingest")
		for _, m := range []*vaultMachine{ehr, billing} {
			reasons := openAll(t, m.consumer(t), copiesFor(stored, m.name), false, sent)
			if len(reasons) != len(ids) {
				t.Errorf("%s: opened %d messages, want %d", m.name, len(reasons), len(ids))
			}
			wantReasons(t, m.name+" after rotation", reasons, func(string) consumer.Reason { return "" })
		}
	})

	granted := ids[:3] // the first two data keys
	t.Run("grant to an auditor, who opens past messages", func(t *testing.T) {
		msgs, err := reg.FindMessages(ctx, granted)
		if err != nil {
			t.Fatalf("FindMessages(granted): %v", err)
		}
		recs, err := reg.Grant(ctx, d.admin, registry.GrantRequest{
			To: "auditor", Keys: registry.KeyRefs(msgs), By: "e2e", Reason: "disclosure audit",
		})
		if err != nil || len(recs) != 2 {
			t.Fatalf("Grant = %+v, %v; want 2 records (2 data keys)", recs, err)
		}
		for _, r := range recs {
			if r.To != "auditor" || r.By != "e2e" || len(r.MessageIDs) == 0 {
				t.Errorf("grant record %+v, want auditor, by e2e, with message IDs", r)
			}
		}
		reasons := openAll(t, auditor.consumer(t), ehrCopies, true, sent)
		wantReasons(t, "auditor after the grant", reasons, func(id string) consumer.Reason {
			if slices.Contains(ids[:4], id) { // messages 0-3 share the two granted keys
				return ""
			}
			return consumer.ReasonNotRecipient
		})

		// An audit replay with decryption opens exactly the granted
		// messages, finding their keys in the registry.
		opened := make(map[string]bool)
		rep, err := replay.Run(ctx, replay.Config{
			JS: auditor.js, Keys: auditor.kp, Registry: auditor.reg, Decrypt: true,
			OnPlaintext: func(m *replay.Message, pt []byte) error {
				if !bytes.Equal(pt, sent[m.MessageID]) {
					t.Errorf("replay opened %s: payload differs", m.MessageID)
				}
				opened[m.MessageID] = true
				return nil
			},
		})
		if err != nil {
			t.Fatalf("replay.Run as auditor: %v", err)
		}
		for _, m := range rep.Messages {
			if want := slices.Contains(ids[:4], m.MessageID); m.Decrypted != want {
				t.Errorf("replay: message %s to %s decrypted = %v, want %v", m.MessageID, m.Recipient, m.Decrypted, want)
			}
		}
		if len(opened) != 4 {
			t.Errorf("replay opened %d distinct messages, want 4", len(opened))
		}
	})

	t.Run("destroy one data key: exactly its messages stop opening", func(t *testing.T) {
		var victim registry.Message
		for _, m := range stored {
			if m.ID == ids[0] {
				victim = m
			}
		}
		tomb, err := reg.Destroy(ctx, "lab-feed", victim.DataKeyID, "e2e", "erasure request")
		if err != nil || len(tomb.Readers) != 3 {
			t.Fatalf("Destroy = %+v, %v; want a tombstone for 3 readers", tomb, err)
		}
		lost := func(id string) bool {
			for _, m := range stored {
				if m.ID == id {
					return m.DataKeyID == victim.DataKeyID
				}
			}
			return false
		}
		for _, m := range []*vaultMachine{ehr, billing} {
			reasons := openAll(t, m.consumer(t), copiesFor(stored, m.name), false, sent)
			wantReasons(t, m.name+" after destroy", reasons, func(id string) consumer.Reason {
				if lost(id) {
					return consumer.ReasonKeyDestroyed
				}
				return ""
			})
		}
		reasons := openAll(t, auditor.consumer(t), ehrCopies, true, sent)
		wantReasons(t, "auditor after destroy", reasons, func(id string) consumer.Reason {
			switch {
			case lost(id):
				return consumer.ReasonKeyDestroyed
			case slices.Contains(ids[:4], id):
				return ""
			}
			return consumer.ReasonNotRecipient
		})

		// The messages themselves remain, as proof that they existed.
		still, err := reg.FindMessages(ctx, []string{ids[0], ids[1]})
		if err != nil || len(still) != 4 {
			t.Errorf("FindMessages(destroyed) = %d copies, %v; want 4", len(still), err)
		}
		if tb, err := reg.Tombstone(ctx, "lab-feed", victim.DataKeyID); err != nil || tb.Reason != "erasure request" {
			t.Errorf("Tombstone = %+v, %v", tb, err)
		}
	})
	if n := d.quarantined(t); n != 0 {
		t.Errorf("quarantine holds %d messages, want 0 (nothing was read through the inbox after destroy)", n)
	}
}

// TestVaultRestartLosesNothing stops Vault in the middle of a stream of
// messages and starts it again. Consumers keep opening messages whose
// data keys they cache; publishing goes on while Vault is down, on the
// cached data key and the delegated signing key, and fails clearly once
// either is spent; every message arrives exactly once and none is
// quarantined.
func TestVaultRestartLosesNothing(t *testing.T) {
	d := startVaultPhix(t, vaulttest.StartPersistent)
	lab, ehr, billing := d.machine(t, "lab-feed"), d.machine(t, "ehr-ingest"), d.machine(t, "billing")
	reg := d.registryAdmin(t)
	ctx := withTimeout(t, 3*time.Minute)
	p := lab.producer(t, producer.Config{SignWait: 30 * time.Second})
	rcpts := []string{"ehr-ingest", "billing"}

	const total = 30
	var received sync.Map // recipient/id -> *atomic.Int32
	var wg sync.WaitGroup
	for _, m := range []*vaultMachine{ehr, billing} {
		c := m.consumer(t)
		wg.Go(func() {
			err := c.Run(ctx, total, func(_ context.Context, msg *consumer.Message) error {
				v, _ := received.LoadOrStore(m.name+"/"+msg.ID, new(atomic.Int32))
				v.(*atomic.Int32).Add(1)
				return nil
			})
			if err != nil {
				t.Errorf("%s: Run = %v", m.name, err)
			}
		})
	}
	var ids []string
	publish := func(i int) error {
		id := producer.NewMessageID()
		for {
			_, err := p.Publish(ctx, rcpts, fmt.Appendf(nil, "synthetic %d", i), producer.WithMessageID(id))
			if err == nil {
				ids = append(ids, id)
				return nil
			}
			if !errors.Is(err, keys.ErrUnavailable) {
				return fmt.Errorf("Publish %d = %w, want success or keys.ErrUnavailable", i, err)
			}
			time.Sleep(200 * time.Millisecond) // and again with the same ID: no duplicate
		}
	}
	for i := range total / 3 {
		if err := publish(i); err != nil {
			t.Fatal(err)
		}
	}

	stored, err := reg.FindMessages(ctx, ids)
	if err != nil {
		t.Fatalf("FindMessages: %v", err)
	}
	copies := copiesFor(stored, "ehr-ingest")
	warm, cold := ehr.consumer(t), ehr.consumer(t)
	if _, err := warm.Open(ctx, copies[0].Subject, copies[0].Data); err != nil {
		t.Fatalf("Open before the outage: %v", err)
	}

	d.vault.Stop()
	t.Run("consumers open messages whose keys they cache", func(t *testing.T) {
		for _, m := range copies {
			if _, err := warm.Open(ctx, m.Subject, m.Data); err != nil {
				t.Errorf("warm consumer: Open(%s) with Vault down = %v, want the cached key used", m.ID, err)
			}
		}
		_, err := cold.Open(ctx, copies[0].Subject, copies[0].Data)
		var rej *consumer.RejectError
		if !errors.Is(err, keys.ErrUnavailable) || errors.As(err, &rej) {
			t.Errorf("cold consumer: Open with Vault down = %v, want keys.ErrUnavailable and no refusal", err)
		}
	})

	// The data key is cached and the session key's delegation valid, so
	// publishing needs no Vault call at all.
	t.Run("publishing goes on with Vault down", func(t *testing.T) {
		keyCalls := func() float64 { return vaultCalls(t, "sign") + vaultCalls(t, "encrypt") }
		calls := keyCalls()
		for i := total / 3; i < 2*total/3; i++ {
			rc, err := p.Publish(ctx, rcpts, fmt.Appendf(nil, "synthetic %d", i))
			if err != nil {
				t.Fatalf("Publish %d with Vault down = %v, want the cached keys used", i, err)
			}
			ids = append(ids, rc.MessageID)
		}
		if n := keyCalls() - calls; n != 0 {
			t.Errorf("Vault sign and encrypt calls while publishing %d messages = %v, want 0", total/3, n)
		}
	})
	d.vault.Restart(t)
	for i := len(ids); i < total; i++ {
		if err := publish(i); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()

	for _, r := range rcpts {
		for _, id := range ids {
			v, ok := received.Load(r + "/" + id)
			if !ok || v.(*atomic.Int32).Load() != 1 {
				t.Errorf("%s: message %s delivered %v times, want once", r, id, v)
			}
		}
	}
	if n := d.quarantined(t); n != 0 {
		t.Errorf("quarantine holds %d messages, want 0", n)
	}

	t.Run("once the data key is spent, publishing fails clearly", func(t *testing.T) {
		p := lab.producer(t, producer.Config{KeyMessages: 1, SignWait: -1})
		if _, err := p.Publish(ctx, rcpts, []byte("synthetic")); err != nil {
			t.Fatalf("Publish before the outage: %v", err)
		}
		d.vault.Stop()
		defer d.vault.Restart(t)
		_, err := p.Publish(ctx, rcpts, []byte("synthetic"))
		if !errors.Is(err, keys.ErrUnavailable) || !strings.Contains(err.Error(), "data key") {
			t.Errorf("Publish with Vault down and no data key left = %v, want a data key error "+
				"matching keys.ErrUnavailable", err)
		}
	})

	t.Run("once the signing delegation expires, publishing fails clearly", func(t *testing.T) {
		var mu sync.Mutex
		now := time.Now()
		clock := func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return now
		}
		advance := func(d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			now = now.Add(d)
		}
		p := lab.producer(t, producer.Config{
			SigningKeyLifetime: time.Hour, KeyAge: 3 * time.Hour, SignWait: -1, Now: clock,
		})
		if _, err := p.Publish(ctx, rcpts, []byte("synthetic")); err != nil {
			t.Fatalf("Publish before the outage: %v", err)
		}
		d.vault.Stop()
		defer d.vault.Restart(t)
		for _, step := range []time.Duration{20 * time.Minute, 30 * time.Minute, 9 * time.Minute} {
			advance(step)
			if _, err := p.Publish(ctx, rcpts, []byte("synthetic")); err != nil {
				t.Fatalf("Publish with Vault down, delegation valid = %v, want success", err)
			}
		}
		advance(2 * time.Minute) // 61 minutes: past not-after
		_, err := p.Publish(ctx, rcpts, []byte("synthetic"))
		if !errors.Is(err, keys.ErrUnavailable) || !strings.Contains(err.Error(), "delegation") {
			t.Errorf("Publish with Vault down and the delegation expired = %v, want a delegation "+
				"error matching keys.ErrUnavailable", err)
		}
		if n := p.SigningSessions(); n != 1 {
			t.Errorf("SigningSessions() = %d, want 1 (renewals failed)", n)
		}
	})
}

// BenchmarkVaultPublish publishes 1 KiB messages to two recipients from
// many goroutines (16 per CPU) with the Vault provider, and the same bytes
// with plain JetStream, on the same broker in the same run. It reports the Vault
// requests made per 10,000 messages, split into data key wraps and
// signatures, the envelopes each (session key) signature covered, and the
// delegated signing keys made, each of which cost Vault one signature.
//
//	go test ./e2e -run '^$' -bench VaultPublish
func BenchmarkVaultPublish(b *testing.B) {
	const publishers = 16 // goroutines per GOMAXPROCS
	d := startVaultPhix(b, vaulttest.Start)
	lab := d.machine(b, "lab-feed")
	payload := bytes.Repeat([]byte("x"), 1<<10)
	rcpts := []string{"ehr-ingest", "billing"}

	b.Run("plain", func(b *testing.B) {
		ctx := context.Background()
		b.SetParallelism(publishers)
		b.SetBytes(int64(len(payload)))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				for _, r := range rcpts {
					subj := subjects.Message("lab-feed", r, "bin")
					if _, err := lab.js.PublishMsg(ctx, &nats.Msg{Subject: subj, Data: payload}); err != nil {
						b.Error(err)
						return
					}
				}
			}
		})
	})
	b.Run("vault", func(b *testing.B) {
		p := lab.producer(b, producer.Config{})
		ctx := context.Background()
		if _, err := p.Publish(ctx, rcpts, payload); err != nil { // log in, wrap the first key
			b.Fatal(err)
		}
		wraps, signs := vaultCalls(b, "encrypt"), vaultCalls(b, "sign")
		all := vaultCalls(b, "")
		sigs0, envs0 := p.Signatures()
		b.SetParallelism(publishers)
		b.SetBytes(int64(len(payload)))
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := p.Publish(ctx, rcpts, payload); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.StopTimer()
		per := 10_000 / float64(b.N)
		b.ReportMetric((vaultCalls(b, "")-all)*per, "vault-calls/10k-msgs")
		b.ReportMetric((vaultCalls(b, "encrypt")-wraps)*per, "wraps/10k-msgs")
		b.ReportMetric((vaultCalls(b, "sign")-signs)*per, "signs/10k-msgs")
		if sigs, envs := p.Signatures(); sigs > sigs0 {
			b.ReportMetric(float64(envs-envs0)/float64(sigs-sigs0), "envelopes/signature")
		}
		b.ReportMetric(float64(p.SigningSessions()), "signing-sessions")
	})
}

// vaultCalls sums keys.VaultCalls over results for operation op, or over
// everything when op is "".
func vaultCalls(t testing.TB, op string) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 64)
	go func() {
		keys.VaultCalls.Collect(ch)
		close(ch)
	}()
	var sum float64
	for m := range ch {
		var pm dto.Metric
		if err := m.Write(&pm); err != nil {
			t.Fatal(err)
		}
		if op != "" && labelValue(&pm, "operation") != op {
			continue
		}
		sum += pm.GetCounter().GetValue()
	}
	return sum
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
