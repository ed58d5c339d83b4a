package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"phix.dev/phix/audit"
	"phix.dev/phix/identity"
	"phix.dev/phix/internal/subjects"
	"phix.dev/phix/registry"
)

// record puts a key operation on the audit trail, as the key
// administrator, and waits until the broker has stored it. A key
// operation that cannot be recorded is reported as an error: it has
// happened, but the trail must say so before the operator walks away.
func (f *keysFlags) record(ctx context.Context, rec audit.Record) error {
	s, err := connect(ctx, identity.IdentityDir(f.dir, keyAdminName), f.url)
	if err != nil {
		return fmt.Errorf("recording %s in the audit trail: %w", rec.Kind, err)
	}
	defer s.close()
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	m, err := s.nc.RequestWithContext(ctx, subjects.AuditReport(keyAdminName), b)
	if err != nil {
		return fmt.Errorf("recording %s in the audit trail: %w", rec.Kind, err)
	}
	var rep audit.Reply
	if err := json.Unmarshal(m.Data, &rep); err != nil || rep.Error != "" {
		return fmt.Errorf("recording %s in the audit trail: refused (%s)", rec.Kind, rep.Error)
	}
	return nil
}

func rotationRecord(machine string, sign bool, version int) audit.Record {
	use := "wrap"
	if sign {
		use = "sign"
	}
	return audit.Record{
		Kind: audit.KindKeyRotation, Outcome: audit.OutcomeOK, Target: machine,
		KeyVersion: fmt.Sprintf("vault:v%d", version), Detail: use + " key rotated",
	}
}

func rewrapRecord(reader string, n int, retiredBelow int) audit.Record {
	d := fmt.Sprintf("%d data keys rewrapped", n)
	if retiredBelow > 0 {
		d += fmt.Sprintf("; versions below %d retired", retiredBelow)
	}
	return audit.Record{Kind: audit.KindRewrap, Outcome: audit.OutcomeOK, Target: reader, Detail: d}
}

func grantRecord(r registry.GrantRecord) audit.Record {
	return audit.Record{
		Kind: audit.KindGrant, Outcome: audit.OutcomeOK, Target: r.To, Sender: r.Sender,
		DataKeyID: r.DataKeyID, MessageID: strings.Join(r.MessageIDs, ","), Reason: r.Reason,
		Detail: "data key wrapped for " + r.To + " from " + r.From + "'s copy",
	}
}

func destroyRecord(t *registry.Tombstone) audit.Record {
	return audit.Record{
		Kind: audit.KindKeyDestroy, Outcome: audit.OutcomeOK, Sender: t.Sender,
		DataKeyID: t.DataKeyID, Target: strings.Join(t.Readers, ","), Reason: t.Reason,
	}
}

// recordGrants records every grant, joining the failures.
func (f *keysFlags) recordGrants(ctx context.Context, recs []registry.GrantRecord) error {
	var errs []error
	for _, r := range recs {
		errs = append(errs, f.record(ctx, grantRecord(r)))
	}
	return errors.Join(errs...)
}
