package layout

import (
	"github.com/sacred-go/sacred/pkg/observer"
)

// Run is the content of run.json, as Sacred's file storage writes it: a map
// that sacredjson.Marshal encodes with sorted keys. Its methods apply the
// events in Sacred's way; a store writes the map out after each of them.
type Run map[string]any

// NewRun builds run.json at the start of a run (status RUNNING, heartbeat
// null, empty resources and artifacts) or of a queued run (status QUEUED,
// meta.queue_time, no host). sources are the experiment.sources entries
// the store built with SourceEntry, in the order of ev.Experiment.Sources.
// The record shares nothing with ev: a store may keep it past the call.
func NewRun(ev *observer.StartEvent, sources []any, queued bool) Run {
	meta := MetaRecord(&ev.Meta)
	r := Run{
		"command":    ev.Command,
		"experiment": ExperimentRecord(&ev.Experiment, sources),
		"meta":       meta,
	}
	if queued {
		qt := ev.Time
		if ev.Meta.QueueTime != nil {
			qt = *ev.Meta.QueueTime
		}
		meta["queue_time"] = FormatTime(qt)
		r["status"] = observer.StatusQueued
		return r
	}
	if ev.Host != nil {
		r["host"] = HostRecord(ev.Host)
	}
	r["status"] = observer.StatusRunning
	r["start_time"] = FormatTime(ev.Time)
	r["heartbeat"] = nil
	r["resources"] = []any{}
	r["artifacts"] = []any{}
	return r
}

// Beat records a heartbeat: its time and a copy of the result so far
// (null when the run reported none).
func (r Run) Beat(ev *observer.HeartbeatEvent) {
	r["heartbeat"] = FormatTime(ev.BeatTime)
	r["result"] = nil
	if ev.HasResult {
		r["result"] = observer.CloneValue(ev.Result)
	}
}

// AddResource records a resource: its absolute path and where the store
// keeps its copy (Sacred: the base directory as given joined with
// _resources/<SharedName>, see JoinPath).
func (r Run) AddResource(path, stored string) {
	list, _ := r["resources"].([]any)
	r["resources"] = append(list, []any{path, stored})
}

// AddArtifact records an artifact name; a name added twice is listed
// twice, as in Sacred.
func (r Run) AddArtifact(name string) {
	list, _ := r["artifacts"].([]any)
	r["artifacts"] = append(list, name)
}

// Complete records status COMPLETED, stop_time and a copy of the result.
func (r Run) Complete(ev *observer.CompletedEvent) {
	r["status"] = observer.StatusCompleted
	r["stop_time"] = FormatTime(ev.StopTime)
	r["result"] = nil
	if ev.HasResult {
		r["result"] = observer.CloneValue(ev.Result)
	}
}

// Interrupt records the status (INTERRUPTED, TIMEOUT or a custom one) and
// stop_time.
func (r Run) Interrupt(ev *observer.InterruptedEvent) {
	status := ev.Status
	if status == "" {
		status = observer.StatusInterrupted
	}
	r["status"] = status
	r["stop_time"] = FormatTime(ev.StopTime)
}

// Fail records status FAILED, stop_time and fail_trace.
func (r Run) Fail(ev *observer.FailedEvent) {
	r["status"] = observer.StatusFailed
	r["stop_time"] = FormatTime(ev.StopTime)
	r["fail_trace"] = append([]string{}, ev.Trace...)
}

// Status is the run's status as recorded.
func (r Run) Status() string {
	s, _ := r["status"].(string)
	return s
}

// SourceEntry is one element of experiment.sources: [name, stored] where
// stored is the copy's path relative to the base directory
// ("_sources/<SharedName>"), or, for a source whose content is not
// recorded (Source.Omitted, larger than the source size cap), [name, md5]:
// Sacred's own form of a source before it is stored.
func SourceEntry(s observer.Source, stored string) []any {
	if s.Omitted {
		return []any{s.Name, s.MD5}
	}
	return []any{s.Name, stored}
}

// SourcePath is where a source's copy goes, relative to the base
// directory: "_sources/<SharedName>".
func SourcePath(s observer.Source) string {
	return SourcesDir + "/" + SharedName(s.Name, s.MD5)
}

// ExperimentRecord is run.json's experiment: base_dir, dependencies,
// mainfile (null when unknown), name, repositories, sources, and, only
// when some source was too large to record, omitted_sources (ours):
// [{"name", "md5", "size"}, ...] in the order of e.Sources.
func ExperimentRecord(e *observer.Experiment, sources []any) map[string]any {
	repos := make([]any, len(e.Repositories))
	for i, r := range e.Repositories {
		repos[i] = map[string]any{"url": r.URL, "commit": r.Commit, "dirty": r.Dirty}
	}
	if sources == nil {
		sources = []any{}
	}
	m := map[string]any{
		"base_dir":     e.BaseDir,
		"dependencies": strList(e.Dependencies),
		"mainfile":     nilIfEmpty(e.MainFile),
		"name":         e.Name,
		"repositories": repos,
		"sources":      sources,
	}
	var omitted []any
	for _, s := range e.Sources {
		if s.Omitted {
			omitted = append(omitted, map[string]any{"name": s.Name, "md5": s.MD5, "size": s.Size})
		}
	}
	if omitted != nil {
		m["omitted_sources"] = omitted
	}
	return m
}

// HostRecord is run.json's host: ENV, cpu (null when unknown), hostname,
// os, gpus when known, and ours: cpu_count, memory_total.
func HostRecord(h *observer.Host) map[string]any {
	env := map[string]any{}
	for k, v := range h.ENV {
		env[k] = v
	}
	m := map[string]any{
		"ENV":          env,
		"cpu":          nilIfEmpty(h.CPU),
		"hostname":     h.Hostname,
		"os":           []any{h.OS[0], h.OS[1]},
		"cpu_count":    h.CPUCount,
		"memory_total": h.MemoryTotal,
	}
	if h.GPUs != nil {
		gpus := make([]any, len(h.GPUs.GPUs))
		for i, g := range h.GPUs.GPUs {
			gpus[i] = map[string]any{"model": g.Model, "total_memory": g.TotalMemory, "persistence_mode": g.PersistenceMode}
		}
		m["gpus"] = map[string]any{"gpus": gpus, "driver_version": h.GPUs.DriverVersion}
	}
	return m
}

// MetaRecord is run.json's meta without queue_time: command, options,
// config_updates (both copied), named_configs, comment and priority (a
// float) when given, and ours: argv, cwd.
func MetaRecord(m *observer.Meta) map[string]any {
	out := map[string]any{
		"command":        m.Command,
		"argv":           strList(m.Argv),
		"cwd":            m.Cwd,
		"options":        observer.CloneMap(m.Options),
		"config_updates": observer.CloneMap(m.ConfigUpdates),
		"named_configs":  strList(m.NamedConfigs),
	}
	if m.Comment != "" {
		out["comment"] = m.Comment
	}
	if m.Priority != nil {
		out["priority"] = *m.Priority
	}
	if m.RerunOf != nil {
		out["rerun_of"] = m.RerunOf.Map()
	}
	return out
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func strList(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
