package broker_test

import (
	"strings"
	"testing"
	"time"

	"phix.dev/phix/internal/subjects"
)

// TestUpgradeFromMachinesToPolicy starts a store made in the policy-less
// mode again under a policy, whose inbox filters differ.
func TestUpgradeFromMachinesToPolicy(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.connect(t, "alice"), e.connect(t, "bob")
	publish(t, alice, subjects.Message("alice", "bob", "note"), "sealed-1")
	publish(t, alice, subjects.Message("alice", "bob", "note"), "sealed-2")
	if err := fetchOne(t, bob, "bob").DoubleAck(ctxFor(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	e.broker.Close()

	e.policy = parsePolicy(t, strings.Replace(testPolicy, "auditors:",
		"  - from: mallory\n    to: [bob]\n    types: [note, fhir]\nauditors:", 1))
	e.broker = e.start(t)
	bob = e.connect(t, "bob")
	if got := fetchOne(t, bob, "bob"); string(got.Data()) != "sealed-2" {
		t.Errorf("Fetch() after the upgrade = %q, want %q (the unacked message)", got.Data(), "sealed-2")
	}
}
