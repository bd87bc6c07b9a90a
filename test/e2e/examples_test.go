package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// buildExample builds examples/NAME as a binary called sacred (so that the
// child's `sacred log` finds it) and returns its path.
func buildExample(t *testing.T, name string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	exe := filepath.Join(t.TempDir(), "sacred")
	cmd := exec.Command("go", "build", "-o", exe, "./examples/"+name)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./examples/%s: %v\n%s", name, err, out)
	}
	return exe
}

func runExe(t *testing.T, exe, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(exe, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %s %v: %v", exe, args, err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

func jsonLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: line %q: %v", path, sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

// The example binary (a ten-line main calling sacredcli.Main with its own
// observer) has the observer's flag, help line, variable, and records a run.
func TestExampleJSONLines(t *testing.T) {
	exe := buildExample(t, "jsonlines")
	dir := t.TempDir()

	r := runExe(t, exe, dir, nil, "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "--jsonl FILE") || !strings.Contains(r.stdout, "-F, --file_storage DIR") {
		t.Fatalf("sacred --help: exit %d\n%s", r.code, r.stdout)
	}
	r = runExe(t, exe, dir, nil, "run", "--help")
	if !strings.Contains(r.stdout, "--jsonl FILE") || !strings.Contains(r.stdout, "one JSON object per line") || !strings.Contains(r.stdout, "SACRED_JSONL") {
		t.Fatalf("sacred run --help lacks --jsonl:\n%s", r.stdout)
	}

	r = runExe(t, exe, dir, nil, "run", "-F", "runs", "--jsonl", "events.jsonl", "--",
		"sh", "-c", "echo hello; sacred log metric loss 0.5; sacred log result 3")
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", r.code, r.stderr)
	}
	lines := jsonLines(t, filepath.Join(dir, "events.jsonl"))
	var events []string
	var output string
	for _, l := range lines {
		if l["run_id"] != "1" {
			t.Errorf("event without the run id chosen by file storage: %v", l)
		}
		events = append(events, l["event"].(string))
		if out, ok := l["output"].(string); ok {
			output += out
		}
	}
	if events[0] != "started" || events[len(events)-1] != "completed" || !strings.Contains(strings.Join(events, " "), "metric") {
		t.Errorf("events %v", events)
	}
	if output != "hello\n" || lines[len(lines)-1]["result"] != 3.0 {
		t.Errorf("output %q, last line %v", output, lines[len(lines)-1])
	}
	wantStatus(t, readJSON(t, filepath.Join(dir, "runs", "1", "run.json")), "COMPLETED")
	opts := readJSON(t, filepath.Join(dir, "runs", "1", "run.json"))["meta"].(map[string]any)["options"].(map[string]any)
	if opts["--jsonl"] != "events.jsonl" {
		t.Errorf("meta.options --jsonl = %v", opts["--jsonl"])
	}

	// The kind's variable works, and is kept from the child like every
	// observer setting.
	r = runExe(t, exe, dir, []string{"SACRED_JSONL=" + filepath.Join(dir, "env.jsonl")}, "run", "--", "sh", "-c", "env")
	if r.code != 0 || strings.Contains(r.stdout, "SACRED_JSONL") {
		t.Fatalf("exit %d; child saw SACRED_JSONL: %v\nstderr: %s", r.code, strings.Contains(r.stdout, "SACRED_JSONL"), r.stderr)
	}
	if lines := jsonLines(t, filepath.Join(dir, "env.jsonl")); len(lines) < 3 || lines[0]["event"] != "started" {
		t.Errorf("SACRED_JSONL: %v", lines)
	}
}
