package runcmd

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/pkg/observer"

	_ "github.com/sacred-go/sacred/pkg/observer/mongo"    // registers -m
	_ "github.com/sacred-go/sacred/pkg/observer/sqlstore" // registers -s for redaction
)

// parseIn runs the command line through cobra and complete in dir (where
// a sacred.yaml may be), with env as the whole environment, and returns
// the options the run would get.
func parseIn(t *testing.T, dir string, env []string, args ...string) (*RunOptions, error) {
	t.Helper()
	env = append([]string{"XDG_CONFIG_HOME=" + dir, "HOME=" + dir}, env...)
	f := cmdutil.NewTest(env, dir)
	var got *RunOptions
	cmd := NewCmdRun(f, func(o *RunOptions) error { got = o; return nil })
	cmd.SetFlagErrorFunc(cmdutil.FlagErrorFunc)
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.Execute()
	return got, err
}

func parse(t *testing.T, env []string, args ...string) (*RunOptions, error) {
	t.Helper()
	return parseIn(t, t.TempDir(), env, args...)
}

func wantUsageError(t *testing.T, err error, mention string) {
	t.Helper()
	wantRefused(t, err, cmdutil.ExitUsage, mention)
}

// wantRefused checks the exit status err stands for and its message.
func wantRefused(t *testing.T, err error, code int, mention string) {
	t.Helper()
	if got := cmdutil.HandleError(io.Discard, nil, err); err == nil || got != code {
		t.Errorf("got %v (exit %d), want exit %d mentioning %q", err, got, code, mention)
		return
	}
	if !strings.Contains(err.Error(), mention) || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q: want one line mentioning %q", err, mention)
	}
}

func TestCommandAndUpdatesSplit(t *testing.T) {
	cases := []struct {
		args    []string
		updates []string
		argv    []string
	}{
		{[]string{"-F", "runs", "python3", "train.py", "--lr", "0.1"}, nil, []string{"python3", "train.py", "--lr", "0.1"}},
		{[]string{"-F", "runs", "--", "python3", "train.py"}, nil, []string{"python3", "train.py"}},
		{[]string{"-c", "x", "with", "lr=0.1", "layers=[64,64]", "--", "python3", "train.py", "--epochs", "3"},
			[]string{"lr=0.1", "layers=[64,64]"}, []string{"python3", "train.py", "--epochs", "3"}},
		{[]string{"with", "a.b=1", "c=text", "python3", "t.py", "x=1"}, []string{"a.b=1", "c=text"}, []string{"python3", "t.py", "x=1"}},
		{[]string{"with", "a=1", "./x=1"}, []string{"a=1"}, []string{"./x=1"}},
		// After a leading "--", "with" is the command's own word.
		{[]string{"--", "with", "a=1"}, nil, []string{"with", "a=1"}},
	}
	for _, c := range cases {
		o, err := parse(t, nil, append([]string{}, c.args...)...)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if !reflect.DeepEqual(o.Updates, c.updates) && !(len(o.Updates) == 0 && len(c.updates) == 0) {
			t.Errorf("%v: updates %q, want %q", c.args, o.Updates, c.updates)
		}
		if !reflect.DeepEqual(o.Argv, c.argv) {
			t.Errorf("%v: argv %q, want %q", c.args, o.Argv, c.argv)
		}
	}
}

func TestBadOptionsAreUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		mention string
	}{
		{[]string{"-F", "runs"}, "no command given"},
		{[]string{"-P", "high", "true"}, "-P/--priority"},
		{[]string{"--kill-after", "0s", "true"}, "must be positive"},
		{[]string{"-l", "loud", "true"}, "-l/--loglevel"},
		{[]string{"-C", "bogus", "true"}, "want pipe, pty or no"},
		{[]string{"-b", "NaN", "true"}, "want a number"},
		{[]string{"--timeout", "-1s", "true"}, "must not be negative"},
		{[]string{"--max-source-size", "ten", "true"}, "want a size"},
		{[]string{"--max-source-size", "0", "true"}, "must be positive"},
		{[]string{"--source", "[", "true"}, "not a valid glob"},
		{[]string{"--capture-env", "A B", "true"}, "one environment variable name"},
		{[]string{"with", "a=1", "--lr=1", "true"}, "flags go before `with`"},
	} {
		_, err := parse(t, nil, tc.args...)
		wantUsageError(t, err, tc.mention)
	}
}

func TestEnvironmentAndFlagsPrecedence(t *testing.T) {
	o, err := parse(t, []string{"SACRED_FILE_STORAGE=envdir", "SACRED_BEAT_INTERVAL=2.5"}, "true")
	if err != nil {
		t.Fatal(err)
	}
	if got := o.Observers["file_storage"]; !reflect.DeepEqual(got, []string{"envdir"}) || o.BeatInterval != 2.5 {
		t.Errorf("from env: observers %v, beat %v", o.Observers, o.BeatInterval)
	}
	o, err = parse(t, []string{"SACRED_FILE_STORAGE=envdir"}, "-F", "flagdir", "-b", "1", "true")
	if err != nil {
		t.Fatal(err)
	}
	if got := o.Observers["file_storage"]; !reflect.DeepEqual(got, []string{"flagdir"}) || o.BeatInterval != 1 {
		t.Errorf("flag must win: observers %v, beat %v", o.Observers, o.BeatInterval)
	}

	// The environment wins over sacred.yaml; an empty variable is unset.
	dir := t.TempDir()
	writeYAML(t, dir, "file_storage: yamldir\nbeat-interval: 7\ntimeout: 1h\n")
	o, err = parseIn(t, dir, []string{"SACRED_BEAT_INTERVAL=3", "SACRED_TIMEOUT="}, "true")
	if err != nil {
		t.Fatal(err)
	}
	if got := o.Observers["file_storage"]; !reflect.DeepEqual(got, []string{"yamldir"}) || o.BeatInterval != 3 || o.Timeout != time.Hour {
		t.Errorf("yaml under env: observers %v, beat %v, timeout %v", o.Observers, o.BeatInterval, o.Timeout)
	}
}

func writeYAML(t *testing.T, dir, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "sacred.yaml"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Both spellings of a name, Sacred's and cobra's, on the command line, in
// sacred.yaml and (necessarily one) in SACRED_*.
func TestFlagSpellings(t *testing.T) {
	for _, args := range [][]string{
		{"--file_storage", "a", "--enforce-clean=false", "--beat_interval", "2", "true"},
		{"--file-storage", "a", "--enforce_clean=false", "--beat-interval", "2", "true"},
	} {
		o, err := parse(t, nil, args...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !reflect.DeepEqual(o.Observers["file_storage"], []string{"a"}) || o.BeatInterval != 2 {
			t.Errorf("%v: observers %v beat %v", args, o.Observers, o.BeatInterval)
		}
	}
	for _, yml := range []string{"file-storage: a\nbeat_interval: 2\n", "file_storage: a\nbeat-interval: 2\n"} {
		dir := t.TempDir()
		writeYAML(t, dir, yml)
		o, err := parseIn(t, dir, nil, "true")
		if err != nil {
			t.Fatalf("%q: %v", yml, err)
		}
		if !reflect.DeepEqual(o.Observers["file_storage"], []string{"a"}) || o.BeatInterval != 2 {
			t.Errorf("%q: observers %v beat %v", yml, o.Observers, o.BeatInterval)
		}
	}
	dir := t.TempDir()
	writeYAML(t, dir, "file-storage: a\nfile_storage: b\n")
	_, err := parseIn(t, dir, nil, "true")
	wantUsageError(t, err, "set the same setting")
}

func TestMetaOptionsRedactAndKeepSacredKeys(t *testing.T) {
	o, err := parse(t, nil, "-s", "postgresql://user:s3cret@db.example.org/lab", "-c", "note", "with", "lr=1", "--", "true")
	if err != nil {
		t.Fatal(err)
	}
	m := o.metaOptions()
	for _, k := range []string{"--beat-interval", "--capture", "--file_storage", "--mongo_db", "--queue", "--unobserved", "--s3", "--tiny_db", "UPDATE", "with", "COMMAND", "help"} {
		if _, ok := m[k]; !ok {
			t.Errorf("meta.options lacks Sacred's key %q", k)
		}
	}
	if m["--comment"] != "note" || m["--queue"] != false || m["--file_storage"] != nil || m["with"] != true {
		t.Errorf("meta.options = %v", m)
	}
	sql, _ := m["--sql"].(string)
	if strings.Contains(sql, "s3cret") || !strings.Contains(sql, "db.example.org") {
		t.Errorf("--sql recorded as %q: password must be redacted, host kept", sql)
	}
}

// TestHardening33MetaOptionsRepeatableFlags: a repeatable flag is recorded
// as a string when given once and as a list of strings when given several
// times, never as Go's print of a slice.
func TestHardening33MetaOptionsRepeatableFlags(t *testing.T) {
	o, err := parse(t, nil, "-F", "a", "--source", "*.py", "--capture-env", "HOME", "-s", "sqlite:///x.db", "-s", "postgresql://u:pw@h/db", "true")
	if err != nil {
		t.Fatal(err)
	}
	m := o.metaOptions()
	if m["--file_storage"] != "a" || m["--source"] != "*.py" || m["--capture-env"] != "HOME" {
		t.Errorf("one value each: %v %v %v", m["--file_storage"], m["--source"], m["--capture-env"])
	}
	sql, ok := m["--sql"].([]any)
	if !ok || len(sql) != 2 || sql[0] != "sqlite:///x.db" || strings.Contains(sql[1].(string), "pw") {
		t.Errorf("--sql given twice recorded as %#v, want a list of two strings, redacted", m["--sql"])
	}
	o, err = parse(t, nil, "--source", "a.py", "--source", "b.py", "true")
	if err != nil {
		t.Fatal(err)
	}
	if got := o.metaOptions()["--source"]; !reflect.DeepEqual(got, []any{"a.py", "b.py"}) {
		t.Errorf("--source twice recorded as %#v", got)
	}
}

func TestCommandLineQuoting(t *testing.T) {
	got := commandLine([]string{"python3", "train.py", "--name", "a b", "it's", ""})
	want := `python3 train.py --name 'a b' 'it'"'"'s' ''`
	if got != want {
		t.Errorf("commandLine = %s, want %s", got, want)
	}
}

// TestHardening11FlushTimeoutRefused: a flush timeout that is not a
// positive duration is refused wherever it comes from.
func TestHardening11FlushTimeoutRefused(t *testing.T) {
	for _, v := range []string{"0", "0s", "-1s", "abc"} {
		_, err := parse(t, nil, "--flush-timeout", v, "true")
		wantUsageError(t, err, "--flush-timeout")
		_, err = parse(t, []string{"SACRED_FLUSH_TIMEOUT=" + v}, "true")
		wantUsageError(t, err, "SACRED_FLUSH_TIMEOUT")
		dir := t.TempDir()
		writeYAML(t, dir, "flush-timeout: "+v+"\n")
		_, err = parseIn(t, dir, nil, "true")
		wantUsageError(t, err, "sacred.yaml line 1: flush-timeout")
	}
	o, err := parse(t, []string{"SACRED_FLUSH_TIMEOUT=5s"}, "true")
	if err != nil || o.FlushTimeout != 5*time.Second {
		t.Errorf("SACRED_FLUSH_TIMEOUT=5s: %v %v", o, err)
	}
}

// TestHardening21ChildEnvWithoutObserverSettings: the observers' SACRED_*
// variables, which may hold passwords, do not reach the child.
func TestHardening21ChildEnvWithoutObserverSettings(t *testing.T) {
	env := []string{
		"SACRED_SQL=postgresql://u:pw@db/lab", "SACRED_MONGO_DB=mongodb://u:pw@m/db", "SACRED_FILE_STORAGE=runs",
		"SACRED_TEMPLATE=t.html", "SACRED_S3=s3://b/p", "SACRED_TINY_DB=db", "SACRED_BEAT_INTERVAL=5", "PATH=/bin", "HOME=/h",
	}
	o, err := parse(t, env, "true")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range o.Env {
		if strings.Contains(e, "pw") || strings.HasPrefix(e, "SACRED_SQL=") || strings.HasPrefix(e, "SACRED_MONGO_DB=") ||
			strings.HasPrefix(e, "SACRED_FILE_STORAGE=") || strings.HasPrefix(e, "SACRED_TEMPLATE=") || strings.HasPrefix(e, "SACRED_S3=") {
			t.Errorf("child environment keeps %q", e)
		}
	}
	for _, keep := range []string{"PATH=/bin", "HOME=/h", "SACRED_BEAT_INTERVAL=5"} {
		if !slices.Contains(o.Env, keep) {
			t.Errorf("child environment lost %q", keep)
		}
	}
	// A kind registered by another binary and its own flags are kept out too.
	env, removed := childEnv([]string{"SACRED_JSONL_T=x", "SACRED_JSONL_T_MODE=y", "SACRED_OTHER=z"},
		[]observer.Kind{{Option: "jsonl_t", Flags: []observer.Flag{{Name: "jsonl-t-mode"}}}})
	if !reflect.DeepEqual(env, []string{"SACRED_OTHER=z"}) || len(removed) != 2 {
		t.Errorf("env %v removed %v", env, removed)
	}
}

// TestHardening22ConfigFileAndEnvValidated: values in sacred.yaml and
// SACRED_* are checked exactly like flags, and the error names the file
// and key or the variable.
func TestHardening22ConfigFileAndEnvValidated(t *testing.T) {
	for _, tc := range []struct{ yaml, mention string }{
		{"beat-interval: abc\n", `beat-interval: "abc": want a number`},
		{"strict: maybe\n", `strict: "maybe": want true or false`},
		{"timeout: forever\n", `timeout: "forever": want a duration`},
		{"mongo_db: {a: 1}\n", "mongo_db: a mapping is not allowed here"},
		{"file_storage:\n", "file_storage: an empty value is not allowed here"},
		{"capture: [pipe, pty]\n", "capture: a list is not allowed here"},
		{"comment: x\n", `unknown key "comment"`},
		{"- a\n", "want a mapping of settings"},
		{"a: [\n", "not valid YAML"},
	} {
		dir := t.TempDir()
		writeYAML(t, dir, tc.yaml)
		_, err := parseIn(t, dir, nil, "true")
		wantUsageError(t, err, tc.mention)
		if err != nil && (!strings.Contains(err.Error(), filepath.Join(dir, "sacred.yaml")) || strings.Contains(err.Error(), "s3cret")) {
			t.Errorf("%q: error %q must name the file and hold no password", tc.yaml, err)
		}
	}
	// An observer value its kind refuses exits 1, as the run could not
	// start, wherever it was given; never with the password in the message.
	for _, tc := range []struct{ yaml, env, mention string }{
		{"file_storage: ''\n", "", "file storage: the directory is empty"},
		{"sql: 'bogus://u:s3cret@h/db'\n", "", "sacred.yaml line 1: sql: \"bogus://u:***@h/db\""},
		{"", "SACRED_SQL=bogus://u:s3cret@h/db", `SACRED_SQL="bogus://u:***@h/db"`},
	} {
		dir := t.TempDir()
		if tc.yaml != "" {
			writeYAML(t, dir, tc.yaml)
		}
		_, err := parseIn(t, dir, []string{tc.env}, "true")
		wantRefused(t, err, cmdutil.ExitFailure, tc.mention)
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q %q: error %q holds the password", tc.yaml, tc.env, err)
		}
	}
	for _, tc := range []struct{ env, mention string }{
		{"SACRED_TIMEOUT=2sec", `SACRED_TIMEOUT="2sec": want a duration`},
		{"SACRED_BEAT_INTERVAL=fast", `SACRED_BEAT_INTERVAL="fast"`},
		{"SACRED_STRICT=maybe", `SACRED_STRICT="maybe"`},
		{"SACRED_KILL_AFTER=0", `SACRED_KILL_AFTER="0": must be positive`},
	} {
		_, err := parse(t, []string{tc.env}, "true")
		wantUsageError(t, err, tc.mention)
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error %q holds the password", tc.env, err)
		}
	}
}

// TestHardening25RefusedBeforeRecording: an invalid --metric-pattern, -u
// with an observer flag and -F "" are refused while the options are
// completed, before any observer exists.
func TestHardening25RefusedBeforeRecording(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		mention string
	}{
		{[]string{"--metric-pattern", "(", "true"}, "not a valid regular expression"},
		{[]string{"--metric-pattern", `loss=(\d+)`, "true"}, "needs the named groups"},
		{[]string{"-u", "-F", "runs", "true"}, "-u/--unobserved records nothing, but -F/--file_storage"},
		{[]string{"-F", "runs", "-u", "true"}, "-u/--unobserved"},
	} {
		_, err := parse(t, nil, tc.args...)
		wantUsageError(t, err, tc.mention)
	}
	for _, v := range []string{"", " "} {
		_, err := parse(t, nil, "-F", v, "true")
		wantRefused(t, err, cmdutil.ExitFailure, `-F/--file_storage "`+v+`": file storage: the directory is empty`)
	}
	// -u silences observers configured as defaults.
	o, err := parse(t, []string{"SACRED_FILE_STORAGE=runs"}, "-u", "true")
	if err != nil || !o.Unobserved {
		t.Errorf("-u over SACRED_FILE_STORAGE: %v", err)
	}
}

// TestHardening37UnbufferedFlag: PYTHONUNBUFFERED is asked for explicitly.
func TestHardening37UnbufferedFlag(t *testing.T) {
	o, err := parse(t, nil, "true")
	if err != nil || o.Unbuffered {
		t.Fatalf("default: unbuffered %v, %v", o.Unbuffered, err)
	}
	o, err = parse(t, nil, "--unbuffered", "true")
	if err != nil || !o.Unbuffered || o.metaOptions()["--unbuffered"] != true {
		t.Fatalf("--unbuffered: %v, %v", o.Unbuffered, err)
	}
	o, err = parse(t, []string{"SACRED_UNBUFFERED=true"}, "true")
	if err != nil || !o.Unbuffered {
		t.Fatalf("SACRED_UNBUFFERED=true: %v, %v", o.Unbuffered, err)
	}
}

func TestMaxSourceSize(t *testing.T) {
	o, err := parse(t, nil, "true")
	if err != nil || o.MaxSourceSize != 10<<20 {
		t.Fatalf("default %d, %v", o.MaxSourceSize, err)
	}
	for v, want := range map[string]int64{"1048576": 1 << 20, "512KiB": 512 << 10, "2M": 2 << 20, "1g": 1 << 30} {
		o, err := parse(t, nil, "--max-source-size", v, "true")
		if err != nil || o.MaxSourceSize != want {
			t.Errorf("%s: %d, %v; want %d", v, o.MaxSourceSize, err, want)
		}
	}
	o, err = parse(t, []string{"SACRED_MAX_SOURCE_SIZE=1KiB"}, "true")
	if err != nil || o.MaxSourceSize != 1024 {
		t.Errorf("from env: %d, %v", o.MaxSourceSize, err)
	}
}

// A kind's own flags are flags, sacred.yaml keys and SACRED_* variables,
// and reach New in Settings.Flags.
func TestKindFlagsReachSettings(t *testing.T) {
	o, err := parse(t, nil, "--template", "t.html", "true")
	if err != nil || o.KindFlags["template"] != "t.html" {
		t.Fatalf("--template: %v, %v", o.KindFlags, err)
	}
	dir := t.TempDir()
	writeYAML(t, dir, "template: y.html\n")
	o, err = parseIn(t, dir, nil, "true")
	if err != nil || o.KindFlags["template"] != "y.html" {
		t.Fatalf("template in sacred.yaml: %v, %v", o.KindFlags, err)
	}
	o, err = parse(t, []string{"SACRED_TEMPLATE=e.html"}, "true")
	if err != nil || o.KindFlags["template"] != "e.html" {
		t.Fatalf("SACRED_TEMPLATE: %v, %v", o.KindFlags, err)
	}
}

// An extra kind (as pkg/sacredcli registers one) gets a flag, a key, a
// variable and its own flags, and its settings reach New.
func TestExtraKindIsAFlag(t *testing.T) {
	var got observer.Settings
	kind := observer.Kind{
		Option: "probe_t", Arg: "FILE", Title: "probe", Usage: "record to a probe",
		Parse: func(v string) (any, error) {
			if v == "bad" {
				return nil, errors.New("probe: bad value")
			}
			return v, nil
		},
		New: func(_ context.Context, _ any, s observer.Settings) (observer.Observer, error) {
			got = s
			return nil, errors.New("not opened in this test")
		},
		Flags: []observer.Flag{{Name: "probe-level", Arg: "N", Usage: "level"}, {Name: "probe-loud", Bool: true, Usage: "loud"}},
	}
	f := cmdutil.NewTest([]string{"SACRED_PROBE_LEVEL=3"}, t.TempDir())
	f.Kinds = func() []observer.Kind { return append(observer.Kinds(), kind) }
	var opts *RunOptions
	cmd := NewCmdRun(f, func(o *RunOptions) error { opts = o; return nil })
	cmd.SetFlagErrorFunc(cmdutil.FlagErrorFunc)
	cmd.SetArgs([]string{"--probe-t", "p.out", "--probe_loud", "true"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(opts.Observers["probe_t"], []string{"p.out"}) || opts.KindFlags["probe-level"] != "3" || opts.KindFlags["probe-loud"] != "true" {
		t.Fatalf("observers %v kind flags %v", opts.Observers, opts.KindFlags)
	}
	lg := &logger{w: io.Discard, level: levelError}
	opts.Stderr = os.Stderr
	if _, code := opts.buildObservers(lg); code == 0 || got.Flag("probe-level") != "3" {
		t.Errorf("buildObservers: code %d, settings %v", code, got.Flags)
	}
	if !strings.Contains(cmd.Flags().FlagUsages(), "--probe_t FILE") {
		t.Errorf("help lacks the kind's flag:\n%s", cmd.Flags().FlagUsages())
	}
}
