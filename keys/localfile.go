package keys

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
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

// writeNewFile writes data to path with mode perm, failing with an error
// matching [fs.ErrExist] if path already exists. It never replaces an
// existing file, so two processes generating the same key cannot leave
// two different keys in use, and a crash never leaves a half-written key:
// the data is written to a temporary file that is then hard-linked into
// place.
func writeNewFile(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return os.Link(tmp, path)
}

// replaceFile atomically replaces path with data, so readers see either
// the old or the new content.
func replaceFile(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// writeTemp writes data to a new temporary file beside path and returns
// its name. The file is created with mode 0600 and widened to perm only
// after that, so private data is never briefly readable by others.
func writeTemp(path string, data []byte, perm fs.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return "", err
	}
	err = errors.Join(f.Chmod(perm), writeAll(f, data), f.Sync(), f.Close())
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

func writeAll(w io.Writer, data []byte) error {
	_, err := w.Write(data)
	return err
}
