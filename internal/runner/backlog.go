package runner

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Bounds of one observer's metric backlog.
const (
	// memPoints is how many points of one observer's backlog stay in
	// memory (about 40 bytes each); beyond it the backlog goes to a file.
	memPoints = 100_000
	// deliverPoints bounds the points handed to one LogMetrics call, so
	// that an observer catching up never gets its whole backlog at once.
	deliverPoints = 100_000
)

// backlog holds the metric points not yet handed to one observer, in the
// order they were logged. The runner drains the child API into every
// observer's backlog at each beat, so one slow observer holds back neither
// the others nor the child's socket writes. While an observer lags, its
// backlog stays in memory up to memPoints; beyond that the batches are
// appended to a spill file in the run's private directory and read back in
// order as the observer catches up, so memory stays bounded per observer
// whatever the rate of points and however long the observer lags.
//
// push is called by the run loop and take by the observer's driver.
type backlog struct {
	mu    sync.Mutex
	dir   string // where the spill file is created; "" keeps all in memory
	mem   []observer.MetricSeries
	nmem  int64
	spill *spillFile // nil until needed
	nfile int64      // points in the spill file not yet taken
	err   error      // the first spill failure, reported once
}

func newBacklog(dir string) *backlog { return &backlog{dir: dir} }

// push appends a batch of points. It reports the first failure to spill
// (for example a full disk): from then on the backlog stays in memory, so
// nothing is lost, and the spill file is not written again.
func (b *backlog) push(ms []observer.MetricSeries) error {
	n := countPoints(ms)
	if n == 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var err error
	if b.dir != "" && b.err == nil && (b.nfile > 0 || b.nmem+n > memPoints) {
		// Everything in the file is older than what is in memory, so
		// memory goes to the file first.
		if b.nmem > 0 {
			if err = b.toFile(b.mem, b.nmem); err == nil {
				b.mem, b.nmem = nil, 0
			}
		}
		if err == nil {
			if err = b.toFile(ms, n); err == nil {
				return nil
			}
		}
		b.err = err
	}
	b.mem, b.nmem = mergeSeries(b.mem, ms), b.nmem+n
	return err
}

func (b *backlog) toFile(ms []observer.MetricSeries, n int64) error {
	if b.spill == nil {
		f, err := os.CreateTemp(b.dir, "metrics-*.spill")
		if err != nil {
			return fmt.Errorf("spill metric points to disk: %w", err)
		}
		b.spill = &spillFile{f: f}
	}
	if err := b.spill.append(ms); err != nil {
		return fmt.Errorf("spill metric points to disk: %w", err)
	}
	b.nfile += n
	return nil
}

// points is the number of points waiting.
func (b *backlog) points() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.nmem + b.nfile
}

// take removes and returns the oldest points: about max of them (whole
// spilled batches at a time), at least one batch when any is waiting.
func (b *backlog) take(max int64) ([]observer.MetricSeries, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.nfile > 0 {
		var out []observer.MetricSeries
		var n int64
		for b.nfile > 0 && n < max {
			ms, err := b.spill.next()
			if err != nil {
				// The rest of the file cannot be read back: those
				// points are lost, and the caller says so.
				lost := b.nfile
				b.nfile = 0
				b.spill.reset()
				return out, fmt.Errorf("read back spilled metric points: %w (%d points lost)", err, lost)
			}
			k := countPoints(ms)
			out, n, b.nfile = mergeSeries(out, ms), n+k, b.nfile-k
		}
		if b.nfile == 0 {
			b.spill.reset()
		}
		return out, nil
	}
	if b.nmem <= max {
		out := b.mem
		b.mem, b.nmem = nil, 0
		return out, nil
	}
	out, rest := splitSeries(b.mem, max)
	b.mem, b.nmem = rest, b.nmem-max
	return out, nil
}

// close removes the spill file.
func (b *backlog) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.spill != nil {
		b.spill.f.Close()
		os.Remove(b.spill.f.Name())
		b.spill = nil
	}
	b.mem, b.nmem, b.nfile = nil, 0, 0
}

// splitSeries returns the first n points of ms (n < the points in ms) and
// the rest, keeping each name's order.
func splitSeries(ms []observer.MetricSeries, n int64) (head, tail []observer.MetricSeries) {
	for i, s := range ms {
		if n == 0 {
			return head, append(tail, ms[i:]...)
		}
		if int64(len(s.Points)) <= n {
			head = append(head, s)
			n -= int64(len(s.Points))
			continue
		}
		head = append(head, observer.MetricSeries{Name: s.Name, Points: s.Points[:n:n]})
		tail = append(tail, observer.MetricSeries{Name: s.Name, Points: s.Points[n:]})
		n = 0
	}
	return head, tail
}

// spillFile is an append-only file of metric batches read back from the
// front. Each batch is a record:
//
//	uvarint body length, then the body:
//	uvarint series count; per series: uvarint name length, name,
//	uvarint point count, then per point: int64 step, float64 value,
//	int64 Unix seconds, int32 nanoseconds (little endian)
//
// Times are UTC, as the child API makes them.
type spillFile struct {
	f          *os.File
	wOff, rOff int64
	buf        []byte
	r          *bufio.Reader
}

func (s *spillFile) append(ms []observer.MetricSeries) error {
	body := s.buf[:0]
	body = binary.AppendUvarint(body, uint64(len(ms)))
	for _, m := range ms {
		body = binary.AppendUvarint(body, uint64(len(m.Name)))
		body = append(body, m.Name...)
		body = binary.AppendUvarint(body, uint64(len(m.Points)))
		for _, p := range m.Points {
			body = binary.LittleEndian.AppendUint64(body, uint64(p.Step))
			body = binary.LittleEndian.AppendUint64(body, math.Float64bits(p.Value))
			body = binary.LittleEndian.AppendUint64(body, uint64(p.Time.Unix()))
			body = binary.LittleEndian.AppendUint32(body, uint32(p.Time.Nanosecond()))
		}
	}
	rec := binary.AppendUvarint(make([]byte, 0, len(body)+binary.MaxVarintLen64), uint64(len(body)))
	rec = append(rec, body...)
	s.buf = body[:0]
	if _, err := s.f.WriteAt(rec, s.wOff); err != nil {
		return err
	}
	s.wOff += int64(len(rec))
	return nil
}

// next reads the oldest batch not yet read.
func (s *spillFile) next() ([]observer.MetricSeries, error) {
	if s.r == nil {
		s.r = bufio.NewReaderSize(io.NewSectionReader(s.f, s.rOff, math.MaxInt64-s.rOff), 1<<16)
	}
	cr := &countingReader{r: s.r}
	size, err := binary.ReadUvarint(cr)
	if err != nil {
		return nil, noEOF(err)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(cr, body); err != nil {
		return nil, noEOF(err)
	}
	s.rOff += cr.n
	return decodeBatch(body)
}

// reset empties the file once everything was read, so it does not grow
// over a long run.
func (s *spillFile) reset() {
	s.f.Truncate(0)
	s.wOff, s.rOff, s.r = 0, 0, nil
}

func decodeBatch(b []byte) ([]observer.MetricSeries, error) {
	bad := errors.New("corrupt spill record")
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	nseries, ok := uv()
	if !ok {
		return nil, bad
	}
	ms := make([]observer.MetricSeries, 0, min(nseries, 1024))
	for i := uint64(0); i < nseries; i++ {
		nlen, ok := uv()
		if !ok || nlen > uint64(len(b)) {
			return nil, bad
		}
		name := string(b[:nlen])
		b = b[nlen:]
		npts, ok := uv()
		if !ok || npts > uint64(len(b))/28 {
			return nil, bad
		}
		pts := make([]observer.MetricPoint, npts)
		for j := range pts {
			pts[j] = observer.MetricPoint{
				Step:  int64(binary.LittleEndian.Uint64(b)),
				Value: math.Float64frombits(binary.LittleEndian.Uint64(b[8:])),
				Time:  time.Unix(int64(binary.LittleEndian.Uint64(b[16:])), int64(binary.LittleEndian.Uint32(b[24:]))).UTC(),
			}
			b = b[28:]
		}
		ms = append(ms, observer.MetricSeries{Name: name, Points: pts})
	}
	return ms, nil
}

type countingReader struct {
	r *bufio.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

// noEOF turns an end of file inside the spill file (which the counts say
// holds more) into an error that says so.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
