package compliance

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"phix.dev/phix/audit"
	"phix.dev/phix/broker"
)

// checkAuditTrail exports the live audit trail as the probing auditor and
// verifies it offline against the broker's audit public key, exactly as
// `phix audit verify` would: checkpoint signatures, Merkle roots, record
// order and time gaps. Records written after the newest checkpoint are
// normal on a live broker and are reported, not failed.
func checkAuditTrail(ctx context.Context, d *deployment) Check {
	c := check("audit-trail", "164.312(b)", "audit trail present and intact")
	pub, err := audit.ReadPublicKey(filepath.Join(d.cfg.DataDir, "broker", audit.PublicKeyFile))
	if err != nil {
		c.fail("no audit public key: %v", err)
		return c
	}
	var buf bytes.Buffer
	if err := exportTrail(ctx, d, &buf); err != nil {
		c.fail("exporting the trail: %v", err)
		return c
	}
	rep, err := audit.Verify(&buf, audit.VerifyOptions{PublicKey: pub, AllowUnsealed: true})
	if err != nil && !errors.Is(err, audit.ErrTampered) {
		c.fail("reading the export: %v", err)
		return c
	}
	if rep.Records == 0 {
		c.fail("the trail holds no records")
		return c
	}
	for _, p := range rep.Problems {
		c.fail("%s at line %d: %s", p.Kind, p.Line, p.Detail)
	}
	c.note("%d records, %d checkpoints; %d records sealed by a signed checkpoint",
		rep.Records, rep.Checkpoints, rep.Sealed)
	return c
}

func exportTrail(ctx context.Context, d *deployment, buf *bytes.Buffer) error {
	nc, err := nats.Connect(d.cfg.ClientURL, broker.ClientOptions(d.machine.Name, d.tls)...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	_, err = audit.Export(ctx, js, buf)
	return err
}
