package tinydb

import (
	"slices"
	"strconv"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/sacredjson"
)

// The fields of a run document, in the order Sacred's TinyDbObserver
// inserts them (its run_entry dict), then ours. A field is written only
// once it has a value, so "result" appears with the first heartbeat and
// "stop_time" at the end, as in Sacred.
const (
	fExperiment = iota
	fFormat
	fCommand
	fHost
	fStartTime
	fConfig
	fMeta
	fStatus
	fResources
	fArtifacts
	fCapturedOut
	fInfo
	fHeartbeat
	fID
	fResult
	fStopTime
	fFailTrace
	// Ours, which Sacred's reader passes through untouched.
	fMetrics
	fCapturedOutFile
	nFields
)

var fieldNames = [nFields]string{
	"experiment", "format", "command", "host", "start_time", "config", "meta",
	"status", "resources", "artifacts", "captured_out", "info", "heartbeat",
	"_id", "result", "stop_time", "fail_trace", "metrics", "captured_out_file",
}

// doc is a run document as encoded field values (nil: absent). Each field
// is encoded when it changes, so a heartbeat encodes only what it sets.
type doc [nFields][]byte

// encode appends the document as json.dumps writes a dict.
func (d *doc) encode(dst []byte) []byte {
	dst = append(dst, '{')
	n := 0
	for i, v := range d {
		if v == nil {
			continue
		}
		if n > 0 {
			dst = append(dst, ", "...)
		}
		dst = sacredjson.AppendString(dst, fieldNames[i])
		dst = append(dst, ": "...)
		dst = append(dst, v...)
		n++
	}
	return append(dst, '}')
}

func (d *doc) setString(f int, s string)  { d[f] = sacredjson.AppendString(d[f][:0], s) }
func (d *doc) setDate(f int, t time.Time) { d[f] = appendDate(d[f][:0], t) }
func (d *doc) setNull(f int)              { d[f] = append(d[f][:0], "null"...) }

// set encodes a JSON value into field f.
func (d *doc) set(f int, v any) error {
	b, err := appendJSON(nil, v)
	if err != nil {
		return err
	}
	d[f] = b
	return nil
}

// object writes an ordered JSON object.
type object struct {
	b []byte
	n int
}

func newObject() *object { return &object{b: []byte{'{'}} }

func (o *object) key(k string) *object {
	if o.n > 0 {
		o.b = append(o.b, ", "...)
	}
	o.n++
	o.b = sacredjson.AppendString(o.b, k)
	o.b = append(o.b, ": "...)
	return o
}

func (o *object) str(k, v string) *object { o.key(k); o.b = sacredjson.AppendString(o.b, v); return o }
func (o *object) raw(k string, v []byte) *object {
	o.key(k)
	o.b = append(o.b, v...)
	return o
}
func (o *object) value(k string, v any) error {
	o.key(k)
	var err error
	o.b, err = appendJSON(o.b, v)
	return err
}
func (o *object) bytes() []byte { return append(o.b, '}') }

// strOrNull is a string, or null when empty (Sacred's None).
func strOrNull(s string) []byte {
	if s == "" {
		return []byte("null")
	}
	return sacredjson.AppendString(nil, s)
}

func strList(l []string) []byte {
	b := []byte{'['}
	for i, s := range l {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = sacredjson.AppendString(b, s)
	}
	return append(b, ']')
}

// sourceRef is one entry of experiment.sources: [name, md5, TinyFile],
// with null instead of the TinyFile when the content was not stored.
type sourceRef struct {
	name, md5, stored string
}

// experimentJSON is Sacred's ex_info in its order: name, base_dir,
// sources, dependencies, repositories, mainfile.
func experimentJSON(e *observer.Experiment, sources []sourceRef) []byte {
	src := []byte{'['}
	for i, s := range sources {
		if i > 0 {
			src = append(src, ", "...)
		}
		src = append(src, '[')
		src = sacredjson.AppendString(src, s.name)
		src = append(src, ", "...)
		src = sacredjson.AppendString(src, s.md5)
		src = append(src, ", "...)
		if s.stored == "" {
			src = append(src, "null"...)
		} else {
			src = appendFile(src, s.stored)
		}
		src = append(src, ']')
	}
	src = append(src, ']')
	repos := []byte{'['}
	for i, r := range e.Repositories {
		if i > 0 {
			repos = append(repos, ", "...)
		}
		o := newObject().str("url", r.URL).str("commit", r.Commit)
		o.key("dirty")
		o.b = strconv.AppendBool(o.b, r.Dirty)
		repos = append(repos, o.bytes()...)
	}
	repos = append(repos, ']')
	return newObject().
		str("name", e.Name).
		str("base_dir", e.BaseDir).
		raw("sources", src).
		raw("dependencies", strList(e.Dependencies)).
		raw("repositories", repos).
		raw("mainfile", strOrNull(e.MainFile)).
		bytes()
}

// hostJSON is Sacred's host_info: hostname, os, cpu, gpus (when known),
// ENV, then our cpu_count and memory_total. There is no python_version:
// the wrapper runs any program. A queued run has no host: {}.
func hostJSON(h *observer.Host) []byte {
	if h == nil {
		return []byte("{}")
	}
	o := newObject().str("hostname", h.Hostname)
	o.raw("os", strList(h.OS[:]))
	o.raw("cpu", strOrNull(h.CPU))
	if h.GPUs != nil {
		g := []byte{'['}
		for i, gpu := range h.GPUs.GPUs {
			if i > 0 {
				g = append(g, ", "...)
			}
			gd := newObject().str("model", gpu.Model)
			gd.key("total_memory")
			gd.b = strconv.AppendInt(gd.b, int64(gpu.TotalMemory), 10)
			gd.key("persistence_mode")
			gd.b = strconv.AppendBool(gd.b, gpu.PersistenceMode)
			g = append(g, gd.bytes()...)
		}
		g = append(g, ']')
		o.raw("gpus", newObject().raw("gpus", g).str("driver_version", h.GPUs.DriverVersion).bytes())
	}
	env := newObject()
	keys := make([]string, 0, len(h.ENV))
	for k := range h.ENV {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env.str(k, h.ENV[k])
	}
	o.raw("ENV", env.bytes())
	if h.CPUCount > 0 {
		o.key("cpu_count")
		o.b = strconv.AppendInt(o.b, int64(h.CPUCount), 10)
	}
	if h.MemoryTotal > 0 {
		o.key("memory_total")
		o.b = strconv.AppendUint(o.b, h.MemoryTotal, 10)
	}
	return o.bytes()
}

// metaJSON is Sacred's meta_info (command, options, named_configs,
// config_updates, comment, priority, queue_time), then our argv and cwd.
func metaJSON(m *observer.Meta) ([]byte, error) {
	o := newObject().str("command", m.Command)
	if err := o.value("options", orEmpty(m.Options)); err != nil {
		return nil, err
	}
	o.raw("named_configs", strList(m.NamedConfigs))
	if err := o.value("config_updates", orEmpty(m.ConfigUpdates)); err != nil {
		return nil, err
	}
	if m.Comment != "" {
		o.str("comment", m.Comment)
	}
	if m.Priority != nil {
		o.key("priority")
		o.b = sacredjson.AppendFloat(o.b, *m.Priority)
	}
	if m.QueueTime != nil {
		o.raw("queue_time", appendDate(nil, *m.QueueTime))
	}
	if len(m.Argv) > 0 {
		o.raw("argv", strList(m.Argv))
	}
	if m.Cwd != "" {
		o.str("cwd", m.Cwd)
	}
	if m.RerunOf != nil {
		if err := o.value("rerun_of", m.RerunOf.Map()); err != nil {
			return nil, err
		}
	}
	return o.bytes(), nil
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}
