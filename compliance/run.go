package compliance

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"phix.dev/phix/broker"
	"phix.dev/phix/identity"
	"phix.dev/phix/policy"
)

// ReportVersion is the version of the [Report] format.
const ReportVersion = 1

// Config says which deployment [Run] checks.
type Config struct {
	// DataDir is the phix data folder: policy.yaml, identities, key
	// directory, broker files and JetStream store. Required.
	DataDir string

	// ClientURL is the broker's client URL, tls://host:port. Required.
	ClientURL string

	// MonitorURL is the broker's monitoring endpoint, https://host:port.
	// Without it, what the broker enforces cannot be read and the checks
	// that need it fail.
	MonitorURL string

	// Identity is the identity folder the probes authenticate with; it
	// must be an auditor's to read what the broker enforces. Default: the
	// first auditor of the policy, in DataDir/identities.
	Identity string

	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// ErrNoIdentity is returned by [Run] when no identity is given and the
// policy names no auditor.
var ErrNoIdentity = errors.New("compliance: no identity to probe with: the policy names no auditor")

// deployment is what the checks look at.
type deployment struct {
	cfg      Config
	now      time.Time
	policy   *policy.Policy
	machine  *identity.Machine
	tls      *tls.Config
	enforced *broker.Enforced // nil if it could not be read
	// enforcedErr is why enforced is nil.
	enforcedErr error
}

// Run checks the deployment cfg describes and returns the report. It
// returns an error only when it cannot check at all (no policy, no
// identity); a failed check is in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	d, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	r := &Report{
		Version:    ReportVersion,
		Generated:  d.now.UTC(),
		DataDir:    cfg.DataDir,
		ClientURL:  cfg.ClientURL,
		MonitorURL: cfg.MonitorURL,
		Policy:     d.policy.Name(),
	}
	for _, check := range []func(context.Context, *deployment) Check{
		checkTransport,
		checkEntityAuth,
		checkUniqueIdentity,
		checkAccessControl,
		checkIdleLogoff,
		checkAtRest,
		checkKeyAges,
		checkOldMessages,
		checkNoSecrets,
		checkAuditTrail,
	} {
		r.Checks = append(r.Checks, check(ctx, d))
	}
	return r, nil
}

func open(ctx context.Context, cfg Config) (*deployment, error) {
	now := time.Now
	if cfg.Now != nil {
		now = cfg.Now
	}
	p, err := policy.Load(filepath.Join(cfg.DataDir, policy.FileName))
	if err != nil {
		return nil, fmt.Errorf("compliance: %w", err)
	}
	if cfg.Identity == "" {
		if len(p.Auditors) == 0 {
			return nil, ErrNoIdentity
		}
		cfg.Identity = identity.IdentityDir(cfg.DataDir, p.Auditors[0])
	}
	m, err := identity.Load(cfg.Identity)
	if err != nil {
		return nil, fmt.Errorf("compliance: %w", err)
	}
	tc, err := m.TLSConfig()
	if err != nil {
		return nil, fmt.Errorf("compliance: %w", err)
	}
	d := &deployment{cfg: cfg, now: now(), policy: p, machine: m, tls: tc}
	if cfg.MonitorURL == "" {
		d.enforcedErr = errors.New("no monitoring endpoint")
	} else {
		d.enforced, d.enforcedErr = FetchEnforced(ctx, cfg.MonitorURL, tc)
	}
	return d, nil
}

// check starts a Check; the helpers below fill it in.
func check(id, standard, title string) Check {
	return Check{ID: id, Standard: standard, Title: title, Status: Pass}
}

func (c *Check) fail(format string, args ...any) {
	c.Status = Fail
	c.Details = append(c.Details, fmt.Sprintf(format, args...))
}

func (c *Check) note(format string, args ...any) {
	c.Details = append(c.Details, fmt.Sprintf(format, args...))
}

func (c *Check) skip(format string, args ...any) {
	if c.Status == Pass {
		c.Status = Skip
	}
	c.note(format, args...)
}

// needEnforced fails c if the broker's enforced state is unknown.
func (d *deployment) needEnforced(c *Check) bool {
	if d.enforced == nil {
		c.fail("cannot read what the broker enforces: %v", d.enforcedErr)
		return false
	}
	return true
}

// listeners returns the broker's listeners, failing c for any it cannot
// name.
func (d *deployment) listeners(c *Check) []*listener {
	var out []*listener
	l, err := natsListener(d.cfg.ClientURL)
	if err != nil {
		c.fail("%v", err)
	} else {
		out = append(out, l)
	}
	if d.cfg.MonitorURL == "" {
		c.fail("no monitoring endpoint given, so its TLS posture is unknown")
		return out
	}
	if l, err := monitorListener(d.cfg.MonitorURL); err != nil {
		c.fail("%v", err)
	} else {
		out = append(out, l)
	}
	return out
}

// checkTransport: TLS 1.3 only on every listener, nothing in plaintext.
func checkTransport(ctx context.Context, d *deployment) Check {
	c := check("transmission-security", "164.312(e)(1)",
		"TLS 1.3 only on every listener; TLS 1.2 and plaintext refused")
	for _, l := range d.listeners(&c) {
		if err := l.accepted(ctx, d.tls); err != nil {
			c.fail("%s: TLS 1.3 client with a valid certificate refused: %v", l.name, err)
		} else {
			c.note("%s: TLS 1.3 accepted", l.name)
		}
		tls12 := d.tls.Clone()
		tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		if err := l.accepted(ctx, tls12); err == nil {
			c.fail("%s: TLS 1.2 client accepted", l.name)
		}
		switch err := l.plaintext(ctx); {
		case err == nil:
			c.fail("%s: plaintext client accepted", l.name)
		case errors.Is(err, errPlaintextInfo):
			c.fail("%s: plaintext client refused, but the server greeted it in plaintext", l.name)
		}
	}
	if e := d.enforced; e != nil && (e.MinTLSVersion != "TLS 1.3" || !e.TLSHandshakeFirst) {
		c.fail("broker reports minimum %s, handshake first %v; want TLS 1.3, true",
			e.MinTLSVersion, e.TLSHandshakeFirst)
	}
	checkVaultLink(d, &c)
	return c
}

// checkEntityAuth: both ends authenticated; impostors refused.
func checkEntityAuth(ctx context.Context, d *deployment) Check {
	c := check("entity-authentication", "164.312(d)",
		"mutual TLS: no client certificate, or one from an unknown CA, is refused")
	bad, err := variants(d.tls, d.machine.Name)
	if err != nil {
		c.fail("making probe certificates: %v", err)
		return c
	}
	names := sortedKeys(bad)
	for _, l := range d.listeners(&c) {
		for _, name := range names {
			if name == "a TLS 1.2 client" {
				continue // checkTransport's
			}
			if err := l.accepted(ctx, bad[name]); err == nil {
				c.fail("%s: %s was accepted", l.name, name)
			}
		}
	}
	if e := d.enforced; e != nil && !e.ClientVerify {
		c.fail("broker reports that it does not require client certificates")
	}
	if c.Status == Pass {
		c.note("refused: %s", joinAnd(names))
	}
	return c
}

// joinAnd lists ss as "a, b and c".
func joinAnd(ss []string) string {
	if len(ss) < 2 {
		return strings.Join(ss, "")
	}
	return strings.Join(ss[:len(ss)-1], ", ") + " and " + ss[len(ss)-1]
}
