// Package securefile writes the files phix keeps secrets and
// configuration in, so that no reader ever sees a partial file and
// private data is never, even briefly, readable by others.
package securefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteNew writes data to path with mode perm, failing with an error
// matching [fs.ErrExist] if path already exists. It never replaces an
// existing file, so two processes generating the same key cannot leave two
// different keys in use; the data is written to a temporary file that is
// then hard-linked into place, so a crash never leaves a partial file.
func WriteNew(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return os.Link(tmp, path)
}

// Replace atomically replaces path with data, so readers such as a running
// broker see either the old or the new content, never a mix.
func Replace(path string, data []byte, perm fs.FileMode) error {
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
// once complete.
func writeTemp(path string, data []byte, perm fs.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return "", err
	}
	_, werr := f.Write(data)
	err = errors.Join(werr, f.Chmod(perm), f.Sync(), f.Close())
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}
