// Package eventjson is the JSON form of a run's events, schema
// "sacred.event/v1": the documents the webhook observer POSTs and the lines
// the exec observer writes to its process, so that an observer can be
// written in any language. docs/observers/webhook.md describes the schema;
// this package encodes it, and decodes it for receivers written in Go.
//
// Every document is one JSON object with "schema", "event", "seq",
// "run_id" and "time", plus the fields of its event. The JSON is strict:
// NaN and the infinities, which JSON cannot hold, are the strings "NaN",
// "Infinity" and "-Infinity"; output bytes that are not UTF-8 become
// U+FFFD. A later version of the schema may add fields; it changes the
// name only when a field changes its meaning.
package eventjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Schema is the value of every document's "schema".
const Schema = "sacred.event/v1"

// Event names, the value of "event".
const (
	Queued      = "queued"
	Started     = "started"
	Heartbeat   = "heartbeat"
	LogMetrics  = "log_metrics"
	Resource    = "resource"
	Artifact    = "artifact"
	Completed   = "completed"
	Interrupted = "interrupted"
	Failed      = "failed"
)

// TimeLayout is how times are written: UTC with microseconds and a Z.
const TimeLayout = "2006-01-02T15:04:05.000000Z"

// Time is a time written in TimeLayout.
type Time struct{ time.Time }

// MarshalJSON writes the time in TimeLayout.
func (t Time) MarshalJSON() ([]byte, error) {
	return []byte(`"` + t.UTC().Format(TimeLayout) + `"`), nil
}

// UnmarshalJSON reads a time in TimeLayout (or any RFC 3339 time).
func (t *Time) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	t.Time = v.UTC()
	return nil
}

// Document is one event. Fields that do not belong to the event are left
// out of its JSON.
type Document struct {
	Schema string `json:"schema"`
	Event  string `json:"event"`
	// Seq numbers the documents of one observer of one run: 1, 2, ...
	Seq int64 `json:"seq"`
	// RunID is the run's id; null in queued and started when no
	// observer of a higher priority chose one.
	RunID *string `json:"run_id"`
	// Time is when the event happened: the start (or queue) time, the
	// beat time, the stop time; for metrics, resources and artifacts the
	// time the document was made.
	Time Time `json:"time"`

	// queued, started
	Run *Run `json:"run,omitempty"`

	// heartbeat (Info also in log_metrics)
	Info      map[string]any `json:"info,omitempty"`
	Output    *Output        `json:"output,omitempty"`
	Final     *bool          `json:"final,omitempty"`
	Result    any            `json:"result,omitempty"`
	HasResult *bool          `json:"has_result,omitempty"`

	// log_metrics
	Metrics []Metric `json:"metrics,omitempty"`

	// resource, artifact
	Path        string         `json:"path,omitempty"`
	MD5         string         `json:"md5,omitempty"`
	Name        string         `json:"name,omitempty"`
	OrigPath    string         `json:"orig_path,omitempty"`
	ContentType string         `json:"content_type,omitempty"`
	Metadata    map[string]any `json:"metadata,omitempty"`

	// completed, interrupted, failed
	Status    string   `json:"status,omitempty"`
	FailTrace []string `json:"fail_trace,omitempty"`
}

// Run is what queued and started carry.
type Run struct {
	Command    string         `json:"command"`
	Experiment Experiment     `json:"experiment"`
	Host       *Host          `json:"host"` // null for a queued run
	Config     map[string]any `json:"config"`
	Meta       Meta           `json:"meta"`
}

// Experiment is Sacred's ex_info.
type Experiment struct {
	Name         string                `json:"name"`
	BaseDir      string                `json:"base_dir"`
	MainFile     string                `json:"mainfile"`
	Sources      []Source              `json:"sources"`
	Dependencies []string              `json:"dependencies"`
	Repositories []observer.Repository `json:"repositories"`
}

// Source is one source file; Path is where it can be read during the
// event, unless Omitted (larger than the source size cap).
type Source struct {
	Name    string `json:"name"`
	Path    string `json:"path"`
	MD5     string `json:"md5"`
	Size    int64  `json:"size"`
	Omitted bool   `json:"omitted"`
}

// Host is Sacred's host_info.
type Host struct {
	Hostname    string            `json:"hostname"`
	OS          [2]string         `json:"os"`
	CPU         string            `json:"cpu"`
	CPUCount    int               `json:"cpu_count"`
	MemoryTotal uint64            `json:"memory_total"`
	GPUs        *observer.GPUInfo `json:"gpus"`
	ENV         map[string]string `json:"env"`
}

// Meta is Sacred's meta_info.
type Meta struct {
	Command       string         `json:"command"`
	Argv          []string       `json:"argv"`
	Cwd           string         `json:"cwd"`
	Options       map[string]any `json:"options"`
	Comment       string         `json:"comment"`
	Priority      *float64       `json:"priority"`
	ConfigUpdates map[string]any `json:"config_updates"`
	NamedConfigs  []string       `json:"named_configs"`
	QueueTime     *Time          `json:"queue_time"`
	// RerunOf is set for a run of sacred rerun only.
	RerunOf *observer.RunRef `json:"rerun_of,omitempty"`
}

// Output is the output new in a heartbeat: bytes [From, To) of the whole
// output, as text.
type Output struct {
	From int64  `json:"from"`
	To   int64  `json:"to"`
	Text string `json:"text"`
}

// Metric is the new points of one metric, in Sacred's log_metrics shape.
type Metric struct {
	Name       string  `json:"name"`
	Steps      []int64 `json:"steps"`
	Values     []any   `json:"values"` // numbers, or "NaN"/"Infinity"/"-Infinity"
	Timestamps []Time  `json:"timestamps"`
}

// Encode returns doc as one line of JSON, ending in "\n".
func Encode(doc *Document) ([]byte, error) {
	doc.Schema = Schema
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encoding the %s event: %w", doc.Event, err)
	}
	return buf.Bytes(), nil
}

func ptr[T any](v T) *T { return &v }

func runID(id string) *string {
	if id == "" {
		return nil
	}
	return &id
}

// Start builds the document of a queued or started event.
func Start(event string, seq int64, ev *observer.StartEvent) *Document {
	e := ev.Experiment
	sources := make([]Source, len(e.Sources))
	for i, s := range e.Sources {
		sources[i] = Source{Name: s.Name, Path: s.Path, MD5: s.MD5, Size: s.Size, Omitted: s.Omitted}
		if s.Omitted {
			sources[i].Path = ""
		}
	}
	run := &Run{
		Command: ev.Command,
		Experiment: Experiment{
			Name: e.Name, BaseDir: e.BaseDir, MainFile: e.MainFile, Sources: sources,
			Dependencies: nonNil(e.Dependencies), Repositories: nonNilRepos(e.Repositories),
		},
		Config: Sanitize(ev.Config).(map[string]any),
		Meta: Meta{
			Command: ev.Meta.Command, Argv: nonNil(ev.Meta.Argv), Cwd: ev.Meta.Cwd,
			Options: Sanitize(ev.Meta.Options).(map[string]any), Comment: ev.Meta.Comment,
			Priority: ev.Meta.Priority, ConfigUpdates: Sanitize(ev.Meta.ConfigUpdates).(map[string]any),
			NamedConfigs: nonNil(ev.Meta.NamedConfigs), RerunOf: ev.Meta.RerunOf,
		},
	}
	if ev.Meta.QueueTime != nil {
		run.Meta.QueueTime = &Time{*ev.Meta.QueueTime}
	}
	if h := ev.Host; h != nil {
		env := h.ENV
		if env == nil {
			env = map[string]string{}
		}
		run.Host = &Host{Hostname: h.Hostname, OS: h.OS, CPU: h.CPU, CPUCount: h.CPUCount, MemoryTotal: h.MemoryTotal, GPUs: h.GPUs, ENV: env}
	}
	return &Document{Event: event, Seq: seq, RunID: runID(ev.ID), Time: Time{ev.Time}, Run: run}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilRepos(r []observer.Repository) []observer.Repository {
	if r == nil {
		return []observer.Repository{}
	}
	return r
}

// Beat builds the document of a heartbeat whose new output is text.
func Beat(seq int64, id string, ev *observer.HeartbeatEvent, text []byte) *Document {
	info := Sanitize(ev.Info).(map[string]any)
	return &Document{
		Event: Heartbeat, Seq: seq, RunID: runID(id), Time: Time{ev.BeatTime},
		Info:   info,
		Output: &Output{From: ev.From, To: ev.To, Text: string(bytes.ToValidUTF8(text, []byte("\uFFFD")))},
		Final:  ptr(ev.Final), Result: resultOrNull(ev.Result, ev.HasResult), HasResult: ptr(ev.HasResult),
	}
}

// Metrics builds the document of a log_metrics event.
func Metrics(seq int64, id string, ev *observer.MetricsEvent, now time.Time) *Document {
	ms := make([]Metric, len(ev.Metrics))
	for i, s := range ev.Metrics {
		m := Metric{Name: s.Name, Steps: make([]int64, len(s.Points)), Values: make([]any, len(s.Points)), Timestamps: make([]Time, len(s.Points))}
		for j, p := range s.Points {
			m.Steps[j], m.Values[j], m.Timestamps[j] = p.Step, Sanitize(p.Value), Time{p.Time}
		}
		ms[i] = m
	}
	return &Document{Event: LogMetrics, Seq: seq, RunID: runID(id), Time: Time{now}, Metrics: ms, Info: Sanitize(ev.Info).(map[string]any)}
}

// ResourceDoc builds the document of a resource event.
func ResourceDoc(seq int64, id string, ev *observer.ResourceEvent, now time.Time) *Document {
	return &Document{Event: Resource, Seq: seq, RunID: runID(id), Time: Time{now}, Path: ev.Path, MD5: ev.MD5}
}

// ArtifactDoc builds the document of an artifact event. Path is the
// private copy, readable until the run ends.
func ArtifactDoc(seq int64, id string, ev *observer.ArtifactEvent, now time.Time) *Document {
	var meta map[string]any
	if ev.Metadata != nil {
		meta = Sanitize(ev.Metadata).(map[string]any)
	}
	return &Document{Event: Artifact, Seq: seq, RunID: runID(id), Time: Time{now}, Name: ev.Name, Path: ev.Path, OrigPath: ev.OrigPath, ContentType: ev.ContentType, Metadata: meta}
}

// CompletedDoc builds the document of a completed event.
func CompletedDoc(seq int64, id string, ev *observer.CompletedEvent) *Document {
	return &Document{Event: Completed, Seq: seq, RunID: runID(id), Time: Time{ev.StopTime}, Status: observer.StatusCompleted,
		Result: resultOrNull(ev.Result, ev.HasResult), HasResult: ptr(ev.HasResult)}
}

// InterruptedDoc builds the document of an interrupted event; Status is
// INTERRUPTED or TIMEOUT.
func InterruptedDoc(seq int64, id string, ev *observer.InterruptedEvent) *Document {
	return &Document{Event: Interrupted, Seq: seq, RunID: runID(id), Time: Time{ev.StopTime}, Status: ev.Status}
}

// FailedDoc builds the document of a failed event.
func FailedDoc(seq int64, id string, ev *observer.FailedEvent) *Document {
	return &Document{Event: Failed, Seq: seq, RunID: runID(id), Time: Time{ev.StopTime}, Status: observer.StatusFailed, FailTrace: nonNil(ev.Trace)}
}

// null is a result that is there and null: "result": null, where
// omitempty would drop a nil.
type null struct{}

func (null) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

func resultOrNull(v any, has bool) any {
	if !has || v == nil {
		return null{}
	}
	return Sanitize(v)
}

// Sanitize copies a decoded JSON value with NaN, +Inf and -Inf replaced by
// the strings "NaN", "Infinity" and "-Infinity", which strict JSON can
// carry. A nil map stays an empty map.
func Sanitize(v any) any {
	switch x := v.(type) {
	case float64:
		return special(x)
	case float32:
		return special(float64(x))
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = Sanitize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = Sanitize(e)
		}
		return out
	}
	return v
}

func special(f float64) any {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return f
}
