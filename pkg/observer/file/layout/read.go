package layout

import (
	"encoding/base64"
	"errors"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/internal/runread"
	"github.com/sacred-go/sacred/pkg/sacredjson"
)

// Decode reads a JSON file of the layout (ours or Python Sacred's: NaN and
// Infinity included). Numbers come back as int64 (json.Number when too
// large) and float64.
func Decode(data []byte) (any, error) { return sacredjson.Unmarshal(data) }

// ReadRun reads the content of run.json, ours or one written by Python
// Sacred, into a run with the given id. It fills everything but Config,
// Info, Metrics and Output, which live in files of their own.
//
// Source paths are left as recorded: relative to the base directory
// ("_sources/...") or empty for a source whose content was not stored;
// the store makes them usable. Source and resource md5s are taken from the
// stored names.
func ReadRun(id string, doc map[string]any) *observer.Run {
	run := &observer.Run{
		ID:        id,
		Status:    str(doc["status"]),
		Command:   str(doc["command"]),
		FailTrace: strs(doc["fail_trace"]),
		Artifacts: strs(doc["artifacts"]),
	}
	run.Result, run.HasResult = doc["result"]
	run.Experiment = readExperiment(obj(doc["experiment"]))
	if h, ok := doc["host"].(map[string]any); ok {
		run.Host = runread.Host(h)
	}
	run.Meta = runread.Meta(obj(doc["meta"]), TimeOf)
	if run.Meta.QueueTime != nil {
		run.QueueTime = *run.Meta.QueueTime
	}
	run.StartTime = TimeOf(doc["start_time"])
	run.Heartbeat = TimeOf(doc["heartbeat"])
	run.StopTime = TimeOf(doc["stop_time"])
	for _, item := range list(doc["resources"]) {
		pair := list(item)
		if len(pair) == 0 {
			continue
		}
		res := observer.ResourceEvent{Path: str(pair[0])}
		if len(pair) > 1 {
			res.MD5 = MD5FromSharedName(str(pair[1]))
		}
		run.Resources = append(run.Resources, res)
	}
	return run
}

func readExperiment(e map[string]any) observer.Experiment {
	ex := observer.Experiment{
		Name:         str(e["name"]),
		BaseDir:      str(e["base_dir"]),
		MainFile:     str(e["mainfile"]),
		Dependencies: strs(e["dependencies"]),
	}
	omitted := map[string]map[string]any{}
	for _, o := range list(e["omitted_sources"]) {
		m := obj(o)
		omitted[str(m["name"])] = m
	}
	for _, s := range list(e["sources"]) {
		var pair []any
		if t, ok := s.(map[string]any); ok { // queued Sacred runs: jsonpickle tuples
			pair = list(t["py/tuple"])
		} else {
			pair = list(s)
		}
		if len(pair) < 2 {
			continue
		}
		src := observer.Source{Name: str(pair[0])}
		second := str(pair[1])
		if IsMD5(second) {
			src.MD5 = second
		} else {
			src.MD5 = MD5FromSharedName(second)
			src.Path = second
		}
		if o, ok := omitted[src.Name]; ok {
			src.Omitted, src.Size = true, runread.Int(o["size"])
		}
		ex.Sources = append(ex.Sources, src)
	}
	for _, rv := range list(e["repositories"]) {
		m := obj(rv)
		ex.Repositories = append(ex.Repositories, observer.Repository{
			URL: str(m["url"]), Commit: str(m["commit"]), Dirty: m["dirty"] == true,
		})
	}
	return ex
}

// ReadMetrics reads the content of metrics.json into series sorted by
// name. A missing value reads as 0 (steps), the zero time or NaN.
func ReadMetrics(m map[string]any) []observer.MetricSeries { return runread.Metrics(m, TimeOf) }

// TimeOf reads an isoformat string, or the jsonpickle datetime that Sacred
// writes for meta.queue_time of queued runs; anything else is zero.
func TimeOf(v any) time.Time {
	switch x := v.(type) {
	case string:
		t, err := ParseTime(x)
		if err == nil {
			return t
		}
	case map[string]any:
		if t, err := jsonpickleTime(x); err == nil {
			return t
		}
	}
	return time.Time{}
}

// jsonpickleTime decodes
//
//	{"py/object": "datetime.datetime", "__reduce__": [{"py/type": "datetime.datetime"}, ["<base64>"]]}
//
// whose 10 bytes are year (2, big-endian), month, day, hour, minute,
// second and microseconds (3, big-endian).
func jsonpickleTime(m map[string]any) (time.Time, error) {
	red := list(m["__reduce__"])
	if len(red) < 2 {
		return time.Time{}, errors.New("no __reduce__")
	}
	args := list(red[1])
	if len(args) < 1 {
		return time.Time{}, errors.New("no state")
	}
	b, err := base64.StdEncoding.DecodeString(str(args[0]))
	if err != nil || len(b) < 10 {
		return time.Time{}, errors.New("bad state")
	}
	us := int(b[7])<<16 | int(b[8])<<8 | int(b[9])
	return time.Date(int(b[0])<<8|int(b[1]), time.Month(b[2]), int(b[3]),
		int(b[4]), int(b[5]), int(b[6]), us*1000, time.UTC), nil
}

// The decoding helpers shared with TinyDB's reader.
var (
	str  = runread.Str
	obj  = runread.Obj
	list = runread.List
	strs = runread.Strs
)
