package childapi

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sacred-go/sacred/pkg/observer"
)

// wireMsg is one line of the protocol. Values stay raw until the kind says
// how to read them, which keeps the common metric line cheap.
type wireMsg struct {
	Kind        string          `json:"kind"`
	Name        string          `json:"name"`
	Key         string          `json:"key"`
	Value       json.RawMessage `json:"value"`
	Step        json.RawMessage `json:"step"`
	Time        string          `json:"time"`
	Path        string          `json:"path"`
	ContentType string          `json:"content_type"`
	Metadata    json.RawMessage `json:"metadata"`
}

var syncReply = []byte(`{"kind":"sync"}` + "\n")

// handleLine processes one line. It reports whether the line is a sync,
// which the caller answers.
func (s *Server) handleLine(line []byte, conn, lineNo int, intern *interner) (isSync bool) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return false // blank lines are harmless
	}
	var m wireMsg
	if !parseFlat(line, &m, intern.get) {
		m = wireMsg{}
		if err := json.Unmarshal(line, &m); err != nil {
			s.warnf("client %d line %d: %s; line ignored: %s", conn, lineNo, describeJSONError(line, err), clip(line))
			return false
		}
	}
	var err error
	switch m.Kind {
	case "metric":
		err = s.handleMetric(&m)
	case "info":
		err = s.handleInfo(&m)
	case "result":
		err = s.handleResult(&m)
	case "artifact":
		err = s.handleArtifact(&m, conn)
	case "resource":
		err = s.handleResource(&m, conn)
	case "sync":
		// Lines of one connection are handled in order, so everything sent
		// before this one is processed: tell the client.
		return true
	case "":
		err = errors.New(`no "kind" field; want one of metric, info, result, artifact, resource`)
	default:
		err = fmt.Errorf("unknown kind %q; want one of metric, info, result, artifact, resource", m.Kind)
	}
	if err != nil {
		s.warnf("client %d line %d: %v", conn, lineNo, err)
	}
	return false
}

// interner reuses the strings of one connection (metric names, kinds), so
// that a metric line allocates no new string. It is per connection: no lock.
type interner map[string]string

func (in *interner) get(b []byte) string {
	if s, ok := (*in)[string(b)]; ok { // no allocation for the lookup
		return s
	}
	s := string(b)
	if len(*in) < 1024 { // bounded: a child that makes up names does not grow it
		(*in)[s] = s
	}
	return s
}

// describeJSONError names the usual culprits: NaN and Infinity, which
// Python's json module writes but JSON does not allow.
func describeJSONError(line []byte, err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) && se.Offset > 0 && int(se.Offset) <= len(line) {
		rest := line[se.Offset-1:]
		for _, tok := range []string{"NaN", "Infinity"} {
			if bytes.HasPrefix(rest, []byte(tok)) {
				return tok + " is not a finite number (and not valid JSON)"
			}
		}
	}
	return "malformed JSON (" + err.Error() + ")"
}

// clip shortens a line for a warning.
func clip(b []byte) string {
	const max = 80
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "..."
	}
	return strconv.Quote(string(b))
}

// CheckMetricName reports why name cannot name a metric in every store,
// or nil. Sacred takes any string; the stores cannot keep a NUL byte
// (PostgreSQL's text, MongoDB's keys) nor bytes that are not UTF-8.
func CheckMetricName(name string) error {
	switch {
	case name == "":
		return errors.New("metric name is empty")
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("metric name %q contains a NUL byte, which no store can keep", name)
	case !utf8.ValidString(name):
		return fmt.Errorf("metric name %q is not valid UTF-8", name)
	}
	return nil
}

func (s *Server) handleMetric(m *wireMsg) error {
	if m.Name == "" {
		return errors.New(`metric without "name"; point dropped`)
	}
	if err := CheckMetricName(m.Name); err != nil {
		return fmt.Errorf("%w; point dropped", err)
	}
	v, err := metricValue(m.Value)
	if err != nil {
		return fmt.Errorf("metric %q: %w; point dropped", m.Name, err)
	}
	step, hasStep, err := metricStep(m.Step)
	if err != nil {
		return fmt.Errorf("metric %q: %w; point dropped", m.Name, err)
	}
	t := time.Now().UTC()
	if m.Time != "" {
		if t, err = parseTime(m.Time); err != nil {
			return fmt.Errorf("metric %q: %w; point dropped", m.Name, err)
		}
	}
	return s.addPoint(m.Name, step, hasStep, v, t, false)
}

func metricValue(raw json.RawMessage) (float64, error) {
	if len(raw) == 0 {
		return 0, errors.New(`no "value"`)
	}
	switch raw[0] {
	case 'n':
		// JavaScript's JSON.stringify writes NaN and Infinity as null.
		return 0, errors.New("value is null (NaN or Infinity?); want a finite number")
	case '"':
		return 0, fmt.Errorf("value %s is a string; want a number", clip(raw))
	case 't', 'f', '{', '[':
		return 0, fmt.Errorf("value %s is not a number", clip(raw))
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("value %s is not a finite float64", clip(raw))
	}
	return v, nil
}

func metricStep(raw json.RawMessage) (int64, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		if n < 0 {
			return 0, false, fmt.Errorf("step %d is negative; want an integer >= 0", n)
		}
		return n, true, nil
	}
	// 7.0 is a fine step (numpy and JavaScript produce those); 7.5 is not.
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || f != math.Trunc(f) || f < 0 || f >= 1<<63 {
		return 0, false, fmt.Errorf("step %s is not an integer >= 0", clip(raw))
	}
	return int64(f), true, nil
}

// timeLayouts are the ISO-8601 forms accepted for "time". Without a zone
// the time is UTC, as Python's datetime.utcnow().isoformat() means it.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
}

func parseTime(v string) (time.Time, error) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q is not ISO-8601 (e.g. 2024-05-01T12:00:00.5Z)", v)
}

func (s *Server) handleInfo(m *wireMsg) error {
	if m.Key == "" {
		return errors.New(`info without "key"; ignored`)
	}
	parts := strings.Split(m.Key, ".")
	for _, p := range parts {
		if p == "" {
			return fmt.Errorf("info key %q has an empty part; write keys like a.b.c", m.Key)
		}
	}
	if strings.IndexByte(m.Key, 0) >= 0 {
		return fmt.Errorf("info key %q contains a NUL byte, which no store can keep; ignored", m.Key)
	}
	if len(m.Value) == 0 {
		return fmt.Errorf(`info %q without "value"; ignored`, m.Key)
	}
	v, err := decodeJSON(m.Value)
	if err != nil {
		return fmt.Errorf("info %q: %w; ignored", m.Key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.info
	for i, p := range parts[:len(parts)-1] {
		next, ok := d[p]
		if !ok {
			nm := map[string]any{}
			d[p] = nm
			d = nm
			continue
		}
		nm, ok := next.(map[string]any)
		if !ok {
			return fmt.Errorf("info %q: %q already holds a value that is not an object; ignored", m.Key, strings.Join(parts[:i+1], "."))
		}
		d = nm
	}
	d[parts[len(parts)-1]] = v
	return nil
}

func (s *Server) handleResult(m *wireMsg) error {
	if len(m.Value) == 0 {
		return errors.New(`result without "value"; ignored`)
	}
	v, err := decodeJSON(m.Value)
	if err != nil {
		return fmt.Errorf("result: %w; ignored", err)
	}
	s.SetResult(v)
	return nil
}

// CheckArtifactName reports why name cannot name an artifact inside the
// run directory, or nil.
func CheckArtifactName(name string) error {
	switch {
	case name == "" || name == ".":
		return errors.New("artifact name is empty")
	case strings.ContainsRune(name, 0):
		return errors.New("artifact name contains a NUL byte")
	case path.IsAbs(name) || filepath.IsAbs(name):
		return fmt.Errorf("artifact name %q is absolute; give a name relative to the run directory", name)
	}
	for _, p := range strings.Split(filepath.ToSlash(name), "/") {
		if p == ".." {
			return fmt.Errorf("artifact name %q escapes the run directory (..); give a plain name", name)
		}
	}
	return nil
}

// resolve makes a child's path absolute against the child's start dir.
func (s *Server) resolve(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(s.o.Cwd, p)
}

func (s *Server) handleArtifact(m *wireMsg, conn int) error {
	if m.Path == "" {
		return errors.New(`artifact without "path"; ignored`)
	}
	orig := s.resolve(m.Path)
	name := m.Name
	if name == "" {
		name = filepath.Base(orig)
	}
	if err := CheckArtifactName(name); err != nil {
		return fmt.Errorf("%w; artifact %s ignored", err, orig)
	}
	name = path.Clean(filepath.ToSlash(name))
	var meta map[string]any
	if len(m.Metadata) > 0 && string(m.Metadata) != "null" {
		v, err := decodeJSON(m.Metadata)
		mm, ok := v.(map[string]any)
		if err != nil || !ok {
			return fmt.Errorf("artifact %q: metadata must be a JSON object; ignored", name)
		}
		meta = mm
	}

	op := s.busy(conn, fmt.Sprintf("artifact %q (copy of %s)", name, orig))
	s.artLock.Lock()
	defer s.artLock.Unlock()
	return s.done(conn, op, s.copyArtifact(m, name, orig, meta))
}

// copyArtifact takes the copy and reports the artifact; the caller holds
// artLock, so events keep the order in which the lines were handled.
func (s *Server) copyArtifact(m *wireMsg, name, orig string, meta map[string]any) error {
	src, st, err := openRegular(orig)
	if err != nil {
		return fmt.Errorf("artifact %q: %w; ignored", name, err)
	}
	defer src.Close()
	s.artSeq++
	cp := filepath.Join(s.artDir, fmt.Sprintf("%06d-%s", s.artSeq, path.Base(name)))
	dst, err := os.OpenFile(cp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("artifact %q: take a copy: %w; ignored", name, err)
	}
	// The copy keeps the original's permission bits (a 0600 key stays
	// 0600), so that stores copying it on never widen them; it lives in
	// the private directory meanwhile.
	if s.beforeCopy != nil {
		s.beforeCopy()
	}
	err = copyN(dst, src, st.Size(), s.stop)
	if err == nil {
		err = dst.Chmod(st.Mode().Perm())
	}
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(cp)
		return fmt.Errorf("artifact %q: copy %s: %w; ignored", name, orig, err)
	}
	err = s.emit(func() {
		if s.o.OnArtifact != nil {
			s.o.OnArtifact(observer.ArtifactEvent{
				Name:        name,
				Path:        cp,
				OrigPath:    orig,
				ContentType: m.ContentType,
				Metadata:    meta,
			})
		}
	})
	if err != nil {
		return fmt.Errorf("artifact %q: %w; not recorded", name, err)
	}
	return nil
}

func (s *Server) handleResource(m *wireMsg, conn int) error {
	if m.Path == "" {
		return errors.New(`resource without "path"; ignored`)
	}
	p := s.resolve(m.Path)
	op := s.busy(conn, "resource "+p+" (md5)")
	s.artLock.Lock()
	defer s.artLock.Unlock()
	return s.done(conn, op, s.hashResource(p))
}

// hashResource computes the md5 and reports the resource; the caller holds
// artLock.
func (s *Server) hashResource(p string) error {
	f, st, err := openRegular(p)
	if err != nil {
		return fmt.Errorf("resource: %w; ignored", err)
	}
	defer f.Close()
	h := md5.New()
	if err := copyN(h, f, st.Size(), s.stop); err != nil {
		return fmt.Errorf("resource: read %s: %w; ignored", p, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	err = s.emit(func() {
		if s.o.OnResource != nil {
			s.o.OnResource(observer.ResourceEvent{Path: p, MD5: sum})
		}
	})
	if err != nil {
		return fmt.Errorf("resource %s: %w; not recorded", p, err)
	}
	return nil
}
