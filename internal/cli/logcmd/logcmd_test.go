package logcmd

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"

	"github.com/sacred-go/sacred/internal/childapi"
	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/testutil"
	"github.com/sacred-go/sacred/pkg/observer"
)

type fakeRun struct {
	s      *childapi.Server
	warn   *testutil.SyncBuffer
	mu     sync.Mutex
	arts   []observer.ArtifactEvent
	copies map[string]string
	res    []observer.ResourceEvent
}

func newRun(t testing.TB) *fakeRun {
	t.Helper()
	r := &fakeRun{warn: &testutil.SyncBuffer{}, copies: map[string]string{}}
	s, err := childapi.Listen(childapi.Options{
		Dir:  t.TempDir(),
		Warn: r.warn,
		OnArtifact: func(ev observer.ArtifactEvent) {
			b, _ := os.ReadFile(ev.Path)
			r.mu.Lock()
			defer r.mu.Unlock()
			r.arts = append(r.arts, ev)
			r.copies[ev.Name] = string(b)
		},
		OnResource: func(ev observer.ResourceEvent) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.res = append(r.res, ev)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.s = s
	t.Cleanup(func() { s.Close(); s.Cleanup() })
	return r
}

func steps(ms []observer.MetricSeries, name string) []int64 {
	var out []int64
	for _, s := range ms {
		if s.Name == name {
			for _, p := range s.Points {
				out = append(out, p.Step)
			}
		}
	}
	return out
}

func TestRunEveryKind(t *testing.T) {
	r := newRun(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "model.pt"), []byte("w"), 0o644)
	for _, o := range []*LogOptions{
		{Kind: "metric", Args: []string{"loss", "0.5"}},
		{Kind: "metric", Args: []string{"loss", "0.25"}, Step: 10, HasStep: true},
		{Kind: "metric", Args: []string{"loss", "1e-3"}},
		{Kind: "info", Args: []string{"a.b", `{"x": [1, 2]}`}},
		{Kind: "result", Args: []string{`"done"`}},
		{Kind: "artifact", Args: []string{"model.pt"}, Cwd: dir, Name: "models/m.pt", ContentType: "application/octet-stream"},
		{Kind: "resource", Args: []string{filepath.Join(dir, "model.pt")}},
	} {
		o.Socket = r.s.Path()
		if err := logRun(o); err != nil {
			t.Fatalf("%s %v: %v", o.Kind, o.Args, err)
		}
	}
	ms := r.s.DrainMetrics()
	if got := steps(ms, "loss"); !reflect.DeepEqual(got, []int64{0, 10, 11}) || ms[0].Points[2].Value != 1e-3 {
		t.Errorf("loss %+v", ms)
	}
	if info := r.s.Info(); !reflect.DeepEqual(info, map[string]any{"a": map[string]any{"b": map[string]any{"x": []any{int64(1), int64(2)}}}}) {
		t.Errorf("info %#v", info)
	}
	if res, ok := r.s.Result(); !ok || res != "done" {
		t.Errorf("result %#v", res)
	}
	if len(r.arts) != 1 || r.arts[0].Name != "models/m.pt" || r.arts[0].OrigPath != filepath.Join(dir, "model.pt") || r.arts[0].ContentType != "application/octet-stream" {
		t.Errorf("artifacts %+v", r.arts)
	}
	if len(r.res) != 1 || r.res[0].Path != filepath.Join(dir, "model.pt") {
		t.Errorf("resources %+v", r.res)
	}
	if w := r.warn.String(); w != "" {
		t.Errorf("warnings %s", w)
	}
}

func TestRunRefusesBadArguments(t *testing.T) {
	r := newRun(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f.txt"), nil, 0o644)
	for _, tc := range []struct {
		o    LogOptions
		want string
	}{
		{LogOptions{Kind: "metric", Args: []string{"loss", "abc"}}, `VALUE "abc" is not a finite number`},
		{LogOptions{Kind: "metric", Args: []string{"loss", "NaN"}}, `VALUE "NaN" is not a finite number`},
		{LogOptions{Kind: "metric", Args: []string{"loss", "inf"}}, `VALUE "inf" is not a finite number`},
		{LogOptions{Kind: "metric", Args: []string{"", "1"}}, "NAME is empty"},
		{LogOptions{Kind: "metric", Args: []string{"loss", "1"}, Step: -2, HasStep: true}, "--step -2 is negative"},
		{LogOptions{Kind: "info", Args: []string{"k", "hello"}}, `is not JSON; quote strings, e.g. '"hello"'`},
		{LogOptions{Kind: "result", Args: []string{"{"}}, "is not JSON"},
		{LogOptions{Kind: "artifact", Args: []string{"nope.pt"}, Cwd: dir}, "nope.pt does not exist"},
		{LogOptions{Kind: "artifact", Args: []string{dir}}, "is not a regular file"},
		{LogOptions{Kind: "artifact", Args: []string{"f.txt"}, Cwd: dir, Name: "../x"}, "escapes the run directory"},
		{LogOptions{Kind: "artifact", Args: []string{"f.txt"}, Cwd: dir, Name: "/x"}, "is absolute"},
		{LogOptions{Kind: "resource", Args: []string{"/no/such"}}, "/no/such does not exist"},
	} {
		tc.o.Socket = r.s.Path()
		if err := logRun(&tc.o); err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s %v: error %v, want one line with %q", tc.o.Kind, tc.o.Args, err, tc.want)
		}
	}
	if ms := r.s.DrainMetrics(); len(ms) != 0 {
		t.Errorf("refused calls sent %+v", ms)
	}
}

func TestRunOutsideARun(t *testing.T) {
	err := logRun(&LogOptions{Kind: "metric", Args: []string{"loss", "1"}})
	if err != childapi.ErrNotInRun {
		t.Errorf("error %v", err)
	}
	err = logRun(&LogOptions{Kind: "metric", Args: []string{"loss", "1"}, Socket: filepath.Join(t.TempDir(), "gone")})
	if err == nil || !strings.Contains(err.Error(), "has it ended?") {
		t.Errorf("error %v", err)
	}
}

// sacred runs `sacred log ARGS...` in-process with env as its environment
// and returns the exit status and what it printed, as the program would.
func sacred(env []string, stdin string, args ...string) (code int, stdout, stderr string) {
	f := cmdutil.NewTest(env, "")
	f.IOStreams.In = strings.NewReader(stdin)
	root := &cobra.Command{Use: "sacred", SilenceUsage: true, SilenceErrors: true}
	root.SetFlagErrorFunc(cmdutil.FlagErrorFunc)
	root.AddCommand(NewCmdLog(f, nil))
	root.SetArgs(append([]string{"log"}, args...))
	var out, errOut strings.Builder
	root.SetOut(&out)
	root.SetErr(&errOut)
	cmd, err := root.ExecuteC()
	code = cmdutil.HandleError(&errOut, cmd, err)
	return code, out.String() + f.IOStreams.Out.(*bytes.Buffer).String(), errOut.String()
}

// The command line of every kind, as a shell script would call it, sent
// to a run.
func TestCommands(t *testing.T) {
	r := newRun(t)
	dir := t.TempDir()
	t.Chdir(dir)
	env := []string{r.s.Env()}
	call := func(stdin string, args ...string) {
		t.Helper()
		if code, out, errOut := sacred(env, stdin, args...); code != 0 || out != "" || errOut != "" {
			t.Fatalf("sacred log %q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	os.WriteFile("data.csv", []byte("x,y\n1,2\n"), 0o644)
	call("", "resource", "data.csv")
	os.Mkdir("sub", 0o755)
	t.Chdir(filepath.Join(dir, "sub"))
	for _, v := range []string{"0.1", "0.2", "0.3"} {
		call("", "metric", "loss", v)
	}
	call("", "metric", "acc", "0.5", "--step", "7")
	call("", "metric", "acc", "0.75")
	os.WriteFile("model.bin", []byte("original\n"), 0o644)
	call("", "artifact", "model.bin", "--name", "model.bin")
	os.WriteFile("model.bin", []byte("changed\n"), 0o644) // the copy was taken before sacred log returned
	os.Remove("model.bin")
	call("", "info", "host.name", `"sh"`)
	call("", "info", "counts", `{"a": 1}`)
	call("", "result", "0.75")
	call(`{"kind": "metric", "name": "loss", "value": 0.4}`+"\n"+`{"kind": "info", "key": "via", "value": "stream"}`+"\n", "stream")
	call(`{"kind": "metric", "name": "loss", "value": 0.5}`, "stream")

	ms := r.s.DrainMetrics()
	if got := steps(ms, "loss"); !reflect.DeepEqual(got, []int64{0, 1, 2, 3, 4}) {
		t.Errorf("loss steps %v", got)
	}
	if got := steps(ms, "acc"); !reflect.DeepEqual(got, []int64{7, 8}) {
		t.Errorf("acc steps %v", got)
	}
	want := map[string]any{"host": map[string]any{"name": "sh"}, "counts": map[string]any{"a": int64(1)}, "via": "stream"}
	if info := r.s.Info(); !reflect.DeepEqual(info, want) {
		t.Errorf("info %#v", info)
	}
	if res, ok := r.s.Result(); !ok || res != 0.75 {
		t.Errorf("result %#v", res)
	}
	if r.copies["model.bin"] != "original\n" || len(r.arts) != 1 || r.arts[0].OrigPath != filepath.Join(dir, "sub", "model.bin") {
		t.Errorf("artifact %+v copy %q", r.arts, r.copies["model.bin"])
	}
	sum := md5.Sum([]byte("x,y\n1,2\n"))
	if len(r.res) != 1 || r.res[0] != (observer.ResourceEvent{Path: filepath.Join(dir, "data.csv"), MD5: hex.EncodeToString(sum[:])}) {
		t.Errorf("resources %+v", r.res)
	}
	if w := r.warn.String(); w != "" {
		t.Errorf("warnings %s", w)
	}
}

func TestCommandErrors(t *testing.T) {
	code, out, errOut := sacred(nil, "", "metric", "loss", "0.3")
	if code != 1 || out != "" || errOut != "sacred: "+childapi.ErrNotInRun.Error()+"\n" {
		t.Errorf("outside a run: exit %d, stdout %q, stderr %q; want 1 and one clear line", code, out, errOut)
	}
	r := newRun(t)
	env := []string{r.s.Env()}
	code, out, errOut = sacred(env, "", "metric", "loss", "fast")
	if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "not a finite number") {
		t.Errorf("bad value: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, tc := range []struct {
		args    []string
		mention string
	}{
		{[]string{"metric", "loss"}, "sacred log metric needs NAME VALUE, got 1 argument(s)"},
		{[]string{"stream", "x"}, "takes no arguments"},
		{[]string{"metric", "loss", "1", "--step", "x"}, `--step "x"`},
		{[]string{}, "sacred log needs a subcommand: artifact, info, metric, resource, result, stream"},
	} {
		code, out, errOut := sacred(env, "", tc.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tc.mention) || !strings.Contains(errOut, "Run 'sacred log") {
			t.Errorf("sacred log %q: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, code, out, errOut, tc.mention)
		}
	}
	if ms := r.s.DrainMetrics(); len(ms) != 0 {
		t.Errorf("refused calls sent %+v", ms)
	}
}

// TestHardening24UnknownSubcommand: a misspelt kind exits 2 with a
// suggestion on stderr, and prints nothing on stdout (which is usually the
// run's captured output).
func TestHardening24UnknownSubcommand(t *testing.T) {
	r := newRun(t)
	code, out, errOut := sacred([]string{r.s.Env()}, "", "metrc", "loss", "0.3")
	if code != 2 || out != "" || !strings.Contains(errOut, `unknown command "metrc" for "sacred log"; did you mean metric?`) {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if strings.Contains(errOut, "Usage:") || strings.Count(errOut, "\n") != 2 {
		t.Errorf("want the error and a hint, not the help: %q", errOut)
	}
	if ms := r.s.DrainMetrics(); len(ms) != 0 {
		t.Errorf("a misspelt call sent %+v", ms)
	}
}

// Eight callers use `sacred log` at once.
func TestConcurrentCalls(t *testing.T) {
	r := newRun(t)
	env := []string{r.s.Env()}
	const callers, n = 8, 25
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range n {
				if code, _, errOut := sacred(env, "", "metric", fmt.Sprintf("c%d", i), fmt.Sprint(j)); code != 0 {
					t.Errorf("exit %d: %s", code, errOut)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := map[string][]float64{}
	for _, s := range r.s.DrainMetrics() {
		for j, p := range s.Points {
			if p.Step != int64(j) {
				t.Errorf("%s point %d has step %d", s.Name, j, p.Step)
			}
			got[s.Name] = append(got[s.Name], p.Value)
		}
	}
	for i := range callers {
		vals := got[fmt.Sprintf("c%d", i)]
		if len(vals) != n {
			t.Errorf("c%d: %d points, want %d", i, len(vals), n)
			continue
		}
		for j, v := range vals {
			if v != float64(j) {
				t.Errorf("c%d: point %d = %v", i, j, v)
				break
			}
		}
	}
}

// BenchmarkLogMetricCommand is the in-process cost of one `sacred log
// metric` call: building the command, parsing, connecting and waiting
// for the run to process the point (no process start; see
// test/e2e BenchmarkHardening38SacredLogMetric for the whole call).
func BenchmarkLogMetricCommand(b *testing.B) {
	r := newRun(b)
	env := []string{r.s.Env()}
	b.ReportAllocs()
	for b.Loop() {
		if code, _, errOut := sacred(env, "", "metric", "loss", "0.5"); code != 0 {
			b.Fatalf("exit %d: %s", code, errOut)
		}
	}
	b.StopTimer()
	if got := len(steps(r.s.DrainMetrics(), "loss")); got != b.N {
		b.Fatalf("%d points arrived, want %d", got, b.N)
	}
}
