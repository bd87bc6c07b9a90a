package runcmd

// Cron and CI: --lock and --lock-wait, --quiet-unless-fail, --summary-json
// (with GitHub Actions' step summary) and --ping. The runner does the work
// (internal/runner: lock.go, quiet.go, summary.go, ping.go); here they are
// declared, checked and handed over.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/runner"
)

// githubStepSummary is the variable GitHub Actions sets to the file that
// collects a job's step summaries.
const githubStepSummary = "GITHUB_STEP_SUMMARY"

// defineCronFlags defines the flags for cron and CI.
func (o *RunOptions) defineCronFlags(fs *pflag.FlagSet) {
	cmdutil.StringVarP(fs, &o.Lock, "lock", "", "", "PATH",
		fmt.Sprintf("take an exclusive lock on PATH (created if missing) before anything is recorded; when another run holds it, exit %d at once, recording nothing (see --lock-wait)", runner.ExitLocked), checkNotEmpty)
	cmdutil.DurationVarP(fs, &o.LockWait, "lock-wait", "", 0, "with --lock: wait up to this long for the lock (e.g. 5m) before giving up", false)
	cmdutil.BoolVarP(fs, &o.QuietUnlessFail, "quiet-unless-fail", "", false,
		"show nothing of a run that succeeds; when it fails, show the whole output (from the capture) and sacred's messages (chronic's behaviour, for cron mail)")
	cmdutil.StringVarP(fs, &o.SummaryJSON, "summary-json", "", "", "FILE",
		"write the run's id, status, exit status, duration, result, last metric values and observers to FILE (JSON, replaced atomically) when it ends; on GitHub Actions also a step summary and a notice", checkNotEmpty)
	fs.VarPF(&pingValue{p: &o.Ping}, "ping", "",
		"ping a healthchecks.io check: URL/start, then URL on success or URL/EXIT-STATUS (URL/fail) with the output's tail; retried, within --flush-timeout")
	cmdutil.MarkConfigurable(fs, "lock", "lock-wait", "quiet-unless-fail", "summary-json", "ping")
}

// pingValue is the --ping URL. Its path is the check's secret: messages
// and meta.options show the URL redacted (see Redact).
type pingValue struct{ p *string }

func (v *pingValue) Set(s string) error {
	if _, err := runner.ParsePingURL(s); err != nil {
		return err
	}
	*v.p = s
	return nil
}
func (v *pingValue) String() string { return *v.p }
func (v *pingValue) Type() string   { return "URL" }

// Redact shows a --ping URL without its secrets.
func (v *pingValue) Redact(s string) string { return runner.RedactPingURL(s) }

// checkCron checks the cron and CI settings together, before anything is
// recorded.
func (o *RunOptions) checkCron(fs *pflag.FlagSet, capture string) error {
	if o.Lock == "" && fs.Changed("lock-wait") {
		return cmdutil.FlagErrorf("--lock-wait %s: waits for a --lock; give --lock PATH too", o.LockWait)
	}
	if o.QuietUnlessFail && capture == "no" {
		return cmdutil.FlagErrorf("--quiet-unless-fail shows the output of a failed run from the capture: it cannot go with -C no")
	}
	if o.SummaryJSON != "" {
		o.SummaryJSON = absolute(o.Cwd, o.SummaryJSON)
		dir := filepath.Dir(o.SummaryJSON)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return cmdutil.FlagErrorf("--summary-json %s: the directory %s does not exist; create it or give another FILE", o.SummaryJSON, dir)
		}
	}
	if o.Lock != "" {
		o.Lock = absolute(o.Cwd, o.Lock)
	}
	return nil
}

func absolute(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// takeLock takes --lock. It returns the exit status when the run must
// not go on.
func (o *RunOptions) takeLock(lg *logger) (release func(), code int) {
	if o.Lock == "" {
		return func() {}, 0
	}
	lock, err := runner.TakeLock(o.Lock, o.LockWait, func() {
		lg.infof("waiting up to %s for the lock %s, which another run holds", o.LockWait, o.Lock)
	})
	switch {
	case errors.Is(err, runner.ErrLocked):
		hint := "; --lock-wait 5m would wait for it"
		if o.LockWait > 0 {
			hint = ""
		}
		lg.errorf("--lock %s is %v: not started, nothing recorded (exit status %d%s)", o.Lock, err, runner.ExitLocked, hint)
		return nil, runner.ExitLocked
	case err != nil:
		lg.errorf("--lock %s: %v", o.Lock, err)
		return nil, runner.ExitSetupFailed
	}
	return lock.Release, 0
}

// stepSummary is GitHub Actions' step summary file when the run writes a
// summary on GitHub Actions, else "".
func (o *RunOptions) stepSummary(getenv func(string) string) string {
	if o.SummaryJSON == "" {
		return ""
	}
	return strings.TrimSpace(getenv(githubStepSummary))
}
