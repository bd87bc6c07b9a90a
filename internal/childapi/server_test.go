package childapi

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sacred-go/sacred/internal/testutil"
	"github.com/sacred-go/sacred/pkg/observer"
)

// events records what the server reported through the callbacks.
type events struct {
	mu        sync.Mutex
	artifacts []observer.ArtifactEvent
	copies    map[string][]byte // name → content of the copy when reported
	resources []observer.ResourceEvent
}

func (e *events) artifact(ev observer.ArtifactEvent) {
	b, err := os.ReadFile(ev.Path)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.copies == nil {
		e.copies = map[string][]byte{}
	}
	if err == nil {
		e.copies[ev.Name] = b
	}
	e.artifacts = append(e.artifacts, ev)
}

func (e *events) resource(ev observer.ResourceEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.resources = append(e.resources, ev)
}

type fixture struct {
	s    *Server
	warn *testutil.SyncBuffer
	ev   *events
	cwd  string
}

func newServer(t testing.TB, mod func(*Options)) *fixture {
	t.Helper()
	f := &fixture{warn: &testutil.SyncBuffer{}, ev: &events{}, cwd: t.TempDir()}
	o := Options{
		Dir:        t.TempDir(),
		Cwd:        f.cwd,
		Warn:       f.warn,
		OnArtifact: f.ev.artifact,
		OnResource: f.ev.resource,
	}
	if mod != nil {
		mod(&o)
	}
	s, err := Listen(o)
	if err != nil {
		t.Fatal(err)
	}
	f.s = s
	t.Cleanup(func() {
		s.Close()
		s.Cleanup()
	})
	return f
}

// sendRaw connects, writes data as is, and waits until the server has
// handled it (half-close, then wait for the server's EOF).
func sendRaw(t testing.TB, path, data string) {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	var b [64]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			break
		}
	}
}

func steps(ss []observer.MetricSeries, name string) []int64 {
	var out []int64
	for _, s := range ss {
		if s.Name == name {
			for _, p := range s.Points {
				out = append(out, p.Step)
			}
		}
	}
	return out
}

func TestPermissions(t *testing.T) {
	f := newServer(t, nil)
	st, err := os.Stat(filepath.Dir(f.s.Path()))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("socket dir mode %v, want 0700", st.Mode().Perm())
	}
	st, err = os.Stat(f.s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want socket 0600", st.Mode())
	}
	if f.s.Env() != "SACRED_SOCKET="+f.s.Path() {
		t.Errorf("Env() = %q", f.s.Env())
	}
	f.s.Close()
	if _, err := os.Stat(f.s.Path()); !os.IsNotExist(err) {
		t.Errorf("socket still there after Close: %v", err)
	}
}

func TestEveryKindFromGoClient(t *testing.T) {
	f := newServer(t, nil)
	model := filepath.Join(f.cwd, "model.pt")
	os.WriteFile(model, []byte("weights v1"), 0o644)
	data := filepath.Join(f.cwd, "data.csv")
	os.WriteFile(data, []byte("a,b\n1,2\n"), 0o644)

	c, err := DialPath(f.s.Path())
	if err != nil {
		t.Fatal(err)
	}
	msgs := []map[string]any{
		{"kind": "metric", "name": "loss", "value": 0.5},
		{"kind": "metric", "name": "acc", "value": 1, "step": 3},
		{"kind": "metric", "name": "loss", "value": 0.25, "time": "2024-05-01T12:00:00.5Z"},
		{"kind": "info", "key": "a.b", "value": map[string]any{"c": []any{1, "x"}}},
		{"kind": "info", "key": "a.d", "value": 12345678901234},
		{"kind": "info", "key": "top", "value": nil},
		{"kind": "result", "value": 1},
		{"kind": "result", "value": map[string]any{"best": 0.25}},
		// a relative path is resolved against Options.Cwd
		{"kind": "artifact", "path": "model.pt", "name": "sub/model.pt", "content_type": "application/x-torch", "metadata": map[string]any{"epoch": 3}},
		{"kind": "resource", "path": data},
	}
	for _, m := range msgs {
		if err := c.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Sync(); err != nil {
		t.Fatal(err)
	}
	// The copy was taken at Sync: the child may now rewrite the original.
	os.WriteFile(model, []byte("weights v2"), 0o644)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	ms := f.s.DrainMetrics()
	if len(ms) != 2 || ms[0].Name != "loss" || ms[1].Name != "acc" {
		t.Fatalf("series %+v, want loss then acc", ms)
	}
	if got := steps(ms, "loss"); !reflect.DeepEqual(got, []int64{0, 1}) {
		t.Errorf("loss steps %v", got)
	}
	if ms[0].Points[0].Value != 0.5 || ms[1].Points[0].Step != 3 || ms[1].Points[0].Value != 1 {
		t.Errorf("points %+v", ms)
	}
	want := time.Date(2024, 5, 1, 12, 0, 0, 5e8, time.UTC)
	if !ms[0].Points[1].Time.Equal(want) || ms[0].Points[0].Time.Location() != time.UTC {
		t.Errorf("times %v %v", ms[0].Points[0].Time, ms[0].Points[1].Time)
	}
	if again := f.s.DrainMetrics(); len(again) != 0 {
		t.Errorf("second drain %+v, want nothing", again)
	}

	wantInfo := map[string]any{"a": map[string]any{"b": map[string]any{"c": []any{int64(1), "x"}}, "d": int64(12345678901234)}, "top": nil}
	info := f.s.Info()
	if !reflect.DeepEqual(info, wantInfo) {
		t.Errorf("info %#v\nwant %#v", info, wantInfo)
	}
	info["a"].(map[string]any)["b"] = "changed" // a copy: the server's dict stays
	if !reflect.DeepEqual(f.s.Info(), wantInfo) {
		t.Error("Info() is not a deep copy")
	}
	f.s.MergeInfo(map[string]any{"metrics": []any{map[string]any{"name": "loss", "id": "x"}}})
	if _, ok := f.s.Info()["metrics"]; !ok {
		t.Error("MergeInfo did not add metrics")
	}

	res, ok := f.s.Result()
	if !ok || !reflect.DeepEqual(res, map[string]any{"best": 0.25}) {
		t.Errorf("result %#v %v", res, ok)
	}

	ev := f.ev
	if len(ev.artifacts) != 1 {
		t.Fatalf("artifacts %+v", ev.artifacts)
	}
	a := ev.artifacts[0]
	if a.Name != "sub/model.pt" || a.OrigPath != model || a.ContentType != "application/x-torch" || a.Metadata["epoch"] != int64(3) {
		t.Errorf("artifact event %+v", a)
	}
	if string(ev.copies["sub/model.pt"]) != "weights v1" {
		t.Errorf("copy holds %q, want the content at report time", ev.copies["sub/model.pt"])
	}
	if b, _ := os.ReadFile(a.Path); string(b) != "weights v1" {
		t.Errorf("copy changed later: %q", b)
	}
	sum := md5.Sum([]byte("a,b\n1,2\n"))
	if len(ev.resources) != 1 || ev.resources[0] != (observer.ResourceEvent{Path: data, MD5: hex.EncodeToString(sum[:])}) {
		t.Errorf("resources %+v", ev.resources)
	}
	if w := f.warn.String(); w != "" {
		t.Errorf("unexpected warnings:\n%s", w)
	}
}

func TestStepRule(t *testing.T) {
	cases := []struct {
		name  string
		steps []string // "" = no step
		want  []int64
	}{
		{"no steps count from 0", []string{"", "", ""}, []int64{0, 1, 2}},
		{"explicit step resets", []string{"", "10", ""}, []int64{0, 10, 11}},
		{"explicit step back", []string{"5", "", "2", ""}, []int64{5, 6, 2, 3}},
		{"same explicit step twice", []string{"7", "7", ""}, []int64{7, 7, 8}},
		{"null step is no step", []string{"null", "3", "null"}, []int64{0, 3, 4}},
		{"integral float step", []string{"4.0", ""}, []int64{4, 5}},
		{"step 0", []string{"0", ""}, []int64{0, 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newServer(t, nil)
			var b strings.Builder
			for _, st := range tc.steps {
				if st == "" {
					b.WriteString(`{"kind":"metric","name":"m","value":1}` + "\n")
				} else {
					fmt.Fprintf(&b, `{"kind":"metric","name":"m","value":1,"step":%s}`+"\n", st)
				}
			}
			sendRaw(t, f.s.Path(), b.String())
			if got := steps(f.s.DrainMetrics(), "m"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("steps %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("counter survives a drain and is per metric", func(t *testing.T) {
		f := newServer(t, nil)
		sendRaw(t, f.s.Path(), `{"kind":"metric","name":"a","value":1,"step":4}`+"\n")
		f.s.DrainMetrics()
		sendRaw(t, f.s.Path(), `{"kind":"metric","name":"a","value":1}`+"\n"+`{"kind":"metric","name":"b","value":1}`+"\n")
		ms := f.s.DrainMetrics()
		if a, b := steps(ms, "a"), steps(ms, "b"); !reflect.DeepEqual(a, []int64{5}) || !reflect.DeepEqual(b, []int64{0}) {
			t.Errorf("a %v b %v, want [5] [0]", a, b)
		}
	})
}

func TestBadInput(t *testing.T) {
	f := newServer(t, nil)
	os.Mkdir(filepath.Join(f.cwd, "adir"), 0o755)
	os.WriteFile(filepath.Join(f.cwd, "ok.txt"), []byte("ok"), 0o644)
	cases := []struct {
		line string
		warn string
	}{
		{`{"kind":"metric","name":"loss","value":0.1`, "malformed JSON"},
		{`not json at all`, "malformed JSON"},
		{`[1,2]`, "malformed JSON"},
		{`{"kind":"metric","name":"loss","value":NaN}`, "NaN is not a finite number"},
		{`{"kind":"metric","name":"loss","value":Infinity}`, "Infinity is not a finite number"},
		{`{"kind":"metric","name":"loss","value":-Infinity}`, "Infinity is not a finite number"},
		{`{"kind":"metric","name":"loss","value":1e999}`, "not a finite float64"},
		{`{"kind":"metric","name":"loss","value":null}`, "value is null"},
		{`{"kind":"metric","name":"loss","value":"0.3"}`, "is a string; want a number"},
		{`{"kind":"metric","name":"loss","value":true}`, "is not a number"},
		{`{"kind":"metric","name":"loss"}`, `no "value"`},
		{`{"kind":"metric","value":1}`, `metric without "name"`},
		{`{"kind":"metric","name":"loss","value":1,"step":-1}`, "step -1 is negative"},
		{`{"kind":"metric","name":"loss","value":1,"step":1.5}`, "is not an integer >= 0"},
		{`{"kind":"metric","name":"loss","value":1,"step":"3"}`, "is not an integer >= 0"},
		{`{"kind":"metric","name":"loss","value":1,"time":"yesterday"}`, "is not ISO-8601"},
		{`{"kind":"bogus"}`, `unknown kind "bogus"`},
		{`{"name":"x"}`, `no "kind" field`},
		{`{"kind":"info","value":1}`, `info without "key"`},
		{`{"kind":"info","key":"a..b","value":1}`, "empty part"},
		{`{"kind":"info","key":"k"}`, `without "value"`},
		{`{"kind":"info","key":"n","value":1e999}`, "out of range"},
		{`{"kind":"result"}`, `result without "value"`},
		{`{"kind":"artifact"}`, `artifact without "path"`},
		{`{"kind":"artifact","path":"missing.pt"}`, "missing.pt does not exist"},
		{`{"kind":"artifact","path":"adir"}`, "is a directory, not a regular file"},
		{`{"kind":"artifact","path":"ok.txt","name":"../escape.txt"}`, "escapes the run directory"},
		{`{"kind":"artifact","path":"ok.txt","name":"a/../../escape.txt"}`, "escapes the run directory"},
		{`{"kind":"artifact","path":"ok.txt","name":"/etc/passwd"}`, "is absolute"},
		{`{"kind":"artifact","path":"ok.txt","metadata":[1]}`, "metadata must be a JSON object"},
		{`{"kind":"resource","path":"/no/such/file"}`, "/no/such/file does not exist"},
		{`{"kind":"resource"}`, `resource without "path"`},
	}
	var b strings.Builder
	for _, tc := range cases {
		b.WriteString(tc.line + "\n")
	}
	// After all of that the channel still works.
	b.WriteString(`{"kind":"metric","name":"loss","value":0.5}` + "\n")
	b.WriteString(`{"kind":"info","key":"n","value":1}` + "\n")
	b.WriteString(`{"kind":"info","key":"n.x","value":1}` + "\n") // n is not an object
	sendRaw(t, f.s.Path(), b.String())

	lines := strings.Split(strings.TrimSuffix(f.warn.String(), "\n"), "\n")
	if len(lines) != len(cases)+1 {
		t.Fatalf("%d warning lines for %d bad lines:\n%s", len(lines), len(cases)+1, f.warn.String())
	}
	for i, tc := range cases {
		if !strings.HasPrefix(lines[i], "sacred: child API: ") || !strings.Contains(lines[i], tc.warn) || !strings.Contains(lines[i], fmt.Sprintf("line %d:", i+1)) {
			t.Errorf("line %q: warning %q, want it to name %q", tc.line, lines[i], tc.warn)
		}
	}
	if !strings.Contains(lines[len(cases)], "already holds a value that is not an object") {
		t.Errorf("last warning %q", lines[len(cases)])
	}
	ms := f.s.DrainMetrics()
	if len(ms) != 1 || len(ms[0].Points) != 1 || ms[0].Points[0].Value != 0.5 || ms[0].Points[0].Step != 0 {
		t.Errorf("metrics after bad input %+v, want the one good point at step 0", ms)
	}
	if !reflect.DeepEqual(f.s.Info(), map[string]any{"n": int64(1)}) {
		t.Errorf("info %v", f.s.Info())
	}
	if _, ok := f.s.Result(); ok {
		t.Error("a result without value was taken")
	}
	if len(f.ev.artifacts) != 0 || len(f.ev.resources) != 0 {
		t.Errorf("bad artifacts/resources were reported: %+v %+v", f.ev.artifacts, f.ev.resources)
	}
}

func TestBlankLinesAndCRLF(t *testing.T) {
	f := newServer(t, nil)
	sendRaw(t, f.s.Path(), "\n  \r\n"+`{"kind":"metric","name":"m","value":2}`+"\r\n")
	if ms := f.s.DrainMetrics(); len(ms) != 1 || ms[0].Points[0].Value != 2 {
		t.Errorf("metrics %+v", ms)
	}
	if w := f.warn.String(); w != "" {
		t.Errorf("warnings %q", w)
	}
}

func TestDisconnectMidLine(t *testing.T) {
	f := newServer(t, nil)
	sendRaw(t, f.s.Path(), `{"kind":"metric","name":"m","value":1}`+"\n"+`{"kind":"metric","name":"m","va`)
	if w := f.warn.String(); !strings.Contains(w, "disconnected in the middle of a line") || strings.Count(w, "\n") != 1 {
		t.Errorf("warning %q", w)
	}
	if ms := f.s.DrainMetrics(); len(ms) != 1 || len(ms[0].Points) != 1 {
		t.Errorf("metrics %+v, want the one complete line", ms)
	}
	// The server still takes new clients.
	sendRaw(t, f.s.Path(), `{"kind":"metric","name":"m","value":1}`+"\n")
	if got := steps(f.s.DrainMetrics(), "m"); !reflect.DeepEqual(got, []int64{1}) {
		t.Errorf("steps after reconnect %v", got)
	}
}

func TestLongLine(t *testing.T) {
	f := newServer(t, func(o *Options) { o.MaxLine = 200 << 10 })
	long := `{"kind":"info","key":"big","value":"` + strings.Repeat("x", 300<<10) + `"}`
	fits := `{"kind":"info","key":"fits","value":"` + strings.Repeat("y", 150<<10) + `"}`
	sendRaw(t, f.s.Path(), long+"\n"+fits+"\n"+`{"kind":"metric","name":"m","value":1}`+"\n")
	if w := f.warn.String(); !strings.Contains(w, "line 1: longer than 204800 bytes; skipped") || strings.Count(w, "\n") != 1 {
		t.Errorf("warnings %q", w)
	}
	info := f.s.Info()
	if _, ok := info["big"]; ok {
		t.Error("the long line was taken")
	}
	if s, _ := info["fits"].(string); len(s) != 150<<10 {
		t.Errorf("the line under the cap (longer than the read buffer) was lost: %d bytes", len(s))
	}
	if ms := f.s.DrainMetrics(); len(ms) != 1 {
		t.Errorf("metrics after the long line %+v", ms)
	}
}

func TestWarningsAreCapped(t *testing.T) {
	f := newServer(t, nil)
	sendRaw(t, f.s.Path(), strings.Repeat("garbage\n", 1000))
	f.s.Close()
	w := f.warn.String()
	if n := strings.Count(w, "\n"); n != maxWarnings+2 {
		t.Errorf("%d warning lines, want %d", n, maxWarnings+2)
	}
	if !strings.Contains(w, "900 more warning(s) suppressed") {
		t.Errorf("no summary of suppressed warnings:\n%s", w[len(w)-300:])
	}
}

func TestConcurrentGoClients(t *testing.T) {
	f := newServer(t, nil)
	const clients, n = 8, 5000
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := DialPath(f.s.Path())
			if err != nil {
				t.Error(err)
				return
			}
			for j := range n {
				c.WriteLine(fmt.Appendf(nil, `{"kind":"metric","name":"c%d","value":%d}`, i, j))
			}
			if err := c.Close(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	checkSeries(t, f.s.DrainMetrics(), clients, n)
	if w := f.warn.String(); w != "" {
		t.Errorf("warnings %q", w)
	}
}

// checkSeries asserts series c0..c{clients-1} each hold values 0..n-1 at
// steps 0..n-1, in order.
func checkSeries(t *testing.T, ms []observer.MetricSeries, clients, n int) {
	t.Helper()
	got := map[string][]observer.MetricPoint{}
	for _, s := range ms {
		got[s.Name] = append(got[s.Name], s.Points...)
	}
	if len(got) != clients {
		t.Fatalf("%d series, want %d", len(got), clients)
	}
	for i := range clients {
		pts := got[fmt.Sprintf("c%d", i)]
		if len(pts) != n {
			t.Errorf("c%d: %d points, want %d", i, len(pts), n)
			continue
		}
		for j, p := range pts {
			if p.Step != int64(j) || p.Value != float64(j) {
				t.Errorf("c%d point %d = step %d value %v", i, j, p.Step, p.Value)
				break
			}
		}
	}
}

func TestBoundedMemory(t *testing.T) {
	const maxPending, total = 10_000, 1_000_000
	f := newServer(t, func(o *Options) { o.MaxPending = maxPending })
	var got, flushes, biggest int
	drain := func() {
		for _, s := range f.s.DrainMetrics() {
			got += len(s.Points)
			biggest = max(biggest, len(s.Points))
		}
	}
	stop, drained := make(chan struct{}), make(chan struct{})
	go func() { // the runner's part: beat early when asked
		defer close(drained)
		for {
			select {
			case <-f.s.Flush():
				flushes++
				drain()
			case <-stop:
				return
			}
		}
	}()
	c, err := DialPath(f.s.Path())
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(`{"kind":"metric","name":"m","value":0.5}`)
	for range total {
		c.WriteLine(line)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-drained
	drain() // the final beat takes the rest
	if got != total {
		t.Errorf("%d points drained, want %d", got, total)
	}
	if biggest > 2*maxPending {
		t.Errorf("a drain returned %d points; pending must stay <= %d", biggest, 2*maxPending)
	}
	if flushes < total/(2*maxPending) {
		t.Errorf("%d flushes for %d points at MaxPending %d", flushes, total, maxPending)
	}
}

func TestCloseTakesQueuedConnections(t *testing.T) {
	f := newServer(t, nil)
	// Clients connect and write and go away; Close right after must not
	// lose any of them, even those the accept loop has not taken yet.
	const clients = 50
	for i := range clients {
		c, err := net.Dial("unix", f.s.Path())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, `{"kind":"metric","name":"c%d","value":0}`+"\n", i)
		c.Close()
	}
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	checkSeries(t, f.s.DrainMetrics(), clients, 1)
	if _, err := DialPath(f.s.Path()); err == nil || !strings.Contains(err.Error(), "has it ended?") {
		t.Errorf("dial after Close: %v", err)
	}
}

func TestCloseDoesNotWaitForeverForAClient(t *testing.T) {
	f := newServer(t, func(o *Options) { o.CloseWait = 50 * time.Millisecond })
	// A grandchild that keeps the connection open: its complete lines
	// count, then Close gives up on it.
	c, err := DialPath(f.s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.conn.Close()
	c.WriteLine([]byte(`{"kind":"metric","name":"m","value":1}`))
	if err := c.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.s.Close(); err != nil {
		t.Fatal(err)
	}
	if w := f.warn.String(); !strings.Contains(w, "1 client(s) still connected") {
		t.Errorf("warnings %q", w)
	}
	if ms := f.s.DrainMetrics(); len(ms) != 1 {
		t.Errorf("metrics %+v", ms)
	}
}

func TestDial(t *testing.T) {
	t.Setenv(EnvSocket, "")
	if _, err := Dial(); err != ErrNotInRun || !strings.Contains(err.Error(), "SACRED_SOCKET is not set") {
		t.Errorf("Dial outside a run: %v", err)
	}
	t.Setenv(EnvSocket, filepath.Join(t.TempDir(), "gone.sock"))
	if _, err := Dial(); err == nil || !strings.Contains(err.Error(), "cannot reach the sacred run") {
		t.Errorf("Dial to a dead run: %v", err)
	}
	f := newServer(t, nil)
	t.Setenv(EnvSocket, f.s.Path())
	c, err := Dial()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send(map[string]any{"kind": "metric", "name": "m", "value": math.NaN()}); err == nil {
		t.Error("Send accepted NaN")
	}
	c.Close()
}

func TestReadResultFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	v, err := ReadResultFile(write("ok.json", `{"acc": 0.9, "n": 3}`+"\n"))
	if err != nil || !reflect.DeepEqual(v, map[string]any{"acc": 0.9, "n": int64(3)}) {
		t.Errorf("%#v %v", v, err)
	}
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "none.json"), "does not exist"},
		{write("empty.json", " \n"), "is empty"},
		{write("bad.json", `{"acc": `), "not valid JSON"},
		{write("two.json", `1 2`), "more than one value"},
		{write("nan.json", `NaN`), "not valid JSON"},
	} {
		if _, err := ReadResultFile(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", filepath.Base(tc.path), err, tc.want)
		}
	}
}

// A TMPDIR too deep for a Unix socket path must not stop the run: the
// socket directory goes to /tmp instead.
func TestListenWithDeepTempDir(t *testing.T) {
	deep := t.TempDir()
	for len(deep) < 2*maxSocketPath {
		deep = filepath.Join(deep, "a-rather-long-directory-name")
	}
	if err := os.MkdirAll(deep, 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := Listen(Options{Dir: deep, Cwd: deep})
	if err != nil {
		t.Fatalf("Listen under a %d-byte directory: %v", len(deep), err)
	}
	defer s.Cleanup()
	defer s.Close()
	if len(s.Path()) > maxSocketPath {
		t.Fatalf("socket path %q is %d bytes", s.Path(), len(s.Path()))
	}
	c, err := net.Dial("unix", s.Path())
	if err != nil {
		t.Fatalf("dial %s: %v", s.Path(), err)
	}
	c.Close()
}
