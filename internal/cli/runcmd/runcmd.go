// Package runcmd implements `sacred run`: it turns flags, the config file,
// SACRED_* variables and the `with` updates into a runner.Config, builds
// the observers and hands over to the runner.
package runcmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/sacred-go/sacred/internal/capture"
	"github.com/sacred-go/sacred/internal/collect"
	"github.com/sacred-go/sacred/internal/runner"
	"github.com/sacred-go/sacred/pkg/observer"
)

// ExitError carries an exit status out of cobra.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return "exit status " + strconv.Itoa(e.Code) }

// observerFlags are the observer options in Sacred's order, with their
// short letters and a readable name for messages.
var observerFlags = []struct{ option, short, what string }{
	{"file_storage", "F", "file storage"},
	{"mongo_db", "m", "MongoDB"},
	{"sql", "s", "SQL"},
	{"tiny_db", "t", "TinyDB"},
	{"s3", "S", "S3"},
	{"gcs", "G", "Google Cloud Storage"},
}

// Options are the settings of one `sacred run`.
type Options struct {
	Observers    map[string][]string // option name → values
	Unobserved   bool
	BeatInterval float64 // seconds
	Capture      string
	Comment      string
	Name         string
	ID           string
	Priority     string
	PrintConfig  bool
	Queue        bool
	EnforceClean bool
	LogLevel     string
	Debug        bool
	Force        bool
	Strict       bool
	Timeout      time.Duration
	KillAfter    time.Duration
	FlushTimeout time.Duration
	Sources      []string
	CaptureEnv   []string
	Template     string
	MetricPatt   string
	ResultFile   string

	Updates []string // tokens after `with`
	Argv    []string // the command
	given   map[string]string

	Stdout, Stderr *os.File
	Cwd            string
	Env            []string
}

// NewCmd returns the `run` command. runF performs the run with complete
// options; nil means Run. Tests pass their own to inspect the options.
func NewCmd(runF func(*Options) int) *cobra.Command {
	if runF == nil {
		runF = Run
	}
	v := viper.New()
	opts := &Options{}
	cmd := &cobra.Command{
		Use:   "run [flags] [with UPDATE...] [--] COMMAND [ARG...]",
		Short: "Run a command as an observed experiment run",
		Long: `Run COMMAND as an observed run: its output is passed through and captured,
host, git and source facts are recorded, a heartbeat ticks, and every event goes to
the observers chosen with -F, -m, -s (default: file storage in ./runs).

Everything after the command belongs to the command; "--" before it is optional.
Config updates go after "with": a.b=1 name=text 'layers=[64,64]' config.yaml.

Defaults come from sacred.yaml (working directory, then the user config directory)
and SACRED_* environment variables (SACRED_FILE_STORAGE, SACRED_MONGO_DB, ...); flags win.`,
		Example: `  sacred run -F runs/ -c baseline with lr=0.1 'layers=[64,64]' -- python3 train.py --epochs 3
  sacred run python3 train.py --lr 0.1
  sacred run -u --timeout 1h -- ./long-job.sh`,
		Args:          cobra.ArbitraryArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(c *cobra.Command, args []string) error {
			if err := opts.complete(c, v, args); err != nil {
				return err
			}
			code := runF(opts)
			if code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	for _, o := range observerFlags {
		f.StringArrayP(o.option, o.short, nil, "add a "+o.what+" observer")
	}
	f.Lookup("gcs").Hidden = true
	f.BoolVarP(&opts.Unobserved, "unobserved", "u", false, "record nothing")
	f.Float64VarP(&opts.BeatInterval, "beat-interval", "b", 10, "heartbeat interval in seconds (<= 0: only the final beat)")
	f.StringVarP(&opts.Capture, "capture", "C", "", "output capture: pipe, pty or no (fd and sys mean pipe; default: pty on a terminal, else pipe)")
	f.StringVarP(&opts.Comment, "comment", "c", "", "comment stored with the run")
	f.StringVarP(&opts.Name, "name", "n", "", "experiment name (default: the script's or program's base name)")
	f.StringVarP(&opts.ID, "id", "i", "", "run id to use instead of the one the first observer chooses")
	f.StringVarP(&opts.Priority, "priority", "P", "", "priority of a queued run (a number)")
	f.BoolVarP(&opts.PrintConfig, "print-config", "p", false, "print the final config before running")
	f.BoolVarP(&opts.Queue, "queue", "q", false, "only record a QUEUED run; do not run the command")
	f.BoolVarP(&opts.EnforceClean, "enforce_clean", "e", false, "refuse to run unless every repository is clean")
	f.StringVarP(&opts.LogLevel, "loglevel", "l", "info", "wrapper messages: debug, info, warning or error")
	f.BoolVarP(&opts.Debug, "debug", "d", false, "show debug messages of the wrapper")
	f.BoolVarP(&opts.Force, "force", "f", false, "accepted for Sacred compatibility; has no effect")
	f.BoolVar(&opts.Strict, "strict", false, "exit 1 when an observer could not record the run (default: the child's status only)")
	f.DurationVar(&opts.Timeout, "timeout", 0, "stop the command after this long and record TIMEOUT (e.g. 30m)")
	f.DurationVar(&opts.KillAfter, "kill-after", 10*time.Second, "grace after a forwarded signal or timeout before SIGKILL")
	f.DurationVar(&opts.FlushTimeout, "flush-timeout", 30*time.Second, "how long observers may take to record the end of the run")
	f.StringArrayVar(&opts.Sources, "source", nil, "also record source files matching this glob (repeatable)")
	f.StringArrayVar(&opts.CaptureEnv, "capture-env", nil, "record this environment variable in host.ENV (repeatable)")
	f.StringVar(&opts.Template, "template", "", "report template for the file-storage observer (default: DIR/template.html)")
	f.StringVar(&opts.MetricPatt, "metric-pattern", "", "regular expression with groups name, value[, step]: matching stdout lines become metrics")
	f.StringVar(&opts.ResultFile, "result-file", "", "JSON file the command writes its result to, read when it exits")

	for _, name := range configurable {
		_ = v.BindPFlag(name, f.Lookup(name))
		_ = v.BindEnv(name, "SACRED_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_")))
	}
	return cmd
}

// configurable are the options that sacred.yaml and SACRED_* may set.
var configurable = []string{
	"file_storage", "mongo_db", "sql", "tiny_db", "s3", "gcs",
	"beat-interval", "capture", "loglevel", "strict", "timeout", "kill-after",
	"flush-timeout", "capture-env", "template",
}

// loadConfigFile reads sacred.yaml from dir, else from the user config dir.
func loadConfigFile(v *viper.Viper, cwd string) error {
	candidates := []string{filepath.Join(cwd, "sacred.yaml"), filepath.Join(cwd, "sacred.yml")}
	if d, err := os.UserConfigDir(); err == nil {
		candidates = append(candidates, filepath.Join(d, "sacred", "sacred.yaml"))
	}
	for _, p := range candidates {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		v.SetConfigFile(p)
		if err := v.ReadInConfig(); err != nil {
			return fmt.Errorf("read config file %s: %w", p, err)
		}
		for _, k := range v.AllKeys() {
			if !slices.Contains(configurable, k) {
				return fmt.Errorf("config file %s: unknown key %q (known: %s)", p, k, strings.Join(configurable, ", "))
			}
		}
		return nil
	}
	return nil
}

// complete fills the options from the command line, config file and
// environment, and checks them.
func (o *Options) complete(c *cobra.Command, v *viper.Viper, args []string) error {
	var err error
	if o.Cwd == "" {
		if o.Cwd, err = os.Getwd(); err != nil {
			return fmt.Errorf("cannot read the working directory: %w", err)
		}
	}
	if o.Stdout == nil {
		o.Stdout, o.Stderr = os.Stdout, os.Stderr
	}
	if o.Env == nil {
		o.Env = os.Environ()
	}
	if err := loadConfigFile(v, o.Cwd); err != nil {
		return err
	}
	f := c.Flags()
	o.given = map[string]string{}
	f.Visit(func(fl *pflag.Flag) { o.given[fl.Name] = fl.Value.String() })

	o.Observers = map[string][]string{}
	for _, of := range observerFlags {
		if vals := nonEmpty(v.GetStringSlice(of.option)); len(vals) > 0 {
			o.Observers[of.option] = vals
		}
	}
	o.BeatInterval = v.GetFloat64("beat-interval")
	o.Capture = v.GetString("capture")
	o.LogLevel = v.GetString("loglevel")
	o.Strict = v.GetBool("strict")
	o.Timeout = v.GetDuration("timeout")
	o.KillAfter = v.GetDuration("kill-after")
	o.FlushTimeout = v.GetDuration("flush-timeout")
	o.CaptureEnv = v.GetStringSlice("capture-env")
	o.Template = v.GetString("template")

	// Split the positional arguments into `with` updates and the command.
	dash := c.ArgsLenAtDash()
	if dash == 0 {
		o.Argv = args
	} else {
		rest := args
		if len(rest) > 0 && rest[0] == "with" {
			rest = rest[1:]
			n := 0
			for n < len(rest) && (dash < 0 || n+1 < dash) && rest[n] != "--" && collect.IsUpdateToken(rest[n]) {
				n++
			}
			o.Updates = rest[:n]
			rest = rest[n:]
			if len(rest) > 0 && rest[0] == "--" {
				rest = rest[1:]
			}
		}
		o.Argv = rest
	}
	if len(o.Argv) == 0 && !o.Queue {
		return usageError("no command given: put the command to run after the flags, e.g. sacred run -F runs -- python3 train.py")
	}
	if o.KillAfter <= 0 {
		return usageError("--kill-after must be positive, e.g. 10s")
	}
	if o.Timeout < 0 {
		return usageError("--timeout must not be negative")
	}
	if o.Priority != "" {
		if _, err := strconv.ParseFloat(o.Priority, 64); err != nil {
			return usageError(fmt.Sprintf("-P/--priority must be a number, not %q", o.Priority))
		}
	}
	switch strings.ToLower(o.LogLevel) {
	case "debug", "info", "warning", "warn", "error", "10", "20", "30", "40":
	default:
		return usageError(fmt.Sprintf("-l/--loglevel must be debug, info, warning or error, not %q", o.LogLevel))
	}
	return nil
}

func nonEmpty(vals []string) []string {
	var out []string
	for _, s := range vals {
		if strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	return out
}

// UsageError is a mistake on the command line: exit status 2.
type UsageError struct{ msg string }

func (e *UsageError) Error() string { return e.msg }

func usageError(msg string) error { return &UsageError{msg: msg} }

// Run performs `sacred run` with complete options and returns the exit
// status.
func Run(o *Options) int {
	lg := &logger{w: o.Stderr, level: levelOf(o.LogLevel, o.Debug)}
	mode, err := capture.ParseMode(o.Capture, o.Stdout)
	if err != nil {
		lg.errorf("-C/--capture: %v", err)
		return runner.ExitUsage
	}
	if o.Unobserved && o.Capture == "" && o.MetricPatt == "" {
		// Nothing will read the output: let the child write straight to
		// our streams, as Sacred does with no observers.
		mode = capture.ModeNo
	}

	// Collect facts concurrently; git is the slow one.
	var (
		wg     sync.WaitGroup
		host   *observer.Host
		hostEr error
		ex     observer.Experiment
		exErr  error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if !o.Queue {
			host, hostEr = collect.Host(o.CaptureEnv)
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		ex, exErr = collect.Experiment(o.Argv, o.Cwd, o.Name, o.Sources, collect.ExperimentOptions{})
	}()

	config, updates, files, err := collect.ParseUpdates(o.Updates)
	if err != nil {
		wg.Wait()
		lg.errorf("with: %v", err)
		return runner.ExitUsage
	}
	seed, err := collect.Seed(config)
	if err != nil {
		wg.Wait()
		lg.errorf("with: %v", err)
		return runner.ExitUsage
	}
	if o.PrintConfig {
		b, _ := json.MarshalIndent(config, "", "  ")
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
		ConfigUpdates: updates,
		NamedConfigs:  files,
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
		Config:     config,
		Meta:       meta,
	}
	// The wrapper's own messages honour -l; the runner's warnings always show.
	return runner.Run(runner.Config{
		Argv:          o.Argv,
		Observers:     obs,
		Start:         start,
		Seed:          seed,
		Queue:         o.Queue,
		BeatInterval:  time.Duration(o.BeatInterval * float64(time.Second)),
		Capture:       mode,
		Timeout:       o.Timeout,
		KillAfter:     o.KillAfter,
		StartTimeout:  30 * time.Second,
		FlushTimeout:  o.FlushTimeout,
		Strict:        o.Strict,
		ResultFile:    o.ResultFile,
		MetricPattern: o.MetricPatt,
		Stdout:        o.Stdout,
		Stderr:        o.Stderr,
		Env:           o.Env,
		Messages:      lg.infoWriter(),
	})
}

// buildObservers creates the observers the options ask for.
func (o *Options) buildObservers(lg *logger) ([]observer.Observer, int) {
	if o.Unobserved {
		return nil, 0
	}
	if len(o.Observers) == 0 {
		lg.infof("no observer given: recording to file storage in ./runs (-u records nothing; see sacred run --help)")
		o.Observers["file_storage"] = []string{"runs"}
	}
	settings := observer.Settings{Flags: map[string]string{"template": o.Template}, Warn: o.Stderr}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var obs []observer.Observer
	closeAll := func() {
		for _, ob := range obs {
			_ = ob.Close(ctx)
		}
	}
	for _, of := range observerFlags {
		for _, val := range o.Observers[of.option] {
			kind, ok := observer.Lookup(of.option)
			if !ok {
				closeAll()
				lg.errorf("-%s/--%s: the %s observer is not available in this version of sacred yet (available: %s)", of.short, of.option, of.what, availableFlags())
				return nil, runner.ExitUsage
			}
			ob, err := kind.OpenObserver(ctx, val, settings)
			if err != nil {
				closeAll()
				lg.errorf("-%s/--%s %s: %v", of.short, of.option, observer.RedactValue(of.option, val), err)
				return nil, runner.ExitSetupFailed
			}
			obs = append(obs, ob)
		}
	}
	return obs, 0
}

func availableFlags() string {
	var out []string
	for _, of := range observerFlags {
		if _, ok := observer.Lookup(of.option); ok {
			out = append(out, "-"+of.short)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// sacredOptions are Sacred 0.8.7's options, all of which appear in
// meta.options (false or null when not given), as Sacred writes them.
var sacredOptions = []struct {
	key  string
	flag string // our flag name
	bool bool
}{
	{"--beat-interval", "beat-interval", false},
	{"--capture", "capture", false},
	{"--comment", "comment", false},
	{"--debug", "debug", true},
	{"--enforce_clean", "enforce_clean", true},
	{"--file_storage", "file_storage", false},
	{"--force", "force", true},
	{"--help", "", true},
	{"--id", "id", false},
	{"--loglevel", "loglevel", false},
	{"--mongo_db", "mongo_db", false},
	{"--name", "name", false},
	{"--pdb", "", true},
	{"--print-config", "print-config", true},
	{"--priority", "priority", false},
	{"--queue", "queue", true},
	{"--s3", "s3", false},
	{"--sql", "sql", false},
	{"--tiny_db", "tiny_db", false},
	{"--unobserved", "unobserved", true},
}

// metaOptions builds meta.options: Sacred's keys with Sacred's defaults,
// the values given as strings (URLs redacted), plus our own flags when
// given.
func (o *Options) metaOptions() map[string]any {
	m := map[string]any{}
	given := func(flag string) (string, bool) {
		val, ok := o.given[flag]
		return val, ok
	}
	for _, so := range sacredOptions {
		val, ok := given(so.flag)
		switch {
		case so.bool:
			m[so.key] = ok && val == "true"
		case !ok:
			m[so.key] = nil
		default:
			m[so.key] = o.optionValue(so.flag, val)
		}
	}
	ours := []string{"strict", "timeout", "kill-after", "flush-timeout", "source", "capture-env", "template", "metric-pattern", "result-file", "gcs"}
	for _, flag := range ours {
		if val, ok := given(flag); ok {
			m["--"+flag] = o.optionValue(flag, val)
		}
	}
	updates := append([]string{}, o.Updates...)
	m["UPDATE"] = updates
	m["with"] = len(o.Updates) > 0
	m["COMMAND"] = nil
	m["help"] = false
	return m
}

// optionValue is the recorded form of a flag's value: observer values are
// redacted, and a repeated flag's values are joined as pflag prints them.
func (o *Options) optionValue(flag, val string) any {
	if vals, ok := o.Observers[flag]; ok {
		red := make([]string, len(vals))
		for i, s := range vals {
			red[i] = observer.RedactValue(flag, s)
		}
		if len(red) == 1 {
			return red[0]
		}
		return strings.Join(red, ",")
	}
	if _, isObs := observer.Lookup(flag); isObs {
		return observer.RedactValue(flag, strings.Trim(val, "[]"))
	}
	return val
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

// logger prints the wrapper's own messages on stderr, filtered by -l.
type logger struct {
	w     io.Writer
	level int
}

const (
	levelDebug = 10
	levelInfo  = 20
	levelWarn  = 30
	levelError = 40
)

func levelOf(s string, debug bool) int {
	if debug {
		return levelDebug
	}
	switch strings.ToLower(s) {
	case "debug", "10":
		return levelDebug
	case "warning", "warn", "30":
		return levelWarn
	case "error", "40":
		return levelError
	}
	return levelInfo
}

func (l *logger) logf(level int, format string, args ...any) {
	if level >= l.level {
		fmt.Fprintf(l.w, "sacred: "+format+"\n", args...)
	}
}
func (l *logger) infof(format string, args ...any)  { l.logf(levelInfo, format, args...) }
func (l *logger) warnf(format string, args ...any)  { l.logf(levelWarn, format, args...) }
func (l *logger) errorf(format string, args ...any) { l.logf(levelError, format, args...) }

// infoWriter is where the runner's informational lines go: stderr at info
// level and below, nowhere above.
func (l *logger) infoWriter() io.Writer {
	if l.level <= levelInfo {
		return l.w
	}
	return io.Discard
}
