// Package e2e runs the real sacred binary on real commands and checks what
// it wrote.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// bin is the sacred binary built once for all tests of the package.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sacred-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "sacred")
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sacred")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sacred:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one invocation of the binary did.
type result struct {
	code           int
	stdout, stderr string
}

// sacred runs the binary in dir with args and returns its exit status and
// output. env entries are added to the test's environment.
func sacred(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
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

// cleanEnv is the test's environment without SACRED_* variables, so that a
// developer's settings (or an enclosing run) do not leak into the tests.
func cleanEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "SACRED_") {
			env = append(env, e)
		}
	}
	// Keep the user config dir away from the developer's own sacred.yaml.
	return append(env, "XDG_CONFIG_HOME="+os.TempDir()+"/sacred-e2e-no-config")
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("parse %s: %v\n%s", path, err, b)
	}
	return m
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

// runDirs lists the numeric run directories under dir.
func runDirs(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	var ids []string
	for _, e := range ents {
		if e.IsDir() && strings.Trim(e.Name(), "0123456789") == "" {
			ids = append(ids, e.Name())
		}
	}
	return ids
}

func wantStatus(t *testing.T, run map[string]any, status string) {
	t.Helper()
	if got := run["status"]; got != status {
		t.Fatalf("status = %v, want %s; run: %v", got, status, run)
	}
}
