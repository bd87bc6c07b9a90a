// Package lscmd implements `sacred ls`: the runs of one or more stores,
// selected with the query language of internal/query, as an aligned table
// on a terminal, tab-separated lines in a pipe, CSV or JSON lines.
package lscmd

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/cli/runfmt"
	"github.com/sacred-go/sacred/internal/cli/storeflags"
	"github.com/sacred-go/sacred/internal/query"
	"github.com/sacred-go/sacred/pkg/observer"
)

// LsOptions are the settings of one `sacred ls`.
type LsOptions struct {
	IO *cmdutil.IOStreams
	// Stores are the stores to list, opened by the command.
	Stores []storeflags.Store

	Name      string
	Where     string
	Status    []string
	Index     []int
	Last      int
	Limit     int
	Columns   []string
	Sort      []string
	DeadAfter time.Duration
	JSON, CSV bool
	// Now is the moment DIED? is judged at; nil means time.Now.
	Now func() time.Time
}

// NewCmdLs returns the `ls` command. runF lists with complete options;
// nil means the real listing. Tests pass their own to inspect them.
func NewCmdLs(f *cmdutil.Factory, runF func(*LsOptions) error) *cobra.Command {
	o := &LsOptions{IO: f.IOStreams}
	var status, index, columns, sort []string
	var stores *storeflags.Flags
	cmd := &cobra.Command{
		Use:   "ls [STORE] [flags]",
		Short: "List the runs of a store",
		Long: `List the runs of a store, oldest first: on a terminal an aligned table (id, name,
status, start, duration, result and the chosen columns) cut to the terminal's
width; in a pipe tab-separated lines with a header; --csv or --json (one object
per run, JSON lines) for programs.

STORE is named with the flags of sacred run (-F DIR, -m URL, -s URL, -t DIR, ...,
several at once: a store column tells the rows apart), else with sacred.yaml or
SACRED_*, else ./runs. Nothing is written to a store.

--where takes an expression over a run's fields (see docs/query.md):
  config.lr > 0.01 && status == "COMPLETED"
  name =~ "^mnist" || metrics.loss.last < 0.1
A RUNNING run whose heartbeat is older than --dead-after shows as DIED?.
Times are UTC.`,
		Example: `  sacred ls
  sacred ls -F runs --where 'config.lr > 0.01' --sort -result --last 20
  sacred ls --status DIED? --columns config.lr,metrics.loss.last
  sacred ls -s sqlite:///runs.db --json | jq -r .id`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			var err error
			o.Status = splitList(status)
			o.Columns = splitList(columns)
			o.Sort = splitList(sort)
			if o.Index, err = parseIndices(index); err != nil {
				return err
			}
			if o.JSON && o.CSV {
				return cmdutil.FlagErrorf("--json and --csv: give one or the other")
			}
			return stores.Use(f, c, func(opened []storeflags.Store) error {
				o.Stores = opened
				if runF != nil {
					return runF(o)
				}
				return Ls(context.Background(), o)
			})
		},
	}
	fs := cmd.Flags()
	fs.SortFlags = false
	cmdutil.StringVarP(fs, &o.Name, "name", "n", "", "RE", "only experiments whose name matches this regular expression (searched, as re.search)", nil)
	cmdutil.StringVarP(fs, &o.Where, "where", "", "", "EXPR", "only runs for which this expression holds (see docs/query.md)", nil)
	cmdutil.ArrayVarP(fs, &status, "status", "", "STATUS", "only runs with this status: QUEUED, RUNNING, COMPLETED, FAILED, INTERRUPTED, TIMEOUT or DIED? (comma-separated or repeated)", nil)
	cmdutil.ArrayVarP(fs, &index, "index", "", "N", "only the runs at these positions among those selected: 0 the oldest, -1 the latest (comma-separated or repeated)", nil)
	fs.IntVar(&o.Last, "last", 0, "only the `N` latest runs selected")
	cmdutil.ArrayVarP(fs, &columns, "columns", "c", "FIELDS", "more columns: field paths such as config.lr,result,metrics.loss.last (comma-separated)", nil)
	cmdutil.ArrayVarP(fs, &sort, "sort", "", "KEYS", "sort by these fields; -FIELD for descending, e.g. -result,config.lr", nil)
	fs.IntVar(&o.Limit, "limit", 0, "show at most `N` runs, after sorting")
	cmdutil.DurationVarP(fs, &o.DeadAfter, "dead-after", "", query.DefaultDeadAfter, "a RUNNING run whose heartbeat is older than this shows as DIED?", true)
	cmdutil.BoolVarP(fs, &o.JSON, "json", "", false, "one JSON object per run (JSON lines)")
	cmdutil.BoolVarP(fs, &o.CSV, "csv", "", false, "CSV with a header line")
	stores = storeflags.Define(fs, f.Kinds())
	return cmd
}

// splitList splits comma-separated values, keeping commas inside
// brackets and quotes (config["a,b"]).
func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		depth, quote, start := 0, rune(0), 0
		for i, r := range v {
			switch {
			case quote != 0:
				if r == quote {
					quote = 0
				}
			case r == '"' || r == '\'':
				quote = r
			case r == '[':
				depth++
			case r == ']':
				depth--
			case r == ',' && depth == 0:
				if p := strings.TrimSpace(v[start:i]); p != "" {
					out = append(out, p)
				}
				start = i + 1
			}
		}
		if p := strings.TrimSpace(v[start:]); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func parseIndices(vals []string) ([]int, error) {
	var out []int
	for _, v := range splitList(vals) {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, cmdutil.FlagErrorf("--index %q: want whole numbers such as 0, -1 or 0,2,-1", v)
		}
		out = append(out, n)
	}
	return out, nil
}

// Ls lists the runs.
func Ls(ctx context.Context, o *LsOptions) error {
	now := time.Now()
	if o.Now != nil {
		now = o.Now()
	}
	q, err := query.Compile(query.Options{
		Name: o.Name, Where: o.Where, Status: o.Status, Indices: o.Index, Last: o.Last,
		Sort: o.Sort, Limit: o.Limit, Columns: o.Columns, DeadAfter: o.DeadAfter,
	})
	if err != nil {
		return queryError(o.IO, err)
	}
	for _, u := range q.UnknownFields() {
		fmt.Fprintf(o.IO.ErrOut, "sacred: warning: %s is no field of a run (see docs/query.md): it matches nothing\n", u)
	}
	several := len(o.Stores) > 1
	type row struct {
		store string
		run   *observer.Run
	}
	var rows []row
	for _, st := range o.Stores {
		runs, err := q.Find(ctx, st.Reader, now)
		var ie *query.IndexError
		if errors.As(err, &ie) && several {
			return fmt.Errorf("%s: %w", st.Label, err)
		}
		if err != nil {
			return err
		}
		for _, r := range runs {
			rows = append(rows, row{st.Label, r})
		}
	}

	out := o.IO.Out
	if o.JSON {
		var buf []byte
		for _, r := range rows {
			var obj runfmt.Object
			if several {
				obj.Set("store", r.store)
			}
			obj.Set("id", r.run.ID)
			obj.Set("name", r.run.Experiment.Name)
			obj.Set("status", q.Status(r.run, now))
			obj.Set("start_time", timeOrNil(r.run.StartTime))
			obj.Set("stop_time", timeOrNil(r.run.StopTime))
			if d, ok := runfmt.Seconds(r.run); ok {
				obj.Set("duration", d)
			} else {
				obj.Set("duration", nil)
			}
			if r.run.HasResult {
				obj.Set("result", r.run.Result)
			}
			for i, c := range q.Columns() {
				if v, ok := q.Column(r.run, i, now); ok {
					obj.Set(c, v)
				}
			}
			buf = append(runfmt.AppendJSON(buf[:0], obj), '\n')
			if _, err := out.Write(buf); err != nil {
				return err
			}
		}
		return nil
	}

	human := o.IO.IsStdoutTTY() && !o.CSV
	t := &runfmt.Table{Keep: map[int]bool{}}
	header := []string{"id", "name", "status", "start", "duration", "result"}
	if several {
		header = append([]string{"store"}, header...)
	}
	header = append(header, q.Columns()...)
	if human {
		for i, h := range header {
			header[i] = strings.ToUpper(h)
			if h == "id" || h == "status" || h == "start" || h == "duration" {
				t.Keep[i] = true
			}
		}
	}
	t.Add(header...)
	for _, r := range rows {
		var cells []string
		if several {
			cells = append(cells, r.store)
		}
		d, hasD := runfmt.Seconds(r.run)
		dur := ""
		if hasD {
			dur = runfmt.Duration(d, human)
		} else if human {
			dur = "-"
		}
		cells = append(cells, r.run.ID, r.run.Experiment.Name, q.Status(r.run, now),
			runfmt.Time(r.run.StartTime, human), dur, runfmt.Cell(r.run.Result, r.run.HasResult, human))
		for i := range q.Columns() {
			v, ok := q.Column(r.run, i, now)
			cells = append(cells, runfmt.Cell(v, ok, human))
		}
		t.Add(cells...)
	}
	switch {
	case o.CSV:
		return t.WriteCSV(out)
	case human:
		if len(rows) == 0 {
			fmt.Fprintln(o.IO.ErrOut, "no runs")
			return nil
		}
		return t.WriteAligned(out, o.IO.TerminalWidth())
	}
	return t.WriteTSV(out)
}

func timeOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

// queryError reports a query that does not compile: one line, and on a
// terminal the expression with a caret under the column.
func queryError(ios *cmdutil.IOStreams, err error) error {
	var se *query.SyntaxError
	if errors.As(err, &se) && ios.IsStderrTTY() {
		fmt.Fprintf(ios.ErrOut, "sacred: %s\n%s\n", err, se.Context())
		return &cmdutil.ExitError{Code: cmdutil.ExitFailure}
	}
	return err
}
