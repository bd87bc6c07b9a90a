package ui

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sacred-go/sacred/internal/query"
	"github.com/sacred-go/sacred/pkg/observer"
)

// loadWait bounds how long a request waits for a store's first scan.
const loadWait = 2 * time.Minute

// tableQuery is the selection of the runs table, from the URL's query:
// where, name, status, q (a quick regular expression over id, name and
// command), sort, cols.
type tableQuery struct {
	q     *query.Query
	quick *regexp.Regexp
	sort  bool
	cols  []string
	// plain is the default table: no filter and no sort, newest first,
	// which the stores' heads can answer before their first scan ends.
	plain bool
}

func (s *Server) parseTable(r *http.Request) (*tableQuery, error) {
	v := r.URL.Query()
	opts := query.Options{
		Name:      v.Get("name"),
		Where:     v.Get("where"),
		Status:    splitList(v.Get("status")),
		Sort:      splitList(v.Get("sort")),
		Columns:   splitList(v.Get("cols")),
		DeadAfter: s.opts.DeadAfter,
	}
	if len(opts.Columns) > 50 {
		return nil, fmt.Errorf("cols: %d columns; show at most 50", len(opts.Columns))
	}
	q, err := query.Compile(opts)
	if err != nil {
		return nil, err
	}
	t := &tableQuery{q: q, sort: len(opts.Sort) > 0, cols: opts.Columns,
		plain: opts.Name == "" && opts.Where == "" && len(opts.Status) == 0 && len(opts.Sort) == 0 && v.Get("q") == ""}
	if quick := v.Get("q"); quick != "" {
		// A quick filter is typed a letter at a time: an expression that
		// does not compile yet is taken literally.
		re, err := regexp.Compile("(?i)" + quick)
		if err != nil {
			re = regexp.MustCompile("(?i)" + regexp.QuoteMeta(quick))
		}
		t.quick = re
	}
	return t, nil
}

// located is a run and the index of its store.
type located struct {
	store int
	run   *observer.Run
}

// selectRuns applies a table query to every store's runs: oldest first
// per store, stores in order, then sorted by the query or, without a sort,
// newest first.
func (s *Server) selectRuns(ctx context.Context, t *tableQuery) ([]located, error) {
	ctx, cancel := context.WithTimeout(ctx, loadWait)
	defer cancel()
	var all []*observer.Run
	storeOf := map[*observer.Run]int{}
	for i, c := range s.stores {
		c.touch()
		if err := c.wait(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", c.store.Label, err)
		}
		runs, _ := c.runs()
		for _, r := range runs {
			storeOf[r] = i
		}
		all = append(all, runs...)
	}
	sel, err := t.q.Select(all, s.now())
	if err != nil {
		return nil, err
	}
	out := make([]located, 0, len(sel))
	for _, r := range sel {
		if t.quick != nil && !t.quick.MatchString(r.ID) && !t.quick.MatchString(r.Experiment.Name) && !t.quick.MatchString(r.Command) {
			continue
		}
		out = append(out, located{storeOf[r], r})
	}
	if !t.sort {
		slices.Reverse(out)
	}
	return out, nil
}

// selectHead answers the default table (t.plain: every run, newest
// first) for its first need rows while a store's first scan is still
// running, from the newest runs each store has read so far (its head):
// the last store's newest first, as selectRuns orders them, then the
// store before it once the later one is complete. ok is false when the
// heads do not hold those rows; the caller then waits for the scans.
// total counts every run listed.
func (s *Server) selectHead(ctx context.Context, need int) (sel []located, total int, partial, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, loadWait)
	defer cancel()
	complete := true // every store after this one is in sel whole
	for i := len(s.stores) - 1; i >= 0; i-- {
		c := s.stores[i]
		c.touch()
		if err := c.waitHead(ctx); err != nil {
			return nil, 0, false, false
		}
		runs, n, known := c.newest()
		if !known {
			return nil, 0, false, false
		}
		total += n
		if !complete {
			continue
		}
		for j := len(runs) - 1; j >= 0; j-- {
			sel = append(sel, located{i, runs[j]})
		}
		if len(runs) < n {
			complete, partial = false, true
		}
	}
	ok = complete || len(sel) >= need
	return sel, total, partial && ok, ok
}

// row is one run in the table.
type row struct {
	Store     int    `json:"store"`
	ID        string `json:"id"`
	Name      string `json:"name"`
	Status    string `json:"status"`
	Start     any    `json:"start_time"`
	Stop      any    `json:"stop_time"`
	Heartbeat any    `json:"heartbeat"`
	Duration  any    `json:"duration"`
	Result    any    `json:"result"`
	HasResult bool   `json:"has_result"`
	Cols      []any  `json:"cols"`
}

func (s *Server) row(t *tableQuery, l located, now time.Time) row {
	r := l.run
	rw := row{
		Store: l.store, ID: r.ID, Name: r.Experiment.Name, Status: t.q.Status(r, now),
		Start: timeJSON(r.StartTime), Stop: timeJSON(r.StopTime), Heartbeat: timeJSON(r.Heartbeat),
		HasResult: r.HasResult, Cols: make([]any, len(t.cols)),
	}
	if r.HasResult {
		rw.Result = plain(r.Result)
	}
	if d, ok, _ := query.Field(r, "duration", now); ok {
		rw.Duration = d
	}
	for i := range t.cols {
		if v, ok := t.q.Column(r, i, now); ok {
			rw.Cols[i] = plain(v)
		}
	}
	return rw
}

// apiRuns serves one page of the runs table: ?offset=&limit= over the
// selection, with the total.
func (s *Server) apiRuns(w http.ResponseWriter, r *http.Request) {
	t, err := s.parseTable(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	v := r.URL.Query()
	offset, ok1 := intParam(v.Get("offset"), 0, 1<<30)
	limit, ok2 := intParam(v.Get("limit"), 50, 1000)
	if !ok1 || !ok2 {
		apiError(w, http.StatusBadRequest, "offset and limit: give whole numbers of runs")
		return
	}
	if v.Get("reload") != "" {
		for _, c := range s.stores {
			c.requestReload()
		}
	}
	// The default first page is answered from the newest runs while a
	// first scan is still running (a store of 10,000 runs takes seconds
	// to scan); the page follows the live changes once the scan ends.
	var sel []located
	total, partial, early := 0, false, false
	if t.plain && v.Get("reload") == "" && !s.scanned() {
		sel, total, partial, early = s.selectHead(r.Context(), offset+limit)
	}
	if !early {
		partial = false
		if sel, err = s.selectRuns(r.Context(), t); err != nil {
			apiError(w, http.StatusBadGateway, err.Error())
			return
		}
		total = len(sel)
	}
	now := s.now()
	page := sel[min(offset, len(sel)):min(offset+limit, len(sel))]
	rows := make([]row, len(page))
	for i, l := range page {
		rows[i] = s.row(t, l, now)
	}
	versions := make([]uint64, len(s.stores))
	for i, c := range s.stores {
		_, versions[i] = c.runs()
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"total":    total,
		"offset":   offset,
		"rows":     rows,
		"cols":     t.cols,
		"unknown":  t.q.UnknownFields(),
		"versions": versions,
		"partial":  partial,
	})
}

// scanned tells whether every store's first scan has ended.
func (s *Server) scanned() bool {
	for _, c := range s.stores {
		select {
		case <-c.loaded:
		default:
			return false
		}
	}
	return true
}

// apiRunsExport serves the whole selection as CSV (runs.csv) or JSON
// (runs.json), for download.
func (s *Server) apiRunsExport(w http.ResponseWriter, r *http.Request) {
	t, err := s.parseTable(r)
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	sel, err := s.selectRuns(r.Context(), t)
	if err != nil {
		apiError(w, http.StatusBadGateway, err.Error())
		return
	}
	now := s.now()
	if strings.HasSuffix(r.URL.Path, ".json") {
		rows := make([]map[string]any, len(sel))
		for i, l := range sel {
			rw := s.row(t, l, now)
			m := map[string]any{"id": rw.ID, "name": rw.Name, "status": rw.Status, "start_time": rw.Start,
				"stop_time": rw.Stop, "heartbeat": rw.Heartbeat, "duration": rw.Duration}
			if len(s.stores) > 1 {
				m["store"] = s.stores[l.store].store.Label
			}
			if rw.HasResult {
				m["result"] = rw.Result
			}
			for j, c := range t.cols {
				m[c] = rw.Cols[j]
			}
			rows[i] = m
		}
		b, err := json.MarshalIndent(rows, "", "  ")
		if err != nil {
			apiError(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="runs.json"`)
		_, _ = w.Write(append(b, '\n'))
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="runs.csv"`)
	cw := csv.NewWriter(w)
	head := []string{"id", "name", "status", "start_time", "stop_time", "duration", "result"}
	if len(s.stores) > 1 {
		head = append([]string{"store"}, head...)
	}
	_ = cw.Write(append(head, t.cols...))
	for _, l := range sel {
		rw := s.row(t, l, now)
		rec := []string{rw.ID, rw.Name, rw.Status, cell(rw.Start, true), cell(rw.Stop, true), cell(rw.Duration, true), cell(rw.Result, rw.HasResult)}
		if len(s.stores) > 1 {
			rec = append([]string{s.stores[l.store].store.Label}, rec...)
		}
		for _, c := range rw.Cols {
			rec = append(rec, cell(c, true))
		}
		_ = cw.Write(csvSafe(rec))
	}
	cw.Flush()
}

// csvSafe keeps a spreadsheet from reading a cell as a formula: run data
// is the attacker's text, and =, +, -, @ start formulas in most of them.
// Numbers keep their sign.
func csvSafe(rec []string) []string {
	for i, c := range rec {
		if c == "" {
			continue
		}
		switch c[0] {
		case '=', '+', '@', '\t', '\r':
			rec[i] = "'" + c
		case '-':
			if _, err := fmt.Sscanf(c, "%g", new(float64)); err != nil {
				rec[i] = "'" + c
			}
		}
	}
	return rec
}

// apiFields lists field paths worth offering as columns: the config's
// leaves and the metrics' roll-ups, from the latest runs of every store.
func (s *Server) apiFields(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), loadWait)
	defer cancel()
	const sample = 2000
	paths := map[string]bool{}
	for _, c := range s.stores {
		if err := c.wait(ctx); err != nil {
			apiError(w, http.StatusBadGateway, fmt.Sprintf("%s: %v", c.store.Label, err))
			return
		}
		runs, _ := c.runs()
		for _, run := range runs[max(0, len(runs)-sample):] {
			flatten("config", run.Config, 4, paths)
			for _, m := range run.Metrics {
				for _, agg := range []string{"last", "min", "max"} {
					paths[metricPath(m.Name)+"."+agg] = true
				}
			}
		}
	}
	list := sortedKeys(paths)
	if len(list) > 1000 {
		list = list[:1000]
	}
	writeJSON(w, http.StatusOK, map[string]any{"fields": list})
}

// metricPath is metrics.NAME as a field path; NAME may contain dots.
func metricPath(name string) string {
	ok := name != ""
	for _, part := range strings.Split(name, ".") {
		ok = ok && isIdent(part)
	}
	if ok {
		return "metrics." + name
	}
	q, _ := json.Marshal(name)
	return "metrics[" + string(q) + "]"
}

// apiStores lists the stores and what the UI may do with them.
func (s *Server) apiStores(w http.ResponseWriter, r *http.Request) {
	type store struct {
		Label    string `json:"label"`
		Annotate bool   `json:"annotate"`
	}
	out := make([]store, len(s.stores))
	for i, c := range s.stores {
		_, ok := c.store.Reader.(Annotator)
		out[i] = store{Label: c.store.Label, Annotate: ok && !s.opts.ReadOnly}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"stores":     out,
		"read_only":  s.opts.ReadOnly,
		"dead_after": s.deadAfter().Seconds(),
	})
}

func (s *Server) deadAfter() time.Duration {
	if s.opts.DeadAfter > 0 {
		return s.opts.DeadAfter
	}
	return query.DefaultDeadAfter
}
