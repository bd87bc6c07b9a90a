package childapi

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"sync"
)

// maxScrapeLine bounds the line the scraper holds; longer lines (progress
// bars without newlines, binary output) are skipped, not matched.
const maxScrapeLine = 64 << 10

// Scraper turns lines of the child's stdout that match a pattern into
// metrics (--metric-pattern). It is an io.WriteCloser fed with the raw
// output bytes; Close matches a last line without a newline.
type Scraper struct {
	s        *Server
	re       *regexp.Regexp
	iName    int
	iValue   int
	iStep    int // -1 when the pattern has no step group
	mu       sync.Mutex
	buf      []byte
	skipping bool // inside a line longer than maxScrapeLine
}

// NewScraper compiles pattern, which must have the named groups "name" and
// "value" and may have "step".
func NewScraper(pattern string, s *Server) (io.WriteCloser, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("--metric-pattern: %w", err)
	}
	sc := &Scraper{s: s, re: re, iName: re.SubexpIndex("name"), iValue: re.SubexpIndex("value"), iStep: re.SubexpIndex("step")}
	if sc.iName < 0 || sc.iValue < 0 {
		return nil, fmt.Errorf("--metric-pattern %q needs the named groups (?P<name>...) and (?P<value>...)", pattern)
	}
	return sc, nil
}

// Write never fails: scraping must not disturb the output it watches.
func (sc *Scraper) Write(p []byte) (int, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if !sc.skipping {
				sc.buf = append(sc.buf, p...)
				if len(sc.buf) > maxScrapeLine {
					sc.buf, sc.skipping = sc.buf[:0], true
				}
			}
			break
		}
		if sc.skipping {
			sc.skipping = false
		} else if len(sc.buf) == 0 {
			sc.match(p[:i]) // the whole line is in p: no copy
		} else {
			sc.buf = append(sc.buf, p[:i]...)
			if len(sc.buf) <= maxScrapeLine {
				sc.match(sc.buf)
			}
			sc.buf = sc.buf[:0]
		}
		p = p[i+1:]
	}
	return n, nil
}

// Close matches the last line when the output did not end in a newline.
func (sc *Scraper) Close() error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if !sc.skipping && len(sc.buf) > 0 {
		sc.match(sc.buf)
	}
	sc.buf, sc.skipping = nil, false
	return nil
}

func (sc *Scraper) match(line []byte) {
	line = bytes.TrimSuffix(line, []byte("\r"))
	// Progress output folds lines with \r: only the last segment counts.
	if i := bytes.LastIndexByte(line, '\r'); i >= 0 {
		line = line[i+1:]
	}
	m := sc.re.FindSubmatchIndex(line)
	if m == nil {
		return
	}
	group := func(i int) string {
		if i < 0 || m[2*i] < 0 {
			return ""
		}
		return string(line[m[2*i]:m[2*i+1]])
	}
	name, val := group(sc.iName), group(sc.iValue)
	if err := CheckMetricName(name); err != nil {
		sc.s.warnf("--metric-pattern: %v; point dropped", err)
		return
	}
	v, err := strconv.ParseFloat(val, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		sc.s.warnf("--metric-pattern: metric %q: value %q is not a finite number; point dropped", name, val)
		return
	}
	step := int64(-1)
	if st := group(sc.iStep); st != "" {
		n, err := strconv.ParseInt(st, 10, 64)
		if err != nil || n < 0 {
			sc.s.warnf("--metric-pattern: metric %q: step %q is not an integer >= 0; point dropped", name, st)
			return
		}
		step = n
	}
	if err := sc.s.AddMetric(name, v, step); err != nil {
		sc.s.warnf("--metric-pattern: %v", err)
	}
}
