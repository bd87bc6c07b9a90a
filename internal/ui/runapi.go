package ui

import (
	"archive/zip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sacred-go/sacred/internal/query"
	"github.com/sacred-go/sacred/internal/readback"
	"github.com/sacred-go/sacred/pkg/observer"
)

// lookupRun reads the run a request names (?store=&id=), whole, answering
// the request itself when that fails.
func (s *Server) lookupRun(w http.ResponseWriter, r *http.Request) (*fullRun, bool) {
	v := r.URL.Query()
	store, err := s.runRef(v.Get("store"), v.Get("id"))
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return nil, false
	}
	f, err := s.runs.get(r.Context(), store, v.Get("id"), s.opts.Poll)
	if err != nil {
		s.runError(w, store, v.Get("id"), err)
		return nil, false
	}
	return f, true
}

func (s *Server) runError(w http.ResponseWriter, store int, id string, err error) {
	label := s.stores[store].store.Label
	switch {
	case errors.Is(err, observer.ErrNotFound):
		apiError(w, http.StatusNotFound, fmt.Sprintf("no run %q in %s", id, label))
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		apiError(w, http.StatusGatewayTimeout, fmt.Sprintf("%s: reading run %q took too long", label, id))
	default:
		apiError(w, http.StatusBadGateway, fmt.Sprintf("%s: reading run %q: %v", label, id, err))
	}
}

// metricInfo is a metric as the run page lists it.
type metricInfo struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
	Last  any    `json:"last"`
	Min   any    `json:"min"`
	Max   any    `json:"max"`
}

// artifactInfo is an artifact with how the page can preview it.
type artifactInfo struct {
	Name    string `json:"name"`
	Preview string `json:"preview"` // image, text, html or "" (download only)
}

// apiRun serves one run without its output and metric points.
func (s *Server) apiRun(w http.ResponseWriter, r *http.Request) {
	f, ok := s.lookupRun(w, r)
	if !ok {
		return
	}
	run, now := f.run, s.now()
	q, _ := query.Compile(query.Options{DeadAfter: s.opts.DeadAfter})
	out := map[string]any{
		"store":       f.store,
		"store_label": s.stores[f.store].store.Label,
		"id":          run.ID,
		"name":        run.Experiment.Name,
		"status":      q.Status(run, now),
		"command":     run.Command,
		"start_time":  timeJSON(run.StartTime),
		"stop_time":   timeJSON(run.StopTime),
		"heartbeat":   timeJSON(run.Heartbeat),
		"queue_time":  timeJSON(run.QueueTime),
		"config":      plain(run.Config),
		"info":        plain(run.Info),
		"has_result":  run.HasResult,
		"result":      plain(run.Result),
		"fail_trace":  run.FailTrace,
		"output_size": len(run.Output),
		"finished":    finished(run),
	}
	if d, ok, _ := query.Field(run, "duration", now); ok {
		out["duration"] = d
	}
	if v, ok, _ := query.Field(run, "experiment", now); ok {
		out["experiment"] = plain(v)
	}
	if v, ok, _ := query.Field(run, "meta", now); ok {
		out["meta"] = plain(v)
	}
	if v, ok, _ := query.Field(run, "host", now); ok {
		out["host"] = plain(v)
	}
	var sources []map[string]any
	for _, src := range run.Experiment.Sources {
		sources = append(sources, map[string]any{"name": src.Name, "md5": src.MD5, "size": src.Size, "omitted": src.Omitted})
	}
	out["sources"] = sources
	var res []map[string]any
	for _, rs := range run.Resources {
		res = append(res, map[string]any{"path": rs.Path, "md5": rs.MD5})
	}
	out["resources"] = res
	arts := make([]artifactInfo, len(run.Artifacts))
	for i, a := range run.Artifacts {
		arts[i] = artifactInfo{Name: a, Preview: previewKind(a)}
	}
	out["artifacts"] = arts
	ms := make([]metricInfo, 0, len(run.Metrics))
	for _, m := range run.Metrics {
		mi := metricInfo{Name: m.Name, Count: len(m.Points)}
		for _, agg := range []string{"last", "min", "max"} {
			v, ok, _ := query.Field(run, metricPath(m.Name)+"."+agg, now)
			if !ok {
				continue
			}
			switch agg {
			case "last":
				mi.Last = plain(v)
			case "min":
				mi.Min = plain(v)
			case "max":
				mi.Max = plain(v)
			}
		}
		ms = append(ms, mi)
	}
	out["metrics"] = ms
	s.addAnnotations(r.Context(), f.store, run.ID, out)
	writeJSON(w, http.StatusOK, out)
}

// previewKind tells how an artifact is shown on the page, by its name:
// as an image, as text, as HTML in a sandboxed frame, or not at all.
func previewKind(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".bmp", ".ico":
		return "image"
	case ".html", ".htm":
		return "html"
	case ".txt", ".log", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml", ".toml", ".ini", ".cfg",
		".md", ".rst", ".py", ".sh", ".diff", ".patch", ".xml", ".out", ".err", ".tex", ".r", ".go", ".js":
		return "text"
	}
	return ""
}

// contentType is what an artifact is served as: images as themselves,
// text as plain UTF-8 text, HTML only for the sandboxed preview, anything
// else as bytes to download.
func contentType(name, view string) string {
	ext := strings.ToLower(path.Ext(name))
	switch previewKind(name) {
	case "image":
		switch ext {
		case ".jpg", ".jpeg":
			return "image/jpeg"
		case ".svg":
			return "image/svg+xml"
		case ".ico":
			return "image/x-icon"
		}
		return "image/" + ext[1:]
	case "text":
		return "text/plain; charset=utf-8"
	case "html":
		if view == "html" {
			return "text/html; charset=utf-8"
		}
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

// outputChunk bounds one answer of the output endpoint; tailChunk is what
// a page shows first of a long output.
const (
	outputChunk = 1 << 20
	tailChunk   = 256 << 10
)

// apiOutput serves a piece of the captured output: ?from=N (bytes) up to
// 1 MiB, or without from the last 256 KiB starting at a line. The piece
// never ends inside a UTF-8 character (the rest comes with the next
// piece); bytes that are not UTF-8 are shown as U+FFFD.
func (s *Server) apiOutput(w http.ResponseWriter, r *http.Request) {
	f, ok := s.lookupRun(w, r)
	if !ok {
		return
	}
	out := f.run.Output
	size := len(out)
	var from int
	if fs := r.URL.Query().Get("from"); fs != "" {
		n, err := strconv.Atoi(fs)
		if err != nil || n < 0 {
			apiError(w, http.StatusBadRequest, "from: give a byte offset")
			return
		}
		from = min(n, size)
	} else if size > tailChunk {
		from = size - tailChunk
		if i := strings.IndexByte(string(out[from:]), '\n'); i >= 0 {
			from += i + 1
		}
	}
	for from < size && from > 0 && !utf8.RuneStart(out[from]) {
		from++
	}
	to := min(from+outputChunk, size)
	if to < size || !finished(f.run) {
		// Stop before a character cut in two; the next piece has it.
		for j := to - 1; j >= from && j >= to-utf8.UTFMax; j-- {
			if utf8.RuneStart(out[j]) {
				if !utf8.FullRune(out[j:to]) {
					to = j
				}
				break
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"from": from, "to": to, "size": size,
		"text":     strings.ToValidUTF8(string(out[from:to]), "\uFFFD"),
		"finished": finished(f.run),
	})
}

// apiOutputFile serves the whole output as a text file to download.
func (s *Server) apiOutputFile(w http.ResponseWriter, r *http.Request) {
	f, ok := s.lookupRun(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", attachment("run-"+f.run.ID+"-output.txt"))
	_, _ = w.Write(f.run.Output)
}

// attachment is a Content-Disposition for a download named name.
func attachment(name string) string {
	safe := strings.Map(func(r rune) rune {
		if r < 0x20 || r == '"' || r == '\\' || r == '/' || r > 0x7e {
			return '_'
		}
		return r
	}, name)
	return `attachment; filename="` + safe + `"`
}

// pxMax bounds the columns a chart may ask for.
const pxMax = 8000

// apiMetric serves one metric of a run, decimated for a chart px columns
// wide over [from, to] of an x axis: step, time (Unix seconds) or rel
// (seconds since the run's start). Without from and to, the whole series.
// The answer's xs are offsets from its x0 (the run's start for rel, the
// whole second before the first point for time, 0 for step).
func (s *Server) apiMetric(w http.ResponseWriter, r *http.Request) {
	f, ok := s.lookupRun(w, r)
	if !ok {
		return
	}
	v := r.URL.Query()
	name, axis := v.Get("name"), v.Get("x")
	if axis == "" {
		axis = "step"
	}
	if axis != "step" && axis != "time" && axis != "rel" {
		apiError(w, http.StatusBadRequest, fmt.Sprintf("x %q: give step, time or rel", axis))
		return
	}
	px, okPx := intParam(v.Get("px"), 1500, pxMax)
	if !okPx || px == 0 {
		apiError(w, http.StatusBadRequest, "px: give the chart's width in pixels")
		return
	}
	sr := f.metric(name)
	if sr == nil {
		apiError(w, http.StatusNotFound, fmt.Sprintf("run %s has no metric %q", f.run.ID, name))
		return
	}
	b, err := metricJSON(f, sr, name, axis, v.Get("from"), v.Get("to"), px)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

// metricJSON is the decimated answer of apiMetric, written by hand: it is
// the one answer whose size matters (numbers in their shortest form, time
// axes as offsets from x0).
func metricJSON(f *fullRun, sr *series, name, axis, fromS, toS string, px int) ([]byte, error) {
	dataAxis := axis
	if axis == "rel" {
		dataAxis = "time"
	}
	xs, ys := sr.byX(dataAxis)
	var x0 float64
	switch axis {
	case "rel":
		if !f.run.StartTime.IsZero() {
			x0 = float64(f.run.StartTime.UnixMilli()) / 1000
		} else if len(xs) > 0 {
			x0 = xs[0]
		}
	case "time":
		if len(xs) > 0 {
			x0 = math.Floor(xs[0])
		}
	}
	from, to := math.Inf(-1), math.Inf(1)
	if len(xs) > 0 {
		from, to = xs[0], xs[len(xs)-1]
	}
	for _, p := range []struct {
		s   string
		dst *float64
	}{{fromS, &from}, {toS, &to}} {
		if p.s == "" {
			continue
		}
		n, err := strconv.ParseFloat(p.s, 64)
		if err != nil || math.IsNaN(n) {
			return nil, fmt.Errorf("from and to: give numbers on the x axis, got %q", p.s)
		}
		if axis == "rel" {
			n += x0
		}
		*p.dst = n
	}
	dx, dy, n := decimate(xs, ys, from, to, px)
	nameJSON, _ := json.Marshal(name)
	b := make([]byte, 0, 64+len(dx)*28)
	b = append(b, `{"name":`...)
	b = append(b, nameJSON...)
	b = append(b, `,"x":"`...)
	b = append(b, axis...)
	b = append(b, `","count":`...)
	b = strconv.AppendInt(b, int64(len(xs)), 10)
	b = append(b, `,"in_range":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, `,"decimated":`...)
	b = strconv.AppendBool(b, len(dx) < n)
	b = append(b, `,"x0":`...)
	b = strconv.AppendFloat(b, x0, 'f', -1, 64)
	if len(xs) > 0 {
		b = append(b, `,"xmin":`...)
		b = strconv.AppendFloat(b, xs[0]-x0, 'f', -1, 64)
		b = append(b, `,"xmax":`...)
		b = strconv.AppendFloat(b, xs[len(xs)-1]-x0, 'f', -1, 64)
	}
	b = append(b, `,"xs":`...)
	if axis == "step" {
		b = appendNumbers(b, dx, 0, -1)
	} else {
		b = appendFixed(b, dx, x0)
	}
	b = append(b, `,"ys":`...)
	b = appendNumbers(b, dy, 0, 10)
	b = append(b, '}')
	return b, nil
}

// apiMetricExport serves every point of a metric as CSV or JSON.
func (s *Server) apiMetricExport(w http.ResponseWriter, r *http.Request) {
	f, ok := s.lookupRun(w, r)
	if !ok {
		return
	}
	name := r.URL.Query().Get("name")
	var points []observer.MetricPoint
	found := false
	for _, m := range f.run.Metrics {
		if m.Name == name {
			points, found = m.Points, true
		}
	}
	if !found {
		apiError(w, http.StatusNotFound, fmt.Sprintf("run %s has no metric %q", f.run.ID, name))
		return
	}
	file := "run-" + f.run.ID + "-" + name
	if strings.HasSuffix(r.URL.Path, ".json") {
		type pt struct {
			Step  int64 `json:"step"`
			Time  any   `json:"timestamp"`
			Value any   `json:"value"`
		}
		out := make([]pt, len(points))
		for i, p := range points {
			out[i] = pt{p.Step, timeJSON(p.Time), plainFloat(p.Value)}
		}
		w.Header().Set("Content-Disposition", attachment(file+".json"))
		writeJSON(w, http.StatusOK, out)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", attachment(file+".csv"))
	b := []byte("step,timestamp,value\n")
	for _, p := range points {
		b = strconv.AppendInt(b, p.Step, 10)
		b = append(b, ',')
		if !p.Time.IsZero() {
			b = p.Time.UTC().AppendFormat(b, time.RFC3339Nano)
		}
		b = append(b, ',')
		b = strconv.AppendFloat(b, p.Value, 'g', -1, 64)
		b = append(b, '\n')
		if len(b) > 64<<10 {
			if _, err := w.Write(b); err != nil {
				return
			}
			b = b[:0]
		}
	}
	_, _ = w.Write(b)
}

// artifactHeadMax bounds what a text preview reads (?head=N).
const artifactHeadMax = 4 << 20

// apiArtifact serves an artifact the run lists, and only those:
// ?name= must be one of the run's artifact names exactly, so no path
// reaches outside the run. It is served under a sandboxing policy (no
// script runs even when opened directly); HTML only as ?view=html, for
// the page's sandboxed frame; ?download=1 as an attachment.
func (s *Server) apiArtifact(w http.ResponseWriter, r *http.Request) {
	f, ok := s.lookupRun(w, r)
	if !ok {
		return
	}
	v := r.URL.Query()
	name := v.Get("name")
	listed := false
	for _, a := range f.run.Artifacts {
		if a == name {
			listed = true
			break
		}
	}
	if !listed {
		apiError(w, http.StatusNotFound, fmt.Sprintf("run %s has no artifact %q", f.run.ID, name))
		return
	}
	head, okHead := intParam(v.Get("head"), 0, artifactHeadMax)
	if !okHead {
		apiError(w, http.StatusBadRequest, "head: give a number of bytes")
		return
	}
	rc, err := s.stores[f.store].store.Reader.Artifact(r.Context(), f.run.ID, name)
	if err != nil {
		s.runError(w, f.store, f.run.ID, err)
		return
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'self'")
	h.Set("X-Frame-Options", "SAMEORIGIN")
	h.Set("Cache-Control", "no-store")
	if v.Get("download") != "" {
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", attachment(path.Base(name)))
	} else {
		h.Set("Content-Type", contentType(name, v.Get("view")))
	}
	var src io.Reader = rc
	if head > 0 {
		src = io.LimitReader(rc, int64(head))
	}
	_, _ = io.Copy(w, src)
}

// apiFile serves a source file (/api/source?name=) or a resource
// (/api/resource?path=) of a run, from stores that keep them
// (readback.FileOpener). As for artifacts, only a name the run lists is
// served, as plain text or (?download=1) as an attachment.
func (s *Server) apiFile(w http.ResponseWriter, r *http.Request) {
	f, ok := s.lookupRun(w, r)
	if !ok {
		return
	}
	v := r.URL.Query()
	source := strings.HasSuffix(r.URL.Path, "/source")
	name := v.Get("name")
	listed := false
	if source {
		for _, src := range f.run.Experiment.Sources {
			listed = listed || src.Name == name
		}
	} else {
		name = v.Get("path")
		for _, res := range f.run.Resources {
			listed = listed || res.Path == name
		}
	}
	what := map[bool]string{true: "source", false: "resource"}[source]
	if !listed {
		apiError(w, http.StatusNotFound, fmt.Sprintf("run %s has no %s %q", f.run.ID, what, name))
		return
	}
	fo, ok := s.stores[f.store].store.Reader.(readback.FileOpener)
	if !ok {
		apiError(w, http.StatusNotImplemented, fmt.Sprintf("%s cannot give back %s files", s.stores[f.store].store.Label, what))
		return
	}
	var rc io.ReadCloser
	var err error
	if source {
		rc, err = fo.OpenSource(r.Context(), f.run.ID, name)
	} else {
		rc, err = fo.OpenResource(r.Context(), f.run.ID, name)
	}
	if errors.Is(err, readback.ErrNotStored) {
		apiError(w, http.StatusNotFound, fmt.Sprintf("the content of %s %q was not stored", what, name))
		return
	}
	if err != nil {
		s.runError(w, f.store, f.run.ID, err)
		return
	}
	defer rc.Close()
	h := w.Header()
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	h.Set("Cache-Control", "no-store")
	if v.Get("download") != "" {
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", attachment(path.Base(strings.ReplaceAll(name, "\\", "/"))))
	} else {
		h.Set("Content-Type", "text/plain; charset=utf-8")
	}
	_, _ = io.Copy(w, rc)
}

// zipName makes an artifact name safe as a path inside a zip: no absolute
// path, no "..", forward slashes.
func zipName(name string) string {
	name = strings.ReplaceAll(name, "\\", "/")
	var parts []string
	for _, p := range strings.Split(name, "/") {
		if p == "" || p == "." || p == ".." {
			continue
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "_"
	}
	return strings.Join(parts, "/")
}

// apiZip serves the run's files as one zip: the record (run.json,
// config.json, info.json, metrics.json), the output, the artifacts and,
// where the store keeps them, the sources and resources.
func (s *Server) apiZip(w http.ResponseWriter, r *http.Request) {
	f, ok := s.lookupRun(w, r)
	if !ok {
		return
	}
	run := f.run
	dir := zipName("run-" + run.ID)
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", attachment(dir+".zip"))
	zw := zip.NewWriter(w)
	// Entries carry the run's start (its queue time if it never started)
	// rather than zip's zero date of 1980.
	stamp := run.StartTime
	if stamp.IsZero() {
		stamp = run.QueueTime
	}
	create := func(name string) (io.Writer, error) {
		return zw.CreateHeader(&zip.FileHeader{Name: dir + "/" + name, Method: zip.Deflate, Modified: stamp})
	}
	add := func(name string, body []byte) bool {
		fw, err := create(name)
		if err != nil {
			return false
		}
		_, err = fw.Write(body)
		return err == nil
	}
	now := s.now()
	rec := map[string]any{}
	for _, k := range []string{"id", "status", "command", "start_time", "stop_time", "heartbeat", "queue_time",
		"result", "meta", "host", "experiment", "fail_trace", "artifacts"} {
		if v, ok, _ := query.Field(run, k, now); ok {
			rec[k] = plain(v)
		}
	}
	metrics := map[string]any{}
	for _, m := range run.Metrics {
		steps, vals, ts := make([]int64, len(m.Points)), make([]any, len(m.Points)), make([]any, len(m.Points))
		for i, p := range m.Points {
			steps[i], vals[i], ts[i] = p.Step, plainFloat(p.Value), timeJSON(p.Time)
		}
		metrics[m.Name] = map[string]any{"steps": steps, "values": vals, "timestamps": ts}
	}
	for _, j := range []struct {
		name string
		v    any
	}{{"run.json", rec}, {"config.json", plain(run.Config)}, {"info.json", plain(run.Info)}, {"metrics.json", metrics}} {
		b, err := json.MarshalIndent(j.v, "", "  ")
		if err != nil || !add(j.name, append(b, '\n')) {
			return
		}
	}
	if !add("cout.txt", run.Output) {
		return
	}
	// Every file the store gives back, each under its folder; a file
	// that cannot be read leaves a note in its place, as the archive is
	// already on its way.
	seen := map[string]bool{}
	copyIn := func(name, what string, open func() (io.ReadCloser, error)) bool {
		if seen[name] {
			return true
		}
		seen[name] = true
		rc, err := open()
		if err != nil {
			return add(name+".missing.txt", []byte(fmt.Sprintf("%s could not be read: %v\n", what, err)))
		}
		defer rc.Close()
		fw, err := create(name)
		if err == nil {
			_, err = io.Copy(fw, rc)
		}
		return err == nil
	}
	ctx, reader := r.Context(), s.stores[f.store].store.Reader
	for _, a := range run.Artifacts {
		if !copyIn("artifacts/"+zipName(a), fmt.Sprintf("artifact %q", a), func() (io.ReadCloser, error) {
			return reader.Artifact(ctx, run.ID, a)
		}) {
			return
		}
	}
	// Sources and resources from stores that keep them; a source
	// recorded by name and md5 only has nothing to put in.
	if fo, ok := reader.(readback.FileOpener); ok {
		for _, src := range run.Experiment.Sources {
			if !copyIn("sources/"+zipName(src.Name), fmt.Sprintf("source %q", src.Name), func() (io.ReadCloser, error) {
				return fo.OpenSource(ctx, run.ID, src.Name)
			}) {
				return
			}
		}
		for _, res := range run.Resources {
			if !copyIn("resources/"+zipName(res.Path), fmt.Sprintf("resource %q", res.Path), func() (io.ReadCloser, error) {
				return fo.OpenResource(ctx, run.ID, res.Path)
			}) {
				return
			}
		}
	}
	_ = zw.Close()
}
