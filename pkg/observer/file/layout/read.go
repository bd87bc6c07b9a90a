package layout

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
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
		run.Host = readHost(h)
	}
	run.Meta = readMeta(obj(doc["meta"]))
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
			src.Omitted, src.Size = true, intOf(o["size"])
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

func readHost(h map[string]any) *observer.Host {
	host := &observer.Host{
		Hostname:    str(h["hostname"]),
		CPU:         str(h["cpu"]),
		CPUCount:    int(intOf(h["cpu_count"])),
		MemoryTotal: uint64(intOf(h["memory_total"])),
		ENV:         map[string]string{},
	}
	if os := strs(h["os"]); len(os) > 0 {
		host.OS[0] = os[0]
		if len(os) > 1 {
			host.OS[1] = os[1]
		}
	}
	for k, v := range obj(h["ENV"]) {
		host.ENV[k] = str(v)
	}
	if g, ok := h["gpus"].(map[string]any); ok {
		info := &observer.GPUInfo{DriverVersion: str(g["driver_version"])}
		for _, gv := range list(g["gpus"]) {
			m := obj(gv)
			info.GPUs = append(info.GPUs, observer.GPU{
				Model: str(m["model"]), TotalMemory: int(intOf(m["total_memory"])),
				PersistenceMode: m["persistence_mode"] == true,
			})
		}
		host.GPUs = info
	}
	return host
}

func readMeta(m map[string]any) observer.Meta {
	meta := observer.Meta{
		Command:      str(m["command"]),
		Argv:         strs(m["argv"]),
		Cwd:          str(m["cwd"]),
		Comment:      str(m["comment"]),
		NamedConfigs: strs(m["named_configs"]),
	}
	if o, ok := m["options"].(map[string]any); ok {
		meta.Options = o
	}
	if c, ok := m["config_updates"].(map[string]any); ok {
		meta.ConfigUpdates = c
	}
	if p, ok := numberOf(m["priority"]); ok {
		meta.Priority = &p
	}
	if t := TimeOf(m["queue_time"]); !t.IsZero() {
		meta.QueueTime = &t
	}
	meta.RerunOf = observer.RunRefOf(m["rerun_of"])
	return meta
}

// ReadMetrics reads the content of metrics.json into series sorted by
// name. A missing value reads as 0 (steps), the zero time or NaN.
func ReadMetrics(m map[string]any) []observer.MetricSeries {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	var out []observer.MetricSeries
	for _, name := range names {
		s := obj(m[name])
		steps, stamps, values := list(s["steps"]), list(s["timestamps"]), list(s["values"])
		n := max(len(steps), len(stamps), len(values))
		ms := observer.MetricSeries{Name: name, Points: make([]observer.MetricPoint, n)}
		for i := range n {
			p := &ms.Points[i]
			if i < len(steps) {
				p.Step = intOf(steps[i])
			}
			if i < len(stamps) {
				p.Time = TimeOf(stamps[i])
			}
			p.Value = math.NaN()
			if i < len(values) {
				if f, ok := numberOf(values[i]); ok {
					p.Value = f
				}
			}
		}
		out = append(out, ms)
	}
	return out
}

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

func str(v any) string {
	s, _ := v.(string)
	return s
}

func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func strs(v any) []string {
	l, ok := v.([]any)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(l))
	for _, x := range l {
		out = append(out, str(x))
	}
	return out
}

func numberOf(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

func intOf(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case float64:
		return int64(x)
	case json.Number:
		if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return n
		}
		if u, err := strconv.ParseUint(string(x), 10, 64); err == nil {
			return int64(u)
		}
	}
	return 0
}
