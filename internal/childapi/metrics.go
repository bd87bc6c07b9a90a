package childapi

import (
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// addPoint applies Sacred's step rule and queues the point. When twice
// MaxPending points wait, it blocks until DrainMetrics (or Close): the
// client's writes then block in the kernel, so the wrapper's memory stays
// bounded however fast the child logs.
func (s *Server) addPoint(name string, step int64, hasStep bool, v float64, t time.Time) {
	s.mu.Lock()
	for s.npending >= 2*s.o.MaxPending && !s.closing {
		s.cond.Wait()
	}
	// Sacred: the counter starts at -1; no step means counter+1; an
	// explicit step resets the counter.
	if !hasStep {
		last, ok := s.counter[name]
		if !ok {
			last = -1
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
}

// AddMetric queues a point as if a client had sent it; step < 0 means
// "no step". The scraper of --metric-pattern uses it.
func (s *Server) AddMetric(name string, value float64, step int64) {
	s.addPoint(name, step, step >= 0, value, time.Now().UTC())
}

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
