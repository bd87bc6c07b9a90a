package query

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// StatusDied is the display status of a RUNNING run whose heartbeat (or
// start, before the first beat) is older than the threshold: Omniboard's
// PROBABLY_DEAD. Nothing is written to the store.
const StatusDied = "DIED?"

// DefaultDeadAfter is the default threshold of StatusDied, Omniboard's.
const DefaultDeadAfter = 120 * time.Second

// roots are the top-level fields of a run, with what each needs from a
// file store beyond run.json.
var roots = map[string]need{
	"id": 0, "name": 0, "status": 0, "command": 0,
	"start_time": 0, "stop_time": 0, "heartbeat": 0, "queue_time": 0, "duration": 0,
	"result": 0, "meta": 0, "host": 0, "experiment": 0, "fail_trace": 0, "artifacts": 0,
	"config":  needConfig,
	"info":    needInfo,
	"metrics": needMetrics,
}

type need int

const (
	needConfig need = 1 << iota
	needInfo
	needMetrics
)

// rollups are the values of a metric a path can name: metrics.loss.last.
var rollups = map[string]bool{"last": true, "min": true, "max": true}

// cutoff is the moment before which a RUNNING run's last sign of life
// makes it StatusDied, to the millisecond (the precision MongoDB keeps),
// so that every store draws the line at the same instant.
func cutoff(now time.Time, deadAfter time.Duration) time.Time {
	return now.Add(-deadAfter).UTC().Truncate(time.Millisecond)
}

func displayStatus(r *observer.Run, cut time.Time) string {
	if r.Status != observer.StatusRunning {
		return r.Status
	}
	last := r.Heartbeat
	if last.IsZero() {
		last = r.StartTime
	}
	if !last.IsZero() && last.Before(cut) {
		return StatusDied
	}
	return r.Status
}

func timeValue(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

// idValue is a run id as the language sees it: a number when it is a
// decimal integer (the ids of the file store, MongoDB and SQL), so that
// id > 10 and sorting by id work numerically; text otherwise.
func idValue(id string) any {
	if allDigits(id) && len(id) < 16 {
		n, _ := strconv.ParseInt(id, 10, 64)
		return float64(n)
	}
	return id
}

// lookup is the value of a field path in a run: ok is false when the
// field is absent.
func lookup(r *observer.Run, segs []string, cut time.Time) (any, bool) {
	var v any
	rest := segs[1:]
	switch segs[0] {
	case "id":
		v = idValue(r.ID)
	case "name":
		v = r.Experiment.Name
	case "status":
		v = displayStatus(r, cut)
	case "command":
		v = r.Command
	case "start_time":
		v = timeValue(r.StartTime)
	case "stop_time":
		v = timeValue(r.StopTime)
	case "heartbeat":
		v = timeValue(r.Heartbeat)
	case "queue_time":
		v = timeValue(r.QueueTime)
	case "duration":
		v = duration(r)
	case "result":
		if !r.HasResult {
			return nil, false
		}
		v = r.Result
	case "config":
		if r.Config == nil {
			return nil, false
		}
		v = r.Config
	case "info":
		if r.Info == nil {
			return nil, false
		}
		v = r.Info
	case "meta":
		v = metaMap(&r.Meta)
	case "host":
		if r.Host == nil {
			return nil, false
		}
		v = hostMap(r.Host)
	case "experiment":
		v = experimentMap(&r.Experiment)
	case "fail_trace":
		if r.FailTrace == nil {
			return nil, false
		}
		v = stringList(r.FailTrace)
	case "artifacts":
		v = stringList(r.Artifacts)
	case "metrics":
		return metric(r, rest)
	default:
		return nil, false
	}
	return walk(norm(v), rest)
}

// walk follows keys into objects and integer indices into arrays.
func walk(v any, segs []string) (any, bool) {
	for _, s := range segs {
		switch x := v.(type) {
		case map[string]any:
			e, ok := x[s]
			if !ok {
				return nil, false
			}
			v = norm(e)
		case []any:
			if !allDigits(s) {
				return nil, false
			}
			i, err := strconv.Atoi(s)
			if err != nil || i >= len(x) {
				return nil, false
			}
			v = norm(x[i])
		default:
			return nil, false
		}
	}
	return v, true
}

// duration is stop_time − start_time in seconds; for a run that has not
// stopped, heartbeat − start_time; null when either end is unknown. It
// never depends on the clock, so every reader gives the same value.
func duration(r *observer.Run) any {
	end := r.StopTime
	if end.IsZero() {
		end = r.Heartbeat
	}
	if r.StartTime.IsZero() || end.IsZero() {
		return nil
	}
	return end.Sub(r.StartTime).Seconds()
}

// metric resolves metrics.NAME.ROLLUP; NAME may itself contain dots.
func metric(r *observer.Run, segs []string) (any, bool) {
	if len(segs) < 2 || !rollups[segs[len(segs)-1]] {
		return nil, false
	}
	name := strings.Join(segs[:len(segs)-1], ".")
	for _, m := range r.Metrics {
		if m.Name != name || len(m.Points) == 0 {
			continue
		}
		switch segs[len(segs)-1] {
		case "last":
			return m.Points[len(m.Points)-1].Value, true
		case "min", "max":
			best, found := 0.0, false
			for _, p := range m.Points {
				if math.IsNaN(p.Value) {
					continue
				}
				if !found || (segs[len(segs)-1] == "min" && p.Value < best) || (segs[len(segs)-1] == "max" && p.Value > best) {
					best, found = p.Value, true
				}
			}
			return best, found
		}
	}
	return nil, false
}

func stringList(l []string) []any {
	out := make([]any, len(l))
	for i, s := range l {
		out[i] = s
	}
	return out
}

// metaMap, hostMap and experimentMap give the records the key names of
// Sacred's documents (meta_info, host_info, ex_info).
func metaMap(m *observer.Meta) map[string]any {
	out := map[string]any{"command": m.Command, "named_configs": stringList(m.NamedConfigs)}
	if m.Argv != nil {
		out["argv"] = stringList(m.Argv)
	}
	if m.Cwd != "" {
		out["cwd"] = m.Cwd
	}
	if m.Options != nil {
		out["options"] = m.Options
	}
	if m.Comment != "" {
		out["comment"] = m.Comment
	}
	if m.Priority != nil {
		out["priority"] = *m.Priority
	}
	if m.ConfigUpdates != nil {
		out["config_updates"] = m.ConfigUpdates
	}
	if m.QueueTime != nil {
		out["queue_time"] = m.QueueTime.UTC()
	}
	if r := m.RerunOf; r != nil {
		out["rerun_of"] = map[string]any{"kind": r.Kind, "store": r.Store, "id": r.ID}
	}
	return out
}

func hostMap(h *observer.Host) map[string]any {
	out := map[string]any{
		"hostname": h.Hostname,
		"os":       []any{h.OS[0], h.OS[1]},
		"cpu":      nil,
	}
	if h.CPU != "" {
		out["cpu"] = h.CPU
	}
	if h.CPUCount != 0 {
		out["cpu_count"] = float64(h.CPUCount)
	}
	if h.MemoryTotal != 0 {
		out["memory_total"] = float64(h.MemoryTotal)
	}
	if h.ENV != nil {
		out["ENV"] = norm(h.ENV)
	}
	if h.GPUs != nil {
		gpus := make([]any, len(h.GPUs.GPUs))
		for i, g := range h.GPUs.GPUs {
			gpus[i] = map[string]any{"model": g.Model, "total_memory": float64(g.TotalMemory), "persistence_mode": g.PersistenceMode}
		}
		out["gpus"] = map[string]any{"gpus": gpus, "driver_version": h.GPUs.DriverVersion}
	}
	return out
}

func experimentMap(e *observer.Experiment) map[string]any {
	sources := make([]any, len(e.Sources))
	for i, s := range e.Sources {
		sources[i] = []any{s.Name, s.MD5}
	}
	repos := make([]any, len(e.Repositories))
	for i, r := range e.Repositories {
		repos[i] = map[string]any{"url": r.URL, "commit": r.Commit, "dirty": r.Dirty}
	}
	out := map[string]any{
		"name":         e.Name,
		"base_dir":     e.BaseDir,
		"sources":      sources,
		"dependencies": stringList(e.Dependencies),
		"repositories": repos,
		"mainfile":     nil,
	}
	if e.MainFile != "" {
		out["mainfile"] = e.MainFile
	}
	return out
}
