package layout

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/sacredjson"
)

// Metrics builds metrics.json of one run:
//
//	{"<name>": {"steps": [...], "timestamps": [...], "values": [...]}, ...}
//
// Sacred re-reads, re-parses and re-encodes the whole file on every beat.
// Metrics instead remembers where the body of each array lies in the
// content it encoded last; the next content is those byte ranges copied
// from the old content, with only the new points encoded after them. A
// beat costs O(new points) of encoding and one sequential copy; memory is
// O(number of series). It does no I/O of its own, so a store on files and
// one on blobs use it alike:
//
//	if m.Unknown() { m.Load(current content, or nil) }
//	n, err := m.Encode(w, old)        // w: the new file or object, old: the current one
//	if the new content replaced the old: m.Commit() else m.Abort()
//
// Abort drops the points of the failed write (the caller's retry sends
// them again, see observer.Observer) and forgets the old content's layout,
// so the next write starts from Load.
type Metrics struct {
	known   bool  // the layout of the current content is known (false: Load first)
	size    int64 // size of the current content; 0 when there is none
	series  []*series
	byName  map[string]*series
	staged  [][3]span // bodies of the content being encoded, applied by Commit
	stagedN int64
}

type span struct{ off, len int64 }

// The three arrays of a series, in file (sorted key) order.
const (
	arrSteps = iota
	arrTimestamps
	arrValues
)

var arrayKeys = [3]string{"steps", "timestamps", "values"}

type series struct {
	name string // valid UTF-8
	n    int    // points in the current content
	// body is, per array, the byte range in the current content between
	// "[" and the closing "\n    ]": the elements with their separators.
	body [3]span
	// pending holds new elements, each as ",\n      <value>".
	pending [3][]byte
	npend   int
}

const elemSep = ",\n      " // before each element of a series array (depth 3)

// NewMetrics returns a writer for a run whose metrics.json does not exist
// yet. For an existing one, call Load first.
func NewMetrics() *Metrics {
	return &Metrics{known: true, byName: map[string]*series{}}
}

func (m *Metrics) get(name string) *series {
	s := m.byName[name]
	if s == nil {
		s = &series{name: name}
		m.byName[name] = s
		i, _ := slices.BinarySearchFunc(m.series, name, func(s *series, n string) int { return strings.Compare(s.name, n) })
		m.series = slices.Insert(m.series, i, s)
	}
	return s
}

// Add queues the points of ev.
func (m *Metrics) Add(ev *observer.MetricsEvent) {
	for _, ms := range ev.Metrics {
		if len(ms.Points) == 0 {
			continue
		}
		s := m.get(cleanName(ms.Name))
		for _, p := range ms.Points {
			s.pending[arrSteps] = strconv.AppendInt(append(s.pending[arrSteps], elemSep...), p.Step, 10)
			s.pending[arrTimestamps] = sacredjson.AppendString(append(s.pending[arrTimestamps], elemSep...), FormatTime(p.Time))
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

// Pending is the number of points not written yet.
func (m *Metrics) Pending() int {
	n := 0
	for _, s := range m.series {
		n += s.npend
	}
	return n
}

// Dirty reports that there is something to write: pending points, or no
// content committed yet (metrics.json is written at the first beat even
// with no metrics, as Sacred does: "{}").
func (m *Metrics) Dirty() bool { return !m.known || m.size == 0 || m.Pending() > 0 }

// Unknown reports that the layout of the current content is not known
// (after Abort, or when someone else changed it): call Load before Encode.
func (m *Metrics) Unknown() bool { return !m.known }

// Size is the size of the content last committed (0 when none). A store
// that finds the current content at another size calls Load.
func (m *Metrics) Size() int64 { return m.size }

// Load reads the current content (nil when there is none): its points
// become pending, before the points already pending, and the next Encode
// writes them all.
func (m *Metrics) Load(data []byte) error {
	pend := m.byName
	m.series, m.byName, m.size, m.known = nil, map[string]*series{}, 0, true
	if data != nil {
		v, err := sacredjson.Unmarshal(data)
		if err != nil {
			m.known = false
			return fmt.Errorf("reading %s: %w", MetricsFile, err)
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
						m.known = false
						return fmt.Errorf("reading %s: %w", MetricsFile, err)
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

// Encode writes the new content to w: the old points copied from old (the
// current content, as last committed; unused when there is none) and the
// pending points after them. It returns the bytes written. Nothing changes
// until Commit or Abort.
func (m *Metrics) Encode(w io.Writer, old io.ReaderAt) (int64, error) {
	if !m.known {
		return 0, fmt.Errorf("writing %s: the current content must be loaded first", MetricsFile)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := &countWriter{w: bw}
	bodies := make([][3]span, len(m.series))
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
			if s.n > 0 {
				if old == nil {
					return cw.n, fmt.Errorf("writing %s: the old content is needed", MetricsFile)
				}
				if _, err := io.Copy(cw, io.NewSectionReader(old, s.body[a].off, s.body[a].len)); err != nil && cw.err == nil {
					return cw.n, fmt.Errorf("writing %s: copying old points: %w", MetricsFile, err)
				}
			}
			p := s.pending[a]
			if s.n == 0 && len(p) > 0 {
				p = p[1:] // the first element has no comma
			}
			cw.bytes(p)
			bodies[i][a] = span{start, cw.n - start}
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
		cw.err = bw.Flush()
	}
	if cw.err != nil {
		return cw.n, fmt.Errorf("writing %s: %w", MetricsFile, cw.err)
	}
	m.staged, m.stagedN = bodies, cw.n
	return cw.n, nil
}

// Commit records that the content of the last Encode replaced the old
// one: its points are no longer pending.
func (m *Metrics) Commit() {
	for i, s := range m.series {
		s.body = m.staged[i]
		s.n += s.npend
		s.npend = 0
		for a := range s.pending {
			s.pending[a] = s.pending[a][:0]
		}
	}
	m.size = m.stagedN
	m.staged = nil
}

// Abort records that the write failed: the pending points are dropped
// (the caller sends them again) and the old content must be loaded before
// the next Encode.
func (m *Metrics) Abort() {
	m.series, m.byName = nil, map[string]*series{}
	m.known, m.size, m.staged = false, 0, nil
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
