// Package showcmd implements `sacred show`: the summary report of a run
// in the layout of Sacred's TinyDbReader.fetch_report, with the status,
// host, git state, failure, last metric values and the tail of the output
// added; or the whole record as JSON.
package showcmd

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/cli/runfmt"
	"github.com/sacred-go/sacred/internal/cli/storeflags"
	"github.com/sacred-go/sacred/internal/query"
	"github.com/sacred-go/sacred/pkg/observer"
)

// TailLines is how many lines of the output the report shows without
// --output.
const TailLines = 20

// ShowOptions are the settings of one `sacred show`.
type ShowOptions struct {
	IO     *cmdutil.IOStreams
	Stores []storeflags.Store
	// Runs are the run arguments: ids, or -N for an index from the latest.
	Runs   []string
	JSON   bool
	Output bool
	// Now is the moment DIED? is judged at; nil means time.Now.
	Now func() time.Time
}

// NewCmdShow returns the `show` command. runF shows with complete
// options; nil means the real report.
func NewCmdShow(f *cmdutil.Factory, runF func(*ShowOptions) error) *cobra.Command {
	o := &ShowOptions{IO: f.IOStreams}
	var stores *storeflags.Flags
	cmd := &cobra.Command{
		Use:   "show [STORE] ID|-1... [flags]",
		Short: "Show the summary report of a run",
		Long: `Show the summary report of a run, in the layout of Sacred's TinyDbReader
(Experiment, ID, Date, Duration, Parameters, Result, Dependencies, Resources,
Source Files, Outputs), with its status and failure, host, git commit, the last
value of each metric and the last lines of its output (--output: all of it).
--json prints the whole record as one JSON object.

STORE is named as for sacred ls (-F DIR, -m URL, -s URL, -t DIR, ...; default
./runs). ` + storeflags.RunArgsUsage,
		Example: `  sacred show -1
  sacred show -s sqlite:///runs.db 12 --output
  sacred show -1 --json | jq .config`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmdutil.FlagErrorf("sacred show needs a run: its id, or -1 for the latest")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			o.Runs = args
			return stores.Use(f, c, func(opened []storeflags.Store) error {
				o.Stores = opened
				if runF != nil {
					return runF(o)
				}
				return Show(context.Background(), o)
			})
		},
	}
	fs := cmd.Flags()
	cmdutil.BoolVarP(fs, &o.JSON, "json", "", false, "print the whole record as JSON")
	cmdutil.BoolVarP(fs, &o.Output, "output", "", false, fmt.Sprintf("print the whole output, not its last %d lines", TailLines))
	stores = storeflags.Define(fs, f.Kinds())
	storeflags.MarkRunArgs(cmd)
	return cmd
}

// Show prints the report of each run asked for. Every run is found
// before anything is printed, so a wrong id prints nothing.
func Show(ctx context.Context, o *ShowOptions) error {
	now := time.Now()
	if o.Now != nil {
		now = o.Now()
	}
	q, err := query.Compile(query.Options{})
	if err != nil {
		return err
	}
	var runs []*observer.Run
	for _, arg := range o.Runs {
		_, run, err := storeflags.FindRun(ctx, o.Stores, arg)
		if err != nil {
			return err
		}
		runs = append(runs, run)
	}
	for _, run := range runs {
		var b []byte
		if o.JSON {
			b = append(runfmt.AppendJSON(nil, runfmt.Record(run, q.Status(run, now), true)), '\n')
		} else {
			b = Report(run, q.Status(run, now), o.Output)
		}
		if _, err := o.IO.Out.Write(b); err != nil {
			return err
		}
	}
	return nil
}

const rule = "-------------------------------------------------" // 49, as Sacred

// Report renders the summary report of a run. status is the status to
// show; all asks for the whole output rather than its tail.
func Report(r *observer.Run, status string, all bool) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "\n%s\nExperiment: %s\n%s\n", rule, r.Experiment.Name, rule)
	fmt.Fprintf(&b, "ID: %s\n", r.ID)
	fmt.Fprintf(&b, "Date: %s    Duration: %s\n", date(r), duration(r, status))
	fmt.Fprintf(&b, "Status: %s\n", status)
	if r.Command != "" {
		fmt.Fprintf(&b, "Command: %s\n", r.Command)
	}
	if r.Meta.Comment != "" {
		fmt.Fprintf(&b, "Comment: %s\n", r.Meta.Comment)
	}
	if h := r.Host; h != nil {
		line := h.Hostname
		if h.OS[1] != "" {
			line += " (" + h.OS[1] + ")"
		} else if h.OS[0] != "" {
			line += " (" + h.OS[0] + ")"
		}
		if h.CPU != "" {
			line += ", " + h.CPU
		}
		fmt.Fprintf(&b, "Host: %s\n", line)
	}
	for _, repo := range r.Experiment.Repositories {
		state := "clean"
		if repo.Dirty {
			state = "dirty"
		}
		fmt.Fprintf(&b, "Git: %s %s (%s)\n", repo.URL, repo.Commit, state)
	}

	keys := make([]string, 0, len(r.Config))
	for k := range r.Config {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var params []string
	for _, k := range keys {
		params = append(params, k+": "+runfmt.Cell(r.Config[k], true, false))
	}
	block(&b, "Parameters", params)
	var result []string
	if r.HasResult {
		result = []string{string(runfmt.JSON(r.Result))}
	}
	block(&b, "Result", result)
	block(&b, "Dependencies", r.Experiment.Dependencies)
	var res []string
	for _, x := range r.Resources {
		res = append(res, x.Path)
	}
	block(&b, "Resources", res)
	var srcs []string
	for _, s := range r.Experiment.Sources {
		line := s.Name
		if s.Omitted {
			line += fmt.Sprintf(" (%d bytes, content not recorded)", s.Size)
		}
		srcs = append(srcs, line)
	}
	block(&b, "Source Files", srcs)
	block(&b, "Outputs", r.Artifacts)

	if len(r.Metrics) > 0 {
		var ms []string
		for _, m := range r.Metrics {
			ms = append(ms, metricLine(m))
		}
		block(&b, "Metrics", ms)
	}
	if len(r.FailTrace) > 0 {
		block(&b, "Fail Trace", strings.Split(strings.TrimRight(strings.Join(r.FailTrace, ""), "\n"), "\n"))
	}
	lines, total := outputLines(r.Output, all)
	title := "Output"
	if len(lines) < total {
		title = fmt.Sprintf("Output (last %d of %d lines; --output for all)", len(lines), total)
	}
	block(&b, title, lines)
	return b.Bytes()
}

// block writes a titled block with a four-space indent, "None" when empty.
func block(b *bytes.Buffer, title string, lines []string) {
	fmt.Fprintf(b, "\n%s:\n", title)
	if len(lines) == 0 {
		b.WriteString("    None\n")
		return
	}
	for _, l := range lines {
		b.WriteString("    " + l + "\n")
	}
}

var weekdays = [...]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// date is Sacred's "Sat 12 Nov 2016" of the start (or queue) time.
func date(r *observer.Run) string {
	t := r.StartTime
	if t.IsZero() {
		t = r.QueueTime
	}
	if t.IsZero() {
		return "unknown"
	}
	t = t.UTC()
	return weekdays[t.Weekday()] + " " + t.Format("02 Jan 2006")
}

// duration is Sacred's "%02d:%02d:%04.1f" (hours, minutes, seconds).
func duration(r *observer.Run, status string) string {
	s, ok := runfmt.Seconds(r)
	if !ok {
		return "unknown"
	}
	h := int(s / 3600)
	m := int(math.Mod(s, 3600) / 60)
	out := fmt.Sprintf("%02d:%02d:%04.1f", h, m, math.Mod(s, 60))
	if r.StopTime.IsZero() {
		out += " (until the last heartbeat; " + strings.ToLower(status) + ")"
	}
	return out
}

func metricLine(m observer.MetricSeries) string {
	if len(m.Points) == 0 {
		return m.Name + ": no points"
	}
	last := m.Points[len(m.Points)-1]
	lo, hi, found := 0.0, 0.0, false
	for _, p := range m.Points {
		if math.IsNaN(p.Value) {
			continue
		}
		if !found || p.Value < lo {
			lo = p.Value
		}
		if !found || p.Value > hi {
			hi = p.Value
		}
		found = true
	}
	line := fmt.Sprintf("%s: %s (step %d", m.Name, runfmt.Float(last.Value, false), last.Step)
	if len(m.Points) > 1 && found {
		line += fmt.Sprintf("; min %s, max %s; %d points", runfmt.Float(lo, false), runfmt.Float(hi, false), len(m.Points))
	}
	return line + ")"
}

// outputLines splits the output into lines, the last TailLines of them
// unless all; total counts every line.
func outputLines(out []byte, all bool) ([]string, int) {
	s := strings.TrimRight(string(bytes.ToValidUTF8(out, []byte("\uFFFD"))), "\n")
	if s == "" {
		return nil, 0
	}
	lines := strings.Split(s, "\n")
	total := len(lines)
	if !all && total > TailLines {
		lines = lines[total-TailLines:]
	}
	return lines, total
}
