// Package runread reads the parts of a run record that stores keeping
// Sacred's documents as JSON share (the file-storage layout's run.json and
// metrics.json, a TinyDB document) out of decoded JSON: nil, bool, int64,
// float64, json.Number, string, []any and map[string]any, as
// sacredjson.Unmarshal gives them. Each store reads times its own way
// (isoformat, jsonpickle, TinyDate), so the readers that meet times take
// the store's function for them.
//
// Every reader is lenient: a value of the wrong type reads as its zero,
// so that a record written by another tool still reads as far as it goes.
package runread

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// TimeOf reads a time as the store writes it; anything else is zero.
type TimeOf func(v any) time.Time

// Host reads a host record: hostname, cpu, os, ENV, gpus, and ours,
// cpu_count and memory_total.
func Host(h map[string]any) *observer.Host {
	host := &observer.Host{
		Hostname:    Str(h["hostname"]),
		CPU:         Str(h["cpu"]),
		CPUCount:    int(Int(h["cpu_count"])),
		MemoryTotal: uint64(Int(h["memory_total"])),
		ENV:         map[string]string{},
	}
	copy(host.OS[:], Strs(h["os"]))
	for k, v := range Obj(h["ENV"]) {
		host.ENV[k] = Str(v)
	}
	if g, ok := h["gpus"].(map[string]any); ok {
		info := &observer.GPUInfo{DriverVersion: Str(g["driver_version"])}
		for _, gv := range List(g["gpus"]) {
			m := Obj(gv)
			info.GPUs = append(info.GPUs, observer.GPU{
				Model: Str(m["model"]), TotalMemory: int(Int(m["total_memory"])),
				PersistenceMode: m["persistence_mode"] == true,
			})
		}
		host.GPUs = info
	}
	return host
}

// Meta reads a meta record; queue_time is read with timeOf.
func Meta(m map[string]any, timeOf TimeOf) observer.Meta {
	meta := observer.Meta{
		Command:      Str(m["command"]),
		Argv:         Strs(m["argv"]),
		Cwd:          Str(m["cwd"]),
		Comment:      Str(m["comment"]),
		NamedConfigs: Strs(m["named_configs"]),
	}
	if o, ok := m["options"].(map[string]any); ok {
		meta.Options = o
	}
	if c, ok := m["config_updates"].(map[string]any); ok {
		meta.ConfigUpdates = c
	}
	if p, ok := Number(m["priority"]); ok {
		meta.Priority = &p
	}
	if t := timeOf(m["queue_time"]); !t.IsZero() {
		meta.QueueTime = &t
	}
	meta.RerunOf = observer.RunRefOf(m["rerun_of"])
	return meta
}

// Metrics reads metrics in the form of metrics.json ({name: {steps,
// timestamps, values}}) into series sorted by name; timestamps are read
// with timeOf. A missing value reads as 0 (steps), the zero time or NaN.
func Metrics(m map[string]any, timeOf TimeOf) []observer.MetricSeries {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	var out []observer.MetricSeries
	for _, name := range names {
		s := Obj(m[name])
		steps, stamps, values := List(s["steps"]), List(s["timestamps"]), List(s["values"])
		n := max(len(steps), len(stamps), len(values))
		ms := observer.MetricSeries{Name: name, Points: make([]observer.MetricPoint, n)}
		for i := range n {
			p := &ms.Points[i]
			if i < len(steps) {
				p.Step = Int(steps[i])
			}
			if i < len(stamps) {
				p.Time = timeOf(stamps[i])
			}
			p.Value = math.NaN()
			if i < len(values) {
				if f, ok := Number(values[i]); ok {
					p.Value = f
				}
			}
		}
		out = append(out, ms)
	}
	return out
}

// Str is v if it is a string, else "".
func Str(v any) string {
	s, _ := v.(string)
	return s
}

// Obj is v if it is an object, else nil.
func Obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// List is v if it is an array, else nil.
func List(v any) []any {
	l, _ := v.([]any)
	return l
}

// Strs is an array of strings (elements that are not read as ""), or
// nil when v is no array.
func Strs(v any) []string {
	l, ok := v.([]any)
	if !ok {
		return nil
	}
	out := make([]string, 0, len(l))
	for _, x := range l {
		out = append(out, Str(x))
	}
	return out
}

// Number is a number as a float64, and whether v is one.
func Number(v any) (float64, bool) {
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

// Int is a number as an int64 (a float truncated; an integer past int64
// wrapped as Go converts it), or 0.
func Int(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case float64:
		return int64(x)
	case json.Number:
		if n, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return n
		}
		if u, err := strconv.ParseUint(strings.TrimSpace(string(x)), 10, 64); err == nil {
			return int64(u)
		}
	}
	return 0
}
