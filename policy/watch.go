package policy

import (
	"context"
	"io/fs"
	"os"
	"time"
)

// Watch polls the policy file at path every interval until ctx ends and
// calls fn from its own goroutine, never concurrently, each time the file
// changes: with the new policy, or with the error that kept it from
// loading (the caller should then keep enforcing the policy it has).
// The file as it is when Watch starts counts as seen. Watch returns when
// ctx ends.
//
// Polling, rather than file system notifications, also sees a file
// replaced by rename (as [RevokeFile] and editors do) and works on every
// platform.
func Watch(ctx context.Context, path string, interval time.Duration, fn func(*Policy, error)) {
	last, _ := os.Stat(path)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(path)
		if err != nil {
			if last != nil {
				fn(nil, err)
			}
			last = nil
			continue
		}
		if last != nil && unchanged(last, fi) {
			continue
		}
		last = fi
		fn(Load(path))
	}
}

// unchanged reports whether b describes the same unchanged file as a.
func unchanged(a, b fs.FileInfo) bool {
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}
