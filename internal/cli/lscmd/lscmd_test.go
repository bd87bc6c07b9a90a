package lscmd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/cli/storeflags"
	"github.com/sacred-go/sacred/internal/readback/readbacktest"
	"github.com/sacred-go/sacred/pkg/observer"
	_ "github.com/sacred-go/sacred/pkg/observer/file" // -F
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func fixture() *readbacktest.Memory {
	start := now.Add(-time.Hour)
	return &readbacktest.Memory{RunList: []*observer.Run{
		{ID: "1", Status: "COMPLETED", Experiment: observer.Experiment{Name: "mnist_convolutional_network_with_a_long_name"},
			Config: map[string]any{"lr": 0.1}, Result: 0.91, HasResult: true,
			StartTime: start, Heartbeat: start.Add(90 * time.Second), StopTime: start.Add(90 * time.Second)},
		// A RUNNING run whose last beat is 10 minutes old: DIED?.
		{ID: "2", Status: "RUNNING", Experiment: observer.Experiment{Name: "cifar"},
			Config: map[string]any{"lr": 0.01}, StartTime: start, Heartbeat: now.Add(-10 * time.Minute)},
		{ID: "3", Status: "RUNNING", Experiment: observer.Experiment{Name: "cifar"},
			Config: map[string]any{"lr": 0.3, "note": "a\ttab"}, StartTime: start, Heartbeat: now.Add(-5 * time.Second)},
	}}
}

func ls(t *testing.T, tty bool, width int, o *LsOptions) (string, string, error) {
	t.Helper()
	ios, _, out, errOut := cmdutil.Test()
	ios.SetTTY(false, tty, tty)
	ios.SetTerminalWidth(width)
	o.IO = ios
	o.Stores = []storeflags.Store{{Label: "mem", Reader: fixture()}}
	o.Now = func() time.Time { return now }
	err := Ls(context.Background(), o)
	return out.String(), errOut.String(), err
}

func TestLsTerminalTableFitsTheWidth(t *testing.T) {
	out, _, err := ls(t, true, 80, &LsOptions{Columns: []string{"config.lr"}})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID  NAME") {
		t.Fatalf("table:\n%s", out)
	}
	for _, l := range lines {
		if n := utf8.RuneCountInString(l); n > 80 {
			t.Errorf("line of %d columns > 80: %q", n, l)
		}
	}
	if !strings.Contains(lines[1], "mnist_convolut…  ") || !strings.Contains(lines[1], "…") || !strings.Contains(lines[1], "1m30s") {
		t.Errorf("long name not cut, or duration: %q", lines[1])
	}
	if !strings.Contains(lines[2], "DIED?") || !strings.Contains(lines[3], "RUNNING") {
		t.Errorf("statuses:\n%s", out)
	}
}

func TestLsPipedAndJSON(t *testing.T) {
	out, _, err := ls(t, false, 0, &LsOptions{Columns: []string{"config.note"}, Status: []string{"died?", "COMPLETED"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "id\tname\tstatus\tstart\tduration\tresult\tconfig.note\n" +
		"1\tmnist_convolutional_network_with_a_long_name\tCOMPLETED\t2026-11-27T11:00:00.000000Z\t90\t0.91\t\n" +
		"2\tcifar\tDIED?\t2026-11-27T11:00:00.000000Z\t3000\t\t\n"
	if out != want {
		t.Errorf("piped:\n%q\nwant\n%q", out, want)
	}
	out, _, err = ls(t, false, 0, &LsOptions{JSON: true, Columns: []string{"config.note"}, Sort: []string{"-config.lr"}, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil || m["id"] != "3" || m["config.note"] != "a\ttab" || m["status"] != "RUNNING" {
		t.Errorf("json: %v %s", err, out)
	}
	if _, has := m["result"]; has {
		t.Errorf("a run without a result has no result key: %s", out)
	}
}

func TestLsWarnsAboutUnknownFields(t *testing.T) {
	out, errOut, err := ls(t, false, 0, &LsOptions{Where: "confg.lr > 0"})
	if err != nil || strings.Count(out, "\n") != 1 || !strings.Contains(errOut, "confg.lr is no field of a run") {
		t.Errorf("err %v out %q stderr %q", err, out, errOut)
	}
}

func TestLsMalformedWhereOnATerminal(t *testing.T) {
	_, errOut, err := ls(t, true, 80, &LsOptions{Where: "config.lr = 1"})
	var exit *cmdutil.ExitError
	if !errorsAs(err, &exit) || exit.Code != 1 {
		t.Fatalf("err %v", err)
	}
	want := "sacred: --where: line 1, column 11: unexpected character '='; compare with ==\n  config.lr = 1\n            ^\n"
	if errOut != want {
		t.Errorf("stderr:\n%s\nwant\n%s", errOut, want)
	}
}

func TestSplitList(t *testing.T) {
	got := splitList([]string{`config.lr, config["a,b"] ,metrics.loss.last`, "result"})
	want := []string{"config.lr", `config["a,b"]`, "metrics.loss.last", "result"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q", got)
	}
}

func TestNewCmdLsFlags(t *testing.T) {
	f := cmdutil.NewTest(nil, t.TempDir())
	var got *LsOptions
	cmd := NewCmdLs(f, func(o *LsOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"-F", t.TempDir(), "--status", "FAILED,DIED?", "--index", "0,-1", "--columns", "config.lr,result", "--last", "3", "--sort", "-result"})
	var buf bytes.Buffer
	cmd.SetOut(&buf)
	cmd.SetErr(&buf)
	if err := cmd.Execute(); err != nil {
		t.Fatalf("%v %s", err, buf.String())
	}
	if strings.Join(got.Status, ",") != "FAILED,DIED?" || len(got.Index) != 2 || got.Index[1] != -1 ||
		strings.Join(got.Columns, ",") != "config.lr,result" || got.Last != 3 || got.Sort[0] != "-result" || len(got.Stores) != 1 {
		t.Errorf("options %+v", got)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
