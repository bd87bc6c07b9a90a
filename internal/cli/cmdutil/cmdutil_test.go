package cmdutil

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "1048576": 1 << 20, "10MiB": 10 << 20, "10 MB": 10 << 20, "512k": 512 << 10, "2G": 2 << 30, "7b": 7} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "ten", "1.5M", "1T", "9999999999999G"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q): no error", in)
		}
	}
	for n, want := range map[int64]string{0: "0", 1000: "1000", 10 << 20: "10MiB", 3 << 10: "3KiB", 1 << 30: "1GiB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %s, want %s", n, got, want)
		}
	}
}

// values receives the flags of newTestCmd, one of each kind.
type values struct {
	s    string
	b    bool
	d    time.Duration
	f    float64
	list []string
}

// newTestCmd returns a command with one configurable flag of each kind.
func newTestCmd(v *values) *cobra.Command {
	c := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
	fs := c.Flags()
	StringVarP(fs, &v.s, "some_name", "s", "def", "TEXT", "a string", func(s string) error {
		if s == "bad" {
			return errors.New("not bad")
		}
		return nil
	})
	BoolVarP(fs, &v.b, "flag", "", false, "a bool")
	DurationVarP(fs, &v.d, "wait-time", "", time.Second, "a duration", true)
	FloatVarP(fs, &v.f, "ratio", "", 1, "N", "a number")
	ArrayVarP(fs, &v.list, "item", "", "ITEM", "items", nil)
	fs.String("not-configurable", "", "")
	MarkConfigurable(fs, "some_name", "flag", "wait-time", "ratio", "item")
	NormalizeFlags(c)
	PlainBools(c)
	c.SetFlagErrorFunc(FlagErrorFunc)
	return c
}

func loadApply(t *testing.T, yaml string, env []string, args ...string) (*values, Sources, error) {
	t.Helper()
	dir := t.TempDir()
	if yaml != "" {
		if err := os.WriteFile(filepath.Join(dir, "sacred.yaml"), []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env = append(env, "XDG_CONFIG_HOME="+dir, "HOME="+dir)
	v := &values{}
	c := newTestCmd(v)
	if err := c.ParseFlags(args); err != nil {
		return v, nil, err
	}
	cfg, err := LoadConfig(dir, env)
	if err != nil {
		return v, nil, err
	}
	src, err := cfg.Apply(c.Flags())
	return v, src, err
}

func TestConfigApply(t *testing.T) {
	v, src, err := loadApply(t, "some-name: fromfile\nflag: true\nwait_time: 2m\nratio: 0.5\nitem: [a, b]\n", []string{"SACRED_RATIO=2", "SACRED_WAIT_TIME="}, "--item", "c")
	if err != nil {
		t.Fatal(err)
	}
	want := values{s: "fromfile", b: true, d: 2 * time.Minute, f: 2, list: []string{"c"}}
	if !reflect.DeepEqual(*v, want) {
		t.Errorf("got %+v, want %+v", *v, want)
	}
	if src["ratio"] != "SACRED_RATIO" || !strings.HasSuffix(src["some_name"], "sacred.yaml: some-name") || src["item"] != "" {
		t.Errorf("sources %v", src)
	}

	v, _, err = loadApply(t, "item: one\n", []string{"SACRED_SOME_NAME=fromenv"})
	if err != nil || v.s != "fromenv" || !reflect.DeepEqual(v.list, []string{"one"}) {
		t.Errorf("env over default and a single item: %+v, %v", *v, err)
	}

	// The user config directory is read when the working directory has none.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sacred"), 0o755)
	os.WriteFile(filepath.Join(dir, "sacred", "sacred.yaml"), []byte("ratio: 4\n"), 0o644)
	cfg, err := LoadConfig(t.TempDir(), []string{"XDG_CONFIG_HOME=" + dir})
	if err != nil || cfg.File != filepath.Join(dir, "sacred", "sacred.yaml") {
		t.Fatalf("user config: %v %v", cfg, err)
	}
}

func TestConfigApplyErrors(t *testing.T) {
	for _, tc := range []struct {
		yaml    string
		env     []string
		mention string
	}{
		{"some_name: bad\n", nil, `line 1: some_name: "bad": not bad`},
		{"flag: maybe\n", nil, `flag: "maybe": want true or false`},
		{"wait-time: 0s\n", nil, `wait-time: "0s": must be positive`},
		{"ratio: .nan\n", nil, `ratio: ".nan": want a number`},
		{"ratio: {a: 1}\n", nil, "ratio: a mapping is not allowed here; want one N value"},
		{"item: [a, [b]]\n", nil, "item: a list is not allowed here"},
		{"item: []\n", nil, "the list is empty"},
		{"ratio:\n", nil, "ratio: an empty value is not allowed here"},
		{"not-configurable: x\n", nil, `unknown key "not-configurable" (known: flag, item, ratio, some_name, wait-time)`},
		{"[1, 2]\n", nil, "want a mapping of settings"},
		{"a: b: c\n", nil, "is not valid YAML"},
		{"", []string{"SACRED_WAIT_TIME=soon"}, `SACRED_WAIT_TIME="soon": want a duration`},
		{"", []string{"SACRED_FLAG=2"}, `SACRED_FLAG="2": want true or false`},
	} {
		_, _, err := loadApply(t, tc.yaml, tc.env)
		if err == nil || !strings.Contains(err.Error(), tc.mention) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q %v: error %v, want one line with %q", tc.yaml, tc.env, err, tc.mention)
		}
	}
}

func TestFlagSpellingsAndErrors(t *testing.T) {
	v := &values{}
	c := newTestCmd(v)
	c.SetArgs([]string{"--some-name", "x", "--wait_time", "3s", "--flag"})
	if err := c.Execute(); err != nil || v.s != "x" || v.d != 3*time.Second || !v.b {
		t.Fatalf("%+v %v", *v, err)
	}
	c = newTestCmd(&values{})
	c.SetArgs([]string{"--wait-time", "0"})
	c.SilenceErrors, c.SilenceUsage = true, true
	err := c.Execute()
	var fe *FlagError
	if !errors.As(err, &fe) || err.Error() != `--wait-time "0": must be positive, e.g. 30s` {
		t.Errorf("error %v", err)
	}
	var buf bytes.Buffer
	if code := HandleError(&buf, c, err); code != ExitUsage || buf.String() != "sacred: --wait-time \"0\": must be positive, e.g. 30s\nRun 'x --help' for usage.\n" {
		t.Errorf("HandleError: %d %q", code, buf.String())
	}
}

func TestPlainBoolsInHelp(t *testing.T) {
	c := newTestCmd(&values{})
	c.Flags().Bool("pflag-bool", false, "pflag's own bool")
	var out bytes.Buffer
	c.SetOut(&out)
	c.SetArgs([]string{"--help"})
	if err := c.Execute(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "[=true|false]") || !strings.Contains(out.String(), "--pflag-bool ") || !strings.Contains(out.String(), "--wait-time DURATION") {
		t.Errorf("help:\n%s", out.String())
	}
}

func TestHandleError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		out  string
	}{
		{nil, 0, ""},
		{&ExitError{Code: 42}, 42, ""},
		{errors.New("boom\nmore"), 1, "sacred: boom more\n"},
		{FlagErrorf("bad %s", "flag"), 2, "sacred: bad flag\n"},
		{FlagErrorWrap(&StatusError{Err: errors.New("refused"), Code: 1}), 1, "sacred: refused\n"},
	} {
		var buf bytes.Buffer
		if code := HandleError(&buf, nil, tc.err); code != tc.code || buf.String() != tc.out {
			t.Errorf("%v: %d %q, want %d %q", tc.err, code, buf.String(), tc.code, tc.out)
		}
	}
}
