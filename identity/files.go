package identity

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// writeNewFile writes data to path with mode perm, failing with an error
// matching [fs.ErrExist] if path exists. The data is written to a
// temporary file that is then hard-linked into place, so an existing key
// is never replaced and a crash never leaves a partial file.
func writeNewFile(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	return os.Link(tmp, path)
}

// replaceFile atomically replaces path with data, so that readers such as
// a running broker see either the old or the new file, never a mix.
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
// its name. The file starts with mode 0600 and is widened to perm only
// when complete, so private data is never briefly readable by others.
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

// sameFile reports whether b describes the same unchanged file as a.
// Files are replaced by rename, which gives them a new inode, so this
// holds even if a rewrite lands within the modification time's
// resolution.
func sameFile(a, b fs.FileInfo) bool {
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}
