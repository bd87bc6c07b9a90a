package file

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sacred-go/sacred/pkg/sacredjson"
)

// maxIDTries is how often Sacred increments a colliding run id.
const maxIDTries = 1000

// maxNumericDir returns the largest run directory name made of digits in
// dir, or 0.
func maxNumericDir(dir string) (uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var maxID uint64
	for _, e := range entries {
		if !isDigits(e.Name()) {
			continue
		}
		if !e.IsDir() {
			// Follow symlinks, as Python's os.path.isdir does.
			fi, err := os.Stat(filepath.Join(dir, e.Name()))
			if err != nil || !fi.IsDir() {
				continue
			}
		}
		n, err := strconv.ParseUint(e.Name(), 10, 64)
		if err == nil && n > maxID {
			maxID = n
		}
	}
	return maxID, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkID refuses run ids that are not a single directory name.
func checkID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\\\x00") {
		return fmt.Errorf("file storage: %q cannot be a run id (it must be a plain directory name)", id)
	}
	return nil
}

// splitExt splits a file name as Python's pathlib does for stem and suffix:
// the suffix starts at the last dot, unless that dot is the first or the
// last character ("a.tar.gz" -> "a.tar", ".gz"; ".bashrc" -> ".bashrc", "").
func splitExt(name string) (stem, ext string) {
	i := strings.LastIndexByte(name, '.')
	if i > 0 && i < len(name)-1 {
		return name[:i], name[i:]
	}
	return name, ""
}

// pyPathJoin joins like Python's pathlib: "." components, repeated and
// trailing slashes vanish, ".." stays. Sacred builds the recorded store
// path of resources this way from the directory as given.
func pyPathJoin(base string, elems ...string) string {
	abs := strings.HasPrefix(base, "/")
	var parts []string
	for _, p := range append([]string{base}, elems...) {
		for _, c := range strings.Split(p, "/") {
			if c != "" && c != "." {
				parts = append(parts, c)
			}
		}
	}
	joined := strings.Join(parts, "/")
	if abs {
		return "/" + joined
	}
	if joined == "" {
		return "."
	}
	return joined
}

// storeShared copies src into dir as <stem>_<md5><ext> unless a file of
// that name is already there, and returns the name. The copy goes to a
// temporary file that is renamed into place, so a concurrent run never sees
// a partial file. knownMD5 (may be empty) is used to skip the copy early;
// the stored name always carries the md5 of the bytes actually copied.
func storeShared(src, dir, knownMD5 string) (string, error) {
	stem, ext := splitExt(filepath.Base(src))
	if knownMD5 != "" {
		name := stem + "_" + knownMD5 + ext
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return name, nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("reading %w", err)
	}
	defer in.Close()
	// The final name is known only after hashing: write to a temporary
	// file next to it, then rename.
	tmp, err := os.CreateTemp(dir, "."+stem+ext+".tmp*")
	if err != nil {
		return "", fmt.Errorf("creating a temporary file in %s: %w", dir, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := md5.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), in); err != nil {
		return "", fmt.Errorf("copying %s to %s: %w", src, dir, err)
	}
	name := stem + "_" + hex.EncodeToString(h.Sum(nil)) + ext
	final := filepath.Join(dir, name)
	if _, err := os.Stat(final); err == nil {
		return name, nil // stored meanwhile by another run
	}
	if err := tmp.Chmod(0o644); err != nil {
		return "", fmt.Errorf("writing %s: %w", final, err)
	}
	if err := tmp.Sync(); err != nil {
		return "", fmt.Errorf("writing %s: %w", final, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("writing %s: %w", final, err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		os.Remove(tmp.Name())
		done = true
		return "", fmt.Errorf("storing %s: %w", final, err)
	}
	done = true
	return name, nil
}

// writeFileAtomic replaces path with data: a temporary file in the same
// directory is written and renamed over it, so a reader sees the old or
// the new content, never a part. It is not synced: an fsync costs several
// milliseconds (tens on a busy VM) and would sit between `sacred run` and
// the child's start and in every beat; finish syncs the run's files once.
func writeFileAtomic(path string, data []byte) error {
	pf, err := newPendingFile(path)
	if err != nil {
		return err
	}
	defer pf.cleanup()
	if _, err := pf.Write(data); err != nil {
		return err
	}
	return pf.replace(false)
}

// pendingFile is a temporary file that replaces path when complete.
type pendingFile struct {
	*os.File
	path string
	done bool
}

func newPendingFile(path string) (*pendingFile, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &pendingFile{File: f, path: path}, nil
}

// replace closes the file (after an fsync when sync is set) and renames it
// over path.
func (p *pendingFile) replace(sync bool) error {
	if sync {
		if err := p.Sync(); err != nil {
			return err
		}
	}
	if err := p.Close(); err != nil {
		return err
	}
	if err := os.Rename(p.Name(), p.path); err != nil {
		return err
	}
	p.done = true
	return nil
}

// cleanup removes the temporary file unless it replaced path.
func (p *pendingFile) cleanup() {
	if !p.done {
		p.Close()
		os.Remove(p.Name())
	}
}

// syncPath makes an existing file durable; a missing one is fine.
func syncPath(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// writeJSONAtomic encodes v as Python's json.dump(sort_keys, indent=2) and
// replaces path with it.
func writeJSONAtomic(path string, v any) ([]byte, error) {
	data, err := sacredjson.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", filepath.Base(path), err)
	}
	if err := writeFileAtomic(path, data); err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return data, nil
}

// copyFileAtomic copies src to dst through a temporary file in dst's
// directory, fsynced before it replaces dst (pendingFile rather than
// renameio, which is Unix-only).
func copyFileAtomic(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := newPendingFile(dst)
	if err != nil {
		return err
	}
	defer tmp.cleanup()
	if _, err := io.Copy(tmp, in); err != nil {
		return err
	}
	return tmp.replace(true)
}

// reservedNames are the files of a run directory an artifact may not
// replace (Sacred refuses the first four; info.json and the report are
// ours too).
var reservedNames = []string{RunFile, ConfigFile, CoutFile, InfoFile, MetricsFile}

// artifactPath checks an artifact name and returns where it goes in
// runDir. Names may contain "/" (subdirectories are created) but may not be
// absolute, leave the run directory, or replace one of the run's own files.
func artifactPath(runDir, name string) (string, error) {
	if name == "" {
		return "", errors.New("the artifact name is empty")
	}
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("the artifact name %q contains a NUL byte", name)
	}
	if filepath.IsAbs(name) || strings.HasPrefix(name, "/") || strings.HasPrefix(name, `\`) {
		return "", fmt.Errorf("the artifact name %q is absolute; it must be relative to the run directory", name)
	}
	clean := filepath.Clean(filepath.FromSlash(name))
	if clean == "." || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) || !filepath.IsLocal(clean) {
		return "", fmt.Errorf("the artifact name %q leaves the run directory", name)
	}
	if !strings.ContainsRune(clean, filepath.Separator) {
		for _, r := range reservedNames {
			if strings.EqualFold(clean, r) {
				return "", fmt.Errorf("the artifact name %q would overwrite the run's own %s", name, r)
			}
		}
		if stem, _ := splitExt(clean); strings.EqualFold(stem, "report") {
			return "", fmt.Errorf("the artifact name %q is reserved for the template report", name)
		}
	}
	return filepath.Join(runDir, clean), nil
}

// isNotExist reports a missing file.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// writeSynced replaces path with data durably: the file is synced before
// the rename and the directory after it.
func writeSynced(path string, data []byte) error {
	pf, err := newPendingFile(path)
	if err != nil {
		return err
	}
	defer pf.cleanup()
	if _, err := pf.Write(data); err != nil {
		return err
	}
	if err := pf.replace(true); err != nil {
		return err
	}
	return syncPath(filepath.Dir(path))
}
