package file

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/sacredjson"
)

// metricsFile keeps metrics.json of one run:
//
//	{"<name>": {"steps": [...], "timestamps": [...], "values": [...]}, ...}
//
// Sacred re-reads, re-parses and re-encodes the whole file on every beat.
// Here the file is still replaced whole (atomically), but the old points
// are never decoded or encoded again: the writer remembers where the body of
// each array lies in the file it wrote last, copies those byte ranges from
// the old file into the new one and encodes only the new points after them.
// A beat costs O(new points) of encoding and one sequential copy of the
// file; memory is O(number of series).
//
// When a write fails (disk full), the new points are dropped and the error
// returned: the runner sends the same points again with the next beat (see
// observer.Observer). The file on disk is the previous one, untouched; the
// writer forgets what it knew and reads the file back before the next
// write.
type metricsFile struct {
	path    string
	written bool  // the file was written (or must be read back, size -1)
	size    int64 // its size as we wrote it; -1: unknown
	series  []*series
	byName  map[string]*series
}

// The three arrays of a series, in file (sorted key) order.
const (
	arrSteps = iota
	arrTimestamps
	arrValues
)

var arrayKeys = [3]string{"steps", "timestamps", "values"}

type series struct {
	name string // valid UTF-8
	n    int    // points in the file
	// body is, per array, the byte range in the current file between "["
	// and the closing "\n    ]": the elements with their separators.
	body [3]struct{ off, len int64 }
	// pending holds new elements, each as ",\n      <value>".
	pending [3][]byte
	npend   int
}

const elemSep = ",\n      " // before each element of a series array (depth 3)

func newMetricsFile(path string) *metricsFile {
	return &metricsFile{path: path, byName: map[string]*series{}}
}

func (m *metricsFile) get(name string) *series {
	s := m.byName[name]
	if s == nil {
		s = &series{name: name}
		m.byName[name] = s
		i, _ := slices.BinarySearchFunc(m.series, name, func(s *series, n string) int { return strings.Compare(s.name, n) })
		m.series = slices.Insert(m.series, i, s)
	}
	return s
}

// add queues the points of ev.
func (m *metricsFile) add(ev *observer.MetricsEvent) {
	for _, ms := range ev.Metrics {
		if len(ms.Points) == 0 {
			continue
		}
		s := m.get(cleanName(ms.Name))
		for _, p := range ms.Points {
			s.pending[arrSteps] = strconv.AppendInt(append(s.pending[arrSteps], elemSep...), p.Step, 10)
			s.pending[arrTimestamps] = sacredjson.AppendString(append(s.pending[arrTimestamps], elemSep...), sacredjson.FormatTime(p.Time))
			s.pending[arrValues] = sacredjson.AppendFloat(append(s.pending[arrValues], elemSep...), p.Value)
			s.npend++
		}
	}
}

// cleanName makes a metric name valid UTF-8 the way sacredjson writes keys:
// each invalid byte becomes U+FFFD.
func cleanName(name string) string {
	return string([]rune(name))
}

func (m *metricsFile) dirty() bool {
	if !m.written || m.size < 0 {
		return true
	}
	for _, s := range m.series {
		if s.npend > 0 {
			return true
		}
	}
	return false
}

// flush writes the file when it does not exist yet or points are pending.
// On failure the pending points are dropped (they will be sent again).
func (m *metricsFile) flush() error {
	if !m.dirty() {
		return nil
	}
	if err := m.write(); err != nil {
		m.series, m.byName = nil, map[string]*series{}
		m.written, m.size = true, -1
		return err
	}
	return nil
}

func (m *metricsFile) write() error {
	var old *os.File
	if m.written {
		f, err := os.Open(m.path)
		if err == nil {
			if fi, err := f.Stat(); err != nil || fi.Size() != m.size {
				f.Close()
				f = nil
			}
		}
		if f == nil {
			// Someone else changed the file: read it the slow way.
			if err := m.reload(); err != nil {
				return err
			}
		} else {
			old = f
			defer old.Close()
		}
	}
	pf, err := newPendingFile(m.path)
	if err != nil {
		return fmt.Errorf("writing %s: %w", m.path, err)
	}
	defer pf.cleanup()
	cw := &countWriter{w: bufio.NewWriterSize(pf, 64<<10)}
	bodies := make([][3]struct{ off, len int64 }, len(m.series))
	cw.str("{")
	for i, s := range m.series {
		if i > 0 {
			cw.str(",")
		}
		cw.str("\n  ")
		cw.bytes(sacredjson.AppendString(nil, s.name))
		cw.str(": {")
		total := s.n + s.npend
		for a := range 3 {
			if a > 0 {
				cw.str(",")
			}
			cw.str("\n    \"" + arrayKeys[a] + "\": [")
			start := cw.n
			if s.n > 0 && old != nil {
				if _, err := io.Copy(cw, io.NewSectionReader(old, s.body[a].off, s.body[a].len)); err != nil {
					return fmt.Errorf("writing %s: copying old points: %w", m.path, err)
				}
			}
			p := s.pending[a]
			if s.n == 0 && len(p) > 0 {
				p = p[1:] // the first element has no comma
			}
			cw.bytes(p)
			bodies[i][a].off, bodies[i][a].len = start, cw.n-start
			if total > 0 {
				cw.str("\n    ]")
			} else {
				cw.str("]")
			}
		}
		cw.str("\n  }")
	}
	if len(m.series) > 0 {
		cw.str("\n}")
	} else {
		cw.str("}")
	}
	if cw.err == nil {
		cw.err = cw.w.(*bufio.Writer).Flush()
	}
	if cw.err != nil {
		return fmt.Errorf("writing %s: %w", m.path, cw.err)
	}
	if err := pf.replace(false); err != nil {
		return fmt.Errorf("writing %s: %w", m.path, err)
	}
	for i, s := range m.series {
		s.body = bodies[i]
		s.n += s.npend
		s.npend = 0
		for a := range s.pending {
			s.pending[a] = s.pending[a][:0]
		}
	}
	m.written, m.size = true, cw.n
	return nil
}

// reload reads the file as it is on disk (if it is there) and makes all of
// its points pending again, before the points already pending.
func (m *metricsFile) reload() error {
	data, err := os.ReadFile(m.path)
	if err != nil && !isNotExist(err) {
		return fmt.Errorf("reading %s: %w", m.path, err)
	}
	pend := m.byName
	m.series, m.byName, m.written = nil, map[string]*series{}, false
	if err == nil {
		v, err := sacredjson.Unmarshal(data)
		if err != nil {
			return fmt.Errorf("reading %s: %w", m.path, err)
		}
		all, _ := v.(map[string]any)
		for name, sv := range all {
			sm, _ := sv.(map[string]any)
			s := m.get(cleanName(name))
			for a, key := range arrayKeys {
				list, _ := sm[key].([]any)
				for _, x := range list {
					s.pending[a], err = sacredjson.AppendValue(append(s.pending[a], elemSep...), x, 3)
					if err != nil {
						return fmt.Errorf("reading %s: %w", m.path, err)
					}
				}
				s.npend = max(s.npend, len(list))
			}
		}
	}
	for name, old := range pend {
		s := m.get(name)
		for a := range 3 {
			s.pending[a] = append(s.pending[a], old.pending[a]...)
		}
		s.npend += old.npend
	}
	return nil
}

// countWriter counts bytes and keeps the first error.
type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

func (c *countWriter) str(s string)   { _, _ = io.WriteString(c, s) }
func (c *countWriter) bytes(b []byte) { _, _ = c.Write(b) }
