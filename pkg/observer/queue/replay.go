package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Target is a store to replay journals into.
type Target struct {
	// Option and Value (redacted) name the store in the journal's ack
	// records, so that a replay into the same store skips what it
	// recorded before; Title names it in messages.
	Option, Title, Value string
	// Open opens an observer for one run.
	Open Opener
}

func (t Target) key() string  { return targetKey(t.Option, t.Value) }
func (t Target) name() string { return strings.TrimSpace(t.Title + " " + t.Value) }

// Replayed is what a replay did for one target.
type Replayed struct {
	Store string // the store's title and redacted value
	// RunID is the run's id in the store ("" when its start is not
	// recorded there).
	RunID string
	// Left counts the events the store has not recorded; Dead those in
	// the dead-letter file.
	Left int
	Dead int64
	// Done: the final event (or the queued run) is recorded.
	Done bool
	// Err says why the replay stopped short: the store unreachable until
	// the context ended, or refusing the run.
	Err error
}

// ReplayResult is what Replay did with one journal.
type ReplayResult struct {
	Path   string
	Header Header
	// Torn is the number of bytes after the last whole record (cut off),
	// and TornReason what was wrong with them.
	Torn       int64
	TornReason error
	// Ends is false for a journal without a final event: the wrapper that
	// wrote it stopped before the run ended.
	Ends bool
	// Removed: the journal's own store recorded everything, so the
	// journal was deleted.
	Removed bool
	Targets []Replayed
}

// ReadHeader reads a journal's header without locking it, so that a
// command can choose where to replay it.
func ReadHeader(path string) (*Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var m [len(magic)]byte
	if _, err := io.ReadFull(f, m[:]); err != nil || string(m[:]) != magic {
		return nil, fmt.Errorf("%s is not a sacred journal", path)
	}
	payload, _, err := readRecord(f, int64(len(magic)), fi.Size())
	if err != nil || payload[0] != recHeader {
		return nil, fmt.Errorf("%s has no header: it is not a whole sacred journal", path)
	}
	d, err := decodeDoc(payload)
	if err != nil {
		return nil, err
	}
	return decodeHeader(d)
}

// Journals lists the journals in dir, oldest first.
func Journals(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), Ext) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(out) // names start with the UTC time
	return out, nil
}

// Replay sends what the stores have not recorded of the journal at path to
// each target, in order, and notes what they acknowledge in the journal,
// so that replaying again (or a replay that races with this one) sends
// nothing twice. It holds the journal's lock meanwhile and fails with
// ErrBusy when a run or another replay holds it. A torn tail (a record cut
// short by a crash) is reported through opt.Warn and cut off; every whole
// record before it is replayed. Unreachable stores are retried with
// backoff until ctx is done.
//
// The journal is removed when its own store (the one in its header, by
// kind and redacted value) has recorded all of it, the final event
// included, without dead letters; or when it has no final event and that
// store has everything else (its writer is gone: the lock was free).
func Replay(ctx context.Context, path string, targets []Target, opt Options) (*ReplayResult, error) {
	opt.defaults()
	j, err := openJournal(path)
	if err != nil {
		return nil, err
	}
	res, err := replay(ctx, j, targets, &opt)
	remove := err == nil && res.Removed
	if cerr := j.close(remove); cerr != nil && err == nil {
		err = cerr
	}
	return res, err
}

func replay(ctx context.Context, j *journal, targets []Target, opt *Options) (*ReplayResult, error) {
	sc, err := j.scan()
	if err != nil {
		return nil, err
	}
	res := &ReplayResult{Path: j.path, Header: *sc.header, Torn: sc.torn, TornReason: sc.tornReason, Ends: sc.ends}
	if sc.torn > 0 {
		fmt.Fprintf(opt.Warn, "sacred: journal %s: its last %d bytes are a record cut short (%v), left by a crash while it was written; every whole record before them is replayed and the torn bytes are cut off\n", j.path, sc.torn, sc.tornReason)
		if err := j.truncate(); err != nil {
			return nil, err
		}
	}
	own := targetKey(sc.header.Option, sc.header.Value)
	for _, t := range targets {
		w := newWorker(j, t.Open, opt, t.key(), t.name(), sc.acks[t.key()], false)
		w.run(ctx)
		if inner := w.innerObserver(); inner != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opt.CallTimeout)
			if err := inner.Close(cctx); err != nil && w.lastError() == nil {
				w.setErr(fmt.Errorf("close: %w", err))
			}
			cancel()
		}
		r := Replayed{Store: t.name(), RunID: w.st.ID, Left: w.remaining(), Dead: w.st.Dead, Done: w.st.Done}
		if !w.st.Started {
			r.RunID = ""
		}
		switch {
		case w.blockedBy() != nil:
			r.Err = w.blockedBy()
		case r.Left > 0 && w.lastError() != nil:
			r.Err = w.lastError()
		case r.Left > 0 && ctx.Err() != nil:
			r.Err = ctx.Err()
		}
		if t.key() == own && r.Dead == 0 && r.Err == nil && (r.Done || (!sc.ends && r.Left == 0)) {
			res.Removed = true
		}
		res.Targets = append(res.Targets, r)
	}
	return res, nil
}

// IsBusy tells whether err is ErrBusy.
func IsBusy(err error) bool { return errors.Is(err, ErrBusy) }
