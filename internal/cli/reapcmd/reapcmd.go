// Package reapcmd implements `sacred reap`: a run left RUNNING by a wrapper
// that was killed (SIGKILL, a crash, the machine going down) never gets its
// final event; reap finds such runs by their last heartbeat and records
// them as FAILED, through the store's observer.Resumer.
package reapcmd

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/cli/runcmd"
	"github.com/sacred-go/sacred/pkg/observer"
)

// DefaultOlder is how long a run must have gone without a heartbeat to be
// taken for dead: sixty default beat intervals (10 s).
const DefaultOlder = 10 * time.Minute

// callTimeout bounds each call into a store.
const callTimeout = 30 * time.Second

// Store is a store to look for dead runs in: a kind and its value.
type Store struct {
	Kind  observer.Kind
	Value string
}

// Name is the store in messages, without secrets.
func (s Store) Name() string {
	return strings.TrimSpace(s.Kind.Title + " " + s.Kind.RedactValue(s.Value))
}

// ReapOptions are the parsed arguments of one `sacred reap`.
type ReapOptions struct {
	IO *cmdutil.IOStreams
	// Stores are the stores named by the flags, else by sacred.yaml and
	// SACRED_*, else ./runs.
	Stores []Store
	// KindFlags are the kinds' own settings (Settings.Flags).
	KindFlags map[string]string
	// Older is the time since the last heartbeat (or the start, for a run
	// with none) after which a RUNNING run counts as dead.
	Older  time.Duration
	DryRun bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NewCmdReap returns the `reap` command. runF performs it with complete
// options; nil means the real one.
func NewCmdReap(f *cmdutil.Factory, runF func(*ReapOptions) error) *cobra.Command {
	kinds := f.Kinds()
	opts := &ReapOptions{IO: f.IOStreams}
	vals := map[string]*[]string{}
	kindFlags := map[string]*pflag.Flag{}
	cmd := &cobra.Command{
		Use:   "reap [STORE flags] [--older DURATION] [--dry-run]",
		Short: "Mark FAILED the runs whose wrapper was killed and left them RUNNING",
		Long: `A run whose wrapper was killed (SIGKILL, a crash, the machine going down) never
records its end and stays RUNNING. sacred reap finds the RUNNING runs whose last
heartbeat (or start, for a run that had none) is older than --older, and records
each as FAILED, with a fail trace that says so and when its last heartbeat was, and
its last heartbeat as its stop time. It prints one line per run.

The stores are named by the same flags as for sacred run (-F DIR, -m URL, -s URL,
...), else by sacred.yaml and SACRED_*, else ./runs.

A wrapper that is alive beats every -b seconds (10 by default): a run is only taken
for dead when it has gone without a beat for much longer than that. Give --older
well above the longest beat interval of the runs in the store: a wrapper that is
alive after all goes on recording, and depending on the store its next beat or its
end writes over the FAILED status. --dry-run says what would be done and changes
nothing.`,
		Example: `  sacred reap --dry-run                 # what would be marked FAILED in ./runs
  sacred reap -m mongodb://db.example.com/sacred --older 1h
  sacred reap -s sqlite:///runs.db`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return cmdutil.FlagErrorf("reap takes no arguments, got %q: name the stores with their flags, e.g. -F DIR", args[0])
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if err := opts.complete(f, kinds, vals, kindFlags); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return reapRun(opts)
		},
	}
	fs := cmd.Flags()
	for _, k := range kinds {
		v := new([]string)
		vals[k.Option] = v
		usage := "look in the " + k.Title + " " + orDefault(k.Arg, "VALUE") + " (repeatable)"
		if k.Open == nil {
			usage = k.Title + ": cannot be read back (a notifier)"
		}
		cmdutil.ArrayVarP(fs, v, k.Option, k.Short, orDefault(k.Arg, "VALUE"), usage, checkKind(k))
		for _, kf := range k.Flags {
			if kf.Bool {
				def, _ := strconv.ParseBool(kf.Default)
				kindFlags[kf.Name] = cmdutil.BoolVarP(fs, new(bool), kf.Name, "", def, kf.Usage)
			} else {
				kindFlags[kf.Name] = cmdutil.StringVarP(fs, new(string), kf.Name, "", kf.Default, orDefault(kf.Arg, "VALUE"), kf.Usage, nil)
			}
		}
	}
	cmdutil.DurationVarP(fs, &opts.Older, "older", "", DefaultOlder, "only runs without a heartbeat for this long (e.g. 30m, 2h)", true)
	cmdutil.BoolVarP(fs, &opts.DryRun, "dry-run", "", false, "say what would be marked FAILED, change nothing")
	cmdutil.NormalizeFlags(cmd)
	return cmd
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// checkKind checks a value with the kind's parser as it is given.
func checkKind(k observer.Kind) func(string) error {
	return func(v string) error {
		if _, err := k.Parse(v); err != nil {
			return &cmdutil.StatusError{Err: err, Code: cmdutil.ExitUsage}
		}
		return nil
	}
}

func flagOf(k observer.Kind) string {
	if k.Short != "" {
		return "-" + k.Short
	}
	return "--" + k.Option
}

// complete names the stores: the flags given, else what sacred.yaml and
// SACRED_* give `sacred run`, else ./runs.
func (o *ReapOptions) complete(f *cmdutil.Factory, kinds []observer.Kind, vals map[string]*[]string, kindFlags map[string]*pflag.Flag) error {
	if o.Older <= 0 {
		return cmdutil.FlagErrorf("--older %v: give a duration above zero, e.g. 10m", o.Older)
	}
	o.KindFlags = map[string]string{}
	for name, fl := range kindFlags {
		if fl.Changed {
			o.KindFlags[name] = fl.Value.String()
		}
	}
	for _, k := range kinds {
		for _, v := range *vals[k.Option] {
			if k.Open == nil {
				return cmdutil.FlagErrorf("%s: the runs of a %s cannot be read back, so none can be reaped there", flagOf(k), k.Title)
			}
			o.Stores = append(o.Stores, Store{Kind: k, Value: v})
		}
	}
	if len(o.Stores) > 0 {
		return nil
	}
	// As `sacred run` would record: its flags from sacred.yaml and SACRED_*.
	cfg, err := f.Config()
	if err != nil {
		return cmdutil.FlagErrorWrap(err)
	}
	rfs := runcmd.NewCmdRun(f, nil).Flags()
	if _, err := cfg.Apply(rfs); err != nil {
		return cmdutil.FlagErrorWrap(err)
	}
	for _, k := range kinds {
		fl := rfs.Lookup(k.Option)
		if fl == nil || k.Open == nil {
			continue
		}
		sv, ok := fl.Value.(pflag.SliceValue)
		if !ok {
			continue
		}
		for _, v := range sv.GetSlice() {
			o.Stores = append(o.Stores, Store{Kind: k, Value: v})
		}
		for _, kf := range k.Flags {
			if _, given := o.KindFlags[kf.Name]; !given {
				if rf := rfs.Lookup(kf.Name); rf != nil && rf.Changed {
					o.KindFlags[kf.Name] = rf.Value.String()
				}
			}
		}
	}
	if len(o.Stores) > 0 {
		return nil
	}
	for _, k := range kinds {
		if k.Option == "file_storage" && k.Open != nil {
			o.Stores = []Store{{Kind: k, Value: "runs"}}
			return nil
		}
	}
	return cmdutil.FlagErrorf("no store given: name one with an observer flag, e.g. -F DIR")
}

func (o *ReapOptions) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o *ReapOptions) sayf(format string, args ...any) {
	fmt.Fprintf(o.IO.ErrOut, "sacred: "+format+"\n", args...)
}

// reapRun looks through every store; its error is the exit status.
func reapRun(o *ReapOptions) error {
	ctx := context.Background()
	now := o.now().UTC()
	failed := false
	found := 0
	for _, st := range o.Stores {
		n, ok := o.reapStore(ctx, st, now)
		found += n
		failed = failed || !ok
	}
	if found == 0 && !failed {
		o.sayf("no run in %s has gone without a heartbeat for %v or more", storeNames(o.Stores), o.Older)
	}
	if failed {
		return &cmdutil.ExitError{Code: cmdutil.ExitFailure}
	}
	return nil
}

func storeNames(stores []Store) string {
	names := make([]string, len(stores))
	for i, s := range stores {
		names[i] = s.Name()
	}
	return strings.Join(names, ", ")
}

// reapStore reaps the dead runs of one store. It returns how many it found
// and false when something could not be read or written.
func (o *ReapOptions) reapStore(ctx context.Context, st Store, now time.Time) (int, bool) {
	settings := observer.Settings{Flags: o.KindFlags, Warn: o.IO.ErrOut}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	r, err := st.Kind.OpenReader(cctx, st.Value, settings)
	cancel()
	if err != nil {
		if errors.Is(err, observer.ErrNotFound) {
			o.sayf("%s: no such store: %v", st.Name(), err)
		} else {
			o.sayf("%s: %v", st.Name(), err)
		}
		return 0, false
	}
	defer r.Close()
	cctx, cancel = context.WithTimeout(ctx, callTimeout)
	ids, err := r.Runs(cctx)
	cancel()
	if err != nil {
		o.sayf("%s: listing runs: %v", st.Name(), err)
		return 0, false
	}
	ok, found := true, 0
	for _, id := range ids {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		run, err := r.Run(cctx, id)
		cancel()
		if err != nil {
			o.sayf("run %s of %s cannot be read: %v", id, st.Name(), err)
			ok = false
			continue
		}
		if run.Status != observer.StatusRunning {
			continue
		}
		last, what := run.Heartbeat, "last heartbeat"
		if last.IsZero() {
			last, what = run.StartTime, "no heartbeat, started"
		}
		if last.IsZero() || now.Sub(last) < o.Older {
			continue // its wrapper may be alive
		}
		found++
		age := now.Sub(last).Round(time.Second)
		seen := fmt.Sprintf("%s %s ago (%s)", what, age, last.Format(time.RFC3339))
		if o.DryRun {
			fmt.Fprintf(o.IO.Out, "run %s of %s: RUNNING, %s: would be marked FAILED (--dry-run)\n", run.ID, st.Name(), seen)
			continue
		}
		if err := reapOne(ctx, st, settings, run, last, now); err != nil {
			o.sayf("run %s of %s stays RUNNING: %v", run.ID, st.Name(), err)
			ok = false
			continue
		}
		fmt.Fprintf(o.IO.Out, "run %s of %s: RUNNING, %s: marked FAILED\n", run.ID, st.Name(), seen)
	}
	return found, ok
}

// Trace is the fail trace reap records for a run last seen at last.
func Trace(run *observer.Run, last, now time.Time) []string {
	seen := "its last heartbeat was at " + last.UTC().Format(time.RFC3339)
	if run.Heartbeat.IsZero() {
		seen = "it recorded no heartbeat; it started at " + last.UTC().Format(time.RFC3339)
	}
	return []string{fmt.Sprintf("sacred reap: the wrapper of this run stopped without recording its end (killed, e.g. with SIGKILL, or its machine went down); %s, %s before it was marked FAILED at %s\n",
		seen, now.Sub(last).Round(time.Second), now.UTC().Format(time.RFC3339))}
}

// reapOne records run as FAILED: a fresh observer of the store takes the
// run up (observer.Resumer) and sends the final event, with the time the
// run was last seen as its stop time.
func reapOne(ctx context.Context, st Store, settings observer.Settings, run *observer.Run, last, now time.Time) (err error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	ob, err := st.Kind.OpenObserver(cctx, st.Value, settings)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := ob.Close(cctx); cerr != nil && err == nil {
			err = cerr
		}
	}()
	res, ok := observer.As[observer.Resumer](ob)
	if !ok {
		return fmt.Errorf("%s cannot take up a run another process started (its observer does not implement Resume)", st.Kind.Title)
	}
	ev := &observer.StartEvent{ID: run.ID, Command: run.Command, Experiment: run.Experiment, Host: run.Host,
		Time: run.StartTime, Config: run.Config, Meta: run.Meta}
	if err := res.Resume(cctx, ev); err != nil {
		return err
	}
	return ob.Failed(cctx, &observer.FailedEvent{StopTime: last, Trace: Trace(run, last, now)})
}
