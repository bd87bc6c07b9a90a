package ui

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// A runCache keeps the few runs that pages look at, read whole (output and
// every metric point), so that zooming a chart or paging the output does
// not read the store again. A finished run stays until evicted; a running
// one is read again when older than the poll interval.
type runCache struct {
	srv      *Server
	mu       sync.Mutex
	entries  map[runKey]*fullRun
	inflight map[runKey]*readCall
	tick     uint64
}

type runKey struct {
	store int
	id    string
}

type readCall struct {
	done chan struct{}
	run  *fullRun
	err  error
}

// Cache bounds: a handful of runs, and not more metric points than about
// 1 GB of memory holds in the prepared series (24 bytes a point, twice for
// an unsorted series).
const (
	cacheRuns   = 16
	cachePoints = 20_000_000
	readTimeout = 2 * time.Minute
)

// fullRun is a run read whole, with its metrics prepared for decimation on
// first use.
type fullRun struct {
	store  int
	run    *observer.Run
	readAt time.Time
	cost   time.Duration // how long the read took
	points int
	used   uint64 // cache tick of the last use, for eviction

	mu     sync.Mutex
	series map[string]*series
}

func newRunCache(s *Server) *runCache {
	return &runCache{srv: s, entries: map[runKey]*fullRun{}, inflight: map[runKey]*readCall{}}
}

// finished tells whether a run can no longer change by itself.
func finished(r *observer.Run) bool {
	return r.Status != observer.StatusRunning && r.Status != observer.StatusQueued
}

// get returns a run read whole, from the cache when it is finished or was
// read less than maxAge ago. Concurrent gets of one run share one read.
func (c *runCache) get(ctx context.Context, store int, id string, maxAge time.Duration) (*fullRun, error) {
	k := runKey{store, id}
	c.mu.Lock()
	if e, ok := c.entries[k]; ok && (finished(e.run) || time.Since(e.readAt) < maxAge) {
		c.tick++
		e.used = c.tick
		c.mu.Unlock()
		return e, nil
	}
	call, ok := c.inflight[k]
	if !ok {
		call = &readCall{done: make(chan struct{})}
		c.inflight[k] = call
		go c.read(k, call)
	}
	c.mu.Unlock()
	select {
	case <-call.done:
		return call.run, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// read reads one run for everyone waiting on call, bounded by the server's
// life and a timeout rather than by the first requester's context.
func (c *runCache) read(k runKey, call *readCall) {
	ctx, cancel := context.WithTimeout(c.srv.ctx, readTimeout)
	defer cancel()
	st := c.srv.stores[k.store]
	start := time.Now()
	run, err := st.store.Reader.Run(ctx, k.id)
	if err == nil {
		call.run = &fullRun{store: k.store, run: run, readAt: time.Now(), cost: time.Since(start)}
		for _, m := range run.Metrics {
			call.run.points += len(m.Points)
		}
	} else {
		call.err = err
	}
	c.mu.Lock()
	delete(c.inflight, k)
	if err == nil {
		c.tick++
		call.run.used = c.tick
		c.entries[k] = call.run
		c.evict(k)
	} else if errors.Is(err, observer.ErrNotFound) {
		delete(c.entries, k)
	}
	c.mu.Unlock()
	close(call.done)
}

// evict drops the least recently used runs beyond the bounds, never keep.
func (c *runCache) evict(keep runKey) {
	for {
		total := 0
		for _, e := range c.entries {
			total += e.points
		}
		if len(c.entries) <= cacheRuns && total <= cachePoints {
			return
		}
		var oldest runKey
		var oldestUse uint64
		found := false
		for k, e := range c.entries {
			if k == keep {
				continue
			}
			if !found || e.used < oldestUse {
				oldest, oldestUse, found = k, e.used, true
			}
		}
		if !found {
			return
		}
		delete(c.entries, oldest)
	}
}

// series returns one metric of the run prepared for decimation, or nil.
func (f *fullRun) metric(name string) *series {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.series[name]; ok {
		return s
	}
	for _, m := range f.run.Metrics {
		if m.Name == name {
			s := newSeries(m.Points)
			if f.series == nil {
				f.series = map[string]*series{}
			}
			f.series[name] = s
			return s
		}
	}
	return nil
}

// series is one metric in columns: step, time (Unix seconds) and value, in
// logging order, with copies sorted by x made when a chart needs them.
type series struct {
	step, time, value []float64

	mu     sync.Mutex
	sorted map[string][2][]float64 // by x axis ("step", "time"): xs, ys
}

func newSeries(ps []observer.MetricPoint) *series {
	s := &series{
		step:  make([]float64, len(ps)),
		time:  make([]float64, len(ps)),
		value: make([]float64, len(ps)),
	}
	for i, p := range ps {
		s.step[i] = float64(p.Step)
		if !p.Time.IsZero() {
			s.time[i] = float64(p.Time.UnixMilli()) / 1000
		}
		s.value[i] = p.Value
	}
	return s
}

// byX returns xs and ys sorted by x for an axis, "step" or "time"; the
// columns themselves when already in order, else stable-sorted copies
// (steps logged out of order, a clock that stepped back).
func (s *series) byX(axis string) ([]float64, []float64) {
	xs := s.step
	if axis == "time" {
		xs = s.time
	}
	if sort.Float64sAreSorted(xs) {
		return xs, s.value
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.sorted[axis]; ok {
		return p[0], p[1]
	}
	idx := make([]int, len(xs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return xs[idx[a]] < xs[idx[b]] })
	sx, sy := make([]float64, len(xs)), make([]float64, len(xs))
	for i, j := range idx {
		sx[i], sy[i] = xs[j], s.value[j]
	}
	if s.sorted == nil {
		s.sorted = map[string][2][]float64{}
	}
	s.sorted[axis] = [2][]float64{sx, sy}
	return sx, sy
}

// runRef is a run named by a request: ?store=N&id=ID.
func (s *Server) runRef(storeParam, id string) (int, error) {
	if id == "" {
		return 0, errors.New("no run id: give ?id=")
	}
	if storeParam == "" {
		return 0, nil
	}
	var n int
	if _, err := fmt.Sscanf(storeParam, "%d", &n); err != nil || n < 0 || n >= len(s.stores) || fmt.Sprint(n) != storeParam {
		return 0, fmt.Errorf("store %q: give a number from 0 to %d", storeParam, len(s.stores)-1)
	}
	return n, nil
}

func equalJSON(a, b any) bool { return reflect.DeepEqual(a, b) }

// forget drops a run from the cache, after the UI changed it.
func (c *runCache) forget(k runKey) {
	c.mu.Lock()
	delete(c.entries, k)
	c.mu.Unlock()
}
