// Package runcmd implements `sacred run`: it turns flags, sacred.yaml,
// SACRED_* variables and the `with` updates into a runner.Config, builds
// the observers and hands over to the runner.
//
// flags.go defines the flags (from the registered observer kinds too),
// options.go completes and checks the options, meta.go builds Sacred's
// meta.options, env.go prepares the child's environment.
package runcmd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sacred-go/sacred/internal/capture"
	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/collect"
	"github.com/sacred-go/sacred/internal/runner"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file"
)

// RunOptions are the settings of one `sacred run`.
type RunOptions struct {
	IO *cmdutil.IOStreams

	// Observers maps a kind's option name to its values, in order.
	Observers map[string][]string
	// KindFlags holds the values of the kinds' own flags (Settings.Flags).
	KindFlags map[string]string

	Unobserved    bool
	BeatInterval  float64 // seconds
	Capture       string
	Comment       string
	Name          string
	ID            string
	Priority      string
	PrintConfig   bool
	Queue         bool
	EnforceClean  bool
	LogLevel      string
	Debug         bool
	Force         bool
	Strict        bool
	Timeout       time.Duration
	KillAfter     time.Duration
	FlushTimeout  time.Duration
	Sources       []string
	CaptureEnv    []string
	MetricPattern string
	ResultFile    string
	// MaxSourceSize is the source size cap (--max-source-size): larger
	// sources are recorded by md5 and size only.
	MaxSourceSize int64
	// Journal names the observers whose events go through the durable
	// queue (--journal, see journal.go); JournalDir is where the journals
	// go.
	Journal    string
	JournalDir string
	// MonitorInterval is --monitor-interval in seconds; 0 turns the
	// process-tree sampling off.
	MonitorInterval float64
	// Deps is --deps: collect.DepsImported, DepsAll or DepsNone.
	Deps string
	// Unbuffered asks for PYTHONUNBUFFERED=1 in the child's environment.
	Unbuffered bool

	// Cron and CI (cronci.go): Lock is the --lock file (absolute once
	// complete), LockWait how long to wait for it; QuietUnlessFail,
	// SummaryJSON (absolute once complete) and Ping are their flags.
	Lock            string
	LockWait        time.Duration
	QuietUnlessFail bool
	SummaryJSON     string
	Ping            string
	// StepSummary is GitHub Actions' step summary file, when the run
	// writes a summary there.
	StepSummary string

	// Updates are the words after `with`; Config, ConfigUpdates,
	// NamedConfigs and Seed are what they say.
	Updates       []string
	Config        map[string]any
	ConfigUpdates map[string]any
	NamedConfigs  []string
	Seed          int64
	// Argv is the command.
	Argv []string

	// Cwd is where the command runs: the working directory, or for
	// sacred rerun the one the original ran in.
	Cwd string
	// RerunOf names the run that sacred rerun runs again (meta.rerun_of).
	RerunOf *observer.RunRef
	// Env is the child's environment before the runner adds SACRED_RUN_ID
	// and the others: ours without the observers' settings.
	Env            []string
	Stdout, Stderr *os.File

	// given holds the flags given on the command line (meta.options).
	given []*pflag.Flag
	// sources tells where settings from sacred.yaml and SACRED_* came from.
	sources cmdutil.Sources
	// removedEnv are the variables kept from the child.
	removedEnv []string

	observerVals map[string]*[]string
	kindFlags    []*pflag.Flag
	kinds        []observer.Kind
	// quiet holds sacred's messages under --quiet-unless-fail.
	quiet *runner.Quiet
}

// NewCmdRun returns the `run` command. runF performs the run with complete
// options; nil means the real run. Tests pass their own to inspect them.
func NewCmdRun(f *cmdutil.Factory, runF func(*RunOptions) error) *cobra.Command {
	kinds := f.Kinds()
	opts := &RunOptions{IO: f.IOStreams, kinds: kinds}
	cmd := &cobra.Command{
		Use:     "run [flags] [with UPDATE...] [--] COMMAND [ARG...]",
		Short:   "Run a command as an observed experiment run",
		Long:    longHelp(kinds),
		Example: example(kinds),
		Args:    cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := opts.complete(f, c, args); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return cmdutil.ExitStatus(Run(opts))
		},
	}
	opts.defineFlags(cmd.Flags(), kinds)
	cmdutil.NormalizeFlags(cmd)
	return cmd
}

func longHelp(kinds []observer.Kind) string {
	var flags, vars []string
	for _, k := range kinds {
		if k.Short != "" {
			flags = append(flags, "-"+k.Short)
		} else {
			flags = append(flags, "--"+k.Option)
		}
		vars = append(vars, k.EnvVar())
		vars = append(vars, k.Env...)
	}
	observers := "the observers chosen with " + strings.Join(flags, ", ")
	if len(flags) == 0 {
		observers = "no observer (none is built into this binary)"
	}
	return fmt.Sprintf(`Run COMMAND as an observed run: its output is passed through and captured,
host, git and source facts are recorded, a heartbeat ticks, and every event goes to
%s (default: as set in sacred.yaml or SACRED_*, else file storage in ./runs).

Everything after the command belongs to the command; "--" before it is optional.
Config updates go after "with": a.b=1 name=text 'layers=[64,64]' config.yaml.

Defaults come from sacred.yaml (working directory, then the user config directory)
and SACRED_* environment variables (%s, SACRED_BEAT_INTERVAL, ...); flags win.
Flag names take underscores or dashes alike: --enforce_clean is --enforce-clean.`, observers, strings.Join(vars, ", "))
}

func example(kinds []observer.Kind) string {
	ex := `  sacred run -c baseline with lr=0.1 'layers=[64,64]' -- python3 train.py --epochs 3
  sacred run python3 train.py --lr 0.1
  sacred run -u --timeout 1h -- ./long-job.sh`
	for _, k := range kinds {
		if k.Short != "" && k.Arg != "" {
			ex += fmt.Sprintf("\n  sacred run -%s %s -- ./train.sh", k.Short, k.Arg)
			break
		}
	}
	return ex
}

// Run performs `sacred run` with complete options and returns the exit
// status.
func Run(o *RunOptions) int {
	if o.Stdout == nil || o.Stderr == nil {
		o.logger().errorf("sacred run needs its standard output and error to be files")
		return cmdutil.ExitFailure
	}
	if o.QuietUnlessFail {
		// Every message of sacred goes through the quiet buffer, shown
		// only when the run fails.
		o.quiet = runner.NewQuiet(o.Stdout, o.Stderr)
		code := o.run(o.logger())
		o.quiet.End(code != 0)
		return code
	}
	return o.run(o.logger())
}

func (o *RunOptions) run(lg *logger) int {
	release, code := o.takeLock(lg)
	if code != 0 {
		return code
	}
	defer release()
	// Under --quiet-unless-fail nothing reaches the terminal as it comes,
	// so the child gets pipes (pty only when asked for).
	modeOut := o.Stdout
	if o.QuietUnlessFail {
		modeOut = nil
	}
	mode, err := capture.ParseMode(o.Capture, modeOut)
	if err != nil {
		lg.errorf("-C/--capture: %v", err)
		return cmdutil.ExitUsage
	}
	if o.Unobserved && o.Capture == "" && o.MetricPattern == "" && !o.QuietUnlessFail && o.Ping == "" {
		// Nothing will read the output: let the child write straight to
		// our streams, as Sacred does with no observers.
		mode = capture.ModeNo
	}
	for _, s := range o.sourceNames() {
		lg.debugf("%s", s)
	}
	lg.debugf("capture mode %s", mode)
	if len(o.removedEnv) > 0 {
		lg.debugf("kept from the command's environment (observer settings): %s", strings.Join(o.removedEnv, ", "))
	}

	// Collect facts concurrently; git is the slow one. With -u nothing
	// records them, so none is collected: the child starts sooner. The
	// experiment is still read when something checks it (-e, or --source
	// patterns that must match) or names it (the run summary).
	var (
		wg     sync.WaitGroup
		host   *observer.Host
		hostEr error
		ex     observer.Experiment
		exErr  error
	)
	if !o.Unobserved && !o.Queue {
		wg.Add(1)
		go func() {
			defer wg.Done()
			host, hostEr = collect.Host(o.CaptureEnv)
		}()
	}
	if !o.Unobserved || o.EnforceClean || len(o.Sources) > 0 || o.SummaryJSON != "" || o.StepSummary != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ex, exErr = collect.Experiment(o.Argv, o.Cwd, o.Name, o.Sources, collect.ExperimentOptions{MaxSourceSize: o.MaxSourceSize, Deps: o.Deps, Getenv: o.getenv})
		}()
	}
	if o.PrintConfig {
		b, _ := json.MarshalIndent(o.Config, "", "  ")
		fmt.Fprintf(o.Stdout, "%s\n%s\n", b, strings.Repeat("-", 79))
	}
	wg.Wait()
	if exErr != nil {
		lg.errorf("%v", exErr)
		return runner.ExitSetupFailed
	}
	if hostEr != nil {
		lg.warnf("some host facts could not be read: %v", hostEr)
	}
	if o.EnforceClean {
		if err := collect.EnforceClean(ex.Repositories); err != nil {
			lg.errorf("-e/--enforce_clean: %v", err)
			return runner.ExitSetupFailed
		}
	}

	obs, code := o.buildObservers(lg)
	if code != 0 {
		return code
	}

	meta := observer.Meta{
		Command:       commandLine(o.Argv),
		Argv:          o.Argv,
		Cwd:           o.Cwd,
		Options:       o.metaOptions(),
		Comment:       o.Comment,
		ConfigUpdates: o.ConfigUpdates,
		NamedConfigs:  o.NamedConfigs,
		RerunOf:       o.RerunOf,
	}
	if meta.NamedConfigs == nil {
		meta.NamedConfigs = []string{}
	}
	if o.Priority != "" {
		p, _ := strconv.ParseFloat(o.Priority, 64)
		meta.Priority = &p
	}
	start := &observer.StartEvent{
		ID:         o.ID,
		Command:    meta.Command,
		Experiment: ex,
		Host:       host,
		Config:     o.Config,
		Meta:       meta,
	}
	lg.debugf("command %s", meta.Command)
	// The command runs in o.Cwd. The observers are open by now, so values
	// given relative to the working directory were read against it.
	if wd, err := os.Getwd(); err != nil || wd != o.Cwd {
		if err := os.Chdir(o.Cwd); err != nil {
			lg.errorf("cannot run the command in %s: %v", o.Cwd, err)
			closeObservers(obs)
			return runner.ExitSetupFailed
		}
	}
	// The wrapper's own messages honour -l; the runner's warnings always show.
	return runner.Run(runner.Config{
		Argv:            o.Argv,
		Observers:       obs,
		Start:           start,
		Seed:            o.Seed,
		Queue:           o.Queue,
		BeatInterval:    time.Duration(o.BeatInterval * float64(time.Second)),
		MonitorInterval: time.Duration(o.MonitorInterval * float64(time.Second)),
		Capture:         mode,
		Timeout:         o.Timeout,
		KillAfter:       o.KillAfter,
		StartTimeout:    30 * time.Second,
		FlushTimeout:    o.FlushTimeout,
		Strict:          o.Strict,
		ResultFile:      o.ResultFile,
		MetricPattern:   o.MetricPattern,
		Stdout:          o.Stdout,
		Stderr:          o.Stderr,
		Env:             o.Env,
		Unbuffered:      o.Unbuffered,
		Messages:        lg.infoWriter(),
		Debug:           lg.debugWriter(),
		Quiet:           o.quiet,
		Ping:            o.Ping,
		SummaryJSON:     o.SummaryJSON,
		StepSummary:     o.StepSummary,
	})
}

// buildObservers opens the observers the options ask for, in the order of
// the kinds and of their values.
func (o *RunOptions) buildObservers(lg *logger) ([]observer.Observer, int) {
	if o.Unobserved {
		return nil, 0
	}
	if len(o.Observers) == 0 {
		def, ok := defaultKind(o.kinds)
		if !ok {
			lg.errorf("no observer given and no file storage in this build: give one of %s, or -u to record nothing", cmdutil.AvailableObservers())
			return nil, cmdutil.ExitUsage
		}
		lg.infof("no observer given: recording to %s in ./runs (-u records nothing; see sacred run --help)", def.Title)
		o.Observers[def.Option] = []string{"runs"}
	}
	settings := observer.Settings{Flags: o.KindFlags, Warn: o.messageOut()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var obs []observer.Observer
	closeAll := func() {
		for _, ob := range obs {
			_ = ob.Close(ctx)
		}
	}
	journaled := false
	for _, k := range o.kinds {
		for _, val := range o.Observers[k.Option] {
			var ob observer.Observer
			var err error
			if o.journaled(k) {
				ob, err = o.openJournaled(k, val, settings)
				journaled = true
			} else {
				ob, err = k.OpenObserver(ctx, val, settings)
			}
			if err != nil {
				closeAll()
				lg.errorf("%s %s: %v", o.origin(k), k.RedactValue(val), err)
				return nil, runner.ExitSetupFailed
			}
			lg.debugf("observer %s", ob.Name())
			obs = append(obs, ob)
		}
	}
	if o.Journal != "" && o.Journal != journalNone && !journaled {
		lg.infof("--journal: no observer of this run talks to a server, so none is journaled (name one to journal it anyway, e.g. --journal=%s)", file.Option)
	}
	return obs, 0
}

// closeObservers closes observers that were opened for a run that does not
// start.
func closeObservers(obs []observer.Observer) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, ob := range obs {
		_ = ob.Close(ctx)
	}
}

// defaultKind is the observer used when none is given: file storage,
// which the file package registers (importing it here makes sure).
func defaultKind(kinds []observer.Kind) (observer.Kind, bool) {
	for _, k := range kinds {
		if k.Option == file.Option {
			return k, true
		}
	}
	return observer.Kind{}, false
}

// origin names where a kind's values came from, for messages.
func (o *RunOptions) origin(k observer.Kind) string {
	if src, ok := o.sources[k.Option]; ok {
		return src
	}
	if k.Short != "" {
		return "-" + k.Short + "/--" + k.Option
	}
	return "--" + k.Option
}

// commandLine quotes argv the way a POSIX shell would read it back.
func commandLine(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		parts[i] = shellQuote(a)
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./-_", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}
