package compliance

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"phix.dev/phix/internal/subjects"
)

// Status is the outcome of a check.
type Status string

// Outcomes of a check.
const (
	Pass Status = "pass"
	Fail Status = "fail"
	// Skip means the check could not be evaluated in this deployment; the
	// reason is in the check's details.
	Skip Status = "skip"
)

// Check is one evaluated safeguard.
type Check struct {
	ID       string   `json:"id"`
	Standard string   `json:"standard"` // e.g. "164.312(e)(1)"
	Title    string   `json:"title"`
	Status   Status   `json:"status"`
	Details  []string `json:"details,omitempty"`
}

// Report is the result of [Run].
type Report struct {
	Version   int       `json:"version"`
	Generated time.Time `json:"generated"`
	DataDir   string    `json:"data_dir"`
	ClientURL string    `json:"client_url"`
	// MonitorURL is "" if the deployment has no monitoring endpoint.
	MonitorURL string  `json:"monitor_url"`
	Policy     string  `json:"policy"`
	Checks     []Check `json:"checks"`
}

// Failed returns the checks that failed.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Status == Fail {
			out = append(out, c)
		}
	}
	return out
}

// OK reports whether no check failed.
func (r *Report) OK() bool { return len(r.Failed()) == 0 }

// signContext separates report signatures from every other use of a
// machine's signing key, such as envelope signatures.
const signContext = "phix/v1/doctor-report\x00"

// Signer signs with a machine's identity key; keys.Local satisfies it.
type Signer interface {
	Identity() string
	Sign(ctx context.Context, msg []byte) (sig []byte, keyID string, err error)
}

// Signed is a report with its signature, as kept for evidence. Report
// holds the report; the signature covers it as compact JSON with <, >
// and & escaped (\u003c, \u003e, \u0026), the form encoding/json writes.
type Signed struct {
	Report    json.RawMessage `json:"report"`
	Signer    string          `json:"signer"`
	KeyID     string          `json:"key_id"`
	Signature []byte          `json:"signature"` // Ed25519, base64 in JSON
}

// ErrBadSignature is returned by [Verify] when the signature does not
// match the report and key.
var ErrBadSignature = errors.New("compliance: report signature does not verify")

// Sign marshals r and signs it with s.
func Sign(ctx context.Context, r *Report, s Signer) (*Signed, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("compliance: %v", err)
	}
	sig, keyID, err := s.Sign(ctx, append([]byte(signContext), b...))
	if err != nil {
		return nil, fmt.Errorf("compliance: signing report: %w", err)
	}
	return &Signed{Report: b, Signer: s.Identity(), KeyID: keyID, Signature: sig}, nil
}

// Verify checks s against the signer's public key and returns the report.
// It returns [ErrBadSignature] if the signature does not verify.
func Verify(s *Signed, pub ed25519.PublicKey) (*Report, error) {
	// The signed bytes are compact JSON with <, > and & escaped, as
	// encoding/json writes them. Compacting and escaping again undoes any
	// re-indentation or unescaping of the saved file, which change no value.
	var compact, b bytes.Buffer
	if err := json.Compact(&compact, s.Report); err != nil {
		return nil, ErrBadSignature
	}
	b.WriteString(signContext)
	json.HTMLEscape(&b, compact.Bytes())
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, b.Bytes(), s.Signature) {
		return nil, ErrBadSignature
	}
	var r Report
	if err := json.Unmarshal(s.Report, &r); err != nil {
		return nil, fmt.Errorf("compliance: report: %v", err)
	}
	return &r, nil
}

// ErrUnknownSigner is returned by [SignerKey] when the directory has no
// key of that ID for the signer.
var ErrUnknownSigner = errors.New("compliance: unknown signer key")

// SignerKey reads machine's signing public key from the key directory
// dir (see keys.Local), checking that its ID is keyID.
func SignerKey(dir, machine, keyID string) (ed25519.PublicKey, error) {
	if !subjects.ValidName(machine) {
		return nil, fmt.Errorf("%w: invalid machine name %q", ErrUnknownSigner, machine)
	}
	rec, err := readDirRecord(filepath.Join(dir, machine+".json"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnknownSigner, err)
	}
	if rec.SigningKey.ID != keyID || len(rec.SigningKey.PublicKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w %s of %s", ErrUnknownSigner, keyID, machine)
	}
	return ed25519.PublicKey(rec.SigningKey.PublicKey), nil
}
