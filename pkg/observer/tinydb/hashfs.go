package tinydb

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// HashFS layout as Sacred configures it: md5, depth 3, width 2, no
// extension: hashfs/ab/cd/ef/<the other 26 hex digits>.
const (
	hashDepth = 3
	hashWidth = 2
	// hashFileMode and hashDirMode are HashFS's fmode and dmode. A stored
	// file never gets more permissions than the file it was copied from
	// (see storedMode).
	hashFileMode = 0o664
	hashDirMode  = 0o755
)

// hashPath returns the path of the file with md5 id under the store dir.
func hashPath(dir, id string) string {
	parts := make([]string, 0, hashDepth+2)
	parts = append(parts, dir, HashFSDir)
	for i := range hashDepth {
		parts = append(parts, id[i*hashWidth:(i+1)*hashWidth])
	}
	return filepath.Join(append(parts, id[hashDepth*hashWidth:])...)
}

// isMD5 tells a 32-digit lowercase hex md5.
func isMD5(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// storedMode is the mode of a copy of a file with mode m: HashFS's 0664,
// but never a permission the original did not have (a 0600 key stays
// 0600). The umask applies on top, when the file is created.
func storedMode(m os.FileMode) os.FileMode {
	return hashFileMode & m.Perm()
}

// putFile copies the file at path into hashfs and returns its md5. When
// known is the md5 the caller expects and that file is already stored,
// nothing is read (Sacred's fs.get(md5) for sources). modeFrom names the
// file whose permissions bound the copy's (path when empty).
func putFile(dir, path, known, modeFrom string) (string, error) {
	if isMD5(known) {
		if fi, err := os.Stat(hashPath(dir, known)); err == nil && fi.Mode().IsRegular() {
			return known, nil
		}
	}
	src, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	mode := fi.Mode()
	if modeFrom != "" && modeFrom != path {
		// The original's mode (through a symlink, its target's); the
		// copy the runner took is private (0600) whatever it was.
		if ofi, err := os.Stat(modeFrom); err == nil {
			mode = ofi.Mode()
		}
	}
	return putReader(dir, src, mode)
}

// putReader stores what r yields in hashfs with at most mode's
// permissions and returns its md5.
func putReader(dir string, r io.Reader, mode os.FileMode) (string, error) {
	if err := os.MkdirAll(filepath.Join(dir, HashFSDir), hashDirMode); err != nil {
		return "", err
	}
	// The temporary file lies beside hashfs/, not in it: HashFS walks its
	// whole tree, and a leftover would look like a stored file.
	tmp, err := createTemp(dir, ".hashfs-put-", ".tmp", storedMode(mode))
	if err != nil {
		return "", err
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	h := md5.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), r); err != nil {
		return "", err
	}
	id := hex.EncodeToString(h.Sum(nil))
	dst := hashPath(dir, id)
	if fi, err := os.Stat(dst); err == nil && fi.Mode().IsRegular() {
		return id, nil // stored already; the content is the same
	}
	if err := tmp.Sync(); err != nil {
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dst), hashDirMode); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", err
	}
	return id, nil
}

// openHashFile opens a stored file; a missing one is a clear error.
func openHashFile(dir, display, id string) (*os.File, error) {
	if !isMD5(id) {
		return nil, fmt.Errorf("%q is not an md5 hashfs id", id)
	}
	p := hashPath(dir, id)
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		rel, _ := filepath.Rel(dir, p)
		return nil, fmt.Errorf("the hashfs file %s is missing from the store (it was deleted or never copied): %w", filepath.Join(display, rel), err)
	}
	return f, err
}
