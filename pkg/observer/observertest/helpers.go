package observertest

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/sacred-go/sacred/internal/jsonval"
	"github.com/sacred-go/sacred/pkg/observer"
)

func md5sum(b []byte) string {
	sum := md5.Sum(b)
	return hex.EncodeToString(sum[:])
}

// Output is an in-memory observer.Output that tests append to.
type Output struct {
	mu  sync.RWMutex
	buf []byte
}

var _ observer.Output = (*Output)(nil)

// NewOutput returns an empty Output.
func NewOutput() *Output { return &Output{} }

// Append adds bytes at the end.
func (o *Output) Append(p []byte) {
	o.mu.Lock()
	o.buf = append(o.buf, p...)
	o.mu.Unlock()
}

// Size is the number of bytes appended so far.
func (o *Output) Size() int64 {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return int64(len(o.buf))
}

// ReadAt reads bytes [off, off+len(p)) of the output.
func (o *Output) ReadAt(p []byte, off int64) (int, error) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if off < 0 {
		return 0, fmt.Errorf("observertest: negative offset %d", off)
	}
	if off >= int64(len(o.buf)) {
		return 0, io.EOF
	}
	n := copy(p, o.buf[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Bytes returns a copy of everything appended.
func (o *Output) Bytes() []byte {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return append([]byte(nil), o.buf...)
}

// Beats builds heartbeat events over an Output: each Next carries the bytes
// appended since the previous one.
type Beats struct {
	Out  *Output
	last int64
}

// NewBeats returns a Beats over a new Output.
func NewBeats() *Beats { return &Beats{Out: NewOutput()} }

// Next returns the heartbeat for the output appended since the last call.
func (b *Beats) Next(at time.Time, info map[string]any) *observer.HeartbeatEvent {
	to := b.Out.Size()
	ev := &observer.HeartbeatEvent{Info: info, BeatTime: at, Output: b.Out, From: b.last, To: to}
	b.last = to
	return ev
}

var (
	sourcesOnce sync.Once
	sourcesDir  string
	sourcesErr  error
)

// sourceFiles are the experiment's sources StartEvent points at.
var sourceFiles = []struct{ name, content string }{
	{"helpers/util.py", "def smooth(xs, k=0.9):\n    out, acc = [], xs[0]\n    for x in xs:\n        acc = k * acc + (1 - k) * x\n        out.append(acc)\n    return out\n"},
	{"train.py", "\"\"\"A small training script.\"\"\"\nfrom sacred import Experiment\nfrom helpers.util import smooth\n\nex = Experiment(\"train\")\n\n\n@ex.config\ndef cfg():\n    lr = 0.01\n    epochs = 20\n\n\n@ex.automain\ndef main(lr, epochs, _run):\n    for i in range(epochs):\n        _run.log_scalar(\"loss\", 1 / (i + 1))\n    return 0.93\n"},
}

// sourceBase writes the source files once per process into a directory
// named after their content under the system temp dir, so that every test
// process shares it and nothing piles up.
func sourceBase() (string, error) {
	sourcesOnce.Do(func() {
		h := md5.New()
		for _, f := range sourceFiles {
			fmt.Fprintf(h, "%s\x00%s\x00", f.name, f.content)
		}
		dir := filepath.Join(os.TempDir(), "sacred-observertest-"+hex.EncodeToString(h.Sum(nil))[:12])
		for _, f := range sourceFiles {
			p := filepath.Join(dir, f.name)
			if b, err := os.ReadFile(p); err == nil && string(b) == f.content {
				continue
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				sourcesErr = err
				return
			}
			tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp*")
			if err != nil {
				sourcesErr = err
				return
			}
			_, err = tmp.WriteString(f.content)
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Rename(tmp.Name(), p)
			}
			if err != nil {
				os.Remove(tmp.Name())
				sourcesErr = err
				return
			}
		}
		sourcesDir = dir
	})
	return sourcesDir, sourcesErr
}

// StartEvent returns a realistic and complete start event: a config with
// nested values, unicode and a seed, two sources that are real files with
// their md5, a dirty git repository, host facts, meta with options, a
// comment and a priority. ID is empty; Time is now (UTC, whole
// milliseconds). Each call returns a fresh value the caller may change.
func StartEvent() *observer.StartEvent {
	base, err := sourceBase()
	if err != nil {
		panic(fmt.Sprintf("observertest: writing the source files: %v", err))
	}
	var sources []observer.Source
	for _, f := range sourceFiles {
		sources = append(sources, observer.Source{
			Name: f.name,
			Path: filepath.Join(base, filepath.FromSlash(f.name)),
			MD5:  md5sum([]byte(f.content)),
		})
	}
	prio := 5.0
	return &observer.StartEvent{
		Command: "python3 train.py with lr=0.01",
		Experiment: observer.Experiment{
			Name:         "train",
			BaseDir:      base,
			MainFile:     "train.py",
			Sources:      sources,
			Dependencies: []string{"numpy==1.24.2", "sacred==0.8.7"},
			Repositories: []observer.Repository{{
				URL:    "https://example.com/lab/train.git",
				Commit: "5808470103c7e3d86b1ccf53e2a8ae9d63556b53",
				Dirty:  true,
			}},
		},
		Host: &observer.Host{
			Hostname:    "worker-1",
			OS:          [2]string{"Linux", "Linux-6.1.0-18-amd64-x86_64-with-glibc2.36"},
			CPU:         "AMD EPYC 7B13",
			CPUCount:    2,
			MemoryTotal: 24 << 30,
			ENV:         map[string]string{"CUDA_VISIBLE_DEVICES": "0"},
		},
		Time:   time.Now().UTC().Truncate(time.Millisecond),
		Config: Config(),
		Meta: observer.Meta{
			Command: "main",
			Argv:    []string{"python3", "train.py", "with", "lr=0.01"},
			Cwd:     base,
			Options: map[string]any{
				"--beat-interval": nil,
				"--comment":       "a comment",
				"--debug":         false,
				"--file_storage":  "runs",
				"--priority":      "5",
				"UPDATE":          []any{"lr=0.01"},
				"with":            true,
			},
			Comment:       "a comment",
			Priority:      &prio,
			ConfigUpdates: map[string]any{"lr": 0.01},
			NamedConfigs:  []string{},
		},
	}
}

// Config returns the config StartEvent uses.
func Config() map[string]any {
	return map[string]any{
		"epochs": 20,
		"layers": []any{64, 32},
		"lr":     0.01,
		"name":   "baseline ✓ é 😀",
		"optimizer": map[string]any{
			"betas": []any{0.9, 0.999},
			"sched": map[string]any{"gamma": 0.5, "kind": "step"},
			"type":  "adam",
		},
		"seed":     434071768,
		"use_cuda": false,
		"nothing":  nil,
		"quote":    "say \"hi\"\n\ttab/slash\\",
	}
}

// Normalize makes decoded values comparable whatever the store returns:
// every number becomes float64, typed slices and maps become []any and
// map[string]any.
func Normalize(v any) any { return jsonval.Floats(v, normalizeTyped) }

// normalizeTyped is Normalize for what decoded JSON does not hold: typed
// slices, arrays and maps, pointers.
func normalizeTyped(v any) any {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = Normalize(rv.Index(i).Interface())
		}
		return out
	case reflect.Map:
		out := make(map[string]any, rv.Len())
		iter := rv.MapRange()
		for iter.Next() {
			out[fmt.Sprint(iter.Key().Interface())] = Normalize(iter.Value().Interface())
		}
		return out
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return nil
		}
		return Normalize(rv.Elem().Interface())
	}
	return v
}

// Equal compares two decoded values after Normalize; NaN equals NaN.
func Equal(a, b any) bool {
	return equalNorm(Normalize(a), Normalize(b))
}

func equalNorm(a, b any) bool {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		return ok && (x == y || math.IsNaN(x) && math.IsNaN(y))
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equalNorm(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalNorm(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

// Golden returns the directory of the records Python Sacred wrote
// (shared/golden: fs, fs-extra, mongo, sql, tiny): $SACRED_GOLDEN, or
// shared/golden in the working directory or any directory above it (CI
// keeps shared/ beside the checkout). It skips the test when there is none.
func Golden(t testing.TB) string {
	t.Helper()
	if env := os.Getenv("SACRED_GOLDEN"); env != "" {
		return env
	}
	dir, _ := os.Getwd()
	for {
		p := filepath.Join(dir, "shared", "golden")
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("golden records not found (set SACRED_GOLDEN)")
		}
		dir = parent
	}
}
