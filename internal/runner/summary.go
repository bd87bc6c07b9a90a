package runner

// The end of a run for cron and CI: the end ping (--ping), the summary
// file (--summary-json), GitHub Actions' step summary and notice, and
// showing a failed run under --quiet-unless-fail.

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sacred-go/sacred/internal/childapi"
	"github.com/sacred-go/sacred/pkg/observer"
)

// stepSummaryMetrics bounds the metrics listed in GitHub's step summary
// (the summary file lists them all).
const stepSummaryMetrics = 100

// lastMetrics keeps the last point of each metric the command logged.
type lastMetrics struct {
	mu sync.Mutex
	m  map[string]observer.MetricPoint
}

func (l *lastMetrics) note(series []observer.MetricSeries) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range series {
		if len(s.Points) == 0 {
			continue
		}
		if l.m == nil {
			l.m = map[string]observer.MetricPoint{}
		}
		l.m[s.Name] = s.Points[len(s.Points)-1]
	}
}

func (l *lastMetrics) all() map[string]observer.MetricPoint {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]observer.MetricPoint, len(l.m))
	for k, v := range l.m {
		out[k] = v
	}
	return out
}

// drainMetrics takes the points the command logged since the last call,
// noting the last value of each metric.
func (r *run) drainMetrics(api *childapi.Server) []observer.MetricSeries {
	s := api.DrainMetrics()
	r.last.note(s)
	return s
}

// ending is how the run ended, once known.
type ending struct {
	status    string // COMPLETED, FAILED, INTERRUPTED or TIMEOUT
	result    any
	hasResult bool
	pingWait  func()
}

// ended is called when the run's status and the command's exit status are
// known, before the observers' flush: the end ping goes out meanwhile,
// bounded by the same deadline. body is the ping's body.
func (r *run) ended(status string, code int, result any, hasResult bool, body []byte) {
	r.fin = ending{status: status, result: result, hasResult: hasResult}
	if r.ping != nil {
		r.fin.pingWait = r.ping.end(time.Now().Add(r.cfg.FlushTimeout), status, code, body, r.cfg.FlushTimeout)
	}
}

// endUnstarted ends a run whose command never ran: the observers that
// recorded its start have it as FAILED; line says why.
func (r *run) endUnstarted(code int, line string) {
	r.stopTime = time.Now().UTC()
	r.ended(observer.StatusFailed, code, nil, false, []byte(line+"\n"))
	r.reportEnd(code, false, false, nil)
}

// reportEnd is called after the flush with the wrapper's exit status. It
// waits for the end ping, writes the summary file and GitHub's step
// summary and, under --quiet-unless-fail, shows a run that failed: exit
// status not 0, a record incomplete, or trouble (the capture, the ping or
// the summaries failed).
func (r *run) reportEnd(code int, complete, trouble bool, out observer.Output) {
	if r.fin.pingWait != nil && !r.abandoned {
		r.fin.pingWait()
	}
	if r.ping != nil && r.ping.failed.Load() {
		trouble = true
	}
	s := r.summary(code, complete)
	if path := r.cfg.SummaryJSON; path != "" {
		if err := writeSummary(path, s); err != nil {
			r.say("--summary-json %s: %v", path, err)
			trouble = true
		}
	}
	if path := r.cfg.StepSummary; path != "" {
		if err := appendFile(path, s.markdown()); err != nil {
			r.say("GITHUB_STEP_SUMMARY %s: %v", path, err)
			trouble = true
		}
	}
	loud := code != 0 || !complete || trouble
	if r.cfg.Quiet != nil && loud {
		r.cfg.Quiet.show(out)
	}
	if r.cfg.StepSummary != "" && (r.cfg.Quiet == nil || loud) && r.cfg.Stdout != nil {
		fmt.Fprint(r.msgs.to(r.cfg.Stdout), s.notice())
	}
}

// runSummary is the --summary-json document.
type runSummary struct {
	// ID is null when no observer recorded the run (-u).
	ID         *string                  `json:"id"`
	Experiment string                   `json:"experiment"`
	Status     string                   `json:"status"`
	ExitCode   int                      `json:"exit_code"`
	StartTime  string                   `json:"start_time"`
	StopTime   string                   `json:"stop_time"`
	Duration   float64                  `json:"duration_seconds"`
	Result     any                      `json:"result"`
	Metrics    map[string]metricSummary `json:"metrics"`
	// Observers are where the run was recorded, by the observers' names
	// (without passwords); Complete says whether every one of them has
	// the whole run.
	Observers []string `json:"observers"`
	Complete  bool     `json:"complete"`
}

// summaryTime is the layout of the summary's times (RFC 3339, UTC).
const summaryTime = "2006-01-02T15:04:05.000000Z"

type metricSummary struct {
	// Value is null for a value JSON cannot hold (NaN, ±Inf).
	Value *float64 `json:"value"`
	Step  int64    `json:"step"`
}

func (r *run) summary(code int, complete bool) runSummary {
	// Times as the records have them: UTC, in microseconds.
	start, stop := r.startTime.UTC().Truncate(time.Microsecond), r.stopTime.UTC().Truncate(time.Microsecond)
	s := runSummary{
		Experiment: r.cfg.Start.Experiment.Name,
		Status:     r.fin.status,
		ExitCode:   code,
		StartTime:  start.Format(summaryTime),
		StopTime:   stop.Format(summaryTime),
		Duration:   stop.Sub(start).Seconds(),
		Metrics:    map[string]metricSummary{},
		Observers:  []string{},
		Complete:   complete,
	}
	if r.id != "" && len(r.obs) > 0 {
		id := r.id
		s.ID = &id
	}
	if r.fin.hasResult {
		if _, err := json.Marshal(r.fin.result); err == nil {
			s.Result = r.fin.result
		}
	}
	for name, p := range r.last.all() {
		ms := metricSummary{Step: p.Step}
		if !math.IsNaN(p.Value) && !math.IsInf(p.Value, 0) {
			v := p.Value
			ms.Value = &v
		}
		s.Metrics[name] = ms
	}
	for _, o := range r.obs {
		s.Observers = append(s.Observers, o.Name())
	}
	return s
}

// where says where the run was recorded, for people.
func (s runSummary) where() string {
	if len(s.Observers) == 0 {
		return "not recorded"
	}
	return "recorded in " + strings.Join(s.Observers, ", ")
}

func (s runSummary) title() string {
	run := "run"
	if s.ID != nil {
		run += " " + *s.ID
	}
	return fmt.Sprintf("%s %s (exit status %d)", run, s.Status, s.ExitCode)
}

// notice is GitHub Actions' workflow command that names the run in the
// job's annotations.
func (s runSummary) notice() string {
	msg := s.title() + ", " + s.where()
	if !s.Complete {
		msg += " (not completely: see the log)"
	}
	esc := strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A")
	return "::notice title=sacred::" + esc.Replace(msg) + "\n"
}

// markdown is the run's section of GitHub Actions' step summary.
func (s runSummary) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "### sacred: %s\n\n", mdEscape(s.title()))
	b.WriteString("| experiment | status | exit status | duration | recorded in |\n| --- | --- | --- | --- | --- |\n")
	recorded := strings.Join(s.Observers, ", ")
	if recorded == "" {
		recorded = "not recorded"
	} else if !s.Complete {
		recorded += " (not completely: see the log)"
	}
	fmt.Fprintf(&b, "| %s | %s | %d | %s | %s |\n\n", mdEscape(s.Experiment), s.Status, s.ExitCode,
		(time.Duration(s.Duration * float64(time.Second))).Round(time.Millisecond), mdEscape(recorded))
	if s.Result != nil {
		res, _ := json.Marshal(s.Result)
		text := string(res)
		if r := []rune(text); len(r) > 200 {
			text = string(r[:200]) + "…"
		}
		fmt.Fprintf(&b, "Result: %s\n\n", mdEscape(text))
	}
	if len(s.Metrics) > 0 {
		names := make([]string, 0, len(s.Metrics))
		for n := range s.Metrics {
			names = append(names, n)
		}
		sort.Strings(names)
		b.WriteString("| metric | last value | step |\n| --- | --- | --- |\n")
		for i, n := range names {
			if i == stepSummaryMetrics {
				fmt.Fprintf(&b, "| … %d more (see the run's record) | | |\n", len(names)-i)
				break
			}
			m := s.Metrics[n]
			v := "null"
			if m.Value != nil {
				v = strconv.FormatFloat(*m.Value, 'g', -1, 64)
			}
			fmt.Fprintf(&b, "| %s | %s | %d |\n", mdEscape(n), v, m.Step)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// mdEscape makes text safe in a markdown table cell: no line breaks, and
// markup characters shown as they are.
func mdEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\n', '\r':
			b.WriteByte(' ')
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '\\', '`', '*', '_', '[', ']', '|', '#', '~':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// writeSummary writes s to path atomically: readers see the old file or
// the new one, never a part. A path under /dev or /proc (/dev/stdout) or
// that is not a regular file (a pipe) is written to as it is.
func writeSummary(path string, s runSummary) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode the summary: %w", err)
	}
	data = append(data, '\n')
	if strings.HasPrefix(path, "/dev/") || strings.HasPrefix(path, "/proc/") {
		// /dev/stdout and the like: replacing what the link resolves to
		// would replace the file the wrapper's own output goes to.
		return writeInPlace(path, data)
	}
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target // a link stays a link; its target is replaced
	}
	perm := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		if !fi.Mode().IsRegular() {
			return writeInPlace(path, data)
		}
		perm = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// writeInPlace appends data to what path is (a pipe, a terminal, or the
// file the wrapper's output is redirected to).
func writeInPlace(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// appendFile appends text to path in one write, as GitHub's step summary
// file is shared by the steps of a job.
func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
