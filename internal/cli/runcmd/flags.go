package runcmd

// The flags of `sacred run`: Sacred's, ours, and one per registered
// observer kind plus the kinds' own flags. Every value is checked when it
// is set, so the command line, sacred.yaml and SACRED_* are refused alike.

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/collect"
	"github.com/sacred-go/sacred/internal/monitor"
	"github.com/sacred-go/sacred/pkg/observer"
)

// configurable are sacred's own flags that sacred.yaml and SACRED_* may
// set; every observer flag and every kind's own flag may too.
var configurable = []string{
	"beat-interval", "capture", "capture-env", "deps", "flush-timeout", "kill-after",
	"loglevel", "max-source-size", "monitor-interval", "strict", "timeout", "unbuffered",
}

// defineFlags defines every flag of `sacred run` on fs, storing into o.
func (o *RunOptions) defineFlags(fs *pflag.FlagSet, kinds []observer.Kind) {
	fs.SetInterspersed(false) // the first word that is not a flag starts the command
	fs.SortFlags = true

	// Sacred's flags, with Sacred's letters and long names.
	cmdutil.BoolVarP(fs, &o.Unobserved, "unobserved", "u", false, "record nothing")
	cmdutil.FloatVarP(fs, &o.BeatInterval, "beat-interval", "b", 10, "SECONDS", "heartbeat interval in seconds (<= 0: only the final beat)")
	cmdutil.StringVarP(fs, &o.Capture, "capture", "C", "", "MODE", "output capture: pipe, pty or no (fd and sys mean pipe; default: pty on a terminal, else pipe)", checkCapture)
	cmdutil.StringVarP(fs, &o.Comment, "comment", "c", "", "TEXT", "comment stored with the run", nil)
	cmdutil.StringVarP(fs, &o.Name, "name", "n", "", "NAME", "experiment name (default: the script's or program's base name)", nil)
	cmdutil.StringVarP(fs, &o.ID, "id", "i", "", "ID", "run id to use instead of the one the first observer chooses", checkID)
	cmdutil.StringVarP(fs, &o.Priority, "priority", "P", "", "NUMBER", "priority of a queued run", checkPriority)
	cmdutil.BoolVarP(fs, &o.PrintConfig, "print-config", "p", false, "print the final config before running")
	cmdutil.BoolVarP(fs, &o.Queue, "queue", "q", false, "only record a QUEUED run; do not run the command")
	cmdutil.BoolVarP(fs, &o.EnforceClean, "enforce_clean", "e", false, "refuse to run unless every repository is clean")
	cmdutil.StringVarP(fs, &o.LogLevel, "loglevel", "l", "info", "LEVEL", "wrapper messages: debug, info, warning or error", checkLogLevel)
	cmdutil.BoolVarP(fs, &o.Debug, "debug", "d", false, "print the wrapper's debug messages (same as -l debug)")
	cmdutil.BoolVarP(fs, &o.Force, "force", "f", false, "accepted for Sacred compatibility; has no effect")

	// Ours.
	cmdutil.BoolVarP(fs, &o.Strict, "strict", "", false, "exit 1 when an observer could not record the run (default: the child's status only)")
	cmdutil.DurationVarP(fs, &o.Timeout, "timeout", "", 0, "stop the command after this long and record TIMEOUT (e.g. 30m)", false)
	cmdutil.DurationVarP(fs, &o.KillAfter, "kill-after", "", 10*time.Second, "grace after a forwarded signal or timeout before SIGKILL", true)
	cmdutil.DurationVarP(fs, &o.FlushTimeout, "flush-timeout", "", 30*time.Second, "how long observers may take to record the end of the run", true)
	cmdutil.ArrayVarP(fs, &o.Sources, "source", "", "GLOB", "also record source files matching this glob (repeatable)", checkGlob)
	cmdutil.ArrayVarP(fs, &o.CaptureEnv, "capture-env", "", "NAME", "record this environment variable in host.ENV (repeatable)", checkEnvName)
	cmdutil.StringVarP(fs, &o.MetricPattern, "metric-pattern", "", "", "REGEX", "regular expression with groups name, value[, step]: matching stdout lines become metrics", checkMetricPattern)
	cmdutil.StringVarP(fs, &o.ResultFile, "result-file", "", "", "FILE", "JSON file the command writes its result to, read when it exits", nil)
	cmdutil.SizeVarP(fs, &o.MaxSourceSize, "max-source-size", "", collect.DefaultMaxSourceSize, "record sources larger than this by md5 and size only, without content", true)
	cmdutil.FloatVarP(fs, &o.MonitorInterval, "monitor-interval", "", monitor.DefaultInterval.Seconds(), "SECONDS", "sample the command's process tree (CPU, memory, I/O, GPUs) every SECONDS into sys.* metrics (0: off)")
	cmdutil.StringVarP(fs, &o.Deps, "deps", "", collect.DepsImported, "MODE", "experiment.dependencies: imported (the distributions the Python sources import), all (every one of the environment) or none; lock files are recorded as sources unless none", collect.CheckDepsMode)
	cmdutil.BoolVarP(fs, &o.Unbuffered, "unbuffered", "", false, "set PYTHONUNBUFFERED=1 for the command (Python then writes line by line into a pipe, at a cost in speed)")

	// One repeatable flag per observer kind, and the kinds' own flags.
	conf := append([]string(nil), configurable...)
	o.observerVals = map[string]*[]string{}
	for _, k := range kinds {
		if k.Short != "" && fs.ShorthandLookup(k.Short) != nil {
			panic(fmt.Sprintf("sacred run: observer %q: short flag -%s is taken by --%s", k.Option, k.Short, fs.ShorthandLookup(k.Short).Name))
		}
		if fs.Lookup(k.Option) != nil {
			panic(fmt.Sprintf("sacred run: observer %q: flag --%s is taken", k.Option, k.Option))
		}
		vals := new([]string)
		o.observerVals[k.Option] = vals
		cmdutil.ArrayVarP(fs, vals, k.Option, k.Short, orDefault(k.Arg, "VALUE"), k.Usage, checkKind(k))
		conf = append(conf, k.Option)
		for _, kf := range k.Flags {
			if fs.Lookup(kf.Name) != nil {
				panic(fmt.Sprintf("sacred run: observer %q: flag --%s is taken", k.Option, kf.Name))
			}
			var fl *pflag.Flag
			if kf.Bool {
				def, _ := strconv.ParseBool(kf.Default)
				fl = cmdutil.BoolVarP(fs, new(bool), kf.Name, "", def, kf.Usage)
			} else {
				fl = cmdutil.StringVarP(fs, new(string), kf.Name, "", kf.Default, orDefault(kf.Arg, "VALUE"), kf.Usage, nil)
			}
			o.kindFlags = append(o.kindFlags, fl)
			conf = append(conf, kf.Name)
		}
	}
	cmdutil.MarkConfigurable(fs, conf...)
	o.defineJournalFlags(fs, kinds)
	o.defineCronFlags(fs)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// checkKind checks an observer value with the kind's own parser, which
// neither connects anywhere nor puts secrets into its errors. A refused
// value exits 1 as the run could not start, as it did when values were
// parsed only while opening the observers.
func checkKind(k observer.Kind) func(string) error {
	return func(v string) error {
		if _, err := k.Parse(v); err != nil {
			return &cmdutil.StatusError{Err: err, Code: cmdutil.ExitFailure}
		}
		return nil
	}
}

func checkCapture(s string) error {
	switch s {
	case "pipe", "pty", "no", "fd", "sys":
		return nil
	}
	return errors.New("want pipe, pty or no (fd and sys mean pipe)")
}

func checkID(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("the run id is empty")
	}
	return nil
}

func checkPriority(s string) error {
	if _, err := strconv.ParseFloat(s, 64); err != nil {
		return errors.New("want a number, e.g. 3 or 0.5")
	}
	return nil
}

func checkLogLevel(s string) error {
	switch strings.ToLower(s) {
	case "debug", "info", "warning", "warn", "error", "10", "20", "30", "40":
		return nil
	}
	return errors.New("want debug, info, warning or error")
}

func checkGlob(s string) error {
	if s == "" {
		return errors.New("the pattern is empty")
	}
	if _, err := filepath.Match(s, ""); err != nil {
		return fmt.Errorf("not a valid glob pattern: %w", err)
	}
	return nil
}

func checkEnvName(s string) error {
	if s == "" || strings.ContainsAny(s, "= \t\n\x00") {
		return errors.New("want one environment variable name (no '=' or spaces); give the flag again for more")
	}
	return nil
}

// checkMetricPattern checks the pattern as the run's scraper will, so
// that a bad one is refused before anything is recorded.
func checkMetricPattern(s string) error {
	re, err := regexp.Compile(s)
	if err != nil {
		return fmt.Errorf("not a valid regular expression: %s", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
	if re.SubexpIndex("name") < 0 || re.SubexpIndex("value") < 0 {
		return errors.New("needs the named groups (?P<name>...) and (?P<value>...); (?P<step>...) is optional")
	}
	return nil
}
