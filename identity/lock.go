package identity

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrInUse is returned by [Lock] when another process holds the data
// folder.
var ErrInUse = errors.New("identity: data folder is in use by another process")

// lockFile is the file in the data folder that [Lock] holds.
const lockFile = ".lock"

// Lock takes an exclusive lock on the data folder dir, creating it if
// needed, so that two brokers never share one message store: JetStream
// does not guard its store against a second server, and two writers lose
// acknowledged messages. The lock is released by the returned function or
// when the process exits. Lock returns [ErrInUse] if it is held.
func Lock(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrInUse, dir)
		}
		return nil, fmt.Errorf("identity: locking %s: %v", path, err)
	}
	return func() { f.Close() }, nil
}
