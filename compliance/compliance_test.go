package compliance_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"phix.dev/phix/broker"
	"phix.dev/phix/compliance"
	"phix.dev/phix/policy"
)

// edSigner signs with a fixed Ed25519 key.
type edSigner struct{ key ed25519.PrivateKey }

func (s edSigner) Identity() string { return "auditor" }

func (s edSigner) Sign(_ context.Context, msg []byte) ([]byte, string, error) {
	return ed25519.Sign(s.key, msg), "ed25519:test", nil
}

func TestSignVerify(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	r := &compliance.Report{Version: 1, Generated: time.Unix(0, 0).UTC(), Policy: "p.yaml",
		Checks: []compliance.Check{{ID: "x", Standard: "164.312(d)", Title: "a -> b & <c>",
			Status: compliance.Pass}}}
	s, err := compliance.Sign(context.Background(), r, edSigner{priv})
	if err != nil {
		t.Fatalf("Sign() = %v, want nil", err)
	}
	// Saved indented and unescaped, read back: still verifies.
	saved, _ := json.MarshalIndent(s, "", "    ")
	saved = bytes.ReplaceAll(saved, []byte(`\u003e`), []byte(">"))
	var back compliance.Signed
	if err := json.Unmarshal(saved, &back); err != nil {
		t.Fatal(err)
	}
	got, err := compliance.Verify(&back, pub)
	if err != nil || got.Checks[0].Title != r.Checks[0].Title {
		t.Fatalf("Verify(saved) = %v, %v; want the report", got, err)
	}

	tampered := back
	tampered.Report = bytes.Replace(back.Report, []byte(`"pass"`), []byte(`"fail"`), 1)
	if _, err := compliance.Verify(&tampered, pub); !errors.Is(err, compliance.ErrBadSignature) {
		t.Errorf("Verify(tampered) = %v, want %v", err, compliance.ErrBadSignature)
	}
	otherPub, _, _ := ed25519.GenerateKey(nil)
	if _, err := compliance.Verify(&back, otherPub); !errors.Is(err, compliance.ErrBadSignature) {
		t.Errorf("Verify(other key) = %v, want %v", err, compliance.ErrBadSignature)
	}
}

func TestDrift(t *testing.T) {
	p, err := policy.Parse("p", policy.Default())
	if err != nil {
		t.Fatal(err)
	}
	exact := func() *broker.Enforced {
		return &broker.Enforced{
			Users:       p.BrokerUsers(),
			Consumers:   p.InboxConsumers(),
			IdleTimeout: p.Sessions.IdleTimeout,
			Streams: []broker.StreamLimits{
				{Name: "PHIX_MSGS", MaxAge: p.Retention.Messages},
				{Name: "PHIX_QUARANTINE", MaxAge: p.Retention.Quarantine},
			},
		}
	}
	if d := compliance.Drift(p, exact()); len(d) != 0 {
		t.Errorf("Drift(policy, its own derivation) = %q, want none", d)
	}
	tests := []struct {
		name   string
		modify func(*broker.Enforced)
		want   string
	}{
		{"extra grant", func(e *broker.Enforced) {
			e.Users[2].Publish = append(e.Users[2].Publish, "phix.msg.billing.lab-feed.fhir")
		}, "machine billing may publish phix.msg.billing.lab-feed.fhir, policy does not allow it"},
		{"missing grant", func(e *broker.Enforced) { e.Users[0].Publish = e.Users[0].Publish[1:] },
			"machine lab-feed may not publish $JS.API.DIRECT.GET.KV_PHIX_DATAKEYS"},
		{"unknown user", func(e *broker.Enforced) {
			e.Users = append(e.Users, policy.BrokerUser{Machine: "eve"})
		}, "machine eve may connect"},
		{"missing user", func(e *broker.Enforced) { e.Users = e.Users[1:] },
			"machine lab-feed may not connect"},
		{"wide consumer", func(e *broker.Enforced) { e.Consumers[0].Filters = []string{"phix.msg.>"} },
			"inbox consumer inbox-ehr-ingest delivers phix.msg.>"},
		{"missing consumer", func(e *broker.Enforced) { e.Consumers = e.Consumers[:1] },
			"inbox consumer inbox-billing is missing"},
		{"idle off", func(e *broker.Enforced) { e.IdleTimeout = 0 }, "idle timeout is off"},
		{"retention", func(e *broker.Enforced) { e.Streams[0].MaxAge = 0 },
			"stream PHIX_MSGS keeps messages for off, policy says 30d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := exact()
			tt.modify(e)
			d := compliance.Drift(p, e)
			if len(d) != 1 || !strings.Contains(d[0], tt.want) {
				t.Errorf("Drift() = %q, want one difference containing %q", d, tt.want)
			}
		})
	}
}
