//go:build unix

package e2e

// What a run used, through the binary: the process-tree monitor
// (--monitor-interval, sys.* metrics, info.resources), GPUs through a fake
// nvidia-smi, experiment.dependencies from a real virtual environment, and
// the git.diff artifact of a dirty repository.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// burnPython is a python3 command line that burns secs of its own CPU time.
func burnPython(secs float64) string {
	return fmt.Sprintf(`python3 -c 'import time
while time.process_time() < %g: pass'`, secs)
}

// metricsOf reads metrics.json of a file-storage run: name → values.
func metricsOf(t *testing.T, runDir string) map[string][]float64 {
	t.Helper()
	m, ok := tryMetrics(filepath.Join(runDir, "metrics.json"))
	if !ok {
		t.Fatalf("cannot read %s/metrics.json", runDir)
	}
	return m
}

// tryMetrics reads metrics.json, which may be absent or being replaced.
func tryMetrics(path string) (map[string][]float64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	var raw map[string]struct {
		Steps  []int64   `json:"steps"`
		Values []float64 `json:"values"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, false
	}
	out := map[string][]float64{}
	for k, v := range raw {
		out[k] = v.Values
	}
	return out, true
}

// resourcesOf reads info.resources of a file-storage run.
func resourcesOf(t *testing.T, runDir string) map[string]any {
	t.Helper()
	info := readJSON(t, filepath.Join(runDir, "info.json"))
	res, ok := info["resources"].(map[string]any)
	if !ok {
		t.Fatalf("info.json has no resources: %v", info)
	}
	return res
}

// heldRun is a run whose command waits on a FIFO until the test releases
// it, so that the test can watch what is recorded while it runs.
type heldRun struct {
	cmd     *exec.Cmd
	release string
	stderr  bytes.Buffer
	runDir  string
}

// startHeld starts `sacred run` with args, then `--`, then sh -c script;
// the script may read "$RELEASE" to wait for the test.
func startHeld(t *testing.T, dir string, env []string, args []string, script string) *heldRun {
	t.Helper()
	h := &heldRun{release: filepath.Join(t.TempDir(), "release"), runDir: filepath.Join(dir, "runs", "1")}
	if err := syscall.Mkfifo(h.release, 0o600); err != nil {
		t.Fatal(err)
	}
	all := append([]string{"run", "-F", "runs", "-C", "pipe", "-b", "0.05"}, args...)
	all = append(all, "--", "sh", "-c", script)
	h.cmd = exec.Command(bin, all...)
	h.cmd.Dir = dir
	h.cmd.Env = append(append(cleanEnv(), "RELEASE="+h.release), env...)
	h.cmd.Stderr = &h.stderr
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
		h.cmd.Wait()
	})
	return h
}

// waitMetrics reads metrics.json until cond holds (the file is written at
// every beat), or fails after a minute.
func (h *heldRun) waitMetrics(t *testing.T, what string, cond func(map[string][]float64) bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if m, ok := tryMetrics(filepath.Join(h.runDir, "metrics.json")); ok && cond(m) {
			return
		}
		if h.cmd.ProcessState != nil {
			break
		}
		time.Sleep(20 * time.Millisecond) // pacing the polls, not a synchronisation
	}
	m, _ := tryMetrics(filepath.Join(h.runDir, "metrics.json"))
	t.Fatalf("waited a minute for %s; metrics %v; stderr %s", what, m, h.stderr.String())
}

// finish releases the command and waits for the wrapper.
func (h *heldRun) finish(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(h.release, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("go\n")
	f.Close()
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("sacred: %v; stderr %s", err, h.stderr.String())
	}
}

func last(vs []float64) float64 {
	if len(vs) == 0 {
		return -1
	}
	return vs[len(vs)-1]
}

// The monitor samples the whole tree: children alive at a sample are
// counted, and the CPU time of children that exited (reaped by the
// script) is in the total.
func TestMonitorProcessTree(t *testing.T) {
	needInterp(t, "python3")
	dir := t.TempDir()
	script := `sleep 600 >/dev/null & s1=$!; sleep 600 >/dev/null & s2=$!
` + burnPython(0.3) + `; ` + burnPython(0.3) + `
read x < "$RELEASE"; kill $s1 $s2`
	h := startHeld(t, dir, nil, []string{"--monitor-interval", "0.05"}, script)
	h.waitMetrics(t, "a sample with the script and its two sleeps", func(m map[string][]float64) bool {
		return last(m["sys.processes"]) == 3
	})
	h.finish(t)

	res := resourcesOf(t, h.runDir)
	if cpu := res["cpu_seconds"].(float64); cpu < 0.6 {
		t.Errorf("cpu_seconds = %v, want >= 0.6 (two children burned 0.3s each and exited)", cpu)
	}
	if p := res["processes_peak"].(float64); p < 3 {
		t.Errorf("processes_peak = %v, want >= 3", p)
	}
	if res["interval_seconds"] != 0.05 {
		t.Errorf("interval_seconds = %v, want 0.05", res["interval_seconds"])
	}
	m := metricsOf(t, h.runDir)
	n := len(m["sys.cpu_percent"])
	if n == 0 || float64(n) != res["samples"].(float64) {
		t.Errorf("%d points of sys.cpu_percent, %v samples in info.resources", n, res["samples"])
	}
	for _, name := range []string{"sys.rss_bytes", "sys.read_bytes", "sys.write_bytes", "sys.threads", "sys.open_files", "sys.processes"} {
		if len(m[name]) != n {
			t.Errorf("%s has %d points, want one per sample (%d)", name, len(m[name]), n)
		}
	}
	for _, v := range m["sys.rss_bytes"] {
		if v <= 0 {
			t.Errorf("sys.rss_bytes has %v: the tree always holds the script", v)
		}
	}
}

// A child that allocates 200 MB and exits before any sample: its peak is
// still seen (wait4's report of the child).
func TestMonitorPeakRSS(t *testing.T) {
	needInterp(t, "python3")
	dir := t.TempDir()
	r := sacred(t, dir, nil, "run", "-F", "runs", "--monitor-interval", "60", "--",
		"python3", "-c", `b = b"x" * (200 << 20)`)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	res := resourcesOf(t, filepath.Join(dir, "runs", "1"))
	if peak := res["rss_peak_bytes"].(float64); peak < 200<<20 {
		t.Errorf("rss_peak_bytes = %v, want >= 200 MiB", peak)
	}
	if res["samples"].(float64) != 0 {
		t.Errorf("samples = %v in a run shorter than the interval", res["samples"])
	}
}

// With a (fake) nvidia-smi on PATH, each GPU's utilisation and memory and
// the memory of the run's processes on it are metrics, and their peaks
// go to info.resources.gpus.
func TestMonitorGPUFakeNvidiaSMI(t *testing.T) {
	dir := t.TempDir()
	bindir := t.TempDir()
	pidfile := filepath.Join(t.TempDir(), "pid")
	smi := fmt.Sprintf(`#!/bin/sh
case "$1" in
--query-gpu=*) printf '0, GPU-fake-0, 42, 1000, Fake GPU\n1, GPU-fake-1, 7, 500, Fake GPU\n' ;;
--query-compute-apps=*)
	[ -s %[1]s ] && printf '%%s, GPU-fake-0, 256\n' "$(cat %[1]s)"
	printf '1, GPU-fake-1, 999\n' ;;
*) exit 6 ;;
esac
`, pidfile)
	if err := os.WriteFile(filepath.Join(bindir, "nvidia-smi"), []byte(smi), 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + bindir + string(os.PathListSeparator) + os.Getenv("PATH")}
	h := startHeld(t, dir, env, []string{"--monitor-interval", "0.05"}, fmt.Sprintf(`echo $$ > %s; read x < "$RELEASE"`, pidfile))
	h.waitMetrics(t, "a GPU sample with the run's process", func(m map[string][]float64) bool {
		return last(m["sys.gpu0.run_memory_bytes"]) == 256<<20
	})
	h.finish(t)

	m := metricsOf(t, h.runDir)
	if last(m["sys.gpu0.util"]) != 42 || last(m["sys.gpu0.memory_bytes"]) != 1000<<20 || last(m["sys.gpu1.util"]) != 7 {
		t.Errorf("GPU metrics: gpu0.util %v, gpu0.memory_bytes %v, gpu1.util %v", m["sys.gpu0.util"], m["sys.gpu0.memory_bytes"], m["sys.gpu1.util"])
	}
	for _, v := range m["sys.gpu1.run_memory_bytes"] {
		if v != 0 {
			t.Errorf("sys.gpu1.run_memory_bytes = %v: pid 1 is not the run's", v)
		}
	}
	gpus, _ := resourcesOf(t, h.runDir)["gpus"].([]any)
	if len(gpus) != 2 {
		t.Fatalf("info.resources.gpus = %v, want 2", gpus)
	}
	g0 := gpus[0].(map[string]any)
	if g0["util_peak"] != 42.0 || g0["run_memory_peak_bytes"] != float64(256<<20) || g0["memory_peak_bytes"] != float64(1000<<20) || g0["name"] != "Fake GPU" {
		t.Errorf("gpus[0] = %v", g0)
	}
}

// --monitor-interval 0: no sys.* metric, no info.resources; and the
// child's own metrics under sys. are refused whatever the interval.
func TestMonitorIntervalZero(t *testing.T) {
	dir := t.TempDir()
	r := sacred(t, dir, []string{pathWithSacred()}, "run", "-F", "runs", "--monitor-interval", "0", "--",
		"sh", "-c", "sacred log metric sys.cpu_percent 99; sacred log metric loss 0.5")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	run := filepath.Join(dir, "runs", "1")
	m := metricsOf(t, run)
	for name := range m {
		if strings.HasPrefix(name, "sys.") {
			t.Errorf("metric %s recorded with --monitor-interval 0", name)
		}
	}
	if len(m["loss"]) != 1 {
		t.Errorf("the child's own metric is missing: %v", m)
	}
	if !strings.Contains(r.stderr, `metric name "sys.cpu_percent" is under "sys.", which is reserved`) {
		t.Errorf("no line says sys. is reserved: %s", r.stderr)
	}
	if info, err := os.ReadFile(filepath.Join(run, "info.json")); err == nil && strings.Contains(string(info), "resources") {
		t.Errorf("info.json has resources with --monitor-interval 0: %s", info)
	}
}

// venvPython makes a real virtual environment (without pip) and returns
// its site-packages.
func venvSitePackages(t *testing.T, venv string) string {
	t.Helper()
	out, err := exec.Command("python3", "-m", "venv", "--without-pip", venv).CombinedOutput()
	if err != nil {
		t.Skipf("python3 -m venv failed: %v\n%s", err, out)
	}
	ms, _ := filepath.Glob(filepath.Join(venv, "lib", "python3*", "site-packages"))
	if len(ms) != 1 {
		t.Fatalf("site-packages of the venv: %v", ms)
	}
	return ms[0]
}

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// experiment.dependencies of a Python script in a real virtual
// environment: the distributions it imports, by their names and versions,
// also when the module's name is not the distribution's; lock files are
// sources; --deps none records neither.
func TestDependenciesOfAScriptInAVenv(t *testing.T) {
	needInterp(t, "python3")
	dir := t.TempDir()
	sp := venvSitePackages(t, filepath.Join(dir, ".venv"))
	writeTree(t, sp, map[string]string{
		"fakepkg/__init__.py":                   "VERSION = '1.2.3'\n",
		"fakepkg-1.2.3.dist-info/METADATA":      "Metadata-Version: 2.1\nName: fakepkg\nVersion: 1.2.3\n\n",
		"fakepkg-1.2.3.dist-info/RECORD":        "fakepkg/__init__.py,,\n",
		"fyaml/__init__.py":                     "",
		"Fake_YAML-0.9.dist-info/METADATA":      "Metadata-Version: 2.1\nName: Fake-YAML\nVersion: 0.9\n\n",
		"Fake_YAML-0.9.dist-info/top_level.txt": "fyaml\n",
		"unused-3.0.dist-info/METADATA":         "Metadata-Version: 2.1\nName: unused\nVersion: 3.0\n\n",
		"unused/__init__.py":                    "",
	})
	writeTree(t, dir, map[string]string{
		"train.py":         "import json\nimport fakepkg\nimport fyaml\nprint('fakepkg', fakepkg.VERSION)\n",
		"requirements.txt": "fakepkg==1.2.3\n",
	})

	r := sacred(t, dir, nil, "run", "-F", "runs", "--", ".venv/bin/python", "train.py")
	if r.code != 0 || !strings.Contains(r.stdout, "fakepkg 1.2.3") {
		t.Fatalf("exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}
	ex := readJSON(t, filepath.Join(dir, "runs", "1", "run.json"))["experiment"].(map[string]any)
	if got, want := ex["dependencies"], []any{"Fake-YAML==0.9", "fakepkg==1.2.3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("dependencies = %v, want %v", got, want)
	}
	if ex["mainfile"] != "train.py" {
		t.Errorf("mainfile = %v, want train.py (not the interpreter)", ex["mainfile"])
	}
	if got := sourceNamesOf(ex); !reflect.DeepEqual(got, []string{"requirements.txt", "train.py"}) {
		t.Errorf("sources = %v, want requirements.txt and train.py", got)
	}

	r = sacred(t, dir, nil, "run", "-F", "runs", "--deps", "none", "--", ".venv/bin/python", "train.py")
	if r.code != 0 {
		t.Fatalf("--deps none: exit %d, stderr %s", r.code, r.stderr)
	}
	ex = readJSON(t, filepath.Join(dir, "runs", "2", "run.json"))["experiment"].(map[string]any)
	if deps := ex["dependencies"].([]any); len(deps) != 0 {
		t.Errorf("--deps none: dependencies = %v", deps)
	}
	if got := sourceNamesOf(ex); !reflect.DeepEqual(got, []string{"train.py"}) {
		t.Errorf("--deps none: sources = %v, want train.py only", got)
	}

	r = sacred(t, dir, nil, "run", "-F", "runs", "--deps", "pip", "--", ".venv/bin/python", "train.py")
	if r.code == 0 || !strings.Contains(r.stderr, "want imported, all or none") {
		t.Errorf("--deps pip: exit %d, stderr %s", r.code, r.stderr)
	}
}

func sourceNamesOf(ex map[string]any) []string {
	var out []string
	for _, s := range ex["sources"].([]any) {
		out = append(out, s.([]any)[0].(string))
	}
	return out
}

// gitIn runs git in dir, away from the user's configuration.
func gitIn(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL="+os.DevNull, "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// filesUnder reads every file under dir but .git and the skipped top-level
// entries, with its executable bit.
func filesUnder(t *testing.T, dir string, skip ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		for _, s := range append(skip, ".git") {
			if rel == s {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		if d.IsDir() {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = fmt.Sprintf("%v %q", fi.Mode()&0o100 != 0, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A run from a dirty repository stores git.diff, and git apply of it on a
// clean checkout of the recorded commit gives the tree that ran; the runs
// directory inside the repository stays out of it.
func TestGitDiffArtifactApplies(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	repo := t.TempDir()
	gitIn(t, repo, "init", "-q", "-b", "main")
	writeTree(t, repo, map[string]string{
		"train.sh":      "cat params.txt\n",
		"params.txt":    "lr=0.1\n",
		"lib/helper.sh": "echo helper\n",
		"old.txt":       "to be deleted\n",
	})
	gitIn(t, repo, "add", ".")
	gitIn(t, repo, "commit", "-q", "-m", "first")
	writeTree(t, repo, map[string]string{
		"params.txt":    "lr=0.2\n",         // unstaged
		"lib/helper.sh": "echo helper v2\n", // staged below
		"notes.txt":     "untracked input\n",
	})
	gitIn(t, repo, "add", "lib/helper.sh")
	if err := os.Remove(filepath.Join(repo, "old.txt")); err != nil {
		t.Fatal(err)
	}
	// The files of the tree that ran are older than the run.
	past := time.Now().Add(-time.Minute)
	for _, f := range []string{"params.txt", "lib/helper.sh", "notes.txt", "train.sh"} {
		os.Chtimes(filepath.Join(repo, f), past, past)
	}

	r := sacred(t, repo, nil, "run", "-F", "runs", "--", "sh", "train.sh")
	if r.code != 0 || r.stdout != "lr=0.2\n" {
		t.Fatalf("exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}
	run := readJSON(t, filepath.Join(repo, "runs", "1", "run.json"))
	repos := run["experiment"].(map[string]any)["repositories"].([]any)
	if len(repos) != 1 || repos[0].(map[string]any)["dirty"] != true {
		t.Fatalf("repositories = %v, want one dirty", repos)
	}
	commit := repos[0].(map[string]any)["commit"].(string)
	if arts := run["artifacts"].([]any); !reflect.DeepEqual(arts, []any{"git.diff"}) {
		t.Fatalf("artifacts = %v, want [git.diff]", arts)
	}
	diff := filepath.Join(repo, "runs", "1", "git.diff")
	text := readFile(t, diff)
	if !strings.Contains(text, "# sacred: capped at 1048576 bytes") || strings.Contains(text, "b/runs/") {
		t.Errorf("git.diff header or content is wrong:\n%s", text)
	}

	clone := filepath.Join(t.TempDir(), "clone")
	gitIn(t, repo, "clone", "-q", repo, clone)
	gitIn(t, clone, "checkout", "-q", commit)
	gitIn(t, clone, "apply", diff)
	want := filesUnder(t, repo, "runs")
	got := filesUnder(t, clone)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after git apply:\n got %v\nwant %v", got, want)
	}

	// A clean repository: no git.diff.
	gitIn(t, repo, "add", "-A", ":!runs")
	gitIn(t, repo, "commit", "-q", "-m", "second")
	r = sacred(t, repo, nil, "run", "-F", "runs", "--", "sh", "train.sh")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	run = readJSON(t, filepath.Join(repo, "runs", "2", "run.json"))
	if arts := run["artifacts"].([]any); len(arts) != 0 {
		t.Errorf("a clean repository's run has artifacts %v", arts)
	}
}
