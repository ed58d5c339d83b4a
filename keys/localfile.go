package keys

import (
	"fmt"
	"io"
	"os"
	"runtime"
)

// maxKeyFileSize bounds what is read from a key or directory file, in
// bytes. Real files are a few kilobytes; the bound stops a wrong path
// (a device, a huge log) from being read into memory.
const maxKeyFileSize = 1 << 20

// ReadPrivateFile reads a file that holds private key material. It returns
// an error wrapping [ErrInsecureFile] if the file is not a regular file or
// group or others have any permission on it, because a key that others
// can read (or replace) no longer identifies this machine.
//
// The mode is checked on the opened file, so the file read is the one
// checked. Permission bits are not checked on Windows, where Go does not
// report them.
func ReadPrivateFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	defer f.Close()

	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrInsecureFile, path)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %v, want 0600",
			ErrInsecureFile, path, fi.Mode().Perm())
	}
	return readBounded(f, path)
}

// readPublicFile reads a public file such as a directory record.
func readPublicFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readBounded(f, path)
}

func readBounded(r io.Reader, path string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("keys: reading %s: %w", path, err)
	}
	if len(b) > maxKeyFileSize {
		return nil, fmt.Errorf("keys: %s is larger than %d bytes", path, maxKeyFileSize)
	}
	return b, nil
}
