package ui

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/sacred-go/sacred/internal/query"
	"github.com/sacred-go/sacred/pkg/observer"
)

// A catalog keeps the runs of one store in memory, as summaries: every
// field but the output, and each metric cut to the three points that give
// its last, smallest and largest value. The runs table is paged, sorted
// and filtered over these, so a page of 10,000 runs costs a Select, not a
// read of the store.
//
// It is kept fresh by scans that run only while someone looks (a table
// request in the last minute, or a live subscriber): a scan lists the ids
// and reads the runs that are new or may still change (RUNNING and
// QUEUED; a RUNNING run that looks dead only once a minute). A finished
// run is read once; ?reload on the table reads everything again (for
// changes made behind the UI's back, such as notes set in Omniboard).
type catalog struct {
	srv   *Server
	index int
	store Store

	mu       sync.RWMutex
	snapshot []*observer.Run // store order; replaced, never changed in place
	byID     map[string]*entry
	version  uint64
	loadErr  error
	loaded   chan struct{} // closed when the first scan ended
	scanned  time.Time     // when the last scan ended
	scanCost time.Duration // how long it took

	// The newest runs, read beside the first full scan so that the
	// table's default first page need not wait for it (selectHead).
	head      []*observer.Run // oldest first: the last headSize runs listed; nil until read
	headTotal int             // the runs listed
	headDone  chan struct{}   // closed once the head is read or given up

	wake    chan struct{} // a request wants a scan
	reload  chan struct{} // a request wants a full reload
	subs    int           // live subscribers; guarded by mu
	watched time.Time     // last request; guarded by mu
	changed chan struct{} // closed and replaced at every change
	recent  []change      // the last changes, oldest first
}

type entry struct {
	run     *observer.Run
	checked time.Time // when it was last read
}

// change is what one scan changed: ids read again or new, and ids gone.
type change struct {
	version uint64
	ids     []string
}

// maxRecent bounds the changes a live subscriber can catch up on; one
// further behind reloads its page.
const maxRecent = 64

// idleAfter is how long after the last request scans go on without a
// live subscriber.
const idleAfter = time.Minute

// deadRecheck is how often a RUNNING run that looks dead is read again
// (it may come back to life, or have finished on another machine).
const deadRecheck = time.Minute

func newCatalog(s *Server, i int, st Store) *catalog {
	return &catalog{
		srv: s, index: i, store: st,
		byID:     map[string]*entry{},
		loaded:   make(chan struct{}),
		headDone: make(chan struct{}),
		wake:     make(chan struct{}, 1),
		reload:   make(chan struct{}, 1),
		changed:  make(chan struct{}),
	}
}

// loop scans the store: once at the start, then while someone looks,
// pausing between scans at least the server's Refresh and five times what
// the last scan took, so a slow store is not read without pause.
func (c *catalog) loop(ctx context.Context) {
	// The head is read first, so that the scan does not compete with it
	// for the disk; after headGrace the scan starts anyway (on a store
	// where listing and reading runs one by one is slow, such as
	// FerretDB, the head only loses the race), and the head is given up
	// once the scan ends.
	headCtx, stopHead := context.WithCancel(ctx)
	headEnded := make(chan struct{})
	go func() {
		defer close(headEnded)
		c.readHead(headCtx)
	}()
	grace := time.NewTimer(headGrace)
	select {
	case <-c.headDone:
	case <-grace.C:
	case <-ctx.Done():
	}
	grace.Stop()
	c.scan(ctx, true)
	stopHead()
	close(c.loaded)
	<-headEnded
	for {
		c.mu.RLock()
		pause := max(c.srv.opts.Refresh, 5*c.scanCost)
		c.mu.RUnlock()
		t := time.NewTimer(pause)
		full := false
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-c.reload:
			t.Stop()
			full = true
		}
		if !full && !c.interested() {
			select {
			case <-ctx.Done():
				return
			case <-c.wake:
			case <-c.reload:
				full = true
			}
		}
		c.scan(ctx, full)
	}
}

func (c *catalog) interested() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.subs > 0 || c.srv.now().Sub(c.watched) < idleAfter
}

// touch notes a request: scans go on, and one starts soon if the last is
// older than the refresh pause.
func (c *catalog) touch() {
	c.mu.Lock()
	c.watched = c.srv.now()
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// requestReload asks for a full reload at the next opportunity.
func (c *catalog) requestReload() {
	select {
	case c.reload <- struct{}{}:
	default:
	}
}

// subscribe counts a live subscriber until the returned func is called.
func (c *catalog) subscribe() func() {
	c.mu.Lock()
	c.subs++
	c.mu.Unlock()
	c.touch()
	return func() {
		c.mu.Lock()
		c.subs--
		c.mu.Unlock()
	}
}

// headGrace is how long the first scan waits for the head to be read.
const headGrace = time.Second

// headSize is how many of the newest runs the head holds: two pages of
// the table's default 50 rows.
const headSize = 100

// readHead lists the runs and reads the newest headSize of them. Any
// error leaves the head unset: the first full scan answers instead.
func (c *catalog) readHead(ctx context.Context) {
	defer close(c.headDone)
	ids, err := c.store.Reader.Runs(ctx)
	if err != nil {
		return
	}
	last := ids[max(0, len(ids)-headSize):]
	read, gone, err := readRuns(ctx, c.store.Reader, last)
	if err != nil {
		return
	}
	head := make([]*observer.Run, 0, len(last))
	for _, id := range last {
		if r, ok := read[id]; ok {
			head = append(head, r)
		}
	}
	c.mu.Lock()
	c.head, c.headTotal = head, len(ids)-len(gone) // non-nil: read
	c.mu.Unlock()
}

// newest returns what the catalog can tell of its newest runs now, for
// selectHead: after the first scan every run (complete), else the head
// with the number of runs listed; ok is false when it cannot tell yet
// (the head failed, or the first scan did).
func (c *catalog) newest() (runs []*observer.Run, total int, ok bool) {
	select {
	case <-c.loaded:
		c.mu.RLock()
		defer c.mu.RUnlock()
		if c.scanFailedLocked() != nil {
			return nil, 0, false
		}
		return c.snapshot, len(c.snapshot), true
	default:
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.head, c.headTotal, c.head != nil
}

// waitHead blocks until the head is read (or given up) or the first scan
// ended.
func (c *catalog) waitHead(ctx context.Context) error {
	select {
	case <-c.loaded:
	case <-c.headDone:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// wait blocks until the first scan ended.
func (c *catalog) wait(ctx context.Context) error {
	select {
	case <-c.loaded:
		c.mu.RLock()
		defer c.mu.RUnlock()
		return c.scanFailedLocked()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// scanFailedLocked is the error of a first scan that read nothing, or
// nil; c.mu is held.
func (c *catalog) scanFailedLocked() error {
	if c.snapshot == nil {
		return c.loadErr
	}
	return nil
}

// runs returns the current snapshot (store order) and its version.
func (c *catalog) runs() ([]*observer.Run, uint64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.snapshot, c.version
}

// get returns the summary of one run.
func (c *catalog) get(id string) (*observer.Run, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.byID[id]
	if !ok {
		return nil, false
	}
	return e.run, true
}

// next returns the channel closed at the next change.
func (c *catalog) next() <-chan struct{} {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.changed
}

// since returns the ids changed after version v and the current version;
// all is true when v is too old to tell (the subscriber reloads).
func (c *catalog) since(v uint64) (ids []string, now uint64, all bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	now = c.version
	if v == now {
		return nil, now, false
	}
	if v > now || len(c.recent) == 0 || c.recent[0].version > v+1 {
		return nil, now, true
	}
	seen := map[string]bool{}
	for _, ch := range c.recent {
		if ch.version <= v {
			continue
		}
		for _, id := range ch.ids {
			if !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	return ids, now, false
}

// mayChange tells whether a run read at checked should be read again.
func (c *catalog) mayChange(e *entry, now time.Time, dead time.Time) bool {
	switch e.run.Status {
	case observer.StatusQueued:
		return true
	case observer.StatusRunning:
		last := e.run.Heartbeat
		if last.IsZero() {
			last = e.run.StartTime
		}
		if !last.IsZero() && last.Before(dead) {
			return now.Sub(e.checked) >= deadRecheck
		}
		return true
	}
	return false
}

// everything is a query that selects every run and reads all of it but
// the output: what a full scan asks a store's Finder for.
var everything = query.Options{Columns: []string{"config", "info", "metrics", "meta", "host", "experiment", "fail_trace", "artifacts"}}

// scan reads what is new or may have changed: the ids listed, then the
// runs not seen yet or not finished. A full scan (the first, a reload)
// reads every run in one selection instead, which a store that finds runs
// where the data is (readback.Finder: one SELECT, one find, run.json files
// without the output) does much faster than run by run.
func (c *catalog) scan(ctx context.Context, full bool) {
	start := time.Now()
	now := c.srv.now()
	if full {
		q, err := query.Compile(everything)
		if err != nil {
			panic(err) // a constant query
		}
		runs, err := q.Find(ctx, c.store.Reader, now)
		if err != nil {
			c.failed(ctx, "reading runs", err, start)
			return
		}
		ids := make([]string, len(runs))
		read := make(map[string]*observer.Run, len(runs))
		for i, r := range runs {
			ids[i] = r.ID
			read[r.ID] = summarize(r)
		}
		c.commit(ids, read, nil, now, start, nil)
		return
	}
	ids, err := c.store.Reader.Runs(ctx)
	if err != nil {
		c.failed(ctx, "listing runs", err, start)
		return
	}
	deadAfter := c.srv.opts.DeadAfter
	if deadAfter <= 0 {
		deadAfter = query.DefaultDeadAfter
	}
	dead := now.Add(-deadAfter)

	c.mu.RLock()
	var toRead []string
	for _, id := range ids {
		e, ok := c.byID[id]
		if !ok || c.mayChange(e, now, dead) {
			toRead = append(toRead, id)
		}
	}
	c.mu.RUnlock()

	read, gone, err := readRuns(ctx, c.store.Reader, toRead)
	if err != nil && ctx.Err() == nil {
		c.srv.logf("%s: reading runs: %v", c.store.Label, err)
	}
	c.commit(ids, read, gone, now, start, err)
}

// failed notes a scan that read nothing.
func (c *catalog) failed(ctx context.Context, op string, err error, start time.Time) {
	if ctx.Err() == nil {
		c.srv.logf("%s: %s: %v", c.store.Label, op, err)
	}
	c.mu.Lock()
	c.loadErr = err
	c.scanCost = time.Since(start)
	c.mu.Unlock()
}

// commit makes a scan's result the snapshot: ids in store order, the runs
// read (the others are kept as they were), the runs gone since listed.
func (c *catalog) commit(ids []string, read map[string]*observer.Run, gone map[string]bool, now, start time.Time, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loadErr = err
	var changed []string
	byID := make(map[string]*entry, len(ids))
	snap := make([]*observer.Run, 0, len(ids))
	for _, id := range ids {
		if gone[id] {
			changed = append(changed, id)
			continue
		}
		if r, ok := read[id]; ok {
			old, had := c.byID[id]
			if !had || !sameSummary(old.run, r) {
				changed = append(changed, id)
			}
			byID[id] = &entry{run: r, checked: now}
			snap = append(snap, r)
			continue
		}
		if e, ok := c.byID[id]; ok {
			byID[id] = e
			snap = append(snap, e.run)
		}
	}
	for id := range c.byID {
		if _, ok := byID[id]; !ok && !gone[id] {
			changed = append(changed, id) // no longer listed
		}
	}
	c.byID = byID
	c.snapshot = snap
	c.scanned = time.Now()
	c.scanCost = time.Since(start)
	if len(changed) > 0 {
		c.version++
		c.recent = append(c.recent, change{version: c.version, ids: changed})
		if len(c.recent) > maxRecent {
			c.recent = c.recent[len(c.recent)-maxRecent:]
		}
		close(c.changed)
		c.changed = make(chan struct{})
	}
}

// readRuns reads runs with a few workers, as summaries. A run deleted
// since it was listed is reported in gone; the first other error stops
// nothing but is returned, and that run is left out.
func readRuns(ctx context.Context, r observer.Reader, ids []string) (map[string]*observer.Run, map[string]bool, error) {
	const workers = 4
	var (
		mu    sync.Mutex
		out   = make(map[string]*observer.Run, len(ids))
		gone  = map[string]bool{}
		first error
		next  = make(chan string)
		wg    sync.WaitGroup
	)
	for range min(workers, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				run, err := r.Run(ctx, id)
				mu.Lock()
				switch {
				case errors.Is(err, observer.ErrNotFound):
					gone[id] = true
				case err != nil:
					if first == nil {
						first = err
					}
				default:
					out[id] = summarize(run)
				}
				mu.Unlock()
			}
		}()
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		next <- id
	}
	close(next)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return out, gone, first
}

// summarize returns a copy of run without its output and with each metric
// cut to the points that keep its last, smallest and largest value (what
// the table's metrics.NAME.last/min/max columns read), in logging order.
func summarize(run *observer.Run) *observer.Run {
	s := *run
	s.Output = nil
	s.Metrics = make([]observer.MetricSeries, 0, len(run.Metrics))
	for _, m := range run.Metrics {
		s.Metrics = append(s.Metrics, observer.MetricSeries{Name: m.Name, Points: rollupPoints(m.Points)})
	}
	return &s
}

// rollupPoints keeps the first smallest and first largest non-NaN point
// and the last point, in their order.
func rollupPoints(ps []observer.MetricPoint) []observer.MetricPoint {
	if len(ps) <= 3 {
		return append([]observer.MetricPoint(nil), ps...)
	}
	lo, hi := -1, -1
	for i, p := range ps {
		if math.IsNaN(p.Value) {
			continue
		}
		if lo < 0 || p.Value < ps[lo].Value {
			lo = i
		}
		if hi < 0 || p.Value > ps[hi].Value {
			hi = i
		}
	}
	keep := []int{}
	for _, i := range []int{lo, hi} {
		if i >= 0 && i != len(ps)-1 {
			keep = append(keep, i)
		}
	}
	if len(keep) == 2 && keep[0] > keep[1] {
		keep[0], keep[1] = keep[1], keep[0]
	}
	if len(keep) == 2 && keep[0] == keep[1] {
		keep = keep[:1]
	}
	out := make([]observer.MetricPoint, 0, 3)
	for _, i := range keep {
		out = append(out, ps[i])
	}
	return append(out, ps[len(ps)-1])
}

// sameSummary tells whether a run read again shows anything new in the
// table: its status, times, result, info or metrics' last points.
func sameSummary(a, b *observer.Run) bool {
	if a.Status != b.Status || !a.Heartbeat.Equal(b.Heartbeat) || !a.StopTime.Equal(b.StopTime) ||
		!a.StartTime.Equal(b.StartTime) || a.HasResult != b.HasResult || len(a.Metrics) != len(b.Metrics) ||
		len(a.Artifacts) != len(b.Artifacts) || len(a.Info) != len(b.Info) {
		return false
	}
	if a.HasResult && !equalJSON(a.Result, b.Result) {
		return false
	}
	for i := range a.Metrics {
		pa, pb := a.Metrics[i].Points, b.Metrics[i].Points
		if a.Metrics[i].Name != b.Metrics[i].Name || len(pa) != len(pb) {
			return false
		}
		if len(pa) > 0 && pa[len(pa)-1] != pb[len(pb)-1] {
			return false
		}
	}
	return equalJSON(a.Info, b.Info) && equalJSON(a.Config, b.Config)
}
