package runfmt

import (
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Record is a run as one JSON object, with the key names of Sacred's
// records: what `sacred show --json` prints. status is the status to show
// (DIED? for a run that looks dead); the stored one is kept in
// stored_status when it differs. withOutput adds captured_out.
func Record(r *observer.Run, status string, withOutput bool) Object {
	var o Object
	o.Set("id", r.ID)
	o.Set("status", status)
	if status != r.Status {
		o.Set("stored_status", r.Status)
	}
	o.Set("command", r.Command)
	o.Set("experiment", experiment(&r.Experiment))
	if r.Host != nil {
		o.Set("host", host(r.Host))
	} else {
		o.Set("host", nil)
	}
	o.Set("meta", meta(&r.Meta))
	o.Set("config", orEmpty(r.Config))
	o.Set("info", orEmpty(r.Info))
	if r.HasResult {
		o.Set("result", r.Result)
	}
	o.Set("queue_time", timeOrNil(r.QueueTime))
	o.Set("start_time", timeOrNil(r.StartTime))
	o.Set("heartbeat", timeOrNil(r.Heartbeat))
	o.Set("stop_time", timeOrNil(r.StopTime))
	if d, ok := Seconds(r); ok {
		o.Set("duration", d)
	} else {
		o.Set("duration", nil)
	}
	if r.FailTrace != nil {
		o.Set("fail_trace", r.FailTrace)
	}
	res := make([]any, len(r.Resources))
	for i, x := range r.Resources {
		res[i] = map[string]any{"path": x.Path, "md5": x.MD5}
	}
	o.Set("resources", res)
	o.Set("artifacts", orNone(r.Artifacts))
	o.Set("metrics", Metrics(r.Metrics))
	if withOutput {
		o.Set("captured_out", string(r.Output))
	}
	return o
}

// Seconds is the run's duration: stop − start, or last heartbeat − start
// while it runs; ok is false when either end is unknown. It never depends
// on the clock, as query's duration field.
func Seconds(r *observer.Run) (float64, bool) {
	end := r.StopTime
	if end.IsZero() {
		end = r.Heartbeat
	}
	if r.StartTime.IsZero() || end.IsZero() {
		return 0, false
	}
	return end.Sub(r.StartTime).Seconds(), true
}

// Metrics is the metrics as metrics.json keeps them.
func Metrics(ms []observer.MetricSeries) map[string]any {
	out := make(map[string]any, len(ms))
	for _, m := range ms {
		steps, values, stamps := make([]any, len(m.Points)), make([]any, len(m.Points)), make([]any, len(m.Points))
		for i, p := range m.Points {
			steps[i], values[i], stamps[i] = p.Step, p.Value, timeOrNil(p.Time)
		}
		out[m.Name] = map[string]any{"steps": steps, "values": values, "timestamps": stamps}
	}
	return out
}

func timeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func orNone(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func experiment(e *observer.Experiment) map[string]any {
	sources := make([]any, len(e.Sources))
	for i, s := range e.Sources {
		m := map[string]any{"name": s.Name, "md5": s.MD5}
		if s.Omitted {
			m["omitted"], m["size"] = true, s.Size
		}
		sources[i] = m
	}
	repos := make([]any, len(e.Repositories))
	for i, r := range e.Repositories {
		repos[i] = map[string]any{"url": r.URL, "commit": r.Commit, "dirty": r.Dirty}
	}
	out := map[string]any{
		"name": e.Name, "base_dir": e.BaseDir, "mainfile": nil,
		"sources": sources, "dependencies": orNone(e.Dependencies), "repositories": repos,
	}
	if e.MainFile != "" {
		out["mainfile"] = e.MainFile
	}
	return out
}

func host(h *observer.Host) map[string]any {
	out := map[string]any{
		"hostname": h.Hostname, "os": []string{h.OS[0], h.OS[1]}, "cpu": nil,
		"cpu_count": h.CPUCount, "memory_total": int64(h.MemoryTotal),
	}
	if h.CPU != "" {
		out["cpu"] = h.CPU
	}
	if h.ENV != nil {
		out["ENV"] = h.ENV
	}
	if h.GPUs != nil {
		gpus := make([]any, len(h.GPUs.GPUs))
		for i, g := range h.GPUs.GPUs {
			gpus[i] = map[string]any{"model": g.Model, "total_memory": g.TotalMemory, "persistence_mode": g.PersistenceMode}
		}
		out["gpus"] = map[string]any{"gpus": gpus, "driver_version": h.GPUs.DriverVersion}
	}
	return out
}

func meta(m *observer.Meta) map[string]any {
	out := map[string]any{"command": m.Command, "named_configs": orNone(m.NamedConfigs)}
	if m.Argv != nil {
		out["argv"] = m.Argv
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
