package reruncmd

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file"
)

var ctx = context.Background()

// parseIn runs the command line through cobra and run's option parsing in
// dir, with env as the whole environment, and returns the options.
func parseIn(t *testing.T, dir string, env []string, args ...string) (*RerunOptions, *cmdutil.Factory, error) {
	t.Helper()
	env = append([]string{"XDG_CONFIG_HOME=" + dir, "HOME=" + dir}, env...)
	f := cmdutil.NewTest(env, dir)
	var got *RerunOptions
	cmd := NewCmdRerun(f, func(o *RerunOptions) error { got = o; return nil })
	cmd.SetFlagErrorFunc(cmdutil.FlagErrorFunc)
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	return got, f, cmd.Execute()
}

func TestArgs(t *testing.T) {
	dir := t.TempDir()
	o, _, err := parseIn(t, dir, nil, "-F", "runs", "-b", "2", "--comment", "again", "7", "with", "lr=0.5", "a.b=[1,2]", "--", "--epochs", "3")
	if err != nil {
		t.Fatal(err)
	}
	if o.ID != "7" || !reflect.DeepEqual(o.NewArgs, []string{"--epochs", "3"}) {
		t.Errorf("id %q, new args %q", o.ID, o.NewArgs)
	}
	ro := o.Run
	if !reflect.DeepEqual(ro.Updates, []string{"lr=0.5", "a.b=[1,2]"}) || ro.BeatInterval != 2 || ro.Comment != "again" ||
		!reflect.DeepEqual(ro.Observers, map[string][]string{"file_storage": {"runs"}}) {
		t.Errorf("run options: updates %q, beat %v, comment %q, observers %v", ro.Updates, ro.BeatInterval, ro.Comment, ro.Observers)
	}
	o, _, err = parseIn(t, dir, nil, "7")
	if err != nil || o.ID != "7" || len(o.NewArgs) != 0 || len(o.Run.Updates) != 0 {
		t.Errorf("sacred rerun 7: %v, %+v", err, o)
	}
	for _, c := range []struct {
		args    []string
		mention string
	}{
		{nil, "no run id given"},
		{[]string{"7", "extra"}, `"extra" after the run id`},
		{[]string{"7", "with"}, "nothing after `with`"},
		{[]string{"7", "with", "lr=[1,"}, "lr=[1,"},
		{[]string{"--", "7"}, "the run id goes before"},
		{[]string{"--bogus", "7"}, "unknown flag: --bogus"},
	} {
		_, _, err := parseIn(t, dir, nil, c.args...)
		code := cmdutil.HandleError(io.Discard, nil, err)
		if err == nil || code != cmdutil.ExitUsage || !strings.Contains(err.Error(), c.mention) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: got %v (exit %d), want one line mentioning %q and exit 2", c.args, err, code, c.mention)
		}
	}
}

// record stores a finished run in the file store at runs, as sacred run
// would have, and returns its id.
func record(t *testing.T, runs string, ev *observer.StartEvent) string {
	t.Helper()
	cfg, err := file.ParseConfig(runs)
	if err != nil {
		t.Fatal(err)
	}
	o, err := file.New(ctx, cfg, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := o.Started(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Completed(ctx, &observer.CompletedEvent{StopTime: ev.Time}); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestPrepare(t *testing.T) {
	dir := t.TempDir()
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(work, "train.sh")
	if err := os.WriteFile(src, []byte("echo one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ev := &observer.StartEvent{
		Command: "sh train.sh --lr 1",
		Experiment: observer.Experiment{Name: "trainer", BaseDir: work, Sources: []observer.Source{{Name: "train.sh", Path: src, MD5: "b5b7e0ab4b4ba3ac81d54e5d1e5b4a59", Size: 9}},
			Repositories: []observer.Repository{{URL: "https://example.com/r.git", Commit: "aaaaaaaaaaaaaaaaaaaa", Dirty: true}}},
		Config: map[string]any{"lr": 0.1, "seed": int64(5), "net": map[string]any{"depth": int64(3), "width": int64(64)}},
		Meta: observer.Meta{Command: "sh train.sh --lr 1", Argv: []string{"sh", "train.sh", "--lr", "1"}, Cwd: work,
			ConfigUpdates: map[string]any{"lr": 0.1}, NamedConfigs: []string{}},
	}
	runs := filepath.Join(dir, "runs")
	id := record(t, runs, ev)
	if err := os.WriteFile(src, []byte("echo two\n"), 0o644); err != nil { // changed since
		t.Fatal(err)
	}

	o, f, err := parseIn(t, dir, nil, "-F", runs, id, "with", "net.depth=4", "--", "--epochs", "2")
	if err != nil {
		t.Fatal(err)
	}
	var gitPaths []string
	o.Git = func(paths []string) ([]observer.Repository, error) {
		gitPaths = paths
		return []observer.Repository{{URL: "https://example.com/r.git", Commit: "bbbbbbbbbbbbbbbbbbbb"}}, nil
	}
	if err := o.prepare(ctx); err != nil {
		t.Fatal(err)
	}
	ro := o.Run
	wantConfig := map[string]any{"lr": 0.1, "seed": int64(5), "net": map[string]any{"depth": int64(4), "width": int64(64)}}
	if !reflect.DeepEqual(ro.Config, wantConfig) || ro.Seed != 5 {
		t.Errorf("config %v, seed %d; want %v and the recorded seed", ro.Config, ro.Seed, wantConfig)
	}
	if want := map[string]any{"lr": 0.1, "net": map[string]any{"depth": int64(4)}}; !reflect.DeepEqual(ro.ConfigUpdates, want) {
		t.Errorf("config updates %v, want %v", ro.ConfigUpdates, want)
	}
	if want := []string{"sh", "train.sh", "--lr", "1", "--epochs", "2"}; !reflect.DeepEqual(ro.Argv, want) {
		t.Errorf("argv %q, want %q", ro.Argv, want)
	}
	if ro.Cwd != work || ro.Name != "trainer" {
		t.Errorf("cwd %q, name %q", ro.Cwd, ro.Name)
	}
	if want := (observer.RunRef{Kind: "file_storage", Store: runs, ID: id}); ro.RerunOf == nil || *ro.RerunOf != want {
		t.Errorf("rerun_of %+v, want %+v", ro.RerunOf, want)
	}
	if !reflect.DeepEqual(gitPaths, []string{src}) {
		t.Errorf("repositories looked up for %q", gitPaths)
	}
	msgs := f.IOStreams.ErrOut.(interface{ String() string }).String()
	for _, want := range []string{
		"its source " + src + " has changed since (md5 ",
		"it ran from a repository with uncommitted changes (https://example.com/r.git)",
		"the repository https://example.com/r.git is at commit bbbbbbbbbbbb now; the run ran at aaaaaaaaaaaa",
		"running run " + id + " of file storage " + runs + " again: sh train.sh --lr 1 --epochs 2 (in " + work + ")",
	} {
		if !strings.Contains(msgs, want) {
			t.Errorf("messages lack %q:\n%s", want, msgs)
		}
	}

	// seed=N changes the seed; nothing else of the record is needed.
	o, _, err = parseIn(t, dir, nil, "-F", runs, id, "with", "seed=9")
	if err != nil {
		t.Fatal(err)
	}
	o.Git = nil
	if err := o.prepare(ctx); err != nil || o.Run.Seed != 9 || o.Run.Config["seed"] != int64(9) {
		t.Errorf("with seed=9: %v, seed %d, config %v", err, o.Run.Seed, o.Run.Config)
	}
}

func TestPrepareRefuses(t *testing.T) {
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	gone := filepath.Join(dir, "gone")
	noArgv := record(t, runs, &observer.StartEvent{Command: "x", Meta: observer.Meta{Command: "x", Cwd: dir}, Config: map[string]any{}})
	noDir := record(t, runs, &observer.StartEvent{Command: "x", Meta: observer.Meta{Command: "x", Argv: []string{"true"}, Cwd: gone}, Config: map[string]any{}})
	for _, c := range []struct {
		id, mention string
	}{
		{"99", `no run "99" in file storage ` + runs},
		{noArgv, "has no recorded command line"},
		{noDir, "ran in " + gone + ", which is not a directory here any more"},
	} {
		o, _, err := parseIn(t, dir, nil, "-F", runs, c.id)
		if err != nil {
			t.Fatal(err)
		}
		err = o.prepare(ctx)
		if err == nil || !strings.Contains(err.Error(), c.mention) || strings.Contains(err.Error(), "\n") {
			t.Errorf("run %s: %v, want one line mentioning %q", c.id, err, c.mention)
		}
	}
}
