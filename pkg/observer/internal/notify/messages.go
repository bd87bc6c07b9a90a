// Package notify is what the Slack and Telegram observers share: their
// config files, Sacred's message variables and templates, and HTTP posts
// whose errors never carry a secret.
package notify

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file/layout"
	"github.com/sacred-go/sacred/pkg/observer/internal/pyfmt"
)

// Event names a message, after the config key of its text
// ("completed_text").
type Event string

// The events a notifier sends a message for.
const (
	Started     Event = "started"
	Completed   Event = "completed"
	Interrupted Event = "interrupted"
	Failed      Event = "failed"
)

// startVars are the variables Sacred's observers keep from started_event;
// every message may use them.
var startVars = []string{"_id", "config", "start_time", "experiment", "command", "host_info"}

// endVars are what each final event adds, as Sacred's observers add them
// to their run dict. "backtrace" is Telegram's ("".join(fail_trace)); the
// Slack observer offers it too.
var endVars = map[Event][]string{
	Started:     nil,
	Completed:   {"result", "stop_time", "elapsed_time"},
	Interrupted: {"status", "interrupt_time", "elapsed_time"},
	Failed:      {"fail_trace", "error", "fail_time", "elapsed_time", "backtrace"},
}

// timeVars hold datetimes: their format spec is strftime's.
var timeVars = map[string]bool{"start_time": true, "stop_time": true, "interrupt_time": true, "fail_time": true}

// Vars lists the variables a message of ev may use.
func Vars(ev Event) []string {
	return append(append([]string(nil), startVars...), endVars[ev]...)
}

// Messages are the compiled texts of a notifier, by event; an event
// without a text sends nothing.
type Messages struct {
	kind  string // "slack" or "telegram", for messages
	tmpls map[Event]*pyfmt.Template
}

// Compile parses the texts and checks that every placeholder names a
// variable its event has, so that a typo is reported when the observer
// is opened rather than when the run ends. kind names the observer in
// errors.
func Compile(kind string, texts map[Event]string) (*Messages, error) {
	m := &Messages{kind: kind, tmpls: map[Event]*pyfmt.Template{}}
	events := make([]Event, 0, len(texts))
	for ev := range texts {
		events = append(events, ev)
	}
	sort.Slice(events, func(i, j int) bool { return events[i] < events[j] })
	for _, ev := range events {
		t, err := pyfmt.Parse(texts[ev])
		if err != nil {
			return nil, fmt.Errorf("%s: %s_text: %w", kind, ev, err)
		}
		vars := Vars(ev)
		for _, f := range t.Fields() {
			if !contains(vars, f.Name) {
				return nil, fmt.Errorf("%s: %s_text: unknown placeholder %s%s (known: %s)", kind, ev, f.Text, hint(f.Name), strings.Join(vars, ", "))
			}
			if _, atStart := indexOf(startVars, f.Name); atStart {
				continue // checked with the real values by Check
			}
			// A conversion (!s, !r) makes the value a string.
			isTime := timeVars[f.Name] && f.Conv == 0
			if err := pyfmt.CheckSpec(f.Spec, isTime); err != nil {
				return nil, fmt.Errorf("%s: %s_text: %s: %w", kind, ev, f.Text, err)
			}
		}
		m.tmpls[ev] = t
	}
	return m, nil
}

// hint explains the names of older Sacred versions.
func hint(name string) string {
	if name == "ex_info" {
		return " (Sacred 0.8 calls it experiment, e.g. {experiment[name]})"
	}
	return ""
}

func contains(list []string, s string) bool {
	_, ok := indexOf(list, s)
	return ok
}

func indexOf(list []string, s string) (int, bool) {
	for i, e := range list {
		if e == s {
			return i, true
		}
	}
	return -1, false
}

// Has reports whether ev has a message.
func (m *Messages) Has(ev Event) bool { return m.tmpls[ev] != nil }

// Check resolves, at the start of a run, every placeholder that uses the
// start variables ({config[lr]}, {host_info[hostname]}) in every message,
// so that a missing config key is reported now and not when the run ends.
func (m *Messages) Check(vars map[string]any) error {
	events := make([]Event, 0, len(m.tmpls))
	for ev := range m.tmpls {
		events = append(events, ev)
	}
	sort.Slice(events, func(i, j int) bool { return events[i] < events[j] })
	for _, ev := range events {
		for _, f := range m.tmpls[ev].Fields() {
			if !contains(startVars, f.Name) {
				continue
			}
			if _, err := f.Format(vars); err != nil {
				return fmt.Errorf("%s: %s_text: %w", m.kind, ev, err)
			}
		}
	}
	return nil
}

// Render fills ev's message; ok is false when ev has none.
func (m *Messages) Render(ev Event, vars map[string]any) (text string, ok bool, err error) {
	t := m.tmpls[ev]
	if t == nil {
		return "", false, nil
	}
	text, err = t.Format(vars)
	if err != nil {
		return "", true, fmt.Errorf("%s: %s_text: %w", m.kind, ev, err)
	}
	return text, true, nil
}

// StartVars are the variables Sacred's observers keep from the start
// event: _id, config, start_time, experiment (ex_info, its sources as
// (name, md5) tuples), command and host_info.
func StartVars(ev *observer.StartEvent) map[string]any {
	sources := make([]any, len(ev.Experiment.Sources))
	for i, s := range ev.Experiment.Sources {
		sources[i] = pyfmt.Tuple{s.Name, s.MD5}
	}
	exp := layout.ExperimentRecord(&ev.Experiment, sources)
	delete(exp, "omitted_sources")
	var host any
	if ev.Host != nil {
		host = layout.HostRecord(ev.Host)
	}
	return map[string]any{
		"_id":        RunID(ev.ID),
		"config":     observer.CloneMap(ev.Config),
		"start_time": ev.Time,
		"experiment": exp,
		"command":    ev.Command,
		"host_info":  host,
	}
}

// RunID is the run id as Sacred's stores give it: an int when it is a
// number (as Mongo's and the file store's are), else the string.
func RunID(id string) any {
	if id != "" && (id == "0" || id[0] != '0') {
		if n, err := strconv.ParseInt(id, 10, 64); err == nil && n >= 0 {
			return n
		}
	}
	if id == "" {
		return nil
	}
	return id
}

// withVars returns a copy of vars with more keys.
func withVars(vars map[string]any, more map[string]any) map[string]any {
	out := make(map[string]any, len(vars)+len(more))
	for k, v := range vars {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

// startTime returns the start variable.
func startTime(vars map[string]any) time.Time {
	t, _ := vars["start_time"].(time.Time)
	return t
}

// CompletedVars adds result, stop_time and elapsed_time. A run without a
// result has result None.
func CompletedVars(vars map[string]any, ev *observer.CompletedEvent) map[string]any {
	var result any
	if ev.HasResult {
		result = ev.Result
	}
	return withVars(vars, map[string]any{
		"result":       result,
		"stop_time":    ev.StopTime,
		"elapsed_time": pyfmt.Elapsed(startTime(vars), ev.StopTime),
	})
}

// InterruptedVars adds status, interrupt_time and elapsed_time.
func InterruptedVars(vars map[string]any, ev *observer.InterruptedEvent) map[string]any {
	return withVars(vars, map[string]any{
		"status":         ev.Status,
		"interrupt_time": ev.StopTime,
		"elapsed_time":   pyfmt.Elapsed(startTime(vars), ev.StopTime),
	})
}

// Bounds of what a failure message carries of the trace: the messengers
// cap a message (Telegram at 4096 characters), and the end of the trace is
// what tells what went wrong.
const (
	TraceLines = 20
	TraceBytes = 2500
	ErrorBytes = 500
)

// FailedVars adds fail_trace, error (the last line of the trace, stripped,
// as Sacred takes it), fail_time, elapsed_time and backtrace (the trace
// joined). error and backtrace are bounded: the last TraceLines lines and
// TraceBytes bytes of the trace, the last ErrorBytes of the error.
func FailedVars(vars map[string]any, ev *observer.FailedEvent) map[string]any {
	trace := make([]any, len(ev.Trace))
	for i, l := range ev.Trace {
		trace[i] = l
	}
	errLine := ""
	if n := len(ev.Trace); n > 0 {
		errLine = strings.TrimSpace(ev.Trace[n-1])
	}
	return withVars(vars, map[string]any{
		"fail_trace":   trace,
		"error":        TailBytes(errLine, ErrorBytes),
		"fail_time":    ev.StopTime,
		"elapsed_time": pyfmt.Elapsed(startTime(vars), ev.StopTime),
		"backtrace":    TraceTail(ev.Trace, TraceLines, TraceBytes),
	})
}

// TraceTail joins the last maxLines lines of trace, at most maxBytes of
// them, starting with "…\n" when something was left out.
func TraceTail(trace []string, maxLines, maxBytes int) string {
	cut := false
	if len(trace) > maxLines {
		trace, cut = trace[len(trace)-maxLines:], true
	}
	s := strings.Join(trace, "")
	if len(s) > maxBytes {
		s, cut = TailBytes(s, maxBytes), true
		s = strings.TrimPrefix(s, "…")
		if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
			s = s[i+1:] // start at a whole line
		}
	}
	if cut {
		return "…\n" + s
	}
	return s
}

// TailBytes returns the last max bytes of s, cut at a character boundary
// and starting with "…" when cut.
func TailBytes(s string, max int) string {
	if len(s) <= max {
		return s
	}
	i := len(s) - max
	for i < len(s) && s[i]&0xC0 == 0x80 {
		i++
	}
	return "…" + s[i:]
}
