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
	stop, drained := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case <-f.s.Flush():
				f.s.DrainMetrics()
			case <-stop:
				return
			}
		}
	}()
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
	close(stop)
	<-drained
	f.s.DrainMetrics()
}
