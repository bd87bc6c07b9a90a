// Package reapcmd implements `sacred reap`: a run left RUNNING by a wrapper
// that was killed (SIGKILL, a crash, the machine going down) never gets its
// final event; reap finds such runs by their last heartbeat (the runs
// `sacred ls --status DIED?` shows) and records them as FAILED, through the
// store's observer.Resumer.
package reapcmd

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/cli/storeflags"
	"github.com/sacred-go/sacred/internal/query"
	"github.com/sacred-go/sacred/pkg/observer"
)

// DefaultOlder is how long a run must have gone without a heartbeat to be
// taken for dead: sixty default beat intervals (10 s).
const DefaultOlder = 10 * time.Minute

// callTimeout bounds each call into a store.
const callTimeout = 30 * time.Second

// ReapOptions are the parsed arguments of one `sacred reap`.
type ReapOptions struct {
	IO *cmdutil.IOStreams
	// Stores are the stores named by the flags, else by sacred.yaml and
	// SACRED_*, else ./runs, open for reading.
	Stores []storeflags.Store
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
	opts := &ReapOptions{IO: f.IOStreams}
	var stores *storeflags.Flags
	cmd := &cobra.Command{
		Use:   "reap [STORE flags] [--older DURATION] [--dry-run]",
		Short: "Mark FAILED the runs whose wrapper was killed and left them RUNNING",
		Long: `A run whose wrapper was killed (SIGKILL, a crash, the machine going down) never
records its end and stays RUNNING. sacred reap finds the RUNNING runs whose last
heartbeat (or start, for a run that had none) is older than --older, and records
each as FAILED, with a fail trace that says so and when its last heartbeat was, and
its last heartbeat as its stop time. It prints one line per run. The runs it takes
are those sacred ls --status 'DIED?' --dead-after DURATION lists.

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
			if opts.Older <= 0 {
				return cmdutil.FlagErrorf("--older %v: give a duration above zero, e.g. 10m", opts.Older)
			}
			return stores.Use(f, c, func(opened []storeflags.Store) error {
				opts.Stores = opened
				if runF != nil {
					return runF(opts)
				}
				return reapRun(opts)
			})
		},
	}
	fs := cmd.Flags()
	stores = storeflags.Define(fs, f.Kinds())
	cmdutil.DurationVarP(fs, &opts.Older, "older", "", DefaultOlder, "only runs without a heartbeat for this long (e.g. 30m, 2h)", true)
	cmdutil.BoolVarP(fs, &opts.DryRun, "dry-run", "", false, "say what would be marked FAILED, change nothing")
	cmdutil.NormalizeFlags(cmd)
	return cmd
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

func storeNames(stores []storeflags.Store) string {
	names := make([]string, len(stores))
	for i, s := range stores {
		names[i] = storeName(s)
	}
	return strings.Join(names, ", ")
}

// storeName names a store in messages: "file storage runs".
func storeName(st storeflags.Store) string {
	return strings.TrimSpace(st.Kind.Title + " " + st.Label)
}

// reapStore reaps the dead runs of one store: those `sacred ls --status
// DIED? --dead-after OLDER` shows, found where the data is when the store
// can (query push-down). It returns how many it found and false when
// something could not be read or written.
func (o *ReapOptions) reapStore(ctx context.Context, st storeflags.Store, now time.Time) (int, bool) {
	q, err := query.Compile(query.Options{Status: []string{query.StatusDied}, DeadAfter: o.Older})
	if err != nil {
		o.sayf("%v", err)
		return 0, false
	}
	runs, err := q.Find(ctx, st.Reader, now)
	if err != nil {
		o.sayf("%s: %v", storeName(st), err)
		return 0, false
	}
	ok := true
	for _, run := range runs {
		last, what := run.Heartbeat, "last heartbeat"
		if last.IsZero() {
			last, what = run.StartTime, "no heartbeat, started"
		}
		seen := fmt.Sprintf("%s %s ago (%s)", what, now.Sub(last).Round(time.Second), last.UTC().Format(time.RFC3339))
		if o.DryRun {
			fmt.Fprintf(o.IO.Out, "run %s of %s: RUNNING, %s: would be marked FAILED (--dry-run)\n", run.ID, storeName(st), seen)
			continue
		}
		if err := reapOne(ctx, st, run, last, now); err != nil {
			o.sayf("run %s of %s stays RUNNING: %v", run.ID, storeName(st), err)
			ok = false
			continue
		}
		fmt.Fprintf(o.IO.Out, "run %s of %s: RUNNING, %s: marked FAILED\n", run.ID, storeName(st), seen)
	}
	return len(runs), ok
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
func reapOne(ctx context.Context, st storeflags.Store, run *observer.Run, last, now time.Time) (err error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	ob, err := st.Kind.OpenObserver(cctx, st.Value, st.Settings)
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
