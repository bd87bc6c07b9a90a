// Package synccmd implements `sacred sync`: it replays journaled runs (the
// durable queue of `sacred run --journal`) into their stores, or into any
// other, and copies finished runs from one store into another.
//
// The two forms are told apart by where the observer flags stand:
//
//	sacred sync [JOURNAL|DIR...] [observer flags]   replay journals (flags: the stores to replay into)
//	sacred sync STORE-FLAG ID... observer flags     copy runs ID... of the first store into the others
//
// so flags are parsed by hand: the flags before the first argument, the
// arguments, then the flags after them.
package synccmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/cli/runcmd"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/queue"
)

// store is an observer value given on the command line.
type store struct {
	kind  observer.Kind
	value string
}

func (s store) name() string {
	return strings.TrimSpace(s.kind.Title + " " + s.kind.RedactValue(s.value))
}

// SyncOptions are the parsed arguments of one `sacred sync`.
type SyncOptions struct {
	IO *cmdutil.IOStreams
	// Args are the journals or directories (replay), or the run ids
	// (copy).
	Args []string
	// From is the store to copy from; nil for a replay.
	From *store
	// To are the stores to replay or copy into; empty: each journal's own.
	To []store
	// KindFlags are the kinds' own settings (Settings.Flags).
	KindFlags  map[string]string
	JournalDir string
	Timeout    time.Duration

	kinds    []observer.Kind
	getenv   func(string) string
	config   func() (*cmdutil.Config, error)
	runFlags func() *pflag.FlagSet // the flags of `sacred run`, for sacred.yaml
}

// flags holds the values one parse of the command line sets.
type flags struct {
	observers  map[string]*[]string
	kindFlags  map[string]*string
	journalDir string
	timeout    time.Duration
}

// flagSet defines sync's flags on fs, storing into fl.
func flagSet(fs *pflag.FlagSet, kinds []observer.Kind, fl *flags) {
	fl.observers = map[string]*[]string{}
	fl.kindFlags = map[string]*string{}
	for _, k := range kinds {
		vals := new([]string)
		fl.observers[k.Option] = vals
		usage := "a " + k.Title + " store: where to replay, or (before the ids) where to copy from"
		cmdutil.ArrayVarP(fs, vals, k.Option, k.Short, orDefault(k.Arg, "VALUE"), usage, func(v string) error {
			if _, err := k.Parse(v); err != nil {
				return &cmdutil.StatusError{Err: err, Code: cmdutil.ExitUsage}
			}
			return nil
		})
		for _, kf := range k.Flags {
			if fs.Lookup(kf.Name) != nil {
				continue
			}
			v := new(string)
			fl.kindFlags[kf.Name] = v
			if kf.Bool {
				b := new(bool)
				f := cmdutil.BoolVarP(fs, b, kf.Name, "", kf.Default == "true", kf.Usage)
				f.Value = &boolString{b: b, s: v}
			} else {
				cmdutil.StringVarP(fs, v, kf.Name, "", kf.Default, orDefault(kf.Arg, "VALUE"), kf.Usage, nil)
			}
		}
	}
	cmdutil.StringVarP(fs, &fl.journalDir, "journal-dir", "", "", "DIR", "directory of the journals (default $XDG_STATE_HOME/sacred/queue, else ~/.local/state/sacred/queue)", nil)
	cmdutil.DurationVarP(fs, &fl.timeout, "timeout", "", 2*time.Minute, "how long to keep trying stores that cannot be reached", true)
}

// boolString is a kind's boolean flag whose value is kept as a string.
type boolString struct {
	b *bool
	s *string
}

func (v *boolString) Set(x string) error {
	b, err := strconv.ParseBool(x)
	if err != nil {
		return errors.New("want true or false")
	}
	*v.b, *v.s = b, strconv.FormatBool(b)
	return nil
}
func (v *boolString) String() string { return strconv.FormatBool(*v.b) }
func (v *boolString) Type() string   { return "bool" }

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// given lists the observer values fs set, in the order of the kinds.
func (fl *flags) given(kinds []observer.Kind) []store {
	var out []store
	for _, k := range kinds {
		for _, v := range *fl.observers[k.Option] {
			out = append(out, store{kind: k, value: v})
		}
	}
	return out
}

// NewCmdSync returns the `sync` command. runF performs it with complete
// options; nil means the real one.
func NewCmdSync(f *cmdutil.Factory, runF func(*SyncOptions) error) *cobra.Command {
	kinds := f.Kinds()
	opts := &SyncOptions{IO: f.IOStreams, kinds: kinds, getenv: f.Getenv, config: f.Config,
		runFlags: func() *pflag.FlagSet { return runcmd.NewCmdRun(f, nil).Flags() }}
	cmd := &cobra.Command{
		Use:   "sync [JOURNAL|DIR...] [observer flags]",
		Short: "Replay journaled runs into their stores, or copy runs between stores",
		Long: `Replay the journals that sacred run --journal left (a store was down or slow) into
their stores: each journal goes to the store recorded in it, or to the stores named
by the observer flags after the journals. Journals are replayed idempotently: what a
store acknowledged is noted in the journal, so a second sync (or one racing with this
one) sends nothing twice; a journal whose store recorded all of it is removed.
Without a JOURNAL or DIR, the journal directory is replayed. Passwords are never kept
in journals: a store whose value had one needs it again, from its flag after the
journals or from its SACRED_* variable (e.g. SACRED_MONGO_DB).

With an observer flag before the arguments, the arguments are run ids of that store,
and each run is copied into the stores named by the flags after them, as a new run
there: config, host, metrics, output, artifacts, sources and status.`,
		Example: `  sacred sync                                   # every journal in the journal directory
  sacred sync ~/.local/state/sacred/queue/20250614T153012Z-3f9a1c7e.journal
  sacred sync run.journal -m mongodb://user:secret@db.example.com/sacred
  sacred sync -F runs 7 8 -m mongodb://localhost/sacred   # copy runs 7 and 8`,
		DisableFlagParsing: true,
		RunE: func(c *cobra.Command, args []string) error {
			for _, a := range args {
				if a == "--" {
					break
				}
				if a == "-h" || a == "--help" {
					return c.Help()
				}
			}
			if err := opts.parse(args); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return syncRun(opts)
		},
	}
	// The same flags, for help, man pages and completions.
	flagSet(cmd.Flags(), kinds, &flags{})
	cmdutil.NormalizeFlags(cmd)
	return cmd
}

// parse reads the command line: flags, arguments, flags.
func (o *SyncOptions) parse(args []string) error {
	var before, after flags
	fs1 := newFlagSet(o.kinds, &before)
	fs1.SetInterspersed(false)
	if err := fs1.Parse(args); err != nil {
		return cmdutil.FlagErrorWrap(err)
	}
	rest := fs1.Args()
	n := 0
	for n < len(rest) && !strings.HasPrefix(rest[n], "-") {
		n++
	}
	o.Args = rest[:n]
	if n < len(rest) && rest[n] == "--" {
		return cmdutil.FlagErrorf("sync takes no command: nothing goes after --")
	}
	fs2 := newFlagSet(o.kinds, &after)
	if err := fs2.Parse(rest[n:]); err != nil {
		return cmdutil.FlagErrorWrap(err)
	}
	if len(fs2.Args()) > 0 {
		return cmdutil.FlagErrorf("%q after the flags: give the journals or run ids before the flags that name the stores", fs2.Args()[0])
	}
	o.JournalDir = orDefault(after.journalDir, before.journalDir)
	o.Timeout = before.timeout
	if fs2.Changed("timeout") {
		o.Timeout = after.timeout
	}
	o.KindFlags = map[string]string{}
	for _, fl := range []*flags{&before, &after} {
		for name, v := range fl.kindFlags {
			if *v != "" {
				o.KindFlags[name] = *v
			}
		}
	}
	src, dst := before.given(o.kinds), after.given(o.kinds)
	switch {
	case len(src) > 0 && len(o.Args) == 0:
		// `sacred sync -m URL`: the store to replay the journals into.
		o.To = src
	case len(src) > 1:
		return cmdutil.FlagErrorf("copy from one store at a time: %d observer flags stand before the run ids", len(src))
	case len(src) == 1:
		o.From = &src[0]
		if len(dst) == 0 {
			return cmdutil.FlagErrorf("no store to copy run %s into: name it after the ids, e.g. sacred sync %s %s -F other-runs", o.Args[0], flagOf(src[0].kind), strings.Join(o.Args, " "))
		}
		o.To = dst
	default:
		o.To = dst
	}
	return nil
}

func newFlagSet(kinds []observer.Kind, fl *flags) *pflag.FlagSet {
	fs := pflag.NewFlagSet("sync", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flagSet(fs, kinds, fl)
	fs.SetNormalizeFunc(func(_ *pflag.FlagSet, name string) pflag.NormalizedName {
		return pflag.NormalizedName(strings.ReplaceAll(name, "_", "-"))
	})
	return fs
}

func flagOf(k observer.Kind) string {
	if k.Short != "" {
		return "-" + k.Short
	}
	return "--" + k.Option
}

// syncRun performs the sync; its error is the exit status.
func syncRun(o *SyncOptions) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	if o.From != nil {
		return o.copyRuns(ctx)
	}
	return o.replay(ctx)
}

func (o *SyncOptions) warn() io.Writer { return o.IO.ErrOut }

func (o *SyncOptions) sayf(format string, args ...any) {
	fmt.Fprintf(o.IO.ErrOut, "sacred: "+format+"\n", args...)
}

func (o *SyncOptions) settings() observer.Settings {
	return observer.Settings{Flags: o.KindFlags, Warn: o.IO.ErrOut}
}

// copyRuns copies each run of o.From into every store of o.To.
func (o *SyncOptions) copyRuns(ctx context.Context) error {
	r, err := o.From.kind.OpenReader(ctx, o.From.value, o.settings())
	if err != nil {
		return &cmdutil.StatusError{Err: fmt.Errorf("%s: %w", o.From.name(), err), Code: cmdutil.ExitFailure}
	}
	defer r.Close()
	failed := false
	for _, id := range o.Args {
		for _, t := range o.To {
			dst, err := t.kind.OpenObserver(ctx, t.value, o.settings())
			if err != nil {
				o.sayf("run %s: %s: %v", id, t.name(), err)
				failed = true
				continue
			}
			newID, err := queue.CopyRun(ctx, r, id, dst, queue.DefaultCallTimeout, o.warn())
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), queue.DefaultCallTimeout)
			if cerr := dst.Close(cctx); cerr != nil && err == nil {
				err = cerr
			}
			cancel()
			if err != nil {
				if errors.Is(err, observer.ErrNotFound) {
					o.sayf("run %s is not in %s: give an id that sacred ls lists there", id, o.From.name())
				} else {
					o.sayf("run %s of %s could not be copied into %s: %v", id, o.From.name(), t.name(), err)
				}
				failed = true
				continue
			}
			fmt.Fprintf(o.IO.Out, "copied run %s of %s into %s as run %s\n", id, o.From.name(), t.name(), newID)
		}
	}
	if failed {
		return &cmdutil.ExitError{Code: cmdutil.ExitFailure}
	}
	return nil
}

// journals lists the journals the arguments name.
func (o *SyncOptions) journals() ([]string, error) {
	args := o.Args
	if len(args) == 0 {
		dir := o.JournalDir
		if dir == "" {
			var err error
			if dir, err = queue.DefaultDir(o.getenv); err != nil {
				return nil, err
			}
		}
		args = []string{dir}
	}
	var out []string
	for _, a := range args {
		fi, err := os.Stat(a)
		switch {
		case errors.Is(err, fs.ErrNotExist) && len(o.Args) == 0:
			continue // no journal directory yet: nothing was journaled
		case err != nil:
			return nil, fmt.Errorf("%s: %w", a, err)
		case fi.IsDir():
			js, err := queue.Journals(a)
			if err != nil {
				return nil, err
			}
			out = append(out, js...)
		default:
			out = append(out, a)
		}
	}
	return out, nil
}

// replay replays every journal into its stores.
func (o *SyncOptions) replay(ctx context.Context) error {
	paths, err := o.journals()
	if err != nil {
		return &cmdutil.StatusError{Err: err, Code: cmdutil.ExitFailure}
	}
	if len(paths) == 0 {
		o.sayf("no journals to replay")
		return nil
	}
	failed := false
	for _, p := range paths {
		if !o.replayOne(ctx, p) {
			failed = true
		}
	}
	if failed {
		return &cmdutil.ExitError{Code: cmdutil.ExitFailure}
	}
	return nil
}

// replayOne replays one journal and reports; false when something is left
// that a later sync may record.
func (o *SyncOptions) replayOne(ctx context.Context, path string) bool {
	h, err := queue.ReadHeader(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			o.sayf("%s: already replayed (by another sacred sync)", path)
			return true
		}
		o.sayf("%v", err)
		return false
	}
	targets, err := o.targets(h)
	if err != nil {
		o.sayf("%s: %v", path, err)
		return false
	}
	res, err := queue.Replay(ctx, path, targets, queue.Options{Warn: o.warn()})
	switch {
	case queue.IsBusy(err):
		o.sayf("%s is in use by another sacred (a run still going, or another sync): skipped", path)
		return true
	case errors.Is(err, fs.ErrNotExist):
		o.sayf("%s: already replayed (by another sacred sync)", path)
		return true
	case err != nil:
		o.sayf("%s: %v", path, err)
		return false
	}
	ok := true
	for _, t := range res.Targets {
		run := "run " + h.ID
		if t.RunID != "" && t.RunID != h.ID {
			run += " (run " + t.RunID + " there)"
		}
		switch {
		case t.Done && t.Dead == 0:
			fmt.Fprintf(o.IO.Out, "%s: %s is recorded in %s\n", path, run, t.Store)
		case t.Done:
			fmt.Fprintf(o.IO.Out, "%s: %s is recorded in %s, except %d events it refused (see %s)\n", path, run, t.Store, t.Dead, strings.TrimSuffix(path, queue.Ext)+".dead")
		case t.Left == 0 && !res.Ends:
			fmt.Fprintf(o.IO.Out, "%s: %s is recorded in %s as far as the journal goes; the journal has no end (the sacred that wrote it stopped before the run did), so the run stays RUNNING there\n", path, run, t.Store)
		default:
			ok = false
			why := ""
			if t.Err != nil {
				why = fmt.Sprintf(" (%v)", t.Err)
			}
			o.sayf("%s: %d events of %s are not yet recorded in %s%s; the journal keeps them: run sacred sync again later", path, t.Left, run, t.Store, why)
		}
	}
	if res.Removed {
		fmt.Fprintf(o.IO.Out, "%s: removed (its store has all of it)\n", path)
	}
	return ok
}

// targets are the stores to replay journal h into: those given, else the
// one recorded in it, with its secrets from the environment or sacred.yaml.
func (o *SyncOptions) targets(h *queue.Header) ([]queue.Target, error) {
	stores := o.To
	if len(stores) == 0 {
		k, ok := lookup(o.kinds, h.Option)
		if !ok {
			return nil, fmt.Errorf("its store is a %s (--%s), which this sacred does not have: replay it into another store, e.g. -F DIR", orDefault(h.Title, h.Option), h.Option)
		}
		value := h.Value
		if h.Secret {
			v, ok := o.secretValue(k, h.Value)
			if !ok {
				return nil, fmt.Errorf("%s %s needs the password that the journal does not keep: give the full value after the journal (sacred sync JOURNAL %s VALUE) or set %s", k.Title, h.Value, flagOf(k), k.EnvVar())
			}
			value = v
		}
		stores = []store{{kind: k, value: value}}
	}
	out := make([]queue.Target, len(stores))
	for i, s := range stores {
		out[i] = queue.Target{
			Option: s.kind.Option, Title: s.kind.Title, Value: s.kind.RedactValue(s.value),
			Open: func(ctx context.Context) (observer.Observer, error) {
				return s.kind.OpenObserver(ctx, s.value, o.settings())
			},
		}
	}
	return out, nil
}

func lookup(kinds []observer.Kind, option string) (observer.Kind, bool) {
	for _, k := range kinds {
		if k.Option == option {
			return k, true
		}
	}
	return observer.Kind{}, false
}

// secretValue finds the value of kind k whose redacted form is redacted:
// in the kind's SACRED_* variable, or where `sacred run` would take it
// from (sacred.yaml).
func (o *SyncOptions) secretValue(k observer.Kind, redacted string) (string, bool) {
	if v := o.getenv(k.EnvVar()); v != "" && k.RedactValue(v) == redacted {
		return v, true
	}
	if o.runFlags == nil {
		return "", false
	}
	cfg, err := o.config()
	if err != nil || cfg == nil {
		return "", false
	}
	// Apply refuses keys that are no flag, so it gets all of run's.
	fs := o.runFlags()
	if _, err := cfg.Apply(fs); err != nil {
		return "", false
	}
	fl := fs.Lookup(k.Option)
	if fl == nil {
		return "", false
	}
	sv, ok := fl.Value.(pflag.SliceValue)
	if !ok {
		return "", false
	}
	for _, v := range sv.GetSlice() {
		if k.RedactValue(v) == redacted {
			return v, true
		}
	}
	return "", false
}
