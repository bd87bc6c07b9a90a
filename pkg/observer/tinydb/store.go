package tinydb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/gofrs/flock"
)

// store is one store directory as a writer sees it: metadata.json, the
// lock file beside it, and what this process knows of the file's
// structure.
//
// Every change is a read-modify-write under an exclusive lock on
// LockFile: the writer checks whether metadata.json is still the file it
// last wrote (same inode, size and modification time); if not, it reads
// and checks the whole file again. The change is a splice: the new file is
// the old one's bytes before a range, the new bytes, and the old one's
// bytes after it, copied file to file (copy_file_range where the system
// has it) into a temporary file in the same directory, which then
// replaces metadata.json by rename. Readers therefore see the old or the
// new file, never a mix; other runs' documents are never decoded.
type store struct {
	dir     string // absolute
	display string // as the user gave it, for messages
	// syncEach fsyncs every new metadata.json before the rename (see
	// docs/observers/tinydb.md, "Durability").
	syncEach bool

	// ix and fi describe the metadata.json this process last read or
	// wrote; fi is nil when nothing is known.
	ix *index
	fi os.FileInfo
}

func newStore(dir, display string) *store {
	return &store{dir: dir, display: display, syncEach: true}
}

func (s *store) path() string { return filepath.Join(s.dir, MetadataFile) }

// splice says how to change the file: replace bytes [at, end) by data
// (at == end inserts). commit, when set, brings the index up to date after
// the new file is in place; without it the index is read again next time.
type splice struct {
	at, end int64
	data    []byte
	commit  func(ix *index)
}

// CorruptError is returned when metadata.json cannot be read as a TinyDB
// database. Nothing is written to the store then.
type CorruptError struct {
	Path string
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s is not a valid TinyDB file: %v; it was left unchanged (repair it, or move it away to start a new store)", e.Path, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// modify runs plan under the lock with the current index and applies the
// splice it returns. plan must not change the index; the splice's commit
// does, after the write.
func (s *store) modify(ctx context.Context, plan func(ix *index) (*splice, error)) error {
	unlock, err := lockFile(ctx, filepath.Join(s.dir, LockFile))
	if err != nil {
		return fmt.Errorf("tinydb: locking %s: %w", filepath.Join(s.display, LockFile), err)
	}
	defer unlock()

	old, err := os.Open(s.path())
	switch {
	case errors.Is(err, os.ErrNotExist):
		old = nil
	case err != nil:
		return fmt.Errorf("tinydb: %w", err)
	default:
		defer old.Close()
	}
	ix, fi, err := s.current(old)
	if err != nil {
		return err
	}
	sp, err := plan(ix)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("tinydb: %w", err)
	}
	newFi, err := s.replace(old, fi, sp)
	if err != nil {
		return err
	}
	if sp.commit == nil || newFi == nil {
		s.ix, s.fi = nil, nil
		return nil
	}
	delta := int64(len(sp.data)) - (sp.end - sp.at)
	ix.shift(sp.end, delta)
	sp.commit(ix)
	s.ix, s.fi = ix, newFi
	return nil
}

// current returns the index of the open metadata.json (nil: none),
// reading the file again unless it is the one this process knows.
func (s *store) current(f *os.File) (*index, os.FileInfo, error) {
	if f == nil {
		return &index{blank: true}, nil, nil
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("tinydb: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("tinydb: %s is not a regular file", filepath.Join(s.display, MetadataFile))
	}
	if fi.Mode().Perm()&0o200 == 0 {
		// Python's TinyDB cannot write it either; do not replace it.
		return nil, nil, fmt.Errorf("tinydb: %s is read-only (mode %v); make it writable to record into this store", filepath.Join(s.display, MetadataFile), fi.Mode().Perm())
	}
	if s.fi != nil && os.SameFile(s.fi, fi) && s.fi.Size() == fi.Size() && s.fi.ModTime().Equal(fi.ModTime()) {
		return s.ix, fi, nil
	}
	s.ix, s.fi = nil, nil
	s.removeStaleTemps()
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, nil, fmt.Errorf("tinydb: reading %s: %w", filepath.Join(s.display, MetadataFile), err)
	}
	ix, err := scanIndex(data)
	if err != nil {
		return nil, nil, fmt.Errorf("tinydb: %w", &CorruptError{Path: filepath.Join(s.display, MetadataFile), Err: err})
	}
	s.ix, s.fi = ix, fi
	return ix, fi, nil
}

// removeStaleTemps removes temporary files that writers killed before
// their rename left behind. It runs under the lock, which every writer
// holds while its temporary file exists, so any that is there is stale.
func (s *store) removeStaleTemps() {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, tempPrefix) && strings.HasSuffix(n, tempSuffix) {
			os.Remove(filepath.Join(s.dir, n))
		}
	}
}

// The temporary metadata.json: hidden, so that Python tools listing the
// store do not see it.
const (
	tempPrefix = "." + MetadataFile + "."
	tempSuffix = ".tmp"
)

// replace writes the spliced file next to metadata.json and renames it
// over it. It returns the new file's info (nil when it cannot be known).
func (s *store) replace(old *os.File, oldFi os.FileInfo, sp *splice) (os.FileInfo, error) {
	tmp, err := createTemp(s.dir, tempPrefix, tempSuffix, 0o666)
	if err != nil {
		return nil, fmt.Errorf("tinydb: writing %s: %w", filepath.Join(s.display, MetadataFile), err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	var size int64
	if oldFi != nil {
		size = oldFi.Size()
	}
	if sp.at < 0 || sp.at > sp.end || sp.end > size {
		return nil, fmt.Errorf("tinydb: internal error: splice [%d, %d) outside a file of %d bytes", sp.at, sp.end, size)
	}
	werr := copyRange(tmp, old, 0, sp.at)
	if werr == nil {
		_, werr = tmp.Write(sp.data)
	}
	if werr == nil {
		werr = copyRange(tmp, old, sp.end, size-sp.end)
	}
	if werr == nil && s.syncEach {
		werr = tmp.Sync()
	}
	if werr == nil && oldFi != nil {
		// Keep the mode the user's file had.
		werr = tmp.Chmod(oldFi.Mode().Perm())
	}
	var fi os.FileInfo
	if werr == nil {
		fi, werr = tmp.Stat()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), s.path())
	}
	if werr != nil {
		return nil, fmt.Errorf("tinydb: writing %s: %w", filepath.Join(s.display, MetadataFile), werr)
	}
	ok = true
	return fi, nil
}

// syncDir makes the last rename in the store durable. Windows has no
// fsync of a directory (NTFS journals the rename itself).
func (s *store) syncDir() error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("tinydb: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("tinydb: syncing %s: %w", s.display, err)
	}
	return nil
}

// copyRange copies n bytes at off of src to the end of dst. Both being
// files, io.Copy lets the kernel copy (copy_file_range on Linux).
func copyRange(dst, src *os.File, off, n int64) error {
	if n == 0 {
		return nil
	}
	if _, err := src.Seek(off, io.SeekStart); err != nil {
		return err
	}
	got, err := io.Copy(dst, &io.LimitedReader{R: src, N: n})
	if err != nil {
		return err
	}
	if got != n {
		return fmt.Errorf("%s changed while it was copied (%d of %d bytes)", src.Name(), got, n)
	}
	return nil
}

// createTemp creates a new file prefix+random+suffix in dir with mode perm
// (less the umask), unlike os.CreateTemp's fixed 0600.
func createTemp(dir, prefix, suffix string, perm os.FileMode) (*os.File, error) {
	for range 100 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		name := filepath.Join(dir, prefix+hex.EncodeToString(b[:])+suffix)
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, fmt.Errorf("cannot create a temporary file in %s", dir)
}

// lockFile takes an exclusive lock on path (created when missing) and
// returns its release. It honours ctx: when ctx ends first, the lock is
// released as soon as it is obtained.
func lockFile(ctx context.Context, path string) (func(), error) {
	fl := flock.New(path, flock.SetPermissions(0o644))
	if ok, err := fl.TryLock(); err != nil {
		return nil, err
	} else if ok {
		return func() { fl.Unlock() }, nil
	}
	done := make(chan error, 1)
	go func() { done <- fl.Lock() }()
	select {
	case err := <-done:
		if err != nil {
			return nil, err
		}
		return func() { fl.Unlock() }, nil
	case <-ctx.Done():
		go func() {
			if <-done == nil {
				fl.Unlock()
			}
		}()
		return nil, fmt.Errorf("waiting for the lock: %w", ctx.Err())
	}
}
