package childapi

import (
	"fmt"
	"math"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// addPoint applies Sacred's step rule and queues the point.
//
// A client's point (tap false) waits while twice MaxPending points wait,
// until DrainMetrics (or Close): the client's writes then block in the
// kernel, so the wrapper's memory stays bounded however fast the child logs.
//
// A point of the output tap (tap true, --metric-pattern) never waits: the
// tap is fed by the copier of the child's stdout, which must never block
// (the child's output would stop, and the runner waits for the copier at
// the end). Past tapLimit points waiting (observers far behind) it is
// dropped and counted instead; the line itself is still in the captured
// output.
//
// It refuses an implicit step after the largest step there is
// (math.MaxInt64): counting on would wrap to a negative step.
func (s *Server) addPoint(name string, step int64, hasStep bool, v float64, t time.Time, tap bool) error {
	s.mu.Lock()
	if tap && s.npending >= s.tapLimit() {
		s.tapDropped++
		first := s.tapDropped == 1
		s.mu.Unlock()
		if first {
			s.warnf("--metric-pattern: %d metric points are waiting for the observers; scraped points are dropped until they catch up (counted at the end)", s.tapLimit())
		}
		return nil
	}
	for !tap && s.npending >= 2*s.o.MaxPending && !s.closing {
		s.cond.Wait()
	}
	// Sacred: the counter starts at -1; no step means counter+1; an
	// explicit step resets the counter.
	if !hasStep {
		last, ok := s.counter[name]
		if !ok {
			last = -1
		}
		if last == math.MaxInt64 {
			s.mu.Unlock()
			return fmt.Errorf("metric %q: the last step is %d, the largest there is, so the next one cannot be counted; give an explicit step; point dropped", name, last)
		}
		step = last + 1
	}
	s.counter[name] = step
	i, ok := s.index[name]
	if !ok {
		i = len(s.pending)
		s.index[name] = i
		s.pending = append(s.pending, observer.MetricSeries{Name: name})
	}
	s.pending[i].Points = append(s.pending[i].Points, observer.MetricPoint{Step: step, Value: v, Time: t})
	s.npending++
	full := s.npending >= s.o.MaxPending
	s.mu.Unlock()
	if full {
		select {
		case s.flush <- struct{}{}:
		default: // a flush is already asked for
		}
	}
	return nil
}

// AddMetric queues a point scraped from the child's output
// (--metric-pattern); step < 0 means "no step". It never blocks; see
// addPoint for what happens when the observers are far behind.
func (s *Server) AddMetric(name string, value float64, step int64) error {
	return s.addPoint(name, step, step >= 0, value, time.Now().UTC(), true)
}

// tapLimit is how many points may wait before the output tap drops its
// points: beyond the bound at which clients wait, so that a tap keeps
// working while clients are held back, and bounded (about 40 bytes a
// point).
func (s *Server) tapLimit() int { return 4 * s.o.MaxPending }

// DrainMetrics returns the points received since the last drain, grouped
// by name in first-appearance order, steps already assigned.
func (s *Server) DrainMetrics() []observer.MetricSeries {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.pending
	s.pending = nil
	clear(s.index)
	s.npending = 0
	s.cond.Broadcast()
	return out
}

// Pending is the number of points waiting for DrainMetrics.
func (s *Server) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.npending
}
