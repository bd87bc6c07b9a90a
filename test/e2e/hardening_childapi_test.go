//go:build unix

package e2e

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// Regression tests for the child API items of issue 8 (hardening), through
// the real binary.

// hangGuard is how long sacredNoHang lets the wrapper run. The bugs tested
// here are hangs: the bound turns one into a failure with a message instead
// of a stuck test binary. It is no performance assertion.
const hangGuard = 3 * time.Minute

// sacredNoHang runs the binary as sacred() does, but kills it and its
// children and fails the test when it has not exited within hangGuard.
func sacredNoHang(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sacred %v: %v", args, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var err error
	select {
	case err = <-exited:
	case <-time.After(hangGuard):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		t.Fatalf("sacred %v did not exit within %v (hang)\nstderr: %s", args, hangGuard, errb.String())
	}
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running sacred %v: %v", args, err)
		}
		code = ee.ExitCode()
		if code < 0 {
			t.Fatalf("sacred %v died of a signal: %v\nstderr: %s", args, err, errb.String())
		}
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// Item 1: a FIFO named as resource or artifact over the socket, or as
// --result-file, used to block the wrapper in open(2) for ever.
func TestHardening01FIFOResource(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "f")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	isFIFO := fifo + " is a named pipe (FIFO), not a regular file"
	for _, tc := range []struct {
		name string
		args []string
	}{
		// The exact reproduction of the issue.
		{"resource", []string{"--", "sh", "-c", `printf "{\"kind\":\"resource\",\"path\":\"f\"}\n" | sacred log stream`}},
		{"artifact", []string{"--", "sh", "-c", `printf "{\"kind\":\"artifact\",\"path\":\"f\"}\n" | sacred log stream`}},
		{"result-file", []string{"--result-file", "f", "--", "true"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runs := filepath.Join(dir, "runs-"+tc.name)
			r := sacredNoHang(t, dir, []string{pathWithSacred()}, append([]string{"run", "-F", runs}, tc.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d\nstderr: %s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, isFIFO) {
				t.Errorf("stderr does not say %q:\n%s", isFIFO, r.stderr)
			}
			run := readJSON(t, filepath.Join(runs, "1", "run.json"))
			wantStatus(t, run, "COMPLETED")
			if res := run["resources"]; res != nil && len(res.([]any)) != 0 {
				t.Errorf("resources %v", res)
			}
			if arts := run["artifacts"]; arts != nil && len(arts.([]any)) != 0 {
				t.Errorf("artifacts %v", arts)
			}
		})
	}
}

// Item 2: 30,000 syncs whose replies are read only at the end of input
// used to deadlock the wrapper with `sacred log stream`, and the metric
// logged after them was never recorded.
func TestHardening02ManySyncsUnread(t *testing.T) {
	dir := t.TempDir()
	r := sacredNoHang(t, dir, []string{pathWithSacred()}, "run", "-F", "runs", "--", "sh", "-c",
		`yes '{"kind":"sync"}' | head -n 30000 | sacred log stream && sacred log metric after 1`)
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "child API") {
		t.Errorf("child API warnings: %s", r.stderr)
	}
	run := filepath.Join(dir, "runs", "1")
	wantStatus(t, readJSON(t, filepath.Join(run, "run.json")), "COMPLETED")
	checkMetric(t, readJSON(t, filepath.Join(run, "metrics.json")), "after", []float64{0}, []float64{1})
}

// Item 3: with --metric-pattern, an observer that lags and the child
// stopped by --timeout, the wrapper never exited: the stdout copier waited
// in the scraper for the pending metrics to drain, the runner for the
// copier. The lagging observer is PostgreSQL with the metric table locked
// (SHARE mode: the run can start, no metric can be inserted).
func TestHardening03MetricPatternLaggingObserverTimeout(t *testing.T) {
	url := sqlURLs(t)["postgres"]
	if url == "" {
		t.Skip("PostgreSQL is not reachable (CI requires it)")
	}
	dir := t.TempDir()
	if r := sacred(t, dir, nil, "run", "-s", url, "--", "true"); r.code != 0 { // creates the tables
		t.Fatalf("first run: exit %d\nstderr: %s", r.code, r.stderr)
	}
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("LOCK TABLE metric IN SHARE MODE"); err != nil {
		t.Fatal(err)
	}

	// A million metric lines: far more than the points the wrapper holds
	// in memory for a lagging observer (100,000); then the child idles
	// until the timeout stops it.
	r := sacredNoHang(t, dir, nil, "run", "-F", "runs", "-s", url,
		"--metric-pattern", `^(?P<name>loss) (?P<value>\S+)$`, "--timeout", "5s", "--flush-timeout", "15s",
		"--", "sh", "-c", `yes "loss 0.5" | head -n 1000000; exec sleep 600`)
	tx.Rollback()
	if r.code != 128+15 {
		t.Fatalf("exit %d, want 143 (child stopped by the timeout)\nstderr: %s", r.code, r.stderr)
	}
	ids := runDirs(t, filepath.Join(dir, "runs"))
	if len(ids) != 1 {
		t.Fatalf("runs %v", ids)
	}
	wantStatus(t, readJSON(t, filepath.Join(dir, "runs", ids[0], "run.json")), "TIMEOUT")
	// The runner takes the scraped points at every beat into each
	// observer's own backlog (spilled to disk while PostgreSQL lags), so
	// the tap's bound is never met: none is dropped, and the store that
	// keeps up has every one.
	if strings.Contains(r.stderr, "dropped") || strings.Contains(r.stderr, "were not recorded") && strings.Contains(r.stderr, "scraped") {
		t.Errorf("scraped points were dropped:\n%s", r.stderr)
	}
	var metrics map[string]struct {
		Steps []int64 `json:"steps"`
	}
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(dir, "runs", ids[0], "metrics.json"))), &metrics); err != nil {
		t.Fatal(err)
	}
	// On a slow machine file storage may not have written them all before
	// --flush-timeout; then the wrapper says how many it did not record.
	// Either way none is lost without a word.
	missing := 0
	for l := range strings.Lines(r.stderr) {
		if strings.Contains(l, "observer file storage") {
			if m := regexp.MustCompile(`(\d+) metric points?`).FindStringSubmatch(l); m != nil {
				missing, _ = strconv.Atoi(m[1])
			}
		}
	}
	// On a loaded machine the timeout may stop the child before it wrote
	// all its lines: what counts is the lines the output holds.
	out := readFile(t, filepath.Join(dir, "runs", ids[0], "cout.txt"))
	lines := strings.Count(out, "loss 0.5\n")
	if tail := out[strings.LastIndexByte(out, '\n')+1:]; regexp.MustCompile(`^loss \S+$`).MatchString(tail) {
		lines++ // a last line cut by the timeout is scraped too
	}
	if lines < 100000 {
		t.Fatalf("the child wrote only %d lines before the timeout: too few to test the bound", lines)
	}
	if n := len(metrics["loss"].Steps); n+missing != lines {
		t.Errorf("file storage has %d points of loss and the wrapper says %d were not recorded there; the output has %d lines\nstderr: %s", n, missing, lines, r.stderr)
	}
}

// Item 17: an explicit step 9223372036854775807 followed by an implicit
// step was stored as a negative step.
func TestHardening17StepOverflow(t *testing.T) {
	dir := t.TempDir()
	r := sacredNoHang(t, dir, []string{pathWithSacred()}, "run", "-F", "runs", "--", "sh", "-c",
		`sacred log metric m 1 --step 9223372036854775807 && sacred log metric m 2 && sacred log metric m 3 --step 5 && sacred log metric m 4`)
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", r.code, r.stderr)
	}
	want := `metric "m": the last step is 9223372036854775807, the largest there is, so the next one cannot be counted; give an explicit step; point dropped`
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr does not say %q:\n%s", want, r.stderr)
	}
	run := filepath.Join(dir, "runs", "1")
	wantStatus(t, readJSON(t, filepath.Join(run, "run.json")), "COMPLETED")
	// Decoded with exact integers: float64 cannot tell 2^63-1 from 2^63.
	d := json.NewDecoder(strings.NewReader(readFile(t, filepath.Join(run, "metrics.json"))))
	d.UseNumber()
	var metrics map[string]struct {
		Steps  []json.Number `json:"steps"`
		Values []json.Number `json:"values"`
	}
	if err := d.Decode(&metrics); err != nil {
		t.Fatal(err)
	}
	m := metrics["m"]
	if got := fmt.Sprint(m.Steps, m.Values); got != "[9223372036854775807 5 6] [1.0 3.0 4.0]" {
		t.Errorf("steps and values %s, want [9223372036854775807 5 6] [1.0 3.0 4.0]", got)
	}
}

// Item 8: one metric name with a NUL byte made PostgreSQL refuse the whole
// batch, retried every beat, so that no metric of the run was stored. Names
// no store can keep are refused per point at the child API, for every
// store, with one warning; so are info keys with a NUL byte (MongoDB's keys
// cannot hold one), while a NUL inside a string value is kept.
func TestHardening08MetricNameWithNUL(t *testing.T) {
	urls := sqlURLs(t)
	// --monitor-interval 0: info holds what the child sent, no resources.
	args := []string{"run", "--strict", "-F", "runs", "--monitor-interval", "0"}
	for _, u := range urls {
		args = append(args, "-s", u)
	}
	lines := `{"kind":"metric","name":"ok","value":1}
{"kind":"metric","name":"x\u0000y","value":2}
{"kind":"metric","name":"ok","value":3}
{"kind":"info","key":"bad\u0000key","value":1}
{"kind":"info","key":"nested","value":{"a\u0000":1}}
{"kind":"info","key":"note","value":"a\u0000b"}
`
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "lines.jsonl"), []byte(lines), 0o644)
	args = append(args, "--", "sh", "-c", "echo started; sacred log stream < lines.jsonl") // with output: a beat without any is item 6, not this one
	r := sacredNoHang(t, dir, []string{pathWithSacred()}, args...)
	// --strict: exit 1 if any store could not record what it was given.
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", r.code, r.stderr)
	}
	for _, want := range []string{
		`client 1 line 2: metric name "x\x00y" contains a NUL byte, which no store can keep; point dropped`,
		`client 1 line 4: info key "bad\x00key" contains a NUL byte, which no store can keep; ignored`,
		`client 1 line 5: info "nested": key "a\x00" contains a NUL byte, which no store can keep; ignored`,
	} {
		if strings.Count(r.stderr, want) != 1 {
			t.Errorf("stderr does not say once %q:\n%s", want, r.stderr)
		}
	}
	if n := strings.Count(r.stderr, "\n"); n != 4 { // started run 1 + the three warnings
		t.Errorf("%d lines on stderr, want 4:\n%s", n, r.stderr)
	}

	run := filepath.Join(dir, "runs", "1")
	wantStatus(t, readJSON(t, filepath.Join(run, "run.json")), "COMPLETED")
	metrics := readJSON(t, filepath.Join(run, "metrics.json"))
	checkMetric(t, metrics, "ok", []float64{0, 1}, []float64{1, 3})
	if len(metrics) != 1 {
		t.Errorf("metrics.json %v, want only ok", metrics)
	}
	info := readJSON(t, filepath.Join(run, "info.json"))
	if fmt.Sprint(info) != "map[note:a\x00b]" {
		t.Errorf("info.json %q, want only note", info)
	}
	for name, u := range urls {
		sr := readSQLRun(t, u, "1")
		if sr.Status != observer.StatusCompleted || len(sr.Metrics) != 1 || sr.Metrics[0].Name != "ok" || len(sr.Metrics[0].Points) != 2 {
			t.Errorf("%s: status %s, metrics %+v; want COMPLETED with ok's two points", name, sr.Status, sr.Metrics)
		}
		if fmt.Sprint(sr.Info) != "map[note:a\x00b]" {
			t.Errorf("%s: info %q, want only note", name, sr.Info)
		}
	}
}
