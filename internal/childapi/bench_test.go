package childapi

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkSocketMetrics measures metric points per second from one client
// over the socket, parsing and step assignment included.
func BenchmarkSocketMetrics(b *testing.B) {
	f := newServer(b, nil)
	stop := drainOnFlush(f.s)
	c, err := DialPath(f.s.Path())
	if err != nil {
		b.Fatal(err)
	}
	lines := make([][]byte, 1000)
	for i := range lines {
		lines[i] = fmt.Appendf(nil, `{"kind": "metric", "name": "loss", "value": %v, "step": %d}`, 1/float64(i+3), i)
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		c.WriteLine(lines[i%len(lines)])
	}
	if err := c.Close(); err != nil { // returns once every line is handled
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "points/s")
	b.StopTimer()
	stop()
	f.s.DrainMetrics()
}

// drainOnFlush does the runner's part: drain whenever the server asks. The
// returned func stops it. Points drained are dropped.
func drainOnFlush(s *Server) (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-s.Flush():
				s.DrainMetrics()
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); <-stopped }
}
