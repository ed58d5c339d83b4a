// Package compliance is phix's self-test: live checks against a running
// deployment, each mapped to the HIPAA Security Rule standard it
// evidences (45 CFR 164.312), gathered in a signed [Report] that can be
// kept as evidence of the regular evaluation 164.308(a)(8) asks for.
//
// # Checks
//
// [Run] probes the broker's listeners from outside (TLS 1.3 accepted;
// TLS 1.2, plaintext, no client certificate and an unknown CA refused),
// compares what the broker enforces (its /v1/enforced report, readable by
// auditors only) with the policy file, and inspects the data folder:
// identities unique, keys within the rotation period, the JetStream store
// encrypted at rest, no secret in a configuration file, private keys
// readable by their owner only. A check that cannot be evaluated here is
// reported as skipped with the reason, never as passed.
//
// # Signed reports
//
// [Sign] signs the report with an identity's Ed25519 key (see
// keys.Local) over the domain-separated message
//
//	"phix/v1/doctor-report\x00" || report as compact JSON
//
// with <, > and & escaped as \u003c, \u003e and \u0026 (the form Go's
// encoding/json writes), and [Signed] carries the report, the signer's
// machine name and key ID.
// To verify a saved report, use `phix doctor verify FILE --data DIR`, or
// [Verify] with the signer's public key from the key directory
// (DIR/directory/NAME.json, "signing_key"). By hand: compact the "report"
// value (jq -c .report), escape those three characters, prefix the
// context string, and check the base64 "signature" with any Ed25519
// verifier. Changing any value breaks the signature; re-indenting the
// file does not.
package compliance
