package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sacred-go/sacred/internal/testserver"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/file"
)

// objStore is one of the object stores under test, served in process and
// reached by the binary over HTTP.
type objStore struct {
	name string
	// args are the flags that record to PREFIX of the test bucket.
	args func(prefix string) []string
	env  []string
	// object reads an object whole; keys lists the keys under a prefix.
	object func(key string) ([]byte, error)
	open   func(key string) (io.ReadCloser, error)
	keys   func(prefix string) []string
	// uploaded counts request body bytes written to key (S3), or to
	// the store as a whole (GCS, whose uploads name the key in the body).
	uploaded    func(key string) int64
	stop, start func()
	// secrets must appear in no output of the binary.
	secrets []string
}

const testBucket = "lab-runs"

func s3Store(t *testing.T) *objStore {
	srv := testserver.NewS3(t)
	srv.CreateBucket(testBucket)
	return &objStore{
		name: "S3",
		args: func(prefix string) []string {
			return []string{"-S", "s3://" + testBucket + "/" + prefix, "--s3-endpoint", srv.URL()}
		},
		env: srv.Env(),
		object: func(key string) ([]byte, error) {
			rc, err := srv.Open(testBucket, key)
			if err != nil {
				return nil, err
			}
			defer rc.Close()
			return io.ReadAll(rc)
		},
		open: func(key string) (io.ReadCloser, error) { return srv.Open(testBucket, key) },
		keys: func(prefix string) []string {
			k, err := srv.Keys(testBucket, prefix)
			if err != nil {
				t.Fatal(err)
			}
			return k
		},
		uploaded: srv.Written,
		stop:     srv.Stop,
		start:    srv.Start,
		secrets:  []string{srv.SecretKey, srv.AccessKey},
	}
}

func gcsStore(t *testing.T) *objStore {
	srv := testserver.NewGCS(t)
	srv.CreateBucket(testBucket)
	return &objStore{
		name: "GCS",
		args: func(prefix string) []string { return []string{"--gcs", "gs://" + testBucket + "/" + prefix} },
		env:  srv.Env(),
		object: func(key string) ([]byte, error) {
			return srv.Object(testBucket, key)
		},
		open: func(key string) (io.ReadCloser, error) {
			b, err := srv.Object(testBucket, key)
			return io.NopCloser(bytes.NewReader(b)), err
		},
		keys: func(prefix string) []string {
			k, err := srv.Keys(testBucket, prefix)
			if err != nil {
				t.Fatal(err)
			}
			return k
		},
		uploaded: func(string) int64 { return srv.Uploaded() },
		stop:     srv.Stop,
		start:    srv.Start,
	}
}

// forEachStore runs f on S3 and on GCS.
func forEachStore(t *testing.T, f func(t *testing.T, s *objStore)) {
	t.Run("S3", func(t *testing.T) { f(t, s3Store(t)) })
	t.Run("GCS", func(t *testing.T) { f(t, gcsStore(t)) })
}

func (s *objStore) runJSON(t *testing.T, key string) map[string]any {
	t.Helper()
	b, err := s.object(key)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v\n%s", key, err, b)
	}
	return m
}

func (s *objStore) noSecrets(t *testing.T, what, text string) {
	t.Helper()
	for _, sec := range s.secrets {
		if sec != "" && strings.Contains(text, sec) {
			t.Errorf("%s holds a secret", what)
		}
	}
}

// syncTo copies every object under prefix into dir, as `aws s3 sync` or
// `gcloud storage rsync` would.
func (s *objStore) syncTo(t *testing.T, prefix, dir string) {
	t.Helper()
	for _, k := range s.keys(prefix) {
		data, err := s.object(k)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(k, prefix)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestObjstoreRoundTrip records a run with output, metrics, info, an
// artifact and a result through the binary; the bucket synced to disk is
// a file-storage directory that file storage's reader reads whole, with
// the source stored where run.json says.
func TestObjstoreRoundTrip(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *objStore) {
		dir := t.TempDir()
		script := "set -e\necho 'Starting training'\nsacred log metric loss 0.5\nsacred log metric loss 0.25\nsacred log info foo '\"bar\"'\necho weights > model.txt\nsacred log artifact model.txt\nsacred log result 0.93\necho done\n"
		if err := os.WriteFile(filepath.Join(dir, "train.sh"), []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		args := append(append([]string{"run"}, s.args("team/runs")...), "--", "sh", "train.sh")
		r := sacred(t, dir, append(s.env, pathWithSacred()), args...)
		if r.code != 0 {
			t.Fatalf("exit %d\nstderr: %s", r.code, r.stderr)
		}
		s.noSecrets(t, "stderr", r.stderr)
		run := s.runJSON(t, "team/runs/1/run.json")
		wantStatus(t, run, "COMPLETED")
		if cout, _ := s.object("team/runs/1/cout.txt"); string(cout) != "Starting training\ndone\n" {
			t.Errorf("cout.txt = %q", cout)
		}
		if run["result"] != 0.93 || fmt.Sprint(run["artifacts"]) != "[model.txt]" {
			t.Errorf("result %v, artifacts %v", run["result"], run["artifacts"])
		}
		srcs, _ := run["experiment"].(map[string]any)["sources"].([]any)
		if len(srcs) == 0 {
			t.Fatal("no sources recorded")
		}
		for _, sv := range srcs {
			pair := sv.([]any)
			if _, err := s.object("team/runs/" + pair[1].(string)); err != nil {
				t.Errorf("source %v is not where run.json says: %v", pair, err)
			}
		}
		s.noSecrets(t, "run.json", fmt.Sprint(run))

		synced := filepath.Join(t.TempDir(), "runs")
		s.syncTo(t, "team/runs/", synced)
		cfg, err := file.ParseConfig(synced)
		if err != nil {
			t.Fatal(err)
		}
		rd, err := file.Open(context.Background(), cfg, observer.Settings{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := rd.Run(context.Background(), "1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != observer.StatusCompleted || string(got.Output) != "Starting training\ndone\n" ||
			len(got.Metrics) != 1 || len(got.Metrics[0].Points) != 2 || got.Info["foo"] != "bar" {
			t.Errorf("file storage's reader over the synced bucket: %+v", got)
		}
		art, err := rd.Artifact(context.Background(), "1", "model.txt")
		if err != nil {
			t.Fatal(err)
		}
		defer art.Close()
		if b, _ := io.ReadAll(art); string(b) != "weights\n" {
			t.Errorf("artifact = %q", b)
		}
	})
}

// TestObjstoreConcurrentRuns starts 30 runs into one prefix from separate
// processes at once: 30 distinct ids, each run's record its own.
func TestObjstoreConcurrentRuns(t *testing.T) {
	const n = 30
	forEachStore(t, func(t *testing.T, s *objStore) {
		dir := t.TempDir()
		cmds := make([]*exec.Cmd, n)
		errs := make([]*bytes.Buffer, n)
		for i := range cmds {
			args := append(append([]string{"run"}, s.args("many")...), "--", "sh", "-c", `echo "$0"`, fmt.Sprintf("marker-%02d", i))
			cmd := exec.Command(bin, args...)
			cmd.Dir = dir
			cmd.Env = append(cleanEnv(), s.env...)
			errs[i] = &bytes.Buffer{}
			cmd.Stderr = errs[i]
			cmds[i] = cmd
		}
		for _, cmd := range cmds {
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
		}
		for i, cmd := range cmds {
			if err := cmd.Wait(); err != nil {
				t.Errorf("run %d: %v\n%s", i, err, errs[i])
			}
		}
		if t.Failed() {
			return
		}
		markers := map[string]string{}
		ids := map[string]bool{}
		for _, k := range s.keys("many/") {
			id, name, _ := strings.Cut(strings.TrimPrefix(k, "many/"), "/")
			if name != "cout.txt" {
				continue
			}
			ids[id] = true
			run := s.runJSON(t, "many/"+id+"/run.json")
			wantStatus(t, run, "COMPLETED")
			cout, _ := s.object(k)
			m := strings.TrimSpace(string(cout))
			if !strings.HasPrefix(m, "marker-") || strings.Contains(m, "\n") {
				t.Errorf("run %s: cout.txt = %q, want one marker", id, cout)
			}
			if other, dup := markers[m]; dup {
				t.Errorf("runs %s and %s both hold %s", other, id, m)
			}
			markers[m] = id
		}
		if len(ids) != n || len(markers) != n {
			t.Fatalf("%d run ids and %d distinct outputs, want %d of each", len(ids), len(markers), n)
		}
	})
}

// TestObjstoreEndpointStoppedMidRun stops the store while the run goes on
// and starts it again before the end: the final record is complete, the
// output whole, and the child's exit status is the wrapper's.
func TestObjstoreEndpointStoppedMidRun(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *objStore) {
		dir := t.TempDir()
		fifo1, fifo2 := filepath.Join(dir, "go1"), filepath.Join(dir, "go2")
		for _, f := range []string{fifo1, fifo2} {
			if err := syscall.Mkfifo(f, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		script := `echo before; read x < go1; echo "while away"; sacred log metric loss 0.5; read x < go2; echo after; exit 3`
		args := append(append([]string{"run", "-b", "0.1", "-C", "pipe"}, s.args("restart")...), "--", "sh", "-c", script)
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(append(cleanEnv(), s.env...), pathWithSacred())
		cmd.Stdout = io.Discard
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Process.Kill()
		lines := make(chan string, 100)
		var errText strings.Builder
		var mu sync.Mutex
		go func() {
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				mu.Lock()
				errText.WriteString(sc.Text() + "\n")
				mu.Unlock()
				lines <- sc.Text()
			}
			close(lines)
		}()
		// The first beat has stored "before".
		waitFor(t, "cout.txt to hold the first line", func() bool {
			b, _ := s.object("restart/1/cout.txt")
			return string(b) == "before\n"
		})
		s.stop()
		release(t, fifo1)
		// A call failed while the store was away: the runner says so (and
		// keeps the data). A minute bounds a hang, it is no timed assertion.
		giveUp := time.After(time.Minute)
	waitFailure:
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatal("the wrapper ended before the store was back")
				}
				if strings.Contains(line, "could not record") {
					break waitFailure
				}
			case <-giveUp:
				mu.Lock()
				text := errText.String()
				mu.Unlock()
				t.Fatalf("no call failed in a minute with the store away; stderr:\n%s", text)
			}
		}
		s.start()
		release(t, fifo2)
		err = cmd.Wait()
		mu.Lock()
		text := errText.String()
		mu.Unlock()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
			t.Fatalf("exit %v, want the child's 3\nstderr: %s", err, text)
		}
		s.noSecrets(t, "stderr", text)
		run := s.runJSON(t, "restart/1/run.json")
		wantStatus(t, run, "FAILED")
		if cout, _ := s.object("restart/1/cout.txt"); string(cout) != "before\nwhile away\nafter\n" {
			t.Errorf("cout.txt = %q", cout)
		}
		if m, _ := s.object("restart/1/metrics.json"); !strings.Contains(string(m), "0.5") {
			t.Errorf("metrics.json lacks the point logged while the store was away: %s", m)
		}
	})
}

// release opens a FIFO for writing and closes it: the child's read ends.
func release(t *testing.T, fifo string) {
	t.Helper()
	f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("go\n"))
	f.Close()
}

// waitFor polls cond until it holds; it fails the test after a minute
// (a bound on a hang, not a timed assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: gave up after a minute", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// closedAddr is a local address nothing listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestObjstoreBadInput: a malformed URL, a missing bucket, no credentials,
// a wrong region: each is one clear line before the child starts, exit 1,
// and no secret in it.
func TestObjstoreBadInput(t *testing.T) {
	s3s, gcss := s3Store(t), gcsStore(t)
	endpoint := s3s.args("x")[3]
	home := t.TempDir()
	cases := []struct {
		name  string
		store *objStore
		args  []string
		env   []string
		want  string
	}{
		{"S3 malformed URL", s3s, []string{"-S", "s3://Bad_Bucket/x"}, nil, "not a valid bucket name"},
		{"S3 URL with a key", s3s, []string{"-S", "s3://AKIAX:hunter2@lab-runs/x"}, nil, "must not hold credentials"},
		{"S3 missing bucket", s3s, []string{"-S", "s3://no-such-bucket/x", "--s3-endpoint", endpoint}, nil, `bucket "no-such-bucket" does not exist`},
		{"S3 no credentials", s3s, s3s.args("x"), []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="}, "no AWS credentials found"},
		{"S3 wrong region", s3s, append(s3s.args("x"), "--s3-region", "us-east-1"), nil, "give --s3-region eu-west-3"},
		{"GCS malformed URL", gcss, []string{"--gcs", "gs://lab-runs/x?X-Goog-Signature=hunter2"}, nil, "must not have a query"},
		{"GCS missing bucket", gcss, []string{"--gcs", "gs://no-such-bucket/x"}, nil, `bucket "no-such-bucket" does not exist`},
		{"GCS no credentials", gcss, gcss.args("x"), []string{"STORAGE_EMULATOR_HOST=", "HOME=" + home, "CLOUDSDK_CONFIG=" + home, "GCE_METADATA_HOST=" + closedAddr(t)}, "credentials give no token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append(append([]string{"run"}, c.args...), "--", "sh", "-c", "touch started")
			env := append(append([]string{}, c.store.env...), c.env...)
			r := sacred(t, dir, env, args...)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\nstderr: %s", r.code, r.stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "started")); err == nil {
				t.Error("the child was started")
			}
			msg := strings.TrimSpace(r.stderr)
			t.Log(msg)
			if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, c.want) {
				t.Errorf("stderr %q, want one line with %q", r.stderr, c.want)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("stderr repeats the secret: %q", msg)
			}
			c.store.noSecrets(t, "stderr", msg)
		})
	}
}

// watchHWM samples the peak resident memory (VmHWM, KiB) of a running
// process until it exits, and returns a func that gives the last sample.
// The exit status's rusage cannot serve: a child forked by this test
// process counts the test's own memory (here the test servers' objects,
// gigabytes) in its maxrss until it executes the binary.
func watchHWM(pid int) func() int64 {
	var mu sync.Mutex
	var last int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		path := fmt.Sprintf("/proc/%d/status", pid)
		for {
			b, err := os.ReadFile(path)
			if err != nil {
				return
			}
			_, after, ok := strings.Cut(string(b), "VmHWM:")
			if !ok {
				return // a zombie: its memory is gone
			}
			var kb int64
			fmt.Sscan(after, &kb)
			mu.Lock()
			last = kb
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return func() int64 {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return last
	}
}

// repeated is a reader of line repeated up to size bytes.
func repeated(line string, size int64) io.Reader {
	r, w := io.Pipe()
	go func() {
		b := []byte(strings.Repeat(line, (1<<20)/len(line)))
		for size > 0 {
			n := min(int64(len(b)), size)
			if _, err := w.Write(b[:n]); err != nil {
				return
			}
			size -= n
		}
		w.Close()
	}()
	return r
}

// firstDifference reads got and want to their ends and returns the offset
// of the first byte where they differ (a length included), or -1.
func firstDifference(got, want io.Reader) (int64, error) {
	bg, bw := make([]byte, 1<<20), make([]byte, 1<<20)
	var off int64
	for {
		ng, eg := io.ReadFull(got, bg)
		nw, ew := io.ReadFull(want, bw)
		for i := range min(ng, nw) {
			if bg[i] != bw[i] {
				return off + int64(i), nil
			}
		}
		if ng != nw {
			return off + int64(min(ng, nw)), nil
		}
		off += int64(ng)
		gEnd := eg == io.EOF || eg == io.ErrUnexpectedEOF
		wEnd := ew == io.EOF || ew == io.ErrUnexpectedEOF
		switch {
		case eg != nil && !gEnd:
			return off, eg
		case gEnd && wEnd:
			return -1, nil
		}
	}
}

// notStoredRange matches the wrapper's line for a beat whose output was
// not stored (and so is sent again).
var notStoredRange = regexp.MustCompile(`output bytes (\d+) to (\d+) not stored`)

// TestObjstoreOneGigabyteOutput: a run that writes 1 GiB: cout.txt is
// byte for byte the output, the bytes uploaded stay about the output's
// size (each beat sends its new bytes, not the whole output again), and
// the wrapper stays under 40 MiB of resident memory.
func TestObjstoreOneGigabyteOutput(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 1 GiB through the wrapper")
	}
	if raceDetector {
		// The in-process fake S3 and GCS servers hold and copy the 1 GiB
		// object in this test process; under the race detector that took
		// over 20 GB. The wrapper under test is a separate, ordinary
		// process either way: `make test` runs this test again without
		// -race.
		t.Skip("1 GiB through in-memory test servers: run without -race (make test does)")
	}
	const size = 1 << 30
	const line = "0123456789 a line of the 1 GiB output, with some text to fill it\n"
	forEachStore(t, func(t *testing.T, s *objStore) {
		dir := t.TempDir()
		script := fmt.Sprintf(`yes '%s' | head -c %d`, strings.TrimSuffix(line, "\n"), size)
		// The in-process test servers copy objects in memory, slowly: the
		// flush timeout leaves them time for the final beat.
		// -d: every failed write is named (stderr alone names the first
		// of a spell), so that the test can tell ranges sent again.
		args := append(append([]string{"run", "-d", "-b", "1", "-C", "pipe", "--flush-timeout", "10m"}, s.args("big")...), "--", "sh", "-c", script)
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(cleanEnv(), s.env...)
		cmd.Stdout = io.Discard
		var errb bytes.Buffer
		cmd.Stderr = &errb
		before := s.uploaded("big/1/cout.txt")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		hwm := watchHWM(cmd.Process.Pid)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%v\nstderr: %s", err, errb.String())
		}
		rss := hwm()
		uploaded := s.uploaded("big/1/cout.txt") - before
		t.Logf("%s: 1 GiB of output: %d MiB uploaded to cout.txt, wrapper peak RSS %d KiB", s.name, uploaded>>20, rss)
		if rss > 40<<10 {
			t.Errorf("wrapper max RSS %d KiB, over 40 MiB", rss)
		}
		// A beat whose write failed (here: a call past its 30 s bound while
		// the in-process server copies the object) is sent again from
		// where the store stopped, which legitimately uploads the failed
		// part twice; the wrapper names the range from that part on, at
		// every failure with -d. Anything beyond those ranges and a little
		// slack means beats sent more than their new bytes. And the run
		// must be recorded whole: a burst larger than one call can upload
		// goes in parts, each call going on from the last.
		var resent int64
		for _, m := range notStoredRange.FindAllStringSubmatch(errb.String(), -1) {
			from, _ := strconv.ParseInt(m[1], 10, 64)
			to, _ := strconv.ParseInt(m[2], 10, 64)
			resent += to - from
		}
		for _, bad := range []string{"incomplete", "not recorded", "stays RUNNING"} {
			if strings.Contains(errb.String(), bad) {
				t.Errorf("stderr says %q: the output was not all stored\nstderr: %s", bad, errb.String())
			}
		}
		if uploaded > size+resent+64<<20 {
			t.Errorf("%d bytes uploaded for %d of output (%d of them ranges sent again after a failed write): beats sent more than their new bytes\nstderr: %s",
				uploaded, size, resent, errb.String())
		}
		rc, err := s.open("big/1/cout.txt")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if off, err := firstDifference(rc, repeated(line, size)); off >= 0 || err != nil {
			t.Fatalf("cout.txt differs from the output from byte %d on (%v)\nstderr: %s", off, err, errb.String())
		}
		wantStatus(t, s.runJSON(t, "big/1/run.json"), "COMPLETED")
	})
}
