package ui

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sacred-go/sacred/internal/readback"
	"github.com/sacred-go/sacred/internal/readback/readbacktest"
	"github.com/sacred-go/sacred/pkg/observer"
)

// memStore is a reader over runs in memory that a test may change while
// the server runs, and that records which artifacts were asked for.
type memStore struct {
	mu        sync.Mutex
	runs      []*observer.Run
	files     map[string]string // "id\x00name" → artifact content
	asked     []string          // artifact names asked for
	reads     int               // Run calls
	listCalls int
}

func (m *memStore) Runs(context.Context) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.listCalls++
	ids := make([]string, len(m.runs))
	for i, r := range m.runs {
		ids[i] = r.ID
	}
	return ids, nil
}

func (m *memStore) Run(_ context.Context, id string) (*observer.Run, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	for _, r := range m.runs {
		if r.ID == id {
			c := *r
			return &c, nil
		}
	}
	return nil, fmt.Errorf("run %s: %w", id, observer.ErrNotFound)
}

func (m *memStore) Artifact(_ context.Context, id, name string) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.asked = append(m.asked, name)
	s, ok := m.files[id+"\x00"+name]
	if !ok {
		return nil, fmt.Errorf("artifact %s: %w", name, observer.ErrNotFound)
	}
	return io.NopCloser(strings.NewReader(s)), nil
}

func (m *memStore) Close() error { return nil }

func (m *memStore) set(id string, change func(r *observer.Run)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, r := range m.runs {
		if r.ID == id {
			c := *r
			change(&c)
			m.runs[i] = &c
			return
		}
	}
	r := &observer.Run{ID: id}
	change(r)
	m.runs = append(m.runs, r)
}

var t0 = time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)

func fixtureRun(id string, lr float64, status string) *observer.Run {
	r := &observer.Run{
		ID: id, Status: status, Command: "python train.py",
		Experiment: observer.Experiment{Name: "mnist"},
		Config:     map[string]any{"lr": lr, "opt": map[string]any{"name": "adam"}},
		Info:       map[string]any{},
		StartTime:  t0, Heartbeat: t0.Add(time.Minute),
		Output: []byte("hello\n"),
	}
	if status != observer.StatusRunning {
		r.StopTime = t0.Add(time.Minute)
		r.Result, r.HasResult = lr*10, true
	}
	r.Metrics = []observer.MetricSeries{{Name: "loss", Points: []observer.MetricPoint{
		{Step: 0, Value: 3, Time: t0}, {Step: 1, Value: 1, Time: t0.Add(time.Second)}, {Step: 2, Value: 2, Time: t0.Add(2 * time.Second)},
	}}}
	return r
}

// newTestServer serves mem with scans only when the test asks for them.
func newTestServer(t *testing.T, mem *memStore, opts Options) (*Server, *httptest.Server) {
	t.Helper()
	opts.Stores = []Store{{Label: "mem", Reader: mem}}
	opts.Refresh = time.Hour
	if opts.Now == nil {
		opts.Now = func() time.Time { return t0.Add(2 * time.Minute) }
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(func() { ts.Close(); s.Close() })
	return s, ts
}

func getJSON(t *testing.T, u string, into any) int {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if into != nil {
		if err := json.Unmarshal(b, into); err != nil {
			t.Fatalf("%s: %v: %s", u, err, b)
		}
	}
	return res.StatusCode
}

type runsAnswer struct {
	Total    int      `json:"total"`
	Rows     []row    `json:"rows"`
	Unknown  []string `json:"unknown"`
	Versions []uint64 `json:"versions"`
	Error    string   `json:"error"`
}

func ids(rows []row) string {
	var out []string
	for _, r := range rows {
		out = append(out, r.ID)
	}
	return strings.Join(out, ",")
}

func TestTableQuery(t *testing.T) {
	mem := &memStore{}
	for i := 1; i <= 7; i++ {
		mem.runs = append(mem.runs, fixtureRun(fmt.Sprint(i), float64(i)/100, observer.StatusCompleted))
	}
	mem.runs[3].Experiment.Name = "cifar"
	mem.runs[6].Status, mem.runs[6].StopTime = observer.StatusRunning, time.Time{}
	_, ts := newTestServer(t, mem, Options{})

	for _, c := range []struct {
		query, want string
		total       int
	}{
		{"", "7,6,5,4,3,2,1", 7}, // newest first without a sort
		{"limit=3", "7,6,5", 7},
		{"limit=3&offset=5", "2,1", 7},
		{"sort=-config.lr&limit=2", "7,6", 7},
		{"sort=config.lr&limit=2", "1,2", 7},
		{"where=" + url.QueryEscape("config.lr >= 0.03 && config.lr < 0.06"), "5,4,3", 3},
		{"name=cifar", "4", 1},
		{"q=CIF", "4", 1},
		{"q=" + url.QueryEscape("[unclosed"), "", 0}, // taken literally while typed
		{"status=RUNNING", "7", 1},                   // its heartbeat is a minute old: alive
	} {
		var res runsAnswer
		code := getJSON(t, ts.URL+"/api/runs?"+c.query, &res)
		if code != 200 || ids(res.Rows) != c.want || res.Total != c.total {
			t.Errorf("%s: %d total %d rows %q, want %d %q (%s)", c.query, code, res.Total, ids(res.Rows), c.total, c.want, res.Error)
		}
	}

	var res runsAnswer
	if code := getJSON(t, ts.URL+"/api/runs?where="+url.QueryEscape("config.lr = 1"), &res); code != 400 || !strings.Contains(res.Error, "--where: line 1, column 11") {
		t.Errorf("bad where: %d %q", code, res.Error)
	}
	if code := getJSON(t, ts.URL+"/api/runs?cols=config.lr,metrics.loss.min,metrics.loss.last,confg.x&limit=1", &res); code != 200 {
		t.Fatalf("cols: %d %s", code, res.Error)
	}
	if got := fmt.Sprint(res.Rows[0].Cols); got != "[0.07 1 2 <nil>]" || !slices.Equal(res.Unknown, []string{"confg.x"}) {
		t.Errorf("cols = %s, unknown %v", got, res.Unknown)
	}
}

func TestTableDiedAndExport(t *testing.T) {
	mem := &memStore{runs: []*observer.Run{fixtureRun("1", 0.1, observer.StatusRunning), fixtureRun("2", -0.2, observer.StatusCompleted)}}
	mem.runs[1].Experiment.Name = "=cmd|' /C calc'!A0"
	_, ts := newTestServer(t, mem, Options{Now: func() time.Time { return t0.Add(time.Hour) }})
	var res runsAnswer
	getJSON(t, ts.URL+"/api/runs?status=DIED%3F", &res)
	if ids(res.Rows) != "1" || res.Rows[0].Status != "DIED?" {
		t.Errorf("DIED?: %+v", res)
	}
	r, err := http.Get(ts.URL + "/api/runs.csv?cols=config.lr")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	want := "id,name,status,start_time,stop_time,duration,result,config.lr\n" +
		"2,'=cmd|' /C calc'!A0,COMPLETED,2026-11-01T10:00:00Z,2026-11-01T10:01:00Z,60,-2,-0.2\n" +
		"1,mnist,DIED?,2026-11-01T10:00:00Z,,60,,0.1\n"
	if string(b) != want {
		t.Errorf("CSV:\n%s\nwant:\n%s", b, want)
	}
}

func TestCatalogFollowsChanges(t *testing.T) {
	mem := &memStore{runs: []*observer.Run{fixtureRun("1", 0.1, observer.StatusCompleted), fixtureRun("2", 0.2, observer.StatusRunning)}}
	s, ts := newTestServer(t, mem, Options{})
	c := s.stores[0]
	if err := c.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, v0 := c.runs()
	mem.mu.Lock()
	reads := mem.reads
	mem.mu.Unlock()

	// A scan with nothing new reads only the running run.
	c.scan(context.Background(), false)
	mem.mu.Lock()
	if mem.reads-reads != 1 {
		t.Errorf("a quiet scan read %d runs; want only the running one", mem.reads-reads)
	}
	mem.mu.Unlock()
	if _, v := c.runs(); v != v0 {
		t.Errorf("a quiet scan changed the version %d → %d", v0, v)
	}

	mem.set("2", func(r *observer.Run) { r.Status, r.StopTime = observer.StatusCompleted, t0.Add(time.Hour) })
	mem.set("3", func(r *observer.Run) { *r = *fixtureRun("3", 0.3, observer.StatusQueued) })
	c.scan(context.Background(), false)
	got, v1, all := c.since(v0)
	slices.Sort(got)
	if all || v1 != v0+1 || !slices.Equal(got, []string{"2", "3"}) {
		t.Errorf("since(%d) = %v, %d, %v; want [2 3], %d", v0, got, v1, all, v0+1)
	}
	var res runsAnswer
	getJSON(t, ts.URL+"/api/runs", &res)
	if ids(res.Rows) != "3,2,1" || res.Rows[1].Status != observer.StatusCompleted {
		t.Errorf("after the scan: %+v", res.Rows)
	}

	mem.mu.Lock()
	mem.runs = mem.runs[1:] // run 1 deleted
	mem.mu.Unlock()
	c.scan(context.Background(), false)
	got, _, _ = c.since(v1)
	if !slices.Equal(got, []string{"1"}) {
		t.Errorf("removed: since = %v", got)
	}
	if _, _, all := c.since(v0 + 100); !all {
		t.Error("a version from another server's life must reload")
	}
}

func TestRollupPoints(t *testing.T) {
	pts := func(vs ...float64) []observer.MetricPoint {
		out := make([]observer.MetricPoint, len(vs))
		for i, v := range vs {
			out[i] = observer.MetricPoint{Step: int64(i), Value: v}
		}
		return out
	}
	for _, c := range []struct {
		in   []float64
		want []int64 // steps kept
	}{
		{[]float64{5, 1, 9, 3, 4}, []int64{1, 2, 4}},
		{[]float64{1, 2, 3, 4}, []int64{0, 3}},
		{[]float64{4, 3, 2, 1}, []int64{0, 3}},
		{[]float64{2, math.NaN(), 1, 3, math.NaN()}, []int64{2, 3, 4}},
		{[]float64{1, 2}, []int64{0, 1}},
	} {
		got := rollupPoints(pts(c.in...))
		var steps []int64
		for _, p := range got {
			steps = append(steps, p.Step)
		}
		if !slices.Equal(steps, c.want) {
			t.Errorf("%v: kept steps %v, want %v", c.in, steps, c.want)
		}
	}
}

func TestDecimateKeepsEverySpike(t *testing.T) {
	const n = 1_000_000
	xs, ys := make([]float64, n), make([]float64, n)
	for i := range xs {
		xs[i] = float64(i)
		ys[i] = math.Sin(float64(i) / 1000)
	}
	// Single-point spikes, which random or stride sampling loses.
	spikes := map[int]float64{12_345: 50, 500_001: -70, 999_998: 90}
	for i, v := range spikes {
		ys[i] = v
	}
	for _, r := range [][2]float64{{0, n - 1}, {400_000, 600_000}, {500_000, 500_010}} {
		ox, oy, inRange := decimate(xs, ys, r[0], r[1], 1500)
		if len(ox) > 2*1500+2 {
			t.Errorf("%v: %d points for 1500 columns", r, len(ox))
		}
		if !slices.IsSorted(ox) {
			t.Errorf("%v: xs out of order", r)
		}
		if want := int(r[1]-r[0]) + 1; inRange != want {
			t.Errorf("%v: %d points in range, want %d", r, inRange, want)
		}
		for i, v := range spikes {
			if float64(i) < r[0] || float64(i) > r[1] {
				continue
			}
			j := slices.Index(ox, float64(i))
			if j < 0 || oy[j] != v {
				t.Errorf("%v: the spike at %d (%g) is gone", r, i, v)
			}
		}
		if r[1]-r[0] < 100 && len(ox) != int(r[1]-r[0])+3 {
			t.Errorf("%v: a short range gives %d points; want all %d and one either side", r, len(ox), int(r[1]-r[0])+3)
		}
	}
}

func TestDecimateNaN(t *testing.T) {
	xs := make([]float64, 100)
	ys := make([]float64, 100)
	for i := range xs {
		xs[i] = float64(i)
		ys[i] = float64(i % 7)
		if i >= 50 {
			ys[i] = math.NaN() // the second half is all NaN
		}
	}
	ys[10] = math.NaN() // a NaN among values
	ox, oy, _ := decimate(xs, ys, 0, 99, 10)
	gaps := 0
	for i, y := range oy {
		if math.IsNaN(y) {
			gaps++
			if ox[i] < 50 {
				t.Errorf("a NaN among values is drawn at %g", ox[i])
			}
		}
	}
	if gaps != 5 {
		t.Errorf("%d gap points for 5 all-NaN columns", gaps)
	}
	b := appendNumbers(nil, []float64{1, 0.5, math.NaN(), math.Inf(1), -3}, 0, 10)
	if string(b) != "[1,0.5,null,null,-3]" {
		t.Errorf("numbers: %s", b)
	}
}

func TestMetricAnswer(t *testing.T) {
	r := fixtureRun("1", 0.1, observer.StatusCompleted)
	mem := &memStore{runs: []*observer.Run{r}}
	_, ts := newTestServer(t, mem, Options{})
	var m struct {
		X0    float64   `json:"x0"`
		Xs    []float64 `json:"xs"`
		Ys    []float64 `json:"ys"`
		Count int       `json:"count"`
		Error string    `json:"error"`
	}
	for _, c := range []struct{ q, xs string }{
		{"x=step", "[0 1 2]"},
		{"x=rel", "[0 1 2]"},
		{"x=rel&from=0.5&to=1.5", "[0 1 2]"}, // the point on either side
		{"x=time&from=" + fmt.Sprint(t0.Unix()+1) + "&to=" + fmt.Sprint(t0.Unix()+1), "[0 1 2]"},
		{"x=step&from=5", "[2]"},
	} {
		if code := getJSON(t, ts.URL+"/api/metric?id=1&name=loss&"+c.q, &m); code != 200 {
			t.Fatalf("%s: %d %s", c.q, code, m.Error)
		}
		if fmt.Sprint(m.Xs) != c.xs || m.Count != 3 {
			t.Errorf("%s: xs %v count %d, want %s", c.q, m.Xs, m.Count, c.xs)
		}
	}
	if getJSON(t, ts.URL+"/api/metric?id=1&name=loss&x=time", &m); m.X0 != float64(t0.Unix()) {
		t.Errorf("time axis x0 = %v", m.X0)
	}
	if code := getJSON(t, ts.URL+"/api/metric?id=1&name=nope", &m); code != 404 || m.Error != `run 1 has no metric "nope"` {
		t.Errorf("missing metric: %d %q", code, m.Error)
	}
	if code := getJSON(t, ts.URL+"/api/metric?id=1&name=loss&x=epoch", &m); code != 400 {
		t.Errorf("bad axis: %d", code)
	}
}

func TestOutputPiecesKeepCharactersWhole(t *testing.T) {
	text := strings.Repeat("héllo wörld ✓ 𝄞\n", 100_000) // 2.3 MB of 1- to 4-byte characters
	r := fixtureRun("1", 0.1, observer.StatusRunning)
	r.Output = []byte(text)
	mem := &memStore{runs: []*observer.Run{r}}
	_, ts := newTestServer(t, mem, Options{})
	var got strings.Builder
	from := 0
	for pieces := 0; ; pieces++ {
		var o struct {
			From, To, Size int
			Text           string
		}
		getJSON(t, fmt.Sprintf("%s/api/output?id=1&from=%d", ts.URL, from), &o)
		if o.From != from || !utf8.ValidString(o.Text) || strings.ContainsRune(o.Text, utf8.RuneError) {
			t.Fatalf("piece %d from %d: from %d, valid %v", pieces, from, o.From, utf8.ValidString(o.Text))
		}
		got.WriteString(o.Text)
		if o.To == o.Size {
			break
		}
		from = o.To
	}
	if got.String() != text {
		t.Error("the pieces do not join into the output")
	}
	// The tail starts at a line.
	var o struct {
		From int
		Text string
	}
	getJSON(t, ts.URL+"/api/output?id=1", &o)
	if o.From == 0 || text[o.From-1] != '\n' || len(text)-o.From > tailChunk {
		t.Errorf("tail from %d", o.From)
	}
}

func TestArtifactOnlyWhatTheRunLists(t *testing.T) {
	r := fixtureRun("1", 0.1, observer.StatusCompleted)
	r.Artifacts = []string{"model.txt", "report.html", "plot.svg"}
	mem := &memStore{runs: []*observer.Run{r}, files: map[string]string{
		"1\x00model.txt": "weights", "1\x00report.html": "<script>x</script>", "1\x00plot.svg": "<svg/>",
		"1\x00../2/model.txt": "another run's file",
	}}
	_, ts := newTestServer(t, mem, Options{})
	for _, name := range []string{"../2/model.txt", "/etc/passwd", "model.txt/", "MODEL.TXT", ""} {
		res, err := http.Get(ts.URL + "/api/artifact?id=1&name=" + url.QueryEscape(name))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 404 {
			t.Errorf("artifact %q: %d, want 404", name, res.StatusCode)
		}
	}
	if len(mem.asked) != 0 {
		t.Errorf("the store was asked for %q", mem.asked)
	}
	for _, c := range []struct{ q, ctype string }{
		{"name=model.txt", "text/plain; charset=utf-8"},
		{"name=report.html", "text/plain; charset=utf-8"},
		{"name=report.html&view=html", "text/html; charset=utf-8"},
		{"name=plot.svg", "image/svg+xml"},
		{"name=model.txt&download=1", "application/octet-stream"},
	} {
		res, err := http.Get(ts.URL + "/api/artifact?id=1&" + c.q)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		csp := res.Header.Get("Content-Security-Policy")
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != c.ctype || !strings.HasPrefix(csp, "sandbox;") || res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d %q csp %q", c.q, res.StatusCode, res.Header.Get("Content-Type"), csp)
		}
	}
}

func TestGuard(t *testing.T) {
	mem := &memStore{runs: []*observer.Run{fixtureRun("1", 0.1, observer.StatusCompleted)}}
	token := "s3cret-token-0123456789"
	_, ts := newTestServer(t, mem, Options{Token: token, LoopbackOnly: true})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string, hdr map[string]string, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		for k, v := range hdr {
			if k == "Host" {
				req.Host = v
				continue
			}
			req.Header.Set(k, v)
		}
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	if res := do("GET", "/api/runs", nil, ""); res.StatusCode != 401 {
		t.Errorf("no token: %d", res.StatusCode)
	}
	if res := do("GET", "/", nil, ""); res.StatusCode != 401 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Errorf("page without a token: %d %s; want the login form", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if res := do("GET", "/static/style.css", nil, ""); res.StatusCode != 200 {
		t.Errorf("the login form's style: %d", res.StatusCode)
	}
	if res := do("GET", "/static/app.js", nil, ""); res.StatusCode != 401 {
		t.Errorf("app.js without a token: %d", res.StatusCode)
	}
	if res := do("GET", "/api/runs", map[string]string{"Authorization": "Bearer " + token}, ""); res.StatusCode != 200 {
		t.Errorf("bearer: %d", res.StatusCode)
	}
	if res := do("GET", "/api/runs", map[string]string{"Authorization": "Bearer " + token + "x"}, ""); res.StatusCode != 401 {
		t.Errorf("wrong bearer: %d", res.StatusCode)
	}
	res := do("GET", "/run/1?store=0&token="+token, nil, "")
	loc := res.Header.Get("Location")
	var session string
	for _, c := range res.Cookies() {
		if c.Name == cookieName {
			session = c.Value
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
				t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict", c)
			}
		}
	}
	if res.StatusCode != 303 || loc != "/run/1?store=0" || session == "" || strings.Contains(session, token) {
		t.Errorf("?token=: %d to %q, session %q", res.StatusCode, loc, session)
	}
	if res := do("GET", "/api/runs", map[string]string{"Cookie": cookieName + "=" + session}, ""); res.StatusCode != 200 {
		t.Errorf("session cookie: %d", res.StatusCode)
	}
	form := "token=" + url.QueryEscape(token) + "&next=" + url.QueryEscape("//evil.example/")
	res = do("POST", "/login", map[string]string{"Origin": ts.URL, "Content-Type": "application/x-www-form-urlencoded"}, form)
	if res.StatusCode != 303 || res.Header.Get("Location") != "/" || len(res.Cookies()) != 1 {
		t.Errorf("login: %d to %q", res.StatusCode, res.Header.Get("Location"))
	}
	res = do("POST", "/login", map[string]string{"Origin": ts.URL, "Content-Type": "application/x-www-form-urlencoded"}, "token=wrong")
	if res.StatusCode != 401 || len(res.Cookies()) != 0 {
		t.Errorf("login with a wrong token: %d", res.StatusCode)
	}
	// A page of another site may not post here, even with the cookie.
	res = do("POST", "/api/annotate?id=1", map[string]string{"Origin": "http://evil.example", "Cookie": cookieName + "=" + session}, "{}")
	if res.StatusCode != 403 {
		t.Errorf("cross-site post: %d", res.StatusCode)
	}
	// DNS rebinding: another name for 127.0.0.1.
	if res := do("GET", "/api/runs", map[string]string{"Host": "evil.example:80", "Authorization": "Bearer " + token}, ""); res.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host: %d", res.StatusCode)
	}
	for _, h := range []string{"localhost:7878", "127.0.0.1", "[::1]:7878"} {
		if res := do("GET", "/api/stores", map[string]string{"Host": h, "Authorization": "Bearer " + token}, ""); res.StatusCode != 200 {
			t.Errorf("Host %s: %d", h, res.StatusCode)
		}
	}
}

func TestAssets(t *testing.T) {
	a, err := loadAssets("/base")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for name, f := range a.files {
		total += len(f.gz)
		if strings.HasSuffix(name, ".js") && strings.Contains(string(f.body), ".innerHTML") && !strings.Contains(name, "vendor/") {
			t.Errorf("%s assigns innerHTML", name)
		}
		if strings.HasSuffix(name, ".html") {
			body := string(f.body)
			if strings.Contains(body, "<script>") || strings.Contains(body, " style=") || strings.Contains(body, "<style") || regexp.MustCompile(` on[a-z]+=`).MatchString(body) {
				t.Errorf("%s has inline script or style", name)
			}
			if !strings.Contains(body, `<base href="/base/">`) {
				t.Errorf("%s: no base", name)
			}
		}
	}
	if total > 300<<10 {
		t.Errorf("the UI is %d KB compressed; the budget is 300 KB", total>>10)
	}
	t.Logf("UI: %d files, %.1f KB compressed", len(a.files), float64(total)/1024)

	mem := &memStore{}
	_, ts := newTestServer(t, mem, Options{})
	req, _ := http.NewRequest("GET", ts.URL+"/static/app.js", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	etag := res.Header.Get("ETag")
	if res.Header.Get("Content-Encoding") != "gzip" || etag == "" {
		t.Errorf("app.js: encoding %q, etag %q", res.Header.Get("Content-Encoding"), etag)
	}
	req.Header.Set("If-None-Match", etag)
	res, err = http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %d", res.StatusCode)
	}
}

func TestBasePath(t *testing.T) {
	mem := &memStore{runs: []*observer.Run{fixtureRun("1", 0.1, observer.StatusCompleted)}}
	s, err := New(Options{Stores: []Store{{Label: "mem", Reader: mem}}, BasePath: "/sacred/", Refresh: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ts := httptest.NewServer(s)
	defer ts.Close()
	var res runsAnswer
	if code := getJSON(t, ts.URL+"/sacred/api/runs", &res); code != 200 || res.Total != 1 {
		t.Errorf("under the base path: %d %+v", code, res)
	}
	if code := getJSON(t, ts.URL+"/api/runs", nil); code != 404 {
		t.Errorf("outside the base path: %d", code)
	}
	if _, err := New(Options{Stores: []Store{{Label: "mem", Reader: mem}}, BasePath: `x"><script>`}); err == nil {
		t.Error("a base path with markup was accepted")
	}
}

func TestCompare(t *testing.T) {
	a, b := fixtureRun("1", 0.1, observer.StatusCompleted), fixtureRun("2", 0.2, observer.StatusCompleted)
	b.Config["extra"] = true
	mem := &memStore{runs: []*observer.Run{a, b}}
	_, ts := newTestServer(t, mem, Options{})
	var res struct {
		Config []struct {
			Path    string `json:"path"`
			Values  []any  `json:"values"`
			Present []bool `json:"present"`
			Differs bool   `json:"differs"`
		} `json:"config"`
		Metrics []struct {
			Name string `json:"name"`
			Min  []any  `json:"min"`
		} `json:"metrics"`
		Error string `json:"error"`
	}
	if code := getJSON(t, ts.URL+"/api/compare?ids=1,2", &res); code != 200 {
		t.Fatalf("%d %s", code, res.Error)
	}
	got := map[string]string{}
	for _, c := range res.Config {
		got[c.Path] = fmt.Sprint(c.Values, c.Present, c.Differs)
	}
	want := map[string]string{
		"config.extra":    "[<nil> true] [false true] true",
		"config.lr":       "[0.1 0.2] [true true] true",
		"config.opt.name": "[adam adam] [true true] false",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("config rows:\n%v\nwant\n%v", got, want)
	}
	if len(res.Metrics) != 1 || fmt.Sprint(res.Metrics[0].Min) != "[1 1]" {
		t.Errorf("metrics: %+v", res.Metrics)
	}
	if code := getJSON(t, ts.URL+"/api/compare?ids=1,9", &res); code != 404 {
		t.Errorf("a missing run: %d", code)
	}
}

func TestZipAndFiles(t *testing.T) {
	r := fixtureRun("1", 0.1, observer.StatusCompleted)
	r.Artifacts = []string{"../../evil.txt", "/abs/model.txt", "plots/a.png"}
	r.Experiment.Sources = []observer.Source{{Name: "train.py"}, {Name: "big.bin"}}
	r.Resources = []observer.ResourceEvent{{Path: "/data/in.csv"}}
	mem := &readbacktest.Memory{RunList: []*observer.Run{r}, Files: map[string]string{
		readbacktest.Key("artifact", "1", "../../evil.txt"): "e",
		readbacktest.Key("artifact", "1", "/abs/model.txt"): "m",
		readbacktest.Key("source", "1", "train.py"):         "print(1)\n",
		readbacktest.Key("resource", "1", "/data/in.csv"):   "a,b\n1,2\n",
	}}
	s, err := New(Options{Stores: []Store{{Label: "mem", Reader: mem}}, Refresh: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ts := httptest.NewServer(s)
	defer ts.Close()
	res, err := http.Get(ts.URL + "/api/files.zip?id=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	want := []string{"run-1/run.json", "run-1/config.json", "run-1/info.json", "run-1/metrics.json", "run-1/cout.txt",
		"run-1/artifacts/evil.txt", "run-1/artifacts/abs/model.txt", "run-1/artifacts/plots/a.png.missing.txt",
		"run-1/sources/train.py", "run-1/sources/big.bin.missing.txt", "run-1/resources/data/in.csv"}
	if !slices.Equal(names, want) {
		t.Errorf("zip entries:\n%q\nwant\n%q", names, want)
	}
	for _, f := range zr.File {
		if !f.Modified.Equal(r.StartTime.Truncate(time.Second)) {
			t.Errorf("%s dated %v, want the run's start %v", f.Name, f.Modified, r.StartTime)
			break
		}
	}
	for name, body := range map[string]string{"run-1/sources/train.py": "print(1)\n", "run-1/resources/data/in.csv": "a,b\n1,2\n"} {
		i := slices.Index(names, name)
		if i < 0 {
			continue
		}
		rc, err := zr.File[i].Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != body {
			t.Errorf("%s holds %q, want %q", name, b, body)
		}
	}
	for _, c := range []struct {
		q    string
		code int
		body string
	}{
		{"/api/source?id=1&name=train.py", 200, "print(1)\n"},
		{"/api/source?id=1&name=../train.py", 404, ""},
		{"/api/resource?id=1&path=/etc/passwd", 404, ""},
	} {
		res, err := http.Get(ts.URL + c.q)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != c.code || (c.body != "" && string(b) != c.body) {
			t.Errorf("%s: %d %q", c.q, res.StatusCode, b)
		}
	}
}

// slowScan is a store whose full scan (readback.Finder's Find) waits
// until released, while listing and reading runs one by one answer at
// once: a large store whose first scan takes seconds.
type slowScan struct {
	*memStore
	release chan struct{}
}

func (s *slowScan) Find(ctx context.Context, _ *readback.Request) ([]*observer.Run, error) {
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*observer.Run(nil), s.runs...), nil
}

// TestFirstPageBeforeTheScan: the default first page (newest first, no
// filter) is answered from the newest runs while the first full scan is
// still running, with the total listed and "partial"; a filtered table
// waits for the scan; once the scan ends the same page is whole.
func TestFirstPageBeforeTheScan(t *testing.T) {
	mem := &memStore{}
	const n = 250
	for i := 1; i <= n; i++ {
		mem.runs = append(mem.runs, fixtureRun(fmt.Sprint(i), float64(i)/1000, observer.StatusCompleted))
	}
	store := &slowScan{memStore: mem, release: make(chan struct{})}
	s, err := New(Options{Stores: []Store{{Label: "mem", Reader: store}}, Refresh: time.Hour,
		Now: func() time.Time { return t0.Add(2 * time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer func() { ts.Close(); s.Close() }()
	released := false
	defer func() {
		if !released {
			close(store.release)
		}
	}()

	type answer struct {
		runsAnswer
		Partial bool `json:"partial"`
	}
	var a answer
	if code := getJSON(t, ts.URL+"/api/runs?limit=50", &a); code != 200 {
		t.Fatalf("first page: %d %+v", code, a)
	}
	var want []string
	for i := n; i > n-50; i-- {
		want = append(want, fmt.Sprint(i))
	}
	if ids(a.Rows) != strings.Join(want, ",") || a.Total != n || !a.Partial {
		t.Fatalf("first page before the scan: total %d, partial %v, ids %s", a.Total, a.Partial, ids(a.Rows))
	}
	// The second page is in the head too; the third is not.
	if getJSON(t, ts.URL+"/api/runs?limit=50&offset=50", &a); len(a.Rows) != 50 || a.Rows[0].ID != fmt.Sprint(n-50) || !a.Partial {
		t.Errorf("second page before the scan: %d rows from %v, partial %v", len(a.Rows), a.Rows, a.Partial)
	}
	select {
	case <-s.stores[0].loaded:
		t.Fatal("the first scan ended before it was released")
	default:
	}
	// What the heads can answer: the newest 100, not 200.
	if sel, total, partial, ok := s.selectHead(context.Background(), 100); !ok || !partial || total != n || len(sel) != 100 {
		t.Errorf("selectHead(100) before the scan: %d runs of %d, partial %v, ok %v", len(sel), total, partial, ok)
	}
	if _, _, partial, ok := s.selectHead(context.Background(), 200); ok || partial {
		t.Errorf("selectHead(200) before the scan: partial %v, ok %v; want neither", partial, ok)
	}

	// A filtered table and a page past the head wait for the scan.
	type got struct {
		a   answer
		err error
	}
	filtered, deep := make(chan got, 1), make(chan got, 1)
	for _, c := range []struct {
		q  string
		ch chan got
	}{{"/api/runs?limit=5&where=config.lr%20%3E%200.2", filtered}, {"/api/runs?limit=50&offset=150", deep}} {
		go func() {
			var a answer
			res, err := http.Get(ts.URL + c.q)
			if err == nil {
				err = json.NewDecoder(res.Body).Decode(&a)
				res.Body.Close()
			}
			c.ch <- got{a, err}
		}()
	}
	close(store.release)
	released = true
	f, d := <-filtered, <-deep
	if f.err != nil || d.err != nil {
		t.Fatal(f.err, d.err)
	}
	if f.a.Partial || f.a.Total != 50 || ids(f.a.Rows) != "250,249,248,247,246" {
		t.Errorf("filtered: total %d, partial %v, ids %s", f.a.Total, f.a.Partial, ids(f.a.Rows))
	}
	if d.a.Partial || d.a.Total != n || len(d.a.Rows) != 50 || d.a.Rows[0].ID != "100" {
		t.Errorf("page past the head: total %d, partial %v, %d rows", d.a.Total, d.a.Partial, len(d.a.Rows))
	}
	<-s.stores[0].loaded
	if getJSON(t, ts.URL+"/api/runs?limit=50", &a); ids(a.Rows) != strings.Join(want, ",") || a.Total != n || a.Partial {
		t.Errorf("first page after the scan: total %d, partial %v, ids %s", a.Total, a.Partial, ids(a.Rows))
	}
}
