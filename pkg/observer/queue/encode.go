package queue

// Events to journal records and back. Records are JSON documents written
// compactly with Python's rules (sacredjson), so values keep their types
// through the journal: integers stay int64, floats stay float64 including
// NaN and the infinities, big integers stay exact. Times are Unix
// nanoseconds (exact); a zero time is null.

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/sacredjson"
)

// doc is a record's JSON document.
type doc = map[string]any

// encodeDoc returns the payload of a record: its type and d.
func encodeDoc(typ byte, d doc) ([]byte, error) {
	b, err := appendJSON([]byte{typ}, d)
	if err != nil {
		return nil, fmt.Errorf("encode %c record: %w", typ, err)
	}
	return b, nil
}

// decodeDoc parses the JSON document of a record's payload.
func decodeDoc(payload []byte) (doc, error) {
	v, err := sacredjson.Unmarshal(payload[1:])
	if err != nil {
		return nil, fmt.Errorf("decode %c record: %w", payload[0], err)
	}
	d, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("decode %c record: not an object", payload[0])
	}
	return d, nil
}

// appendJSON writes v compactly. The types the encoders below produce and
// those of decoded JSON are written here; anything else (a struct in a
// user's info, say) goes through sacredjson, which handles what
// encoding/json can.
func appendJSON(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case string:
		return sacredjson.AppendString(dst, x), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case float64:
		return sacredjson.AppendFloat(dst, x), nil
	case json.Number:
		return append(dst, x...), nil
	case []int64:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendInt(dst, e, 10)
		}
		return append(dst, ']'), nil
	case []float64:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = sacredjson.AppendFloat(dst, e)
		}
		return append(dst, ']'), nil
	case []string:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = sacredjson.AppendString(dst, e)
		}
		return append(dst, ']'), nil
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendJSON(dst, e); err != nil {
				return nil, err
			}
		}
		return append(dst, ']'), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = sacredjson.AppendString(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = appendJSON(dst, x[k]); err != nil {
				return nil, err
			}
		}
		return append(dst, '}'), nil
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return appendJSON(dst, m)
	default:
		return sacredjson.AppendValue(dst, v, 0)
	}
}

func timeValue(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

// fields reads typed fields out of a decoded document and remembers the
// first that has the wrong type.
type fields struct {
	d   doc
	err error
}

func (f *fields) fail(key, want string) {
	if f.err == nil {
		f.err = fmt.Errorf("field %q is not %s", key, want)
	}
}

func (f *fields) str(key string) string {
	v, ok := f.d[key]
	if !ok || v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		f.fail(key, "a string")
	}
	return s
}

func (f *fields) int(key string) int64 {
	v, ok := f.d[key]
	if !ok || v == nil {
		return 0
	}
	switch x := v.(type) {
	case int64:
		return x
	case float64:
		if x == math.Trunc(x) {
			return int64(x)
		}
	}
	f.fail(key, "an integer")
	return 0
}

func (f *fields) bool(key string) bool {
	v, ok := f.d[key]
	if !ok || v == nil {
		return false
	}
	b, ok := v.(bool)
	if !ok {
		f.fail(key, "a boolean")
	}
	return b
}

func (f *fields) time(key string) time.Time {
	if v, ok := f.d[key]; !ok || v == nil {
		return time.Time{}
	}
	return time.Unix(0, f.int(key)).UTC()
}

func (f *fields) obj(key string) map[string]any {
	v, ok := f.d[key]
	if !ok || v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		f.fail(key, "an object")
	}
	return m
}

func (f *fields) list(key string) []any {
	v, ok := f.d[key]
	if !ok || v == nil {
		return nil
	}
	l, ok := v.([]any)
	if !ok {
		f.fail(key, "a list")
	}
	return l
}

func (f *fields) strs(key string) []string {
	l := f.list(key)
	if l == nil {
		return nil
	}
	out := make([]string, len(l))
	for i, e := range l {
		s, ok := e.(string)
		if !ok {
			f.fail(key, "a list of strings")
		}
		out[i] = s
	}
	return out
}

func (f *fields) sub(key string) *fields {
	return &fields{d: f.obj(key), err: f.err}
}

// merge takes the first error of a sub-reader.
func (f *fields) merge(g *fields) {
	if f.err == nil {
		f.err = g.err
	}
}

// encodeStart is the document of a start (or queued) record. blobs holds,
// per source, the id of the blob with its content (0: not kept).
func encodeStart(ev *observer.StartEvent, blobs []uint64) doc {
	e := &ev.Experiment
	sources := make([]any, len(e.Sources))
	for i, s := range e.Sources {
		src := doc{"name": s.Name, "path": s.Path, "md5": s.MD5, "size": s.Size, "omitted": s.Omitted}
		if blobs[i] != 0 {
			src["blob"] = int64(blobs[i])
		}
		sources[i] = src
	}
	repos := make([]any, len(e.Repositories))
	for i, r := range e.Repositories {
		repos[i] = doc{"url": r.URL, "commit": r.Commit, "dirty": r.Dirty}
	}
	deps := append([]string{}, e.Dependencies...)
	m := &ev.Meta
	meta := doc{
		"command": m.Command, "argv": append([]string{}, m.Argv...), "cwd": m.Cwd,
		"options": nilMap(m.Options), "comment": m.Comment, "config_updates": nilMap(m.ConfigUpdates),
		"named_configs": append([]string{}, m.NamedConfigs...), "priority": nil, "queue_time": nil,
	}
	if m.NamedConfigs == nil {
		meta["named_configs"] = nil
	}
	if m.Priority != nil {
		meta["priority"] = *m.Priority
	}
	if m.QueueTime != nil {
		meta["queue_time"] = m.QueueTime.UnixNano()
	}
	if m.RerunOf != nil {
		meta["rerun_of"] = doc{"kind": m.RerunOf.Kind, "store": m.RerunOf.Store, "id": m.RerunOf.ID}
	}
	d := doc{
		"id":      ev.ID,
		"command": ev.Command,
		"time":    timeValue(ev.Time),
		"config":  nilMap(ev.Config),
		"experiment": doc{
			"name": e.Name, "base_dir": e.BaseDir, "main_file": e.MainFile, "sources": sources,
			"dependencies": deps, "repositories": repos,
		},
		"meta": meta,
		"host": nil,
	}
	if h := ev.Host; h != nil {
		host := doc{
			"hostname": h.Hostname, "os": []string{h.OS[0], h.OS[1]}, "cpu": h.CPU,
			"cpu_count": int64(h.CPUCount), "memory_total": strconv.FormatUint(h.MemoryTotal, 10),
			"env": h.ENV, "gpus": nil,
		}
		if h.ENV == nil {
			host["env"] = nil
		}
		if g := h.GPUs; g != nil {
			gpus := make([]any, len(g.GPUs))
			for i, x := range g.GPUs {
				gpus[i] = doc{"model": x.Model, "total_memory": int64(x.TotalMemory), "persistence_mode": x.PersistenceMode}
			}
			host["gpus"] = doc{"gpus": gpus, "driver_version": g.DriverVersion}
		}
		d["host"] = host
	}
	return d
}

// nilMap keeps a nil map nil (null) rather than an empty object.
func nilMap(m map[string]any) any {
	if m == nil {
		return nil
	}
	return m
}

// startRecord is a decoded start record: the event, and per source the
// blob holding its content (0: none).
type startRecord struct {
	ev    observer.StartEvent
	blobs []uint64
}

func decodeStart(d doc) (*startRecord, error) {
	f := &fields{d: d}
	r := &startRecord{}
	ev := &r.ev
	ev.ID = f.str("id")
	ev.Command = f.str("command")
	ev.Time = f.time("time")
	ev.Config = f.obj("config")

	x := f.sub("experiment")
	e := &ev.Experiment
	e.Name, e.BaseDir, e.MainFile = x.str("name"), x.str("base_dir"), x.str("main_file")
	e.Dependencies = x.strs("dependencies")
	for _, v := range x.list("sources") {
		s := &fields{d: asDoc(v)}
		e.Sources = append(e.Sources, observer.Source{
			Name: s.str("name"), Path: s.str("path"), MD5: s.str("md5"), Size: s.int("size"), Omitted: s.bool("omitted"),
		})
		r.blobs = append(r.blobs, uint64(s.int("blob")))
		x.merge(s)
	}
	for _, v := range x.list("repositories") {
		rf := &fields{d: asDoc(v)}
		e.Repositories = append(e.Repositories, observer.Repository{URL: rf.str("url"), Commit: rf.str("commit"), Dirty: rf.bool("dirty")})
		x.merge(rf)
	}
	f.merge(x)

	m := f.sub("meta")
	ev.Meta = observer.Meta{
		Command: m.str("command"), Argv: m.strs("argv"), Cwd: m.str("cwd"), Options: m.obj("options"),
		Comment: m.str("comment"), ConfigUpdates: m.obj("config_updates"), NamedConfigs: m.strs("named_configs"),
	}
	if p, ok := m.d["priority"]; ok && p != nil {
		v := toFloat(p)
		ev.Meta.Priority = &v
	}
	if q := m.time("queue_time"); !q.IsZero() {
		ev.Meta.QueueTime = &q
	}
	if r := m.sub("rerun_of"); len(r.d) > 0 {
		ev.Meta.RerunOf = &observer.RunRef{Kind: r.str("kind"), Store: r.str("store"), ID: r.str("id")}
		m.merge(r)
	}
	f.merge(m)

	if h := f.obj("host"); h != nil {
		hf := &fields{d: h}
		host := &observer.Host{Hostname: hf.str("hostname"), CPU: hf.str("cpu"), CPUCount: int(hf.int("cpu_count"))}
		if os := hf.strs("os"); len(os) == 2 {
			host.OS = [2]string{os[0], os[1]}
		}
		host.MemoryTotal, _ = strconv.ParseUint(hf.str("memory_total"), 10, 64)
		if env := hf.obj("env"); env != nil {
			host.ENV = make(map[string]string, len(env))
			for k, v := range env {
				s, _ := v.(string)
				host.ENV[k] = s
			}
		}
		if g := hf.obj("gpus"); g != nil {
			gf := &fields{d: g}
			gi := &observer.GPUInfo{DriverVersion: gf.str("driver_version"), GPUs: []observer.GPU{}}
			for _, v := range gf.list("gpus") {
				xf := &fields{d: asDoc(v)}
				gi.GPUs = append(gi.GPUs, observer.GPU{Model: xf.str("model"), TotalMemory: int(xf.int("total_memory")), PersistenceMode: xf.bool("persistence_mode")})
				gf.merge(xf)
			}
			host.GPUs = gi
			hf.merge(gf)
		}
		ev.Host = host
		f.merge(hf)
	}
	if f.err != nil {
		return nil, fmt.Errorf("start record: %w", f.err)
	}
	return r, nil
}

func asDoc(v any) doc {
	d, _ := v.(map[string]any)
	return d
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int64:
		return float64(x)
	case json.Number:
		f, _ := x.Float64()
		return f
	}
	return 0
}

func encodeMetrics(ev *observer.MetricsEvent) doc {
	series := make([]any, 0, len(ev.Metrics))
	for _, s := range ev.Metrics {
		steps := make([]int64, len(s.Points))
		values := make([]float64, len(s.Points))
		times := make([]int64, len(s.Points))
		for i, p := range s.Points {
			steps[i], values[i], times[i] = p.Step, p.Value, p.Time.UnixNano()
		}
		series = append(series, doc{"name": s.Name, "steps": steps, "values": values, "times": times})
	}
	return doc{"metrics": series, "info": nilMap(ev.Info)}
}

func decodeMetrics(d doc) (*observer.MetricsEvent, error) {
	f := &fields{d: d}
	ev := &observer.MetricsEvent{Info: f.obj("info")}
	for _, v := range f.list("metrics") {
		sf := &fields{d: asDoc(v)}
		s := observer.MetricSeries{Name: sf.str("name")}
		steps, values, times := sf.list("steps"), sf.list("values"), sf.list("times")
		if len(steps) != len(values) || len(steps) != len(times) {
			return nil, errors.New("metrics record: steps, values and times differ in length")
		}
		s.Points = make([]observer.MetricPoint, len(steps))
		for i := range steps {
			st, _ := steps[i].(int64)
			tm, _ := times[i].(int64)
			s.Points[i] = observer.MetricPoint{Step: st, Value: toFloat(values[i]), Time: time.Unix(0, tm).UTC()}
		}
		f.merge(sf)
		ev.Metrics = append(ev.Metrics, s)
	}
	if f.err != nil {
		return nil, fmt.Errorf("metrics record: %w", f.err)
	}
	return ev, nil
}

// beatRecord is a heartbeat as journaled: everything but the output,
// whose end To is kept (the bytes are in output records).
type beatRecord struct {
	info      map[string]any
	time      time.Time
	result    any
	hasResult bool
	to        int64
	final     bool
}

func encodeBeat(ev *observer.HeartbeatEvent) doc {
	return doc{
		"info": nilMap(ev.Info), "time": timeValue(ev.BeatTime), "result": ev.Result,
		"has_result": ev.HasResult, "to": ev.To, "final": ev.Final,
	}
}

func decodeBeat(d doc) (*beatRecord, error) {
	f := &fields{d: d}
	b := &beatRecord{info: f.obj("info"), time: f.time("time"), result: d["result"], hasResult: f.bool("has_result"), to: f.int("to"), final: f.bool("final")}
	if f.err != nil {
		return nil, fmt.Errorf("heartbeat record: %w", f.err)
	}
	return b, nil
}

func encodeArtifact(ev *observer.ArtifactEvent, blob uint64, size int64) doc {
	var meta any
	if ev.Metadata != nil {
		meta = ev.Metadata
	}
	return doc{"name": ev.Name, "orig": ev.OrigPath, "content_type": ev.ContentType, "metadata": meta, "blob": int64(blob), "size": size}
}

// artifactRecord is a decoded artifact: the event without its Path, and
// the blob with its content.
type artifactRecord struct {
	ev   observer.ArtifactEvent
	blob uint64
	size int64
}

func decodeArtifact(d doc) (*artifactRecord, error) {
	f := &fields{d: d}
	a := &artifactRecord{
		ev:   observer.ArtifactEvent{Name: f.str("name"), OrigPath: f.str("orig"), ContentType: f.str("content_type"), Metadata: f.obj("metadata")},
		blob: uint64(f.int("blob")), size: f.int("size"),
	}
	if f.err != nil {
		return nil, fmt.Errorf("artifact record: %w", f.err)
	}
	return a, nil
}

func encodeResource(ev *observer.ResourceEvent) doc {
	return doc{"path": ev.Path, "md5": ev.MD5}
}

func decodeResource(d doc) (*observer.ResourceEvent, error) {
	f := &fields{d: d}
	ev := &observer.ResourceEvent{Path: f.str("path"), MD5: f.str("md5")}
	if f.err != nil {
		return nil, fmt.Errorf("resource record: %w", f.err)
	}
	return ev, nil
}

// finalRecord is a decoded final event: one of the three is set.
type finalRecord struct {
	completed   *observer.CompletedEvent
	interrupted *observer.InterruptedEvent
	failed      *observer.FailedEvent
}

func encodeCompleted(ev *observer.CompletedEvent) doc {
	return doc{"time": timeValue(ev.StopTime), "result": ev.Result, "has_result": ev.HasResult}
}

func encodeInterrupted(ev *observer.InterruptedEvent) doc {
	return doc{"time": timeValue(ev.StopTime), "status": ev.Status}
}

func encodeFailed(ev *observer.FailedEvent) doc {
	return doc{"time": timeValue(ev.StopTime), "trace": append([]string{}, ev.Trace...)}
}

func decodeFinal(typ byte, d doc) (*finalRecord, error) {
	f := &fields{d: d}
	var r finalRecord
	switch typ {
	case recCompleted:
		r.completed = &observer.CompletedEvent{StopTime: f.time("time"), Result: d["result"], HasResult: f.bool("has_result")}
	case recInterrupted:
		r.interrupted = &observer.InterruptedEvent{StopTime: f.time("time"), Status: f.str("status")}
	case recFailed:
		r.failed = &observer.FailedEvent{StopTime: f.time("time"), Trace: f.strs("trace")}
	}
	if f.err != nil {
		return nil, fmt.Errorf("final record: %w", f.err)
	}
	return &r, nil
}
