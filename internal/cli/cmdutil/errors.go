package cmdutil

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Exit statuses of sacred itself. A run's status is the child's, carried
// by ExitError.
const (
	ExitOK      = 0
	ExitFailure = 1 // the command could not do its work (an observer unreachable, a failed call)
	ExitUsage   = 2 // a mistake on the command line, in sacred.yaml or in SACRED_*
)

// FlagError is a usage mistake: exit status 2, one line on stderr and a
// hint to read the command's help.
type FlagError struct{ err error }

func (e *FlagError) Error() string { return e.err.Error() }
func (e *FlagError) Unwrap() error { return e.err }

// FlagErrorf returns a FlagError with a formatted message.
func FlagErrorf(format string, args ...any) error {
	return &FlagError{err: fmt.Errorf(format, args...)}
}

// FlagErrorWrap turns err into a FlagError.
func FlagErrorWrap(err error) error {
	if err == nil {
		return nil
	}
	return &FlagError{err: err}
}

// ExitError carries an exit status out of a command whose messages were
// already printed, e.g. the child's status after `sacred run`.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return "exit status " + strconv.Itoa(e.Code) }

// StatusError is an error with its own exit status, printed like any
// other error but without the usage hint; e.g. an observer value that its
// kind refuses keeps status 1 ("the run could not start") wherever it was
// given.
type StatusError struct {
	Err  error
	Code int
}

func (e *StatusError) Error() string { return e.Err.Error() }
func (e *StatusError) Unwrap() error { return e.Err }

// ExitStatus returns nil for status 0 and an ExitError otherwise.
func ExitStatus(code int) error {
	if code == ExitOK {
		return nil
	}
	return &ExitError{Code: code}
}

// HandleError prints err (when it has a message to print) on w and
// returns the exit status it stands for. It is the one place where errors
// become exit statuses.
func HandleError(w io.Writer, cmd *cobra.Command, err error) int {
	if err == nil {
		return ExitOK
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		return exit.Code
	}
	fmt.Fprintf(w, "sacred: %s\n", oneLine(err.Error()))
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	var fe *FlagError
	if errors.As(err, &fe) {
		if cmd != nil {
			fmt.Fprintf(w, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
		return ExitUsage
	}
	return ExitFailure
}

// oneLine keeps a message on one line: cobra's and the drivers' messages
// sometimes carry newlines, and a clear error is one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "\n") {
		return s
	}
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}

// FlagErrorFunc is cobra's SetFlagErrorFunc hook: every error of flag
// parsing becomes a FlagError. An invalid value of an observer flag is
// shown redacted, since the value may hold a password.
func FlagErrorFunc(_ *cobra.Command, err error) error {
	var inv *pflag.InvalidValueError
	if errors.As(err, &inv) {
		fl := inv.GetFlag()
		msg := fmt.Errorf("%s %s: %w", FlagTitle(fl), quoteValue(fl, inv.GetValue()), inv.Unwrap())
		var se *StatusError
		if errors.As(err, &se) {
			return &StatusError{Err: msg, Code: se.Code}
		}
		return FlagErrorWrap(msg)
	}
	var missing *pflag.NotExistError
	if errors.As(err, &missing) {
		name := strings.ReplaceAll(missing.GetSpecifiedName(), "-", "_")
		if missing.GetSpecifiedShortnames() == "" && isSacredObserverOption(name) {
			return FlagErrorf("--%s: this observer is not in this build of sacred (available: %s)", name, AvailableObservers())
		}
	}
	return FlagErrorWrap(err)
}

// FlagTitle names a flag as the user may have typed it: "-e/--enforce_clean"
// or "--timeout".
func FlagTitle(fl *pflag.Flag) string {
	if fl.Shorthand != "" {
		return "-" + fl.Shorthand + "/--" + fl.Name
	}
	return "--" + fl.Name
}

// quoteValue quotes a flag's value for a message, redacted when the flag
// is an observer's or its value has a Redact method (a secret URL).
func quoteValue(fl *pflag.Flag, v string) string {
	if r, ok := fl.Value.(interface{ Redact(string) string }); ok {
		return strconv.Quote(r.Redact(v))
	}
	return strconv.Quote(observer.RedactValue(fl.Name, v))
}

func isSacredObserverOption(name string) bool {
	for _, o := range observer.SacredOptions {
		if o == name {
			return true
		}
	}
	return false
}

// AvailableObservers lists the observer flags of this build for messages,
// e.g. "-F/--OPTION, --OTHER" (the short letter when the kind has one).
func AvailableObservers() string {
	var out []string
	for _, k := range observer.Kinds() {
		if k.Short != "" {
			out = append(out, "-"+k.Short+"/--"+k.Option)
		} else {
			out = append(out, "--"+k.Option)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// UnknownSubcommand is the RunE of a command that only groups
// subcommands: a word that is not one of them is a usage error with a
// suggestion, and no word at all asks for one. Without it cobra prints the
// help on stdout and exits 0, which a script (whose stdout may be a run's
// captured output) cannot tell from success.
func UnknownSubcommand(cmd *cobra.Command, args []string) error {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	if len(args) == 0 {
		return FlagErrorf("%s needs a subcommand: %s", cmd.CommandPath(), strings.Join(names, ", "))
	}
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf("; did you mean %s?", strings.Join(s, " or "))
	} else {
		msg += " (commands: " + strings.Join(names, ", ") + ")"
	}
	return FlagErrorf("%s", msg)
}
