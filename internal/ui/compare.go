package ui

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/sacred-go/sacred/internal/query"
	"github.com/sacred-go/sacred/pkg/observer"
)

// compareMax bounds the runs one comparison shows.
const compareMax = 20

// parseIDs reads ?ids= of /compare: runs separated by commas, each an id
// (percent-encoded when it holds a comma) or, with several stores,
// STORE:ID.
func (s *Server) parseIDs(raw string) ([]runKey, error) {
	var keys []runKey
	for _, part := range strings.Split(raw, ",") {
		if part == "" {
			continue
		}
		id, err := url.PathUnescape(part)
		if err != nil {
			return nil, fmt.Errorf("ids: %q is not a valid escaped id", part)
		}
		store := 0
		if len(s.stores) > 1 {
			if i := strings.IndexByte(id, ':'); i > 0 {
				if n, err := strconv.Atoi(id[:i]); err == nil && n >= 0 && n < len(s.stores) {
					store, id = n, id[i+1:]
				}
			}
		}
		keys = append(keys, runKey{store, id})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("ids: name the runs to compare, e.g. ?ids=1,2")
	}
	if len(keys) > compareMax {
		return nil, fmt.Errorf("ids: %d runs; compare at most %d", len(keys), compareMax)
	}
	return keys, nil
}

// apiCompare serves a comparison of runs: each run's summary, the config
// keys with every run's value and whether they differ, and each metric's
// last, smallest and largest value per run.
func (s *Server) apiCompare(w http.ResponseWriter, r *http.Request) {
	keys, err := s.parseIDs(r.URL.Query().Get("ids"))
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), loadWait)
	defer cancel()
	runs := make([]*observer.Run, len(keys))
	for i, k := range keys {
		c := s.stores[k.store]
		if err := c.wait(ctx); err != nil {
			apiError(w, http.StatusBadGateway, fmt.Sprintf("%s: %v", c.store.Label, err))
			return
		}
		run, ok := c.get(k.id)
		if !ok {
			// Not scanned yet (new): read it.
			f, err := s.runs.get(ctx, k.store, k.id, s.opts.Poll)
			if err != nil {
				s.runError(w, k.store, k.id, err)
				return
			}
			run = summarize(f.run)
		}
		runs[i] = run
	}
	now := s.now()
	q, _ := query.Compile(query.Options{DeadAfter: s.opts.DeadAfter})
	type runOut struct {
		Store     int    `json:"store"`
		ID        string `json:"id"`
		Name      string `json:"name"`
		Status    string `json:"status"`
		Start     any    `json:"start_time"`
		Duration  any    `json:"duration"`
		Result    any    `json:"result"`
		HasResult bool   `json:"has_result"`
	}
	outRuns := make([]runOut, len(runs))
	values := make([]map[string]any, len(runs))
	paths := map[string]bool{}
	metricNames := map[string]bool{}
	for i, run := range runs {
		ro := runOut{Store: keys[i].store, ID: run.ID, Name: run.Experiment.Name, Status: q.Status(run, now),
			Start: timeJSON(run.StartTime), HasResult: run.HasResult, Result: plain(run.Result)}
		if d, ok, _ := query.Field(run, "duration", now); ok {
			ro.Duration = d
		}
		outRuns[i] = ro
		values[i] = map[string]any{}
		flatValues("config", run.Config, values[i])
		for p := range values[i] {
			paths[p] = true
		}
		for _, m := range run.Metrics {
			metricNames[m.Name] = true
		}
	}
	type configRow struct {
		Path    string `json:"path"`
		Values  []any  `json:"values"`
		Present []bool `json:"present"`
		Differs bool   `json:"differs"`
	}
	var config []configRow
	for _, p := range sortedKeys(paths) {
		row := configRow{Path: p, Values: make([]any, len(runs)), Present: make([]bool, len(runs))}
		for i := range runs {
			v, ok := values[i][p]
			row.Values[i], row.Present[i] = plain(v), ok
			if i > 0 && (ok != row.Present[0] || !equalJSON(v, values[0][p])) {
				row.Differs = true
			}
		}
		config = append(config, row)
	}
	type metricRow struct {
		Name string `json:"name"`
		Last []any  `json:"last"`
		Min  []any  `json:"min"`
		Max  []any  `json:"max"`
	}
	names := sortedKeys(metricNames)
	sort.Strings(names)
	metrics := make([]metricRow, 0, len(names))
	for _, name := range names {
		mr := metricRow{Name: name, Last: make([]any, len(runs)), Min: make([]any, len(runs)), Max: make([]any, len(runs))}
		for i, run := range runs {
			for agg, dst := range map[string][]any{"last": mr.Last, "min": mr.Min, "max": mr.Max} {
				if v, ok, _ := query.Field(run, metricPath(name)+"."+agg, now); ok {
					dst[i] = plain(v)
				}
			}
		}
		metrics = append(metrics, mr)
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": outRuns, "config": config, "metrics": metrics})
}
