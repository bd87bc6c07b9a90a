package storeflags

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/query"
	"github.com/sacred-go/sacred/internal/readback/readbacktest"
	"github.com/sacred-go/sacred/pkg/observer"
	_ "github.com/sacred-go/sacred/pkg/observer/file"
)

// A notifier: it has no reader.
func init() {
	observer.Register(observer.Kind{Option: "test_notifier", Title: "test notifier", Arg: "URL",
		Parse: func(v string) (any, error) { return v, nil },
		New: func(context.Context, any, observer.Settings) (observer.Observer, error) {
			return nil, errors.New("unused")
		}})
}

func newCmd(f *cmdutil.Factory, got *[]Store) *cobra.Command {
	var sf *Flags
	c := &cobra.Command{Use: "show", RunE: func(c *cobra.Command, args []string) error {
		return sf.Use(f, c, func(s []Store) error {
			for _, st := range s {
				*got = append(*got, Store{Label: st.Label, Kind: st.Kind})
			}
			return nil
		})
	}}
	c.Flags().Bool("json", false, "")
	c.Flags().StringP("out", "o", "", "")
	sf = Define(c.Flags(), f.Kinds())
	MarkRunArgs(c)
	c.SilenceErrors, c.SilenceUsage = true, true
	return c
}

func TestPositionalNumbers(t *testing.T) {
	root := &cobra.Command{Use: "sacred"}
	root.AddCommand(newCmd(cmdutil.NewTest(nil, t.TempDir()), new([]Store)), &cobra.Command{Use: "ls"})
	for _, tc := range []struct{ in, want string }{
		{"show -1", "show -- -1"},
		{"show -1 --json -F runs", "show --json -F runs -- -1"},
		{"show -F -2 -1", "show -F -2 -- -1"}, // -2 is -F's value
		{"show 3 -2 --out=x", "show --out=x -- 3 -2"},
		{"show 3 -o dir -2", "show -o dir -- 3 -2"},
		{"show 3 --json", "show 3 --json"}, // nothing to move
		{"show -- -1 -2", "show -- -1 -2"}, // already positional
		{"ls --index -1", "ls --index -1"}, // not a command with run arguments
		{"show -x1", "show -x1"},           // not a number
	} {
		got := strings.Join(PositionalNumbers(root, strings.Fields(tc.in)), " ")
		if got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func open(t *testing.T, dir string, env []string, args ...string) ([]Store, error) {
	t.Helper()
	f := cmdutil.NewTest(append(env, "XDG_CONFIG_HOME="+filepath.Join(dir, "no-config")), dir)
	var got []Store
	c := newCmd(f, &got)
	c.SetArgs(args)
	err := c.Execute()
	return got, err
}

func TestOpenStores(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir) // the kinds resolve relative paths against the process's directory
	_, err := open(t, dir, nil)
	if err == nil || !strings.Contains(err.Error(), "no store given and ./runs does not exist") {
		t.Errorf("no store: %v", err)
	}
	os.Mkdir(filepath.Join(dir, "runs"), 0o755)
	os.Mkdir(filepath.Join(dir, "other"), 0o755)
	got, err := open(t, dir, nil)
	if err != nil || len(got) != 1 || got[0].Label != "runs" {
		t.Errorf("default: %v %v", got, err)
	}
	// sacred.yaml names the store; a key of sacred run is no error here.
	os.WriteFile(filepath.Join(dir, "sacred.yaml"), []byte("file_storage: other\nbeat_interval: 3\n"), 0o644)
	got, err = open(t, dir, nil)
	if err != nil || len(got) != 1 || got[0].Label != "other" {
		t.Errorf("sacred.yaml: %v %v", got, err)
	}
	got, err = open(t, dir, []string{"SACRED_FILE_STORAGE=runs"})
	if err != nil || len(got) != 1 || got[0].Label != "runs" {
		t.Errorf("SACRED_FILE_STORAGE: %v %v", got, err)
	}
	got, err = open(t, dir, nil, "-F", "runs", "-F", "other")
	if err != nil || len(got) != 2 || got[0].Label != "runs" || got[1].Label != "other" {
		t.Errorf("two stores: %v %v", got, err)
	}
	_, err = open(t, dir, nil, "-F", "missing")
	if err == nil || !strings.Contains(err.Error(), "-F missing: no such store") {
		t.Errorf("missing store: %v", err)
	}
	_, err = open(t, dir, nil, "--test_notifier", "https://hooks.example/secret")
	var fe *cmdutil.FlagError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "--test_notifier: runs cannot be read back from a test notifier; name a store with -F DIR") {
		t.Errorf("a notifier: %v", err)
	}
}

func TestFindRun(t *testing.T) {
	m := &readbacktest.Memory{RunList: []*observer.Run{{ID: "1"}, {ID: "2"}, {ID: "abc"}}}
	stores := []Store{{Label: "mem", Reader: m}}
	for arg, want := range map[string]string{"-1": "abc", "-3": "1", "2": "2", "abc": "abc"} {
		_, r, err := FindRun(context.Background(), stores, arg)
		if err != nil || r.ID != want {
			t.Errorf("%s: %v %v", arg, r, err)
		}
	}
	_, _, err := FindRun(context.Background(), stores, "-4")
	var ie *query.IndexError
	if !errors.As(err, &ie) || err.Error() != "mem: index -4 reaches before the first of the 3 runs: use -1 to -3, or 0 to 2" {
		t.Errorf("-4: %v", err)
	}
	_, _, err = FindRun(context.Background(), stores, "9")
	if err == nil || err.Error() != "no run \"9\" in mem: `sacred ls` lists the runs; -1 is the latest" {
		t.Errorf("9: %v", err)
	}
	if !slices.Equal([]bool{isNumber("-1"), isNumber("x")}, []bool{true, false}) {
		t.Error("isNumber")
	}
}
