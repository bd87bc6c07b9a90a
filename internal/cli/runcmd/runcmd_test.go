package runcmd

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	_ "github.com/sacred-go/sacred/pkg/observer/sqlstore" // registers -s for redaction
)

// parse runs the command line through cobra and complete, and returns the
// options the run would get.
func parse(t *testing.T, env []string, args ...string) (*Options, error) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		t.Setenv(k, v)
	}
	var got *Options
	cmd := NewCmd(func(o *Options) int { got = o; return 0 })
	cmd.SetArgs(args)
	cmd.SetOut(os.Stderr)
	err := cmd.Execute()
	return got, err
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
	for _, args := range [][]string{
		{"-F", "runs"},
		{"-P", "high", "true"},
		{"--kill-after", "0s", "true"},
		{"-l", "loud", "true"},
	} {
		_, err := parse(t, nil, args...)
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("%v: got %v, want a usage error", args, err)
		}
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
}

func TestMetaOptionsRedactAndKeepSacredKeys(t *testing.T) {
	o, err := parse(t, nil, "-s", "postgresql://user:s3cret@db.example.org/lab", "-c", "note", "with", "lr=1", "--", "true")
	if err != nil {
		t.Fatal(err)
	}
	m := o.metaOptions()
	for _, k := range []string{"--beat-interval", "--capture", "--file_storage", "--mongo_db", "--queue", "--unobserved", "UPDATE", "with", "COMMAND", "help"} {
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

func TestCommandLineQuoting(t *testing.T) {
	got := commandLine([]string{"python3", "train.py", "--name", "a b", "it's", ""})
	want := `python3 train.py --name 'a b' 'it'"'"'s' ''`
	if got != want {
		t.Errorf("commandLine = %s, want %s", got, want)
	}
}
