package queue

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"
)

// Ext is the extension of journal files.
const Ext = ".journal"

// ErrBusy is returned (wrapped) when another process holds a journal's
// lock: a run still writing it, or another `sacred sync`.
var ErrBusy = errors.New("journal in use by another sacred process")

// Header is what a journal says about itself and the observer it feeds.
// It never holds a secret: Value is redacted, and Secret tells that
// something was taken out, which `sacred sync` must then get from the
// command line or the environment.
type Header struct {
	// ID is the journal's own id, also the run's provisional id.
	ID      string
	Created time.Time
	// Option, Title and Value name the observer: the kind's option (e.g.
	// "mongo_db"), its title and its redacted value.
	Option string
	Title  string
	Value  string
	Secret bool
	// Host and PID are the machine and process that wrote the journal.
	Host string
	PID  int
}

func (h *Header) doc() doc {
	return doc{
		"version": int64(1), "id": h.ID, "created": timeValue(h.Created), "option": h.Option,
		"title": h.Title, "value": h.Value, "secret": h.Secret, "host": h.Host, "pid": int64(h.PID),
	}
}

func decodeHeader(d doc) (*Header, error) {
	f := &fields{d: d}
	if v := f.int("version"); v != 1 {
		return nil, fmt.Errorf("journal format version %d is not known to this sacred (it knows 1): use the sacred that wrote it", v)
	}
	h := &Header{
		ID: f.str("id"), Created: f.time("created"), Option: f.str("option"), Title: f.str("title"),
		Value: f.str("value"), Secret: f.bool("secret"), Host: f.str("host"), PID: int(f.int("pid")),
	}
	if f.err != nil {
		return nil, fmt.Errorf("journal header: %w", f.err)
	}
	return h, nil
}

// journal is one journal file, open for appending, with its lock held.
// Appends come from the decorator and the worker (acks), ReadAt from the
// worker; whole records end at end.
type journal struct {
	path string
	f    *os.File
	lock *flock.Flock

	mu      sync.Mutex
	end     int64         // end of the whole records
	changed chan struct{} // closed at the next append
	err     error         // the first failed write: the records after end are torn
}

// newID returns a journal id: the UTC time and random hex, sortable and
// unique without coordination, e.g. 20250614T153012Z-3f9a1c7e.
func newID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// lockPath is the lock file of a journal. A separate file, because on
// Windows a locked range cannot be written through another handle.
func lockPath(path string) string { return path + ".lock" }

// deadPath is the dead-letter file of a journal.
func deadPath(path string) string { return strings.TrimSuffix(path, Ext) + ".dead" }

// createJournal creates a new journal in dir with h as its header and
// takes its lock.
func createJournal(dir string, h *Header) (*journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the journal directory: %w", err)
	}
	path := filepath.Join(dir, h.ID+Ext)
	lk := flock.New(lockPath(path))
	ok, err := lk.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock journal %s: %w", path, err)
	}
	if !ok {
		return nil, fmt.Errorf("journal %s: %w", path, ErrBusy)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		_ = lk.Close()
		_ = os.Remove(lockPath(path))
		return nil, fmt.Errorf("create journal: %w", err)
	}
	j := &journal{path: path, f: f, lock: lk, changed: make(chan struct{})}
	if _, err := f.WriteAt([]byte(magic), 0); err != nil {
		j.discard()
		return nil, fmt.Errorf("write journal %s: %w", path, err)
	}
	j.end = int64(len(magic))
	payload, err := encodeDoc(recHeader, h.doc())
	if err == nil {
		_, err = j.append(payload)
	}
	if err == nil {
		err = j.sync()
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		j.discard()
		return nil, err
	}
	return j, nil
}

// openJournal opens an existing journal and takes its lock, or fails with
// ErrBusy. It does not read it: see scan.
func openJournal(path string) (*journal, error) {
	lk := flock.New(lockPath(path))
	ok, err := lk.TryLock()
	if err != nil {
		return nil, fmt.Errorf("lock journal %s: %w", path, err)
	}
	if !ok {
		return nil, fmt.Errorf("journal %s: %w", path, ErrBusy)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// Another sync recorded it all and removed it while we
			// waited; the lock file is ours now.
			_ = os.Remove(lockPath(path))
		}
		_ = lk.Unlock()
		return nil, err
	}
	var m [len(magic)]byte
	if _, err := io.ReadFull(f, m[:]); err != nil || string(m[:]) != magic {
		f.Close()
		_ = lk.Unlock()
		return nil, fmt.Errorf("%s is not a sacred journal", path)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		_ = lk.Unlock()
		return nil, err
	}
	return &journal{path: path, f: f, lock: lk, end: fi.Size(), changed: make(chan struct{})}, nil
}

// append writes one record with payload parts p after the whole records
// and returns its offset. A failed write leaves end where it was, so the
// next append overwrites the torn bytes.
func (j *journal) append(p ...[]byte) (int64, error) {
	h := frame(p...)
	n := len(h)
	for _, b := range p {
		n += len(b)
	}
	buf := make([]byte, 0, n)
	buf = append(buf, h[:]...)
	for _, b := range p {
		buf = append(buf, b...)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	off := j.end
	if _, err := j.f.WriteAt(buf, off); err != nil {
		if j.err == nil {
			j.err = err
		}
		return 0, fmt.Errorf("write journal %s: %w", j.path, err)
	}
	j.end += int64(n)
	close(j.changed)
	j.changed = make(chan struct{})
	return off, nil
}

// snapshot returns the end of the whole records and a channel closed at
// the next append.
func (j *journal) snapshot() (int64, <-chan struct{}) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.end, j.changed
}

// sync makes the records written so far durable.
func (j *journal) sync() error {
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync journal %s: %w", j.path, err)
	}
	return nil
}

// truncate cuts the file at the end of the whole records (a torn tail).
func (j *journal) truncate() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.f.Truncate(j.end); err != nil {
		return fmt.Errorf("cut the torn tail of %s: %w", j.path, err)
	}
	return nil
}

// close closes the file and releases the lock; remove also deletes the
// journal (everything in it is recorded).
func (j *journal) close(remove bool) error {
	err := j.f.Close()
	if remove {
		if rerr := os.Remove(j.path); rerr != nil && err == nil {
			err = rerr
		}
		// The lock file goes while the lock is held: a process waiting
		// on the old file then finds no journal.
		_ = os.Remove(lockPath(j.path))
	}
	if uerr := j.lock.Unlock(); uerr != nil && err == nil {
		err = uerr
	}
	return err
}

// discard removes a journal that could not be set up.
func (j *journal) discard() {
	_ = j.close(true)
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be synced there
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// scanResult is what a whole read of a journal found.
type scanResult struct {
	header *Header
	acks   map[string]ackState // the last ack of each target
	events int                 // event records
	ends   bool                // it has a final event (or a queued run)
	// torn is the number of bytes after the whole records, and why they
	// are not a record.
	torn       int64
	tornReason error
}

// scan reads every record, checks them and finds the end of the whole
// records; it sets j.end there.
func (j *journal) scan() (*scanResult, error) {
	fi, err := j.f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	res := &scanResult{acks: map[string]ackState{}}
	off := int64(len(magic))
	for off < size {
		payload, next, err := readRecord(j.f, off, size)
		if errors.Is(err, errTorn) {
			res.torn, res.tornReason = size-off, err
			break
		}
		if err != nil {
			return nil, err
		}
		switch typ := payload[0]; typ {
		case recHeader:
			d, err := decodeDoc(payload)
			if err != nil {
				return nil, err
			}
			if res.header, err = decodeHeader(d); err != nil {
				return nil, err
			}
		case recAck:
			d, err := decodeDoc(payload)
			if err != nil {
				return nil, err
			}
			a := decodeAck(d)
			res.acks[a.Target] = a
		case recOutput, recBlob:
		default:
			res.events++
			if isFinal(typ) || typ == recQueued {
				res.ends = true
			}
		}
		off = next
	}
	if res.header == nil {
		return nil, fmt.Errorf("%s has no header: it is not a whole sacred journal", j.path)
	}
	j.mu.Lock()
	j.end = off
	j.mu.Unlock()
	return res, nil
}

func isFinal(typ byte) bool {
	return typ == recCompleted || typ == recInterrupted || typ == recFailed
}

// ackState is what one target (a store, named by its kind and redacted
// value) acknowledged of a journal. It is appended to the journal after
// each acknowledged event, so that a later replay skips exactly that.
type ackState struct {
	Target string
	// Next: every event before this offset is recorded, or dead.
	Next int64
	// Metrics: the metric records before this offset are recorded, also
	// when the heartbeat after them is not (Metrics >= Next).
	Metrics int64
	// ID is the run's id in the store; Started tells that the store
	// recorded the start.
	ID      string
	Started bool
	// Out is the end of the output the store acknowledged.
	Out int64
	// Done: the final event (or the queued run) is recorded.
	Done bool
	// Dead counts the events moved to the dead-letter file.
	Dead int64
}

func (a *ackState) doc() doc {
	return doc{
		"target": a.Target, "next": a.Next, "metrics": a.Metrics, "id": a.ID, "started": a.Started,
		"out": a.Out, "done": a.Done, "dead": a.Dead,
	}
}

func decodeAck(d doc) ackState {
	f := &fields{d: d}
	return ackState{
		Target: f.str("target"), Next: f.int("next"), Metrics: f.int("metrics"), ID: f.str("id"),
		Started: f.bool("started"), Out: f.int("out"), Done: f.bool("done"), Dead: f.int("dead"),
	}
}
