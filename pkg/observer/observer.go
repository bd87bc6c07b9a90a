// Package observer defines the contract between the sacred runner and the
// stores that record a run: the events of a run, the records they carry, the
// Observer interface with a no-op Base to embed, and a registry of observer
// factories keyed by command-line flag.
//
// The events mirror Python Sacred's RunObserver (queued, started, heartbeat,
// completed, interrupted, failed, resource, artifact, log_metrics). The
// runner calls each observer from its own goroutine, in order, so an
// observer needs no locking of its own unless it shares state across runs.
package observer

import (
	"context"
	"errors"
	"io"
	"os"
	"time"
)

// Status values of a run, as Sacred writes them.
const (
	StatusQueued      = "QUEUED"
	StatusRunning     = "RUNNING"
	StatusCompleted   = "COMPLETED"
	StatusFailed      = "FAILED"
	StatusInterrupted = "INTERRUPTED"
	StatusTimeout     = "TIMEOUT"
)

// ErrIDTaken is returned (wrapped) by Started or Queued when the observer
// was handed an id that already exists in its store.
var ErrIDTaken = errors.New("run id already exists")

// Observer records the events of one run. A value is used for exactly one
// run; the runner never calls its methods concurrently (Close included: it
// is called only after every other call has returned).
//
// Queued or Started is always the first call and Close the last. Between
// them come any number of Heartbeat, LogMetrics, Resource and Artifact
// calls, then at most one of Completed, Interrupted or Failed.
//
// Ownership, as log/slog states it for records: events and everything they
// reference (slices, maps, the Output) belong to the caller and are shared
// by all observers of the run; an observer reads them during the call and
// copies what it keeps. The one exception is MetricsEvent.Info, which is
// the observer's own copy: it may add keys (see MetricsEvent).
//
// Errors are honest: an error means the call's data may not be stored (part
// of it may be). A store does not retry on its own and keeps no failed data
// for later; the retry decorator (pkg/observer/retry), which the runner puts
// around every observer, keeps what failed, calls again with backoff, and
// bounds every call with a timeout. A call may therefore come again with
// the same data after an error, and a store should make such a repeat
// harmless where it can (an upsert, a write at an offset). Every call must
// honour its context's deadline and cancellation.
//
// A heartbeat's output range [From, To) is to be trusted: From is exactly
// where the output this observer stored with its last successful Heartbeat
// ended (0 at first), so a store writes that range and keeps no offset of
// its own. A Heartbeat that stored the start of its range before failing
// says so with an *OutputStored error: From then starts where that ended.
type Observer interface {
	// Name identifies the observer in messages, e.g. "file storage runs/".
	// It must never contain a password or token.
	Name() string
	// Priority orders observers: higher goes first and may choose the id.
	Priority() int

	// Queued records a run that is only queued. id is empty when no
	// earlier observer chose one; the observer then returns the id it
	// chose. An observer that was handed an id returns it unchanged.
	Queued(ctx context.Context, ev *StartEvent) (id string, err error)
	// Started records the start of a run; id handling as in Queued.
	Started(ctx context.Context, ev *StartEvent) (id string, err error)
	// LogMetrics receives the points logged since the previous beat. It is
	// called just before Heartbeat, as Sacred does.
	LogMetrics(ctx context.Context, ev *MetricsEvent) error
	// Heartbeat receives the info dict, the output written since the
	// previous beat and a handle on the whole output.
	Heartbeat(ctx context.Context, ev *HeartbeatEvent) error
	// Resource records a file the run read.
	Resource(ctx context.Context, ev *ResourceEvent) error
	// Artifact records a file the run produced. ev.Path is a private copy
	// taken when the artifact was reported.
	Artifact(ctx context.Context, ev *ArtifactEvent) error
	// Completed, Interrupted and Failed end the run.
	Completed(ctx context.Context, ev *CompletedEvent) error
	Interrupted(ctx context.Context, ev *InterruptedEvent) error
	Failed(ctx context.Context, ev *FailedEvent) error
	// Close releases connections and files. It is always called once,
	// also when an earlier call failed.
	Close(ctx context.Context) error
}

// Base implements every event as a no-op, so that an observer embeds it and
// overrides only what it needs. Its priority is 0, like Sacred's base class.
type Base struct{}

func (Base) Priority() int { return 0 }
func (Base) Queued(_ context.Context, ev *StartEvent) (string, error) {
	return ev.ID, nil
}
func (Base) Started(_ context.Context, ev *StartEvent) (string, error) {
	return ev.ID, nil
}
func (Base) LogMetrics(context.Context, *MetricsEvent) error      { return nil }
func (Base) Heartbeat(context.Context, *HeartbeatEvent) error     { return nil }
func (Base) Resource(context.Context, *ResourceEvent) error       { return nil }
func (Base) Artifact(context.Context, *ArtifactEvent) error       { return nil }
func (Base) Completed(context.Context, *CompletedEvent) error     { return nil }
func (Base) Interrupted(context.Context, *InterruptedEvent) error { return nil }
func (Base) Failed(context.Context, *FailedEvent) error           { return nil }
func (Base) Close(context.Context) error                          { return nil }

// StartEvent carries what Sacred's queued_event and started_event carry.
type StartEvent struct {
	// ID is the run id chosen by an earlier observer or by -i, or empty.
	ID string
	// Command is the command line of the child, shell-quoted.
	Command    string
	Experiment Experiment
	// Host is nil for a queued run.
	Host *Host
	// Time is the start time, or the queue time of a queued run (UTC).
	Time   time.Time
	Config map[string]any
	Meta   Meta
}

// Experiment is Sacred's ex_info.
type Experiment struct {
	Name         string
	BaseDir      string       // absolute
	MainFile     string       // relative to BaseDir, or empty
	Sources      []Source     // sorted by Name
	Dependencies []string     // "name==version"
	Repositories []Repository // one per repository
}

// Source is a source file of the experiment.
type Source struct {
	Name string // path relative to the experiment's BaseDir
	Path string // absolute path of the file as it was read
	MD5  string // hex md5 of the content
	Size int64  // bytes
	// Omitted is set when the file is larger than the source size cap
	// (--max-source-size): the run records its name, md5 and size but not
	// its content, and a store must not read Path.
	Omitted bool
}

// Repository is one git repository the sources live in.
type Repository struct {
	URL    string `json:"url"` // credentials removed
	Commit string `json:"commit"`
	Dirty  bool   `json:"dirty"`
}

// Host is Sacred's host_info, plus a few facts of ours.
type Host struct {
	Hostname string
	OS       [2]string // [system, platform], e.g. ["Linux", "Linux-6.1.0-x86_64"]
	CPU      string    // model name; empty when unknown (stored as null)
	CPUCount int
	// MemoryTotal is the total physical memory in bytes.
	MemoryTotal uint64
	// GPUs is nil when nvidia-smi is absent or fails.
	GPUs *GPUInfo
	ENV  map[string]string
}

// GPUInfo is Sacred's host_info["gpus"].
type GPUInfo struct {
	GPUs          []GPU  `json:"gpus"`
	DriverVersion string `json:"driver_version"`
}

// GPU is one GPU of GPUInfo.
type GPU struct {
	Model           string `json:"model"`
	TotalMemory     int    `json:"total_memory"` // MiB
	PersistenceMode bool   `json:"persistence_mode"`
}

// Meta is Sacred's meta_info, plus the argv and working directory of the
// child.
type Meta struct {
	Command string
	Argv    []string
	Cwd     string
	// Options maps Sacred's long flag names ("--file_storage") to the value
	// given: nil, a bool or a string. URLs are already redacted.
	Options       map[string]any
	Comment       string   // empty when not given
	Priority      *float64 // nil when not given
	ConfigUpdates map[string]any
	NamedConfigs  []string
	// QueueTime is set for queued runs only.
	QueueTime *time.Time
	// RerunOf names the run this one runs again (sacred rerun); nil
	// otherwise. Stores record it as meta.rerun_of.
	RerunOf *RunRef
}

// MetricPoint is one logged scalar.
type MetricPoint struct {
	Step  int64
	Value float64
	Time  time.Time
}

// MetricSeries is the new points of one metric, in logging order.
type MetricSeries struct {
	Name   string
	Points []MetricPoint
}

// MetricsEvent is Sacred's log_metrics call: the points logged since the
// previous beat, grouped by name in the order names first appeared.
type MetricsEvent struct {
	Metrics []MetricSeries
	// Info is the run's info dict at this beat, as a copy private to this
	// observer. An observer may add keys (as Sacred's Mongo observer adds
	// "metrics"); the runner merges them into the info the other
	// observers receive, before the end of the run.
	Info map[string]any
}

// Output is the whole captured output of a run so far: an append-only spool
// that observers read but never hold in memory.
type Output interface {
	// Size is the number of bytes captured so far.
	Size() int64
	// ReaderAt reads bytes [0, Size()) of the output.
	io.ReaderAt
}

// HeartbeatEvent is Sacred's heartbeat_event.
type HeartbeatEvent struct {
	Info     map[string]any
	BeatTime time.Time
	// Result is the intermediate result reported by the child so far;
	// HasResult tells a null result from none.
	Result    any
	HasResult bool
	// Output is the whole output; [From, To) is what this observer has not
	// stored yet: From is where its last successful Heartbeat's range
	// ended (see Observer). Bytes are as the child wrote them (not
	// necessarily valid UTF-8).
	Output   Output
	From, To int64
	// Final is true for the beat sent just before the final event.
	Final bool
}

// OutputStored is the error (wrapped, or joined with others) of a
// Heartbeat that stored the output [0, Stored) before failing on the rest
// of its range, a store that sends a long range in parts, say. The retry
// decorator reads it with errors.As: the beat sent again starts at Stored
// (which may be below the beat's From when the store found its copy
// spoiled and writes it again), and a final flush that makes such
// progress is not given up as stuck.
type OutputStored struct {
	Stored int64
	Err    error
}

func (e *OutputStored) Error() string { return e.Err.Error() }
func (e *OutputStored) Unwrap() error { return e.Err }

// NewOutput returns a reader over the bytes new in this beat.
func (e *HeartbeatEvent) NewOutput() io.Reader {
	return io.NewSectionReader(e.Output, e.From, e.To-e.From)
}

// WholeOutput returns a reader over the whole output up to this beat.
func (e *HeartbeatEvent) WholeOutput() io.Reader {
	return io.NewSectionReader(e.Output, 0, e.To)
}

// ResourceEvent is Sacred's resource_event.
type ResourceEvent struct {
	Path string // absolute path of the resource
	MD5  string // hex md5 of its content
}

// ArtifactEvent is Sacred's artifact_event.
type ArtifactEvent struct {
	Name string
	// Path is the file to store: a copy taken when the artifact was
	// reported, so the child may change or delete the original.
	Path string
	// OrigPath is the absolute path the child named.
	OrigPath    string
	ContentType string         // may be empty
	Metadata    map[string]any // may be nil
}

// CompletedEvent is Sacred's completed_event.
type CompletedEvent struct {
	StopTime  time.Time
	Result    any
	HasResult bool
}

// InterruptedEvent is Sacred's interrupted_event; Status is INTERRUPTED or
// TIMEOUT.
type InterruptedEvent struct {
	StopTime time.Time
	Status   string
}

// FailedEvent is Sacred's failed_event.
type FailedEvent struct {
	StopTime time.Time
	// Trace is a list of lines, each ending in "\n": first the exit status
	// or signal, then the tail of the child's stderr.
	Trace []string
}

// OutputFileOwner is an optional interface of an observer that keeps the
// output in a local file of its own (file storage's cout.txt). The runner
// then captures the output straight into that file, so the bytes are
// written once instead of being copied from the spool at every beat.
type OutputFileOwner interface {
	// OutputFile returns a new descriptor of an empty file, open for
	// reading and writing (not O_APPEND: the capture writes at offsets),
	// or nil to decline. It is called once, after
	// Started. Once it returned a file, the observer must not append
	// output to it itself: heartbeat ranges are normally already in the
	// file. When the capture cannot write to it (a full disk), it goes on
	// in a private spool, so a heartbeat's Output still holds every
	// byte: the observer checks that its file reached To and writes the
	// missing range from Output, or reports it missing.
	OutputFile() (*os.File, error)
}
