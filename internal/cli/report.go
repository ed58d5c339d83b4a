package cli

import (
	"context"
	"time"

	"phix.dev/phix/audit"
)

// reportFlushTimeout bounds how long a command waits at exit for its
// audit reports to be stored.
const reportFlushTimeout = 5 * time.Second

// startReporter returns an audit reporter for the session's machine. The
// returned stop function flushes it and warns if any report was lost.
func (s *session) startReporter(e *env) (*audit.Reporter, func(), error) {
	r, err := audit.NewReporter(s.nc, s.machine.Name, audit.ReporterConfig{})
	if err != nil {
		return nil, nil, err
	}
	return r, func() {
		ctx, cancel := context.WithTimeout(context.Background(), reportFlushTimeout)
		defer cancel()
		r.Close(ctx)
		if st := r.Stats(); st.Dropped+st.Failed > 0 {
			e.log.Warn("audit reports not stored", "dropped", st.Dropped, "failed", st.Failed)
		}
	}, nil
}
