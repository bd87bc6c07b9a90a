package mongo

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Format is the value of the runs document's "format" field, as Sacred
// 0.8.7 writes it; readers check it.
const Format = "MongoObserver-0.7.0"

// pairs says how the lists of pairs of a run (experiment.sources,
// resources) are stored. Sacred writes two-element arrays; FerretDB 1.x
// refuses nested arrays, so on it each pair is a document {"0": a, "1": b}.
// That form is ours: Python Sacred cannot write to FerretDB at all. The
// Reader reads both.
type pairs int

const (
	pairArrays pairs = iota
	pairDocs
)

func (p pairs) pair(a, b any) any {
	if p == pairDocs {
		return bson.D{{Key: "0", Value: a}, {Key: "1", Value: b}}
	}
	return bson.A{a, b}
}

// date converts a time to a BSON datetime (milliseconds, UTC).
func date(t time.Time) bson.DateTime { return bson.NewDateTimeFromTime(t) }

// intValue stores an integer as pymongo does: int32 when it fits.
func intValue(i int64) any {
	if i >= math.MinInt32 && i <= math.MaxInt32 {
		return int32(i)
	}
	return i
}

// cleanKey makes a key storable: MongoDB (and FerretDB) reject '.' and a
// leading '$' in field names on some versions; Sacred's fallback replaces
// '.' with ',' and '$' with '@', and so do we, always.
func cleanKey(k string) string {
	if !strings.ContainsAny(k, ".$\x00") {
		return k
	}
	k = strings.ReplaceAll(k, ".", ",")
	k = strings.ReplaceAll(k, "$", "@")
	return strings.ReplaceAll(k, "\x00", "")
}

// toBSON converts a JSON-like Go value (what the child reported, decoded
// from JSON) to BSON with the types pymongo would store: maps become
// documents with sorted keys (Go maps have no order), integers int32 or
// int64, other numbers doubles. Values BSON cannot hold go through JSON,
// and as a last resort become their text, as Sacred's fallback does.
func toBSON(v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case string, bool, float64, bson.ObjectID, bson.DateTime:
		return x
	case float32:
		return float64(x)
	case int:
		return intValue(int64(x))
	case int8:
		return int32(x)
	case int16:
		return int32(x)
	case int32:
		return x
	case int64:
		return intValue(x)
	case uint8:
		return int32(x)
	case uint16:
		return int32(x)
	case uint32:
		return intValue(int64(x))
	case uint:
		if uint64(x) > math.MaxInt64 {
			return float64(x)
		}
		return intValue(int64(x))
	case uint64:
		if x > math.MaxInt64 {
			return float64(x)
		}
		return intValue(int64(x))
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return intValue(i)
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return string(x)
	case time.Time:
		return date(x)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		d := make(bson.D, 0, len(keys))
		for _, k := range keys {
			d = append(d, bson.E{Key: cleanKey(k), Value: toBSON(x[k])})
		}
		return d
	case []any:
		a := make(bson.A, len(x))
		for i, e := range x {
			a[i] = toBSON(e)
		}
		return a
	case []string:
		a := make(bson.A, len(x))
		for i, e := range x {
			a[i] = e
		}
		return a
	case bson.D:
		return x
	case bson.A:
		return x
	}
	// Anything else (structs, typed slices and maps): its JSON form.
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return fmt.Sprint(v)
	}
	return toBSON(generic)
}

func docOf(m map[string]any) bson.D {
	if m == nil {
		return bson.D{}
	}
	return toBSON(m).(bson.D)
}

func strArray(s []string) bson.A {
	a := make(bson.A, len(s))
	for i, e := range s {
		a[i] = e
	}
	return a
}

// experimentDoc is Sacred's ex_info with sources pointing at GridFS files.
func experimentDoc(e *observer.Experiment, sourceIDs []bson.ObjectID, p pairs) bson.D {
	sources := make(bson.A, len(e.Sources))
	for i, s := range e.Sources {
		sources[i] = p.pair(s.Name, sourceIDs[i])
	}
	repos := make(bson.A, len(e.Repositories))
	for i, r := range e.Repositories {
		repos[i] = bson.D{{Key: "url", Value: r.URL}, {Key: "commit", Value: r.Commit}, {Key: "dirty", Value: r.Dirty}}
	}
	var mainfile any
	if e.MainFile != "" {
		mainfile = e.MainFile
	}
	return bson.D{
		{Key: "name", Value: e.Name},
		{Key: "base_dir", Value: e.BaseDir},
		{Key: "sources", Value: sources},
		{Key: "dependencies", Value: strArray(e.Dependencies)},
		{Key: "repositories", Value: repos},
		{Key: "mainfile", Value: mainfile},
	}
}

// hostDoc is Sacred's host_info: hostname, os, cpu, gpus (only when
// known), ENV, then our own cpu_count and memory_total. There is no
// python_version: the wrapper does not know which Python, if any, runs.
func hostDoc(h *observer.Host) bson.D {
	if h == nil {
		return bson.D{}
	}
	var cpu any
	if h.CPU != "" {
		cpu = h.CPU
	}
	d := bson.D{
		{Key: "hostname", Value: h.Hostname},
		{Key: "os", Value: bson.A{h.OS[0], h.OS[1]}},
		{Key: "cpu", Value: cpu},
	}
	if h.GPUs != nil {
		gpus := make(bson.A, len(h.GPUs.GPUs))
		for i, g := range h.GPUs.GPUs {
			gpus[i] = bson.D{
				{Key: "model", Value: g.Model},
				{Key: "total_memory", Value: intValue(int64(g.TotalMemory))},
				{Key: "persistence_mode", Value: g.PersistenceMode},
			}
		}
		d = append(d, bson.E{Key: "gpus", Value: bson.D{{Key: "gpus", Value: gpus}, {Key: "driver_version", Value: h.GPUs.DriverVersion}}})
	}
	env := bson.D{}
	keys := make([]string, 0, len(h.ENV))
	for k := range h.ENV {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, bson.E{Key: cleanKey(k), Value: h.ENV[k]})
	}
	d = append(d, bson.E{Key: "ENV", Value: env})
	if h.CPUCount > 0 {
		d = append(d, bson.E{Key: "cpu_count", Value: intValue(int64(h.CPUCount))})
	}
	if h.MemoryTotal > 0 {
		d = append(d, bson.E{Key: "memory_total", Value: toBSON(h.MemoryTotal)})
	}
	return d
}

// metaDoc is Sacred's meta_info, then our argv, cwd and start token.
func metaDoc(m *observer.Meta, token string) bson.D {
	d := bson.D{
		{Key: "command", Value: m.Command},
		{Key: "options", Value: docOf(m.Options)},
		{Key: "named_configs", Value: strArray(m.NamedConfigs)},
		{Key: "config_updates", Value: docOf(m.ConfigUpdates)},
	}
	if m.Comment != "" {
		d = append(d, bson.E{Key: "comment", Value: m.Comment})
	}
	if m.Priority != nil {
		d = append(d, bson.E{Key: "priority", Value: *m.Priority})
	}
	if m.QueueTime != nil {
		d = append(d, bson.E{Key: "queue_time", Value: date(*m.QueueTime)})
	}
	if len(m.Argv) > 0 {
		d = append(d, bson.E{Key: "argv", Value: strArray(m.Argv)})
	}
	if m.Cwd != "" {
		d = append(d, bson.E{Key: "cwd", Value: m.Cwd})
	}
	if r := m.RerunOf; r != nil {
		d = append(d, bson.E{Key: "rerun_of", Value: bson.D{{Key: "kind", Value: r.Kind}, {Key: "store", Value: r.Store}, {Key: "id", Value: r.ID}}})
	}
	if token != "" {
		d = append(d, bson.E{Key: "start_token", Value: token})
	}
	return d
}

// startDoc is the runs document as Sacred's started_event inserts it, in
// Sacred's key order.
func startDoc(id any, ev *observer.StartEvent, sourceIDs []bson.ObjectID, p pairs, token string) bson.D {
	return bson.D{
		{Key: "_id", Value: id},
		{Key: "experiment", Value: experimentDoc(&ev.Experiment, sourceIDs, p)},
		{Key: "format", Value: Format},
		{Key: "command", Value: ev.Command},
		{Key: "host", Value: hostDoc(ev.Host)},
		{Key: "start_time", Value: date(ev.Time)},
		{Key: "config", Value: docOf(ev.Config)},
		{Key: "meta", Value: metaDoc(&ev.Meta, token)},
		{Key: "status", Value: observer.StatusRunning},
		{Key: "resources", Value: bson.A{}},
		{Key: "artifacts", Value: bson.A{}},
		{Key: "captured_out", Value: ""},
		{Key: "info", Value: bson.D{}},
		{Key: "heartbeat", Value: nil},
	}
}

// queuedDoc is the document of a queued run: no format and no times, as
// in Sacred.
func queuedDoc(id any, ev *observer.StartEvent, sourceIDs []bson.ObjectID, p pairs, token string) bson.D {
	meta := ev.Meta
	if meta.QueueTime == nil {
		t := ev.Time
		meta.QueueTime = &t
	}
	return bson.D{
		{Key: "_id", Value: id},
		{Key: "experiment", Value: experimentDoc(&ev.Experiment, sourceIDs, p)},
		{Key: "command", Value: ev.Command},
		{Key: "host", Value: hostDoc(ev.Host)},
		{Key: "config", Value: docOf(ev.Config)},
		{Key: "meta", Value: metaDoc(&meta, token)},
		{Key: "status", Value: observer.StatusQueued},
	}
}

// storedID is the _id for a run id: a decimal string is stored as an
// integer, so that numeric sorting (Omniboard's, and our max+1) works;
// anything else stays a string.
func storedID(id string) any {
	if n, err := strconv.ParseInt(id, 10, 64); err == nil && strconv.FormatInt(n, 10) == id {
		return intValue(n)
	}
	return id
}

// idString is the run id as the runner sees it.
func idString(id any) string {
	switch x := id.(type) {
	case int32:
		return strconv.FormatInt(int64(x), 10)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case string:
		return x
	}
	return fmt.Sprint(id)
}
