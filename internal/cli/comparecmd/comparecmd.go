// Package comparecmd implements `sacred compare`: runs side by side, with
// the config keys that differ, the results, durations and the final,
// smallest and largest value of each metric.
package comparecmd

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/cli/runfmt"
	"github.com/sacred-go/sacred/internal/cli/storeflags"
	"github.com/sacred-go/sacred/internal/query"
	"github.com/sacred-go/sacred/pkg/observer"
)

// CompareOptions are the settings of one `sacred compare`.
type CompareOptions struct {
	IO     *cmdutil.IOStreams
	Stores []storeflags.Store
	// Runs are the run arguments: ids, or -N for an index from the latest.
	Runs []string
	// All shows the config keys that are equal too.
	All  bool
	JSON bool
	// Now is the moment DIED? is judged at; nil means time.Now.
	Now func() time.Time
}

// NewCmdCompare returns the `compare` command. runF compares with
// complete options; nil means the real comparison.
func NewCmdCompare(f *cmdutil.Factory, runF func(*CompareOptions) error) *cobra.Command {
	o := &CompareOptions{IO: f.IOStreams}
	var stores *storeflags.Flags
	cmd := &cobra.Command{
		Use:   "compare [STORE] ID ID... [flags]",
		Short: "Compare runs side by side",
		Long: `Compare runs side by side, one column per run: name, status, duration, result,
the config keys whose values differ (nested keys dotted; --all for every key),
and for each metric its last, smallest and largest value. On a terminal an
aligned table; in a pipe tab-separated lines; --json one JSON object.

STORE is named as for sacred ls (default ./runs). ` + storeflags.RunArgsUsage,
		Example: `  sacred compare -2 -1
  sacred compare -s sqlite:///runs.db 3 7 9 --json`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 2 {
				return cmdutil.FlagErrorf("sacred compare needs two runs or more (ids, or -1 for the latest), got %d", len(args))
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
				return Compare(context.Background(), o)
			})
		},
	}
	fs := cmd.Flags()
	cmdutil.BoolVarP(fs, &o.All, "all", "", false, "show every config key, not only those that differ")
	cmdutil.BoolVarP(fs, &o.JSON, "json", "", false, "print the comparison as one JSON object")
	stores = storeflags.Define(fs, f.Kinds())
	storeflags.MarkRunArgs(cmd)
	return cmd
}

// Comparison is what compare shows, in the shape of its JSON.
type comparison struct {
	runs    []*observer.Run
	stores  []string
	status  []string
	keys    []string         // config keys shown, sorted
	config  map[string][]any // key -> value per run (absent: missing)
	present map[string][]bool
	metrics []string // names, sorted
}

// Compare compares the runs.
func Compare(ctx context.Context, o *CompareOptions) error {
	now := time.Now()
	if o.Now != nil {
		now = o.Now()
	}
	q, err := query.Compile(query.Options{})
	if err != nil {
		return err
	}
	c := &comparison{config: map[string][]any{}, present: map[string][]bool{}}
	for _, arg := range o.Runs {
		st, run, err := storeflags.FindRun(ctx, o.Stores, arg)
		if err != nil {
			return err
		}
		c.runs = append(c.runs, run)
		c.stores = append(c.stores, st.Label)
		c.status = append(c.status, q.Status(run, now))
	}
	n := len(c.runs)
	flat := make([]map[string]any, n)
	keys := map[string]bool{}
	metrics := map[string]bool{}
	for i, r := range c.runs {
		flat[i] = map[string]any{}
		flatten("", r.Config, flat[i])
		for k := range flat[i] {
			keys[k] = true
		}
		for _, m := range r.Metrics {
			metrics[m.Name] = true
		}
	}
	for k := range keys {
		vals, pres := make([]any, n), make([]bool, n)
		same := true
		for i := range c.runs {
			vals[i], pres[i] = flat[i][k]
			if i > 0 && (pres[i] != pres[0] || string(canonical(vals[i])) != string(canonical(vals[0]))) {
				same = false
			}
		}
		if same && !o.All {
			continue
		}
		c.keys = append(c.keys, k)
		c.config[k], c.present[k] = vals, pres
	}
	slices.Sort(c.keys)
	for m := range metrics {
		c.metrics = append(c.metrics, m)
	}
	slices.Sort(c.metrics)
	if o.JSON {
		b := append(runfmt.AppendJSON(nil, c.object()), '\n')
		_, err := o.IO.Out.Write(b)
		return err
	}
	return c.table(o.IO)
}

func (c *comparison) several() bool {
	for _, s := range c.stores {
		if s != c.stores[0] {
			return true
		}
	}
	return false
}

func (c *comparison) object() runfmt.Object {
	var runs []any
	for i, r := range c.runs {
		var ro runfmt.Object
		ro.Set("id", r.ID)
		ro.Set("store", c.stores[i])
		ro.Set("name", r.Experiment.Name)
		ro.Set("status", c.status[i])
		if d, ok := runfmt.Seconds(r); ok {
			ro.Set("duration", d)
		} else {
			ro.Set("duration", nil)
		}
		if r.HasResult {
			ro.Set("result", r.Result)
		} else {
			ro.Set("result", nil)
		}
		runs = append(runs, ro)
	}
	config := map[string]any{}
	for _, k := range c.keys {
		vals := make([]any, len(c.runs))
		for i := range c.runs {
			if c.present[k][i] {
				vals[i] = c.config[k][i]
			}
		}
		config[k] = vals
	}
	metrics := map[string]any{}
	for _, name := range c.metrics {
		m := map[string]any{}
		for _, roll := range []string{"last", "min", "max"} {
			vals := make([]any, len(c.runs))
			for i, r := range c.runs {
				if v, ok := rollup(r, name, roll); ok {
					vals[i] = v
				}
			}
			m[roll] = vals
		}
		metrics[name] = m
	}
	var o runfmt.Object
	o.Set("runs", runs)
	o.Set("config", config)
	o.Set("metrics", metrics)
	return o
}

func (c *comparison) table(ios *cmdutil.IOStreams) error {
	human := ios.IsStdoutTTY()
	t := &runfmt.Table{Keep: map[int]bool{}}
	head := []string{""}
	if !human {
		head[0] = "field"
	}
	for i, r := range c.runs {
		h := r.ID
		if c.several() {
			h = c.stores[i] + " " + r.ID
		}
		head = append(head, h)
	}
	t.Add(head...)
	row := func(label string, cell func(i int, r *observer.Run) string) {
		cells := []string{label}
		for i, r := range c.runs {
			cells = append(cells, cell(i, r))
		}
		t.Add(cells...)
	}
	row("name", func(_ int, r *observer.Run) string { return r.Experiment.Name })
	row("status", func(i int, _ *observer.Run) string { return c.status[i] })
	row("duration", func(_ int, r *observer.Run) string {
		d, ok := runfmt.Seconds(r)
		if !ok {
			return runfmt.Cell(nil, false, human)
		}
		return runfmt.Duration(d, human)
	})
	row("result", func(_ int, r *observer.Run) string { return runfmt.Cell(r.Result, r.HasResult, human) })
	for _, k := range c.keys {
		row("config."+k, func(i int, _ *observer.Run) string {
			return runfmt.Cell(c.config[k][i], c.present[k][i], human)
		})
	}
	for _, name := range c.metrics {
		for _, roll := range []string{"last", "min", "max"} {
			row("metrics."+name+"."+roll, func(_ int, r *observer.Run) string {
				v, ok := rollup(r, name, roll)
				return runfmt.Cell(v, ok, human)
			})
		}
	}
	if human {
		return t.WriteAligned(ios.Out, ios.TerminalWidth())
	}
	return t.WriteTSV(ios.Out)
}

// rollup is the last, smallest or largest value of a metric (NaN
// ignored for the extremes).
func rollup(r *observer.Run, name, roll string) (float64, bool) {
	for _, m := range r.Metrics {
		if m.Name != name || len(m.Points) == 0 {
			continue
		}
		if roll == "last" {
			return m.Points[len(m.Points)-1].Value, true
		}
		best, found := 0.0, false
		for _, p := range m.Points {
			if math.IsNaN(p.Value) {
				continue
			}
			if !found || (roll == "min" && p.Value < best) || (roll == "max" && p.Value > best) {
				best, found = p.Value, true
			}
		}
		return best, found
	}
	return 0, false
}

// flatten puts the leaves of nested config dicts under dotted keys.
func flatten(prefix string, m map[string]any, out map[string]any) {
	for k, v := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok && len(sub) > 0 {
			flatten(key, sub, out)
			continue
		}
		out[key] = v
	}
}

// canonical is a value's JSON with every number as a float, so that 3
// read back as an integer from one store equals 3.0 from another.
func canonical(v any) []byte {
	return runfmt.JSON(numbersAsFloats(v))
}

func numbersAsFloats(v any) any {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case int:
		return float64(x)
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return string(x)
		}
		return f
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = numbersAsFloats(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = numbersAsFloats(e)
		}
		return out
	}
	return v
}
