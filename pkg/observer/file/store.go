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

	"github.com/sacred-go/sacred/pkg/observer/file/layout"
)

// maxNumericDir returns the largest run directory name made of digits in
// dir, or 0.
func maxNumericDir(dir string) (uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var names []string
	for _, e := range entries {
		if !layout.IsNumericID(e.Name()) {
			continue
		}
		if !e.IsDir() {
			// Follow symlinks, as Python's os.path.isdir does.
			fi, err := os.Stat(filepath.Join(dir, e.Name()))
			if err != nil || !fi.IsDir() {
				continue
			}
		}
		names = append(names, e.Name())
	}
	return layout.NextID(names) - 1, nil
}

// storedPerm is the mode of a stored copy of a file whose mode is src: at
// most 0644 (Sacred's copies), never wider than the original, so that a
// 0600 key stays 0600.
func storedPerm(src fs.FileMode) fs.FileMode { return src.Perm() & 0o644 }

// storeShared copies src into dir as <stem>_<md5><ext> unless a file of
// that name is already there, and returns the name. The copy goes to a
// temporary file that is renamed into place, so a concurrent run never sees
// a partial file. knownMD5 (may be empty) is used to skip the copy early;
// the stored name always carries the md5 of the bytes actually copied.
// The copy never has more permissions than src (symlinks followed); an
// existing copy of the same content is narrowed to them.
func storeShared(src, dir, knownMD5 string) (string, error) {
	if knownMD5 != "" {
		// Already stored: the source need not even be there any more.
		name := layout.SharedName(src, knownMD5)
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			if fi, err := os.Stat(src); err == nil {
				_, err = haveShared(filepath.Join(dir, name), storedPerm(fi.Mode()))
				return name, err
			}
			return name, nil
		}
	}
	in, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("reading %w", err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return "", fmt.Errorf("reading %w", err)
	}
	perm := storedPerm(fi.Mode())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	// The final name is known only after hashing: write to a temporary
	// file next to it, then rename.
	stem, ext := layout.SplitExt(filepath.Base(src))
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
	name := layout.SharedName(src, hex.EncodeToString(h.Sum(nil)))
	final := filepath.Join(dir, name)
	if ok, err := haveShared(final, perm); ok || err != nil {
		return name, err // stored meanwhile by another run
	}
	if err := tmp.Chmod(perm); err != nil {
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

// haveShared reports whether the shared copy path exists, and narrows its
// mode to perm when it is wider: the same content arriving from a private
// file must not stay readable to others through an earlier public copy.
func haveShared(path string, perm fs.FileMode) (bool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return false, nil
	}
	if have := fi.Mode().Perm(); have&^perm != 0 {
		if err := os.Chmod(path, have&perm); err != nil {
			return true, fmt.Errorf("narrowing the mode of %s: %w", path, err)
		}
	}
	return true, nil
}

// writeFileAtomic replaces path with data: a temporary file in the same
// directory is written and renamed over it, so a reader sees the old or
// the new content, never a part. It is not synced: an fsync costs several
// milliseconds (tens on a busy VM) and would sit between `sacred run` and
// the child's start and in every beat; finish syncs the run's files once.
func writeFileAtomic(path string, data []byte) error {
	pf, err := newPendingFile(path, 0o644)
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

func newPendingFile(path string, perm fs.FileMode) (*pendingFile, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(perm); err != nil {
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

// copyFileAtomic copies src to dst through a temporary file in dst's
// directory, fsynced before it replaces dst (pendingFile rather than
// renameio, which is Unix-only). The copy gets perm.
func copyFileAtomic(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := newPendingFile(dst, perm)
	if err != nil {
		return err
	}
	defer tmp.cleanup()
	if _, err := io.Copy(tmp, in); err != nil {
		return err
	}
	return tmp.replace(true)
}

// artifactPath checks an artifact name (layout.CheckArtifactName, plus
// this platform's rules) and returns where it goes in runDir.
func artifactPath(runDir, name string) (string, error) {
	clean, err := layout.CheckArtifactName(name)
	if err != nil {
		return "", err
	}
	local := filepath.FromSlash(clean)
	if filepath.IsAbs(local) || !filepath.IsLocal(local) {
		return "", fmt.Errorf("the artifact name %q leaves the run directory", name)
	}
	return filepath.Join(runDir, local), nil
}

// isNotExist reports a missing file.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// runJSONReserve is the disk space kept allocated beyond run.json's end
// while the run is going on, so that its final status fits even when the
// disk is full by then: the end adds stop_time and fail_trace (at most the
// last 64 KiB of stderr, escaped) to a file of a few KiB.
const runJSONReserve = 128 << 10

// writeRunJSON replaces run.json with data. While the run goes on
// (running) the new file keeps runJSONReserve bytes allocated past its
// end. When the replacement fails (a full disk: no room for a second
// copy), data is written over the old file in place, into the space it
// kept: a reader may then see a partial file for a moment, which is better
// than a run left RUNNING for ever. The final write (final) gives the
// space back and is synced.
func writeRunJSON(path string, data []byte, running, final bool) error {
	errAtomic := func() error {
		pf, err := newPendingFile(path, 0o644)
		if err != nil {
			return err
		}
		defer pf.cleanup()
		if running && !final {
			if err := reserve(pf.File, int64(len(data))+runJSONReserve); err != nil {
				return err
			}
		}
		if _, err := pf.Write(data); err != nil {
			return err
		}
		if err := pf.replace(final); err != nil {
			return err
		}
		if final {
			return syncPath(filepath.Dir(path))
		}
		return nil
	}()
	if errAtomic == nil {
		return nil
	}
	if err := overwriteInPlace(path, data, final); err != nil {
		return errors.Join(errAtomic, fmt.Errorf("writing in place: %w", err))
	}
	return nil
}

// overwriteInPlace writes data over the start of the existing file path.
// A shorter data is padded with spaces (JSON ignores them) while the run
// goes on, so the space the file keeps is not given back; the final write
// cuts the file to data.
func overwriteInPlace(path string, data []byte, final bool) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	buf := data
	if pad := fi.Size() - int64(len(data)); pad > 0 && !final {
		buf = make([]byte, fi.Size())
		copy(buf, data)
		for i := len(data); i < len(buf); i++ {
			buf[i] = ' '
		}
	}
	if _, err := f.WriteAt(buf, 0); err != nil {
		return err
	}
	if final && fi.Size() > int64(len(data)) {
		if err := f.Truncate(int64(len(data))); err != nil {
			return err
		}
	}
	if final {
		return f.Sync()
	}
	return nil
}

// humanBytes writes n as "768.0 KiB".
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
