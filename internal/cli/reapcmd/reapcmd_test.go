package reapcmd

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/cli/storeflags"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
	_ "github.com/sacred-go/sacred/pkg/observer/webhook" // a sink: no reader
)

var ctx = context.Background()

// parseIn runs the command line through cobra and complete in dir, with
// env as the whole environment, and returns the options.
func parseIn(t *testing.T, dir string, env []string, args ...string) (*ReapOptions, error) {
	t.Helper()
	env = append([]string{"XDG_CONFIG_HOME=" + dir, "HOME=" + dir}, env...)
	f := cmdutil.NewTest(env, dir)
	var got *ReapOptions
	cmd := NewCmdReap(f, func(o *ReapOptions) error { got = o; return nil })
	cmd.SetFlagErrorFunc(cmdutil.FlagErrorFunc)
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	return got, cmd.Execute()
}

func TestFlags(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"runs", "elsewhere", "a", "b"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(dir) // relative store paths are read from the working directory
	o, err := parseIn(t, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Older != DefaultOlder || o.DryRun || len(o.Stores) != 1 || o.Stores[0].Kind.Option != file.Option || o.Stores[0].Value != "runs" {
		t.Errorf("defaults: older %v, dry-run %v, stores %+v; want 10m, false, ./runs", o.Older, o.DryRun, o.Stores)
	}
	o, err = parseIn(t, dir, []string{"SACRED_FILE_STORAGE=elsewhere"}, "--older", "1h", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	if o.Older != time.Hour || !o.DryRun || len(o.Stores) != 1 || o.Stores[0].Value != "elsewhere" {
		t.Errorf("older %v, dry-run %v, stores %+v; want 1h, true, the store of SACRED_FILE_STORAGE", o.Older, o.DryRun, o.Stores)
	}
	o, err = parseIn(t, dir, []string{"SACRED_FILE_STORAGE=elsewhere"}, "-F", "a", "-F", "b")
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Stores) != 2 || o.Stores[0].Value != "a" || o.Stores[1].Value != "b" {
		t.Errorf("stores %+v; want a and b, the flags winning over the variable", o.Stores)
	}
	for _, c := range []struct {
		args    []string
		mention string
		code    int
	}{
		{[]string{"--older", "0s"}, "--older", cmdutil.ExitUsage},
		{[]string{"--older", "soon"}, "--older", cmdutil.ExitUsage},
		{[]string{"--webhook", "http://127.0.0.1:9/hook"}, "cannot be read back", cmdutil.ExitUsage},
		{[]string{"3"}, "takes no arguments", cmdutil.ExitUsage},
		{[]string{"-F", "missing"}, "no such store", cmdutil.ExitFailure},
	} {
		_, err := parseIn(t, dir, nil, c.args...)
		code := cmdutil.HandleError(io.Discard, nil, err)
		if err == nil || code != c.code || !strings.Contains(err.Error(), c.mention) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: got %v (exit %d), want one line mentioning %q and exit %d", c.args, err, code, c.mention, c.code)
		}
	}
}

// startRun records a RUNNING run in dir with one beat at beat, and leaves
// it so, as a killed wrapper does.
func startRun(t *testing.T, dir string, start, beat time.Time) string {
	t.Helper()
	cfg, err := file.ParseConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	o, err := file.New(ctx, cfg, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	ev := observertest.StartEvent()
	ev.Time = start
	id, err := o.Started(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	if !beat.IsZero() {
		b := observertest.NewBeats()
		b.Out.Append([]byte("working\n"))
		hb := b.Next(beat, map[string]any{"k": "v"})
		hb.Result, hb.HasResult = 0.5, true
		if err := o.Heartbeat(ctx, hb); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return id
}

// openStore opens the file store at dir as the STORE flags would.
func openStore(t *testing.T, dir string) storeflags.Store {
	t.Helper()
	k, _ := observer.Lookup(file.Option)
	r, err := k.OpenReader(ctx, dir, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return storeflags.Store{Label: dir, Kind: k, Reader: r, Value: dir}
}

func readRun(t *testing.T, dir, id string) *observer.Run {
	t.Helper()
	cfg, _ := file.ParseConfig(dir)
	r, err := file.Open(ctx, cfg, observer.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.Run(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

func TestReap(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "runs")
	now := time.Date(2025, 6, 14, 18, 0, 0, 0, time.UTC)
	dead := startRun(t, dir, now.Add(-3*time.Hour), now.Add(-2*time.Hour))    // beat 2h ago
	silent := startRun(t, dir, now.Add(-time.Hour), time.Time{})              // no beat, started 1h ago
	alive := startRun(t, dir, now.Add(-3*time.Hour), now.Add(-5*time.Second)) // beat 5s ago
	done := startRun(t, dir, now.Add(-5*time.Hour), now.Add(-4*time.Hour))
	{
		cfg, _ := file.ParseConfig(dir)
		o, _ := file.New(ctx, cfg, observer.Settings{})
		ev := observertest.StartEvent()
		ev.ID = done
		if err := o.Resume(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if err := o.Completed(ctx, &observer.CompletedEvent{StopTime: now.Add(-4 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		o.Close(ctx)
	}
	run := func(dry bool) (string, string, error) {
		ios, _, out, errOut := cmdutil.Test()
		err := reapRun(&ReapOptions{IO: ios, Stores: []storeflags.Store{openStore(t, dir)}, Older: 10 * time.Minute, DryRun: dry,
			Now: func() time.Time { return now }})
		return out.String(), errOut.String(), err
	}

	out, errOut, err := run(true)
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, errOut)
	}
	want := "run " + dead + " of file storage " + dir + ": RUNNING, last heartbeat 2h0m0s ago (2025-06-14T16:00:00Z): would be marked FAILED (--dry-run)\n" +
		"run " + silent + " of file storage " + dir + ": RUNNING, no heartbeat, started 1h0m0s ago (2025-06-14T17:00:00Z): would be marked FAILED (--dry-run)\n"
	if out != want {
		t.Errorf("dry run printed\n%s\nwant\n%s", out, want)
	}
	for _, id := range []string{dead, silent, alive} {
		if s := readRun(t, dir, id).Status; s != observer.StatusRunning {
			t.Errorf("run %s is %s after a dry run", id, s)
		}
	}

	out, errOut, err = run(false)
	if err != nil {
		t.Fatalf("reap: %v\n%s", err, errOut)
	}
	if want := strings.ReplaceAll(want, "would be marked FAILED (--dry-run)", "marked FAILED"); out != want {
		t.Errorf("reap printed\n%s\nwant\n%s", out, want)
	}
	r := readRun(t, dir, dead)
	if r.Status != observer.StatusFailed || !r.StopTime.Equal(now.Add(-2*time.Hour)) {
		t.Errorf("dead run: status %s, stop time %v; want FAILED at its last heartbeat", r.Status, r.StopTime)
	}
	wantTrace := "sacred reap: the wrapper of this run stopped without recording its end (killed, e.g. with SIGKILL, or its machine went down); its last heartbeat was at 2025-06-14T16:00:00Z, 2h0m0s before it was marked FAILED at 2025-06-14T18:00:00Z\n"
	if len(r.FailTrace) != 1 || r.FailTrace[0] != wantTrace {
		t.Errorf("fail trace %q, want %q", r.FailTrace, wantTrace)
	}
	if string(r.Output) != "working\n" || r.Result != 0.5 || r.Info["k"] != "v" {
		t.Errorf("the record's output %q, result %v, info %v changed", r.Output, r.Result, r.Info)
	}
	r = readRun(t, dir, silent)
	if r.Status != observer.StatusFailed || !strings.Contains(r.FailTrace[0], "it recorded no heartbeat; it started at 2025-06-14T17:00:00Z") {
		t.Errorf("silent run: status %s, trace %q", r.Status, r.FailTrace)
	}
	if s := readRun(t, dir, alive).Status; s != observer.StatusRunning {
		t.Errorf("a run that beat 5s ago is %s; its wrapper may be alive", s)
	}
	if s := readRun(t, dir, done).Status; s != observer.StatusCompleted {
		t.Errorf("a completed run is %s", s)
	}

	out, errOut, err = run(false)
	if err != nil || out != "" || !strings.Contains(errOut, "no run in file storage") {
		t.Errorf("second reap: %v, printed %q and %q; want nothing to do", err, out, errOut)
	}
}
