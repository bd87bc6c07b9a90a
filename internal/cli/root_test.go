package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/sacred-go/sacred/internal/childapi"
	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/pkg/observer"
)

// extraKind is registered by this test binary, as a binary built with
// pkg/sacredcli registers its own observers.
var extraKind = observer.Kind{
	Option: "probe_sink", Arg: "FILE", Title: "probe sink", Usage: "send events to a probe sink in FILE",
	Parse: func(v string) (any, error) { return v, nil },
	New: func(context.Context, any, observer.Settings) (observer.Observer, error) {
		return nil, errors.New("not used")
	},
	Flags: []observer.Flag{{Name: "probe-format", Arg: "FORMAT", Usage: "format of the probe sink"}},
}

func init() { observer.Register(extraKind) }

// execute runs the root command in-process and returns the exit status and
// the two streams.
func execute(env []string, args ...string) (code int, stdout, stderr string) {
	f := cmdutil.NewTest(env, "/")
	root := newCmdRootFor(f, args)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	errOut := f.IOStreams.ErrOut.(*bytes.Buffer)
	code = cmdutil.HandleError(errOut, cmd, err)
	return code, f.IOStreams.Out.(*bytes.Buffer).String(), errOut.String()
}

// Help lists exactly the registered kinds: the built-in ones and one
// registered by the binary, with their own flags; Sacred's observers that
// are not built in have no flag and no line.
func TestHelpListsRegisteredKinds(t *testing.T) {
	_, rootHelp, _ := execute(nil, "--help")
	_, runHelp, _ := execute(nil, "run", "--help")
	for _, k := range observer.Kinds() {
		line := "--" + k.Option + " " + k.Arg
		if k.Short != "" {
			line = "-" + k.Short + ", " + line
		}
		if !strings.Contains(rootHelp, line) || !strings.Contains(rootHelp, k.Title) {
			t.Errorf("sacred --help lacks %q (%s):\n%s", line, k.Title, rootHelp)
		}
		if !strings.Contains(runHelp, line) || !strings.Contains(runHelp, k.Usage) || !strings.Contains(runHelp, k.EnvVar()) {
			t.Errorf("sacred run --help lacks %q, its usage or %s:\n%s", line, k.EnvVar(), runHelp)
		}
		for _, f := range k.Flags {
			if !strings.Contains(runHelp, "--"+f.Name) {
				t.Errorf("sacred run --help lacks the kind's own flag --%s", f.Name)
			}
		}
	}
	if !strings.Contains(runHelp, "--probe_sink FILE") || !strings.Contains(runHelp, "--probe-format FORMAT") {
		t.Errorf("the extra kind has no flag in sacred run --help:\n%s", runHelp)
	}
	for _, absent := range append(notBuiltIn(), "[=true|false]") {
		if strings.Contains(rootHelp, absent) || strings.Contains(runHelp, absent) {
			t.Errorf("help shows %q", absent)
		}
	}
}

// Shell completion (cobra's __complete, which the generated scripts call)
// offers exactly the registered kinds' flags.
func TestCompletionOffersRegisteredKinds(t *testing.T) {
	_, out, _ := execute(nil, "__complete", "run", "--")
	for _, k := range observer.Kinds() {
		if !strings.Contains(out, "--"+k.Option+"\t") {
			t.Errorf("completion lacks --%s:\n%s", k.Option, out)
		}
	}
	if !strings.Contains(out, "--probe_sink\t") || !strings.Contains(out, "--probe-format\t") {
		t.Errorf("completion lacks the extra kind:\n%s", out)
	}
	for _, absent := range notBuiltIn() {
		if strings.Contains(out, absent) {
			t.Errorf("completion offers %s, which is not built in:\n%s", absent, out)
		}
	}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		if code, script, errOut := execute(nil, "completion", shell); code != 0 || !strings.Contains(script, "__complete") {
			t.Errorf("completion %s: exit %d, stderr %q", shell, code, errOut)
		}
	}
}

func TestUnknownCommandsAndFlags(t *testing.T) {
	cases := []struct {
		args    []string
		mention string
	}{
		{[]string{"lgo"}, `unknown command "lgo" for "sacred"; did you mean log or ls?`},
		{[]string{"log", "metrc", "loss", "0.3"}, "did you mean metric?"},
		{[]string{"run", "--bogus", "true"}, "unknown flag: --bogus"},
		{[]string{"run", "--timeout", "soon", "true"}, `--timeout "soon": want a duration`},
	}
	if absent := absentSacredOptions(); len(absent) > 0 {
		// A Sacred observer option this build lacks is named as such.
		o := absent[0]
		cases = append(cases, struct {
			args    []string
			mention string
		}{[]string{"run", "--" + strings.ReplaceAll(o, "_", "-"), "x", "true"}, "--" + o + ": this observer is not in this build of sacred (available: "})
	}
	for _, tc := range cases {
		code, out, errOut := execute(nil, tc.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tc.mention) || strings.Count(errOut, "\n") != 2 {
			t.Errorf("sacred %q: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, code, out, errOut, tc.mention)
		}
	}
	if code, out, _ := execute(nil); code != 0 || !strings.Contains(out, "Available Commands") {
		t.Errorf("sacred alone: exit %d, %q", code, out)
	}
	if code, out, _ := execute(nil, "--version"); code != 0 || !strings.Contains(out, "test") {
		t.Errorf("sacred --version: exit %d, %q", code, out)
	}
}

// BenchmarkMainLogMetric is what `sacred log metric` costs in-process
// besides the process start: the factory, the whole command tree and the
// call (issue 8 item 38; the process is measured in test/e2e).
func BenchmarkMainLogMetric(b *testing.B) {
	s, err := childapi.Listen(childapi.Options{Dir: b.TempDir(), Warn: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { s.Close(); s.Cleanup() }()
	env := []string{s.Env()}
	b.ReportAllocs()
	for b.Loop() {
		if code, _, errOut := execute(env, "log", "metric", "loss", "0.5"); code != 0 {
			b.Fatalf("exit %d: %s", code, errOut)
		}
	}
}

// BenchmarkNewCmdRoot is the cost of building the command tree alone:
// all of it, and what `sacred run` and `sacred log` build.
func BenchmarkNewCmdRoot(b *testing.B) {
	f := cmdutil.NewTest(nil, "/")
	for _, args := range [][]string{{"all"}, {"run"}, {"log"}} {
		b.Run(args[0], func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				newCmdRootFor(f, args)
			}
		})
	}
}

// absentSacredOptions are Python Sacred's observer options that no kind of
// this build registers.
func absentSacredOptions() []string {
	var out []string
	for _, o := range observer.SacredOptions {
		if _, ok := observer.Lookup(o); !ok {
			out = append(out, o)
		}
	}
	return out
}

// notBuiltIn are the words help must not show for the absent observers:
// each absent Sacred option, and gcs (Sacred's unregistered option) when no
// kind provides it.
func notBuiltIn() []string {
	out := absentSacredOptions()
	if _, ok := observer.Lookup("gcs"); !ok {
		out = append(out, "gcs")
	}
	return out
}
