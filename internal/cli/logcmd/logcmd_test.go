package logcmd

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"

	"github.com/sacred-go/sacred/internal/childapi"
	"github.com/sacred-go/sacred/pkg/observer"
)

// The test binary doubles as `sacred` (with only the log command) so that
// shell scripts can call `sacred log` as a real process.
const asMain = "SACRED_LOGCMD_TEST_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMain) == "1" {
		root := &cobra.Command{Use: "sacred", SilenceUsage: true, SilenceErrors: true}
		root.AddCommand(NewCmd())
		if err := root.Execute(); err != nil {
			fmt.Fprintf(os.Stderr, "sacred: %v\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// binDir returns a directory holding an executable `sacred` that runs this
// test binary as the log command.
func binDir(t testing.TB) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sh := fmt.Sprintf("#!/bin/sh\n%s=1 exec '%s' \"$@\"\n", asMain, self)
	if err := os.WriteFile(filepath.Join(dir, "sacred"), []byte(sh), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fakeRun struct {
	s      *childapi.Server
	warn   *syncBuf
	mu     sync.Mutex
	arts   []observer.ArtifactEvent
	copies map[string]string
	res    []observer.ResourceEvent
}

func newRun(t testing.TB) *fakeRun {
	t.Helper()
	r := &fakeRun{warn: &syncBuf{}, copies: map[string]string{}}
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
	for _, o := range []*Options{
		{Kind: "metric", Args: []string{"loss", "0.5"}},
		{Kind: "metric", Args: []string{"loss", "0.25"}, Step: 10, HasStep: true},
		{Kind: "metric", Args: []string{"loss", "1e-3"}},
		{Kind: "info", Args: []string{"a.b", `{"x": [1, 2]}`}},
		{Kind: "result", Args: []string{`"done"`}},
		{Kind: "artifact", Args: []string{"model.pt"}, Cwd: dir, Name: "models/m.pt", ContentType: "application/octet-stream"},
		{Kind: "resource", Args: []string{filepath.Join(dir, "model.pt")}},
	} {
		o.Socket = r.s.Path()
		if err := run(o); err != nil {
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
		o    Options
		want string
	}{
		{Options{Kind: "metric", Args: []string{"loss", "abc"}}, `VALUE "abc" is not a finite number`},
		{Options{Kind: "metric", Args: []string{"loss", "NaN"}}, `VALUE "NaN" is not a finite number`},
		{Options{Kind: "metric", Args: []string{"loss", "inf"}}, `VALUE "inf" is not a finite number`},
		{Options{Kind: "metric", Args: []string{"", "1"}}, "NAME is empty"},
		{Options{Kind: "metric", Args: []string{"loss", "1"}, Step: -2, HasStep: true}, "--step -2 is negative"},
		{Options{Kind: "info", Args: []string{"k", "hello"}}, `is not JSON; quote strings, e.g. '"hello"'`},
		{Options{Kind: "result", Args: []string{"{"}}, "is not JSON"},
		{Options{Kind: "artifact", Args: []string{"nope.pt"}, Cwd: dir}, "nope.pt does not exist"},
		{Options{Kind: "artifact", Args: []string{dir}}, "is not a regular file"},
		{Options{Kind: "artifact", Args: []string{"f.txt"}, Cwd: dir, Name: "../x"}, "escapes the run directory"},
		{Options{Kind: "artifact", Args: []string{"f.txt"}, Cwd: dir, Name: "/x"}, "is absolute"},
		{Options{Kind: "resource", Args: []string{"/no/such"}}, "/no/such does not exist"},
	} {
		tc.o.Socket = r.s.Path()
		if err := run(&tc.o); err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s %v: error %v, want one line with %q", tc.o.Kind, tc.o.Args, err, tc.want)
		}
	}
	if ms := r.s.DrainMetrics(); len(ms) != 0 {
		t.Errorf("refused calls sent %+v", ms)
	}
}

func TestRunOutsideARun(t *testing.T) {
	err := run(&Options{Kind: "metric", Args: []string{"loss", "1"}})
	if err != childapi.ErrNotInRun {
		t.Errorf("error %v", err)
	}
	err = run(&Options{Kind: "metric", Args: []string{"loss", "1"}, Socket: filepath.Join(t.TempDir(), "gone")})
	if err == nil || !strings.Contains(err.Error(), "has it ended?") {
		t.Errorf("error %v", err)
	}
}

func shell(t *testing.T, r *fakeRun, bin, dir, script string) (string, error) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = dir
	env := []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH")}
	if r != nil {
		env = append(env, r.s.Env())
	}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "PATH=") && !strings.HasPrefix(e, childapi.EnvSocket+"=") {
			env = append(env, e)
		}
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestShellScript(t *testing.T) {
	bin := binDir(t)
	r := newRun(t)
	dir := t.TempDir()
	script := `set -e
printf 'x,y\n1,2\n' > data.csv
sacred log resource data.csv
mkdir sub && cd sub
for i in 1 2 3; do sacred log metric loss "0.$i"; done
sacred log metric acc 0.5 --step 7
sacred log metric acc 0.75
echo original > model.bin
sacred log artifact model.bin --name model.bin
echo changed > model.bin   # the copy was taken before sacred log returned
rm model.bin
sacred log info host.name '"sh"'
sacred log info counts '{"a": 1}'
sacred log result 0.75
printf '%s\n' '{"kind": "metric", "name": "loss", "value": 0.4}' '{"kind": "info", "key": "via", "value": "stream"}' | sacred log stream
printf '{"kind": "metric", "name": "loss", "value": 0.5}' | sacred log stream
`
	if out, err := shell(t, r, bin, dir, script); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
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

func TestShellErrors(t *testing.T) {
	bin := binDir(t)
	dir := t.TempDir()
	out, err := shell(t, nil, bin, dir, "sacred log metric loss 0.3")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("outside a run: %v\n%s", err, out)
	}
	if out != "sacred: "+childapi.ErrNotInRun.Error()+"\n" {
		t.Errorf("outside a run: output %q, want one clear line", out)
	}
	r := newRun(t)
	out, err = shell(t, r, bin, dir, "sacred log metric loss fast")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || strings.Count(out, "\n") != 1 || !strings.Contains(out, "not a finite number") {
		t.Errorf("bad value: %v %q", err, out)
	}
}

// Eight shell processes call `sacred log` at once.
func TestShellConcurrent(t *testing.T) {
	bin := binDir(t)
	r := newRun(t)
	const procs, n = 8, 25
	var wg sync.WaitGroup
	for i := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			script := fmt.Sprintf("set -e; j=0; while [ $j -lt %d ]; do sacred log metric c%d $j; j=$((j+1)); done", n, i)
			if out, err := shell(t, r, bin, t.TempDir(), script); err != nil {
				t.Errorf("%v\n%s", err, out)
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
	for i := range procs {
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

// BenchmarkSacredLogPerPoint is the cost of one `sacred log metric` call:
// a process start, a connection and the wait for the run to process it.
func BenchmarkSacredLogPerPoint(b *testing.B) {
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	bin := self
	if p := os.Getenv("SACRED_BIN"); p != "" { // the real binary, when built
		bin = p
	}
	r := newRun(b)
	env := append(os.Environ(), r.s.Env(), asMain+"=1")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(bin, "log", "metric", "loss", "0.5")
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
	}
	b.StopTimer()
	if got := len(steps(r.s.DrainMetrics(), "loss")); got != b.N {
		b.Fatalf("%d points arrived, want %d", got, b.N)
	}
}
