// Package reruncmd implements `sacred rerun`: the command of a recorded
// run, run again where it ran, with its config and seed (plus the updates
// given), as a new run that names the original in meta.rerun_of.
//
// rerun takes every flag of `sacred run`. The observer flags (or, without
// them, sacred.yaml and SACRED_*, else ./runs) name both the stores the
// original is looked for in and the stores the new run is recorded to, so
// by default a rerun is recorded next to its original.
package reruncmd

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/cli/runcmd"
	"github.com/sacred-go/sacred/internal/cli/storeflags"
	"github.com/sacred-go/sacred/internal/collect"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file"
)

// placeholder stands for the command on the command line handed to run's
// option parsing; the recorded command replaces it.
const placeholder = "sacred-rerun-placeholder"

// readTimeout bounds the reading of the original run.
const readTimeout = 2 * time.Minute

// RerunOptions are the parsed arguments of one `sacred rerun`.
type RerunOptions struct {
	// Run holds the options of `sacred run` as the flags give them; Argv,
	// Cwd, Config and the rest are filled from the original run.
	Run *runcmd.RunOptions
	// ID is the original run's id; NewArgs are the words after "--",
	// added to its command.
	ID      string
	NewArgs []string
	// Kinds are the registered observer kinds, for the stores to read.
	Kinds []observer.Kind
	// Git describes the repositories of paths now (collect.Git); tests
	// may replace it.
	Git func(paths []string) ([]observer.Repository, error)
}

// NewCmdRerun returns the `rerun` command: `sacred run`'s flags, a run id
// instead of the command. runF performs it with complete options; nil
// means the real one.
func NewCmdRerun(f *cmdutil.Factory, runF func(*RerunOptions) error) *cobra.Command {
	opts := &RerunOptions{Kinds: f.Kinds(), Git: collect.Git}
	cmd := runcmd.NewCmdRun(f, func(ro *runcmd.RunOptions) error {
		opts.Run = ro
		if runF != nil {
			return runF(opts)
		}
		return rerunRun(opts)
	})
	cmd.Use = "rerun [run flags] ID [with UPDATE...] [-- NEW ARGS...]"
	cmd.Short = "Run a recorded run's command again, with its config and seed, as a new run"
	cmd.Long = `Run the command of run ID again as a new run: the recorded command line
(meta.argv) in the recorded working directory (meta.cwd), with the recorded config
and seed, plus the updates after "with" (they win; seed=N changes the seed), and the
words after "--" added to the end of the command line. The new run records
meta.rerun_of: the original's store and id.

rerun takes the flags of sacred run. Its observer flags (-F DIR, -m URL, ...; else
sacred.yaml and SACRED_*, else ./runs) name the stores the run is looked for in
(the first that has it) and the stores the new run is recorded to: by default the
store the original came from.

rerun warns when a repository of the run is now at another commit, or a source file
has changed since (another md5), and when the run ran from a dirty tree (its
git.diff artifact has the changes). The environment is the current one.`
	cmd.Example = `  sacred rerun 7                          # run 7 of ./runs again, recorded in ./runs
  sacred rerun -m mongodb://localhost/sacred 12 with lr=0.05
  sacred rerun -F runs 7 with seed=1 -- --epochs 3`
	runE := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if c.ArgsLenAtDash() == 0 {
			return cmdutil.FlagErrorf("the run id goes before \"--\": sacred rerun ID [with UPDATE...] [-- NEW ARGS...]")
		}
		id, updates, newArgs, err := splitArgs(args)
		if err != nil {
			return err
		}
		opts.ID, opts.NewArgs = id, newArgs
		// Run's own parsing checks the flags and the updates; the
		// command is the original's, put in by rerunRun.
		runArgs := []string{}
		if len(updates) > 0 {
			runArgs = append(append(append(runArgs, "with"), updates...), "--")
		}
		return runE(c, append(runArgs, placeholder))
	}
	return cmd
}

// splitArgs reads ID [with UPDATE...] [-- NEW ARGS...].
func splitArgs(args []string) (id string, updates, newArgs []string, err error) {
	if len(args) == 0 {
		return "", nil, nil, cmdutil.FlagErrorf("no run id given: sacred rerun ID (sacred ls lists the runs)")
	}
	id, rest := args[0], args[1:]
	if strings.TrimSpace(id) == "" {
		return "", nil, nil, cmdutil.FlagErrorf("the run id is empty")
	}
	if len(rest) > 0 && rest[0] == "with" {
		rest = rest[1:]
		n := 0
		for n < len(rest) && rest[n] != "--" {
			n++
		}
		updates, rest = rest[:n], rest[n:]
		if len(updates) == 0 {
			return "", nil, nil, cmdutil.FlagErrorf("nothing after `with`: give updates such as lr=0.1")
		}
	}
	if len(rest) > 0 {
		if rest[0] != "--" {
			return "", nil, nil, cmdutil.FlagErrorf("%q after the run id: config updates go after `with`, new arguments of the command after `--`", rest[0])
		}
		newArgs = rest[1:]
	}
	return id, updates, newArgs, nil
}

// store is a store the original run may be in.
type store struct {
	kind  observer.Kind
	value string
}

func (s store) name() string {
	return strings.TrimSpace(s.kind.Title + " " + s.kind.RedactValue(s.value))
}

// stores are the readable stores the run's options name, in the order of
// the kinds, else ./runs.
func (o *RerunOptions) stores() []store {
	var out []store
	for _, k := range o.Kinds {
		if k.Open == nil {
			continue
		}
		for _, v := range o.Run.Observers[k.Option] {
			out = append(out, store{k, v})
		}
	}
	if len(out) == 0 {
		for _, k := range o.Kinds {
			if k.Option == file.Option && k.Open != nil {
				out = append(out, store{k, storeflags.DefaultDir})
			}
		}
	}
	return out
}

func (o *RerunOptions) warnf(format string, args ...any) {
	fmt.Fprintf(o.Run.IO.ErrOut, "sacred: "+format+"\n", args...)
}

// rerunRun finds the original, turns the run's options into its rerun and
// performs it; its error is the exit status (the command's, once it ran).
func rerunRun(o *RerunOptions) error {
	if err := o.prepare(context.Background()); err != nil {
		return err
	}
	return cmdutil.ExitStatus(runcmd.Run(o.Run))
}

// prepare reads the original run and sets the run's options from it.
func (o *RerunOptions) prepare(ctx context.Context) error {
	st, orig, err := o.find(ctx)
	if err != nil {
		return err
	}
	ro := o.Run
	if len(orig.Meta.Argv) == 0 {
		return fmt.Errorf("run %s of %s has no recorded command line (meta.argv), so it cannot be run again; it was not recorded by this sacred", o.ID, st.name())
	}
	if orig.Meta.Cwd == "" {
		return fmt.Errorf("run %s of %s has no recorded working directory (meta.cwd), so it cannot be run again", o.ID, st.name())
	}
	if fi, err := os.Stat(orig.Meta.Cwd); err != nil || !fi.IsDir() {
		return fmt.Errorf("run %s ran in %s, which is not a directory here any more: run it where that directory exists", o.ID, orig.Meta.Cwd)
	}
	newConfig, newUpdates, newFiles, err := collect.ParseUpdates(ro.Updates)
	if err != nil {
		return cmdutil.FlagErrorWrap(err)
	}
	config := observer.CloneMap(orig.Config)
	mergeInto(config, newConfig)
	if ro.Seed, err = collect.Seed(config); err != nil {
		return fmt.Errorf("run %s: %w", o.ID, err)
	}
	updates := observer.CloneMap(orig.Meta.ConfigUpdates)
	mergeInto(updates, newUpdates)
	ro.Config, ro.ConfigUpdates = config, updates
	ro.NamedConfigs = append(append([]string{}, orig.Meta.NamedConfigs...), newFiles...)
	ro.Argv = append(append([]string{}, orig.Meta.Argv...), o.NewArgs...)
	ro.Cwd = orig.Meta.Cwd
	if ro.Name == "" {
		ro.Name = orig.Experiment.Name
	}
	ro.Env = withPWD(ro.Env, ro.Cwd)
	ro.RerunOf = &observer.RunRef{Kind: st.kind.Option, Store: st.kind.RedactValue(st.value), ID: orig.ID}
	o.checkSources(orig)
	fmt.Fprintf(ro.IO.ErrOut, "sacred: running run %s of %s again: %s (in %s)\n", orig.ID, st.name(), commandLine(ro.Argv), ro.Cwd)
	return nil
}

// find reads the original from the first store that has it.
func (o *RerunOptions) find(ctx context.Context) (store, *observer.Run, error) {
	stores := o.stores()
	if len(stores) == 0 {
		return store{}, nil, cmdutil.FlagErrorf("no store to read run %s from: name one with an observer flag, e.g. -F DIR", o.ID)
	}
	settings := observer.Settings{Flags: o.Run.KindFlags, Warn: o.Run.IO.ErrOut}
	var names []string
	for _, st := range stores {
		names = append(names, st.name())
		run, err := readRun(ctx, st, o.ID, settings)
		if errors.Is(err, observer.ErrNotFound) {
			continue
		}
		if err != nil {
			return store{}, nil, fmt.Errorf("%s: %w", st.name(), err)
		}
		return st, run, nil
	}
	return store{}, nil, fmt.Errorf("no run %q in %s: give the id of a recorded run (sacred ls lists them)", o.ID, strings.Join(names, ", "))
}

func readRun(ctx context.Context, st store, id string, settings observer.Settings) (*observer.Run, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	r, err := st.kind.OpenReader(ctx, st.value, settings)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Run(ctx, id)
}

// checkSources warns when the code the run ran is not what is there now:
// a repository at another commit, a source with another md5.
func (o *RerunOptions) checkSources(orig *observer.Run) {
	base := orig.Experiment.BaseDir
	var paths []string
	for _, s := range orig.Experiment.Sources {
		p := filepath.Join(base, filepath.FromSlash(s.Name))
		paths = append(paths, p)
		if s.MD5 == "" {
			continue
		}
		sum, err := md5File(p)
		switch {
		case err != nil:
			o.warnf("rerun of run %s: its source %s is not there any more (%v)", orig.ID, p, errors.Unwrap(err))
		case sum != s.MD5:
			o.warnf("rerun of run %s: its source %s has changed since (md5 %s, it ran with %s)", orig.ID, p, sum, s.MD5)
		}
	}
	if len(orig.Experiment.Repositories) == 0 || o.Git == nil {
		return
	}
	if len(paths) == 0 {
		paths = []string{orig.Meta.Cwd}
	}
	now, err := o.Git(paths)
	if err != nil {
		o.warnf("rerun of run %s: cannot compare its repositories with what is there now: %v", orig.ID, err)
		return
	}
	for _, was := range orig.Experiment.Repositories {
		if was.Dirty {
			o.warnf("rerun of run %s: it ran from a repository with uncommitted changes (%s); its git.diff artifact, when recorded, has them", orig.ID, was.URL)
		}
		for _, is := range now {
			if is.URL == was.URL && is.Commit != was.Commit {
				o.warnf("rerun of run %s: the repository %s is at commit %s now; the run ran at %s", orig.ID, was.URL, short(is.Commit), short(was.Commit))
			}
		}
	}
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

func md5File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// mergeInto merges src into dst: mappings key by key, anything else
// replaced, as `with` updates merge.
func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeInto(dm, sm)
				continue
			}
		}
		dst[k] = observer.CloneValue(v)
	}
}

// withPWD sets PWD in env to dir, as a shell that changed to dir would.
func withPWD(env []string, dir string) []string {
	out := make([]string, 0, len(env)+1)
	for _, e := range env {
		if !strings.HasPrefix(e, "PWD=") {
			out = append(out, e)
		}
	}
	return append(out, "PWD="+dir)
}

// commandLine quotes argv for a message.
func commandLine(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'"'"'`) + "'"
		}
		parts[i] = a
	}
	return strings.Join(parts, " ")
}
