package runcmd

// Completing the options of `sacred run`: sacred.yaml and SACRED_* fill
// the flags not given, the positional arguments split into `with` updates
// and the command, and combinations are checked. Everything that can be
// refused is refused here, before any observer records anything.

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/collect"
)

// minMonitorInterval is the shortest --monitor-interval: a sample of a
// large tree takes milliseconds, and shorter intervals would measure the
// wrapper more than the run.
const minMonitorInterval = 0.01

func (o *RunOptions) complete(f *cmdutil.Factory, c *cobra.Command, args []string) error {
	cwd, err := f.WorkingDir()
	if err != nil {
		return fmt.Errorf("cannot read the working directory: %w", err)
	}
	o.Cwd = cwd
	fs := c.Flags()
	fs.Visit(func(fl *pflag.Flag) { o.given = append(o.given, fl) })
	cfg, err := f.Config()
	if err != nil {
		return cmdutil.FlagErrorWrap(err)
	}
	if o.sources, err = cfg.Apply(fs); err != nil {
		return cmdutil.FlagErrorWrap(err)
	}
	if o.MonitorInterval < 0 || o.MonitorInterval > 0 && o.MonitorInterval < minMonitorInterval {
		return cmdutil.FlagErrorf("--monitor-interval %g: want 0 (off) or at least %g seconds", o.MonitorInterval, minMonitorInterval)
	}
	if err := o.checkCron(fs, o.Capture); err != nil {
		return err
	}
	o.StepSummary = o.stepSummary(f.Getenv)
	if out, ok := o.IO.OutFile(); ok {
		o.Stdout = out
	}
	if errOut, ok := o.IO.ErrFile(); ok {
		o.Stderr = errOut
	}

	o.Observers = map[string][]string{}
	for opt, vals := range o.observerVals {
		if len(*vals) > 0 {
			o.Observers[opt] = append([]string(nil), *vals...)
		}
	}
	o.KindFlags = map[string]string{}
	for _, fl := range o.kindFlags {
		if v := fl.Value.String(); v != "" {
			o.KindFlags[fl.Name] = v
		}
	}
	if o.Unobserved {
		for _, fl := range o.given {
			if _, isObserver := o.observerVals[fl.Name]; isObserver {
				return cmdutil.FlagErrorf("-u/--unobserved records nothing, but %s asks to record the run: give one or the other", cmdutil.FlagTitle(fl))
			}
		}
	}

	var afterWith bool
	o.Argv, o.Updates, afterWith = splitArgs(c.ArgsLenAtDash(), args)
	if len(o.Argv) == 0 && !o.Queue {
		return cmdutil.FlagErrorf("no command given: put the command to run after the flags, e.g. sacred run -- python3 train.py")
	}
	if afterWith && len(o.Argv) > 0 && strings.HasPrefix(o.Argv[0], "-") {
		return cmdutil.FlagErrorf("%q after the updates is not a command: flags go before `with`", o.Argv[0])
	}
	if o.Config, o.ConfigUpdates, o.NamedConfigs, err = collect.ParseUpdates(o.Updates); err != nil {
		return cmdutil.FlagErrorWrap(err)
	}
	if o.Seed, err = collect.Seed(o.Config); err != nil {
		return cmdutil.FlagErrorWrap(fmt.Errorf("with: %w", err))
	}
	o.Env, o.removedEnv = childEnv(f.Environ, o.kinds)
	return nil
}

// splitArgs splits the positional arguments into the `with` updates and
// the command. The updates end at "--" or at the first word that cannot be
// meant as an update (see collect.LooksLikeUpdate); a word that looks like
// one but is malformed stays an update, so that ParseUpdates refuses it
// instead of running it as the command. After a leading "--", "with" is the
// command's own word.
func splitArgs(dash int, args []string) (argv, updates []string, afterWith bool) {
	if dash == 0 || len(args) == 0 || args[0] != "with" {
		return args, nil, false
	}
	rest := args[1:]
	n := 0
	for n < len(rest) && rest[n] != "--" && collect.LooksLikeUpdate(rest[n]) {
		n++
	}
	updates, rest = rest[:n], rest[n:]
	if len(rest) > 0 && rest[0] == "--" {
		rest = rest[1:]
	}
	return rest, updates, true
}

// sourceNames lists where settings came from, for debug messages.
func (o *RunOptions) sourceNames() []string {
	var out []string
	for name, src := range o.sources {
		out = append(out, fmt.Sprintf("--%s from %s", name, src))
	}
	sort.Strings(out)
	return out
}
