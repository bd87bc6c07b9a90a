package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 8 item 38: the wrapper's own cost before the child starts. What
// can be asserted without timing is what the wrapper does not do: with
// -u it collects nothing (no nvidia-smi, which takes tens of milliseconds
// or more on a machine with GPUs), and it reads a git repository without
// starting git unless git may convert a changed file. The times
// themselves are benchmarks (scripts/bench.sh, docs/performance.md).

// markerCommand writes an executable name into a new directory that
// records each call in a marker file and then runs then (a shell command
// line, "$@" being the arguments). It returns the directory and the
// marker's path.
func markerCommand(t *testing.T, name, then string) (dir, marker string) {
	t.Helper()
	dir = t.TempDir()
	marker = filepath.Join(dir, "called")
	script := "#!/bin/sh\necho \"$*\" >> '" + marker + "'\n" + then + "\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, marker
}

func called(marker string) bool {
	_, err := os.Stat(marker)
	return err == nil
}

func TestHardening38UnobservedCollectsNothing(t *testing.T) {
	fake, marker := markerCommand(t, "nvidia-smi", "exit 1")
	env := []string{"PATH=" + fake + string(os.PathListSeparator) + os.Getenv("PATH")}
	dir := t.TempDir()

	r := sacred(t, dir, env, "run", "-u", "--", "sh", "-c", "exit 3")
	if r.code != 3 {
		t.Fatalf("exit %d, want the child's 3: %s", r.code, r.stderr)
	}
	r = sacred(t, dir, env, "run", "-u", "--summary-json", "s.json", "--", "true")
	if called(marker) {
		t.Error("sacred run -u ran nvidia-smi: host facts were collected though nothing records them")
	}
	if s := readJSON(t, filepath.Join(dir, "s.json")); r.code != 0 || s["experiment"] != "true" {
		t.Errorf("-u --summary-json: exit %d, summary %v, want the experiment named true", r.code, s)
	}

	// Recording a run still collects them.
	r = sacred(t, dir, env, "run", "-F", "runs", "--", "true")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !called(marker) {
		t.Error("sacred run -F did not look for GPUs")
	}

	// What -u still checks: a --source pattern that matches nothing, and
	// -e outside git.
	r = sacred(t, dir, env, "run", "-u", "--source", "nomatch*.py", "--", "true")
	if r.code == 0 || !strings.Contains(r.stderr, "matches no file") {
		t.Errorf("-u with a --source matching nothing: exit %d, %s", r.code, r.stderr)
	}
	r = sacred(t, dir, env, "run", "-u", "-e", "--", "true")
	if r.code == 0 || !strings.Contains(r.stderr, "not in a git repository") {
		t.Errorf("-u -e outside git: exit %d, %s", r.code, r.stderr)
	}
}

// gitRun runs the real git in dir, away from the user's configuration.
func gitRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL="+os.DevNull, "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// repositoryOf runs `sacred run -F runs -- true` in dir and returns the
// one repository recorded.
func repositoryOf(t *testing.T, dir string, env []string) map[string]any {
	t.Helper()
	os.RemoveAll(filepath.Join(dir, "runs"))
	r := sacred(t, dir, env, "run", "-F", "runs", "--", "true")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	ex := readJSON(t, filepath.Join(dir, "runs", "1", "run.json"))["experiment"].(map[string]any)
	repos, _ := ex["repositories"].([]any)
	if len(repos) != 1 {
		t.Fatalf("repositories = %v, want one", ex["repositories"])
	}
	return repos[0].(map[string]any)
}

// The repository is read from .git directly: a clean one starts no git
// process, nor a changed file; git is asked when attributes or
// core.autocrlf may make a changed file equal for it; without git
// installed the answer is the reader's own.
func TestHardening38GitReadWithoutGitProcess(t *testing.T) {
	realGit, err := exec.LookPath("git")
	if err != nil {
		t.Skip("the git command is not installed: the reference repository cannot be made")
	}
	repo := t.TempDir()
	gitRun(t, repo, "init", "-q", "-b", "main")
	if err := os.WriteFile(filepath.Join(repo, "train.py"), []byte("print(1)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, ".gitignore"), []byte("runs/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	gitRun(t, repo, "add", ".")
	gitRun(t, repo, "commit", "-q", "-m", "one")
	gitRun(t, repo, "remote", "add", "origin", "https://oauth2:s3cret@example.com/team/exp.git")
	gitRun(t, repo, "gc", "-q") // commit and trees in a pack, refs in packed-refs
	head := gitRun(t, repo, "rev-parse", "HEAD")

	fake, marker := markerCommand(t, "git", `exec '`+realGit+`' "$@"`)
	// The machine's own git settings (an autocrlf) stay out of it.
	env := []string{"PATH=" + fake + string(os.PathListSeparator) + os.Getenv("PATH"),
		"GIT_CONFIG_GLOBAL=" + os.DevNull, "GIT_CONFIG_NOSYSTEM=1"}

	got := repositoryOf(t, repo, env)
	if got["commit"] != head || got["dirty"] != false || got["url"] != "https://example.com/team/exp.git" {
		t.Errorf("clean repository recorded as %v, want commit %s, clean, the URL without credentials", got, head)
	}
	if called(marker) {
		calls, _ := os.ReadFile(marker)
		t.Errorf("a clean repository started git: %s", calls)
	}

	// A changed file is a change without asking git (git.diff, made
	// after the child started, does run git).
	if err := os.WriteFile(filepath.Join(repo, "train.py"), []byte("print(2)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got = repositoryOf(t, repo, env)
	if got["dirty"] != true {
		t.Errorf("modified file: recorded as %v, want dirty", got)
	}
	if calls, _ := os.ReadFile(marker); strings.Contains(string(calls), " status ") {
		t.Errorf("a changed file that git does not convert asked git status: %q", calls)
	}
	// Unless attributes may make it equal for git: then git decides.
	if err := os.WriteFile(filepath.Join(repo, ".gitattributes"), []byte("*.py text\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got = repositoryOf(t, repo, env); got["dirty"] != true {
		t.Errorf("modified file under attributes: recorded as %v, want dirty", got)
	}
	if calls, _ := os.ReadFile(marker); !strings.Contains(string(calls), " status ") {
		t.Errorf("a changed file under .gitattributes did not ask git status; git calls: %q", calls)
	}
	if err := os.Remove(filepath.Join(repo, ".gitattributes")); err != nil {
		t.Fatal(err)
	}

	// No git on PATH at all: sh and true only.
	bare := t.TempDir()
	for _, name := range []string{"sh", "true"} {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(bare, name)); err != nil {
			t.Fatal(err)
		}
	}
	noGit := []string{"PATH=" + bare, "GIT_CONFIG_GLOBAL=" + os.DevNull, "GIT_CONFIG_NOSYSTEM=1"}
	if got = repositoryOf(t, repo, noGit); got["dirty"] != true || got["commit"] != head {
		t.Errorf("modified file without git: recorded as %v, want commit %s, dirty", got, head)
	}
	if err := os.WriteFile(filepath.Join(repo, "train.py"), []byte("print(1)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got = repositoryOf(t, repo, noGit); got["dirty"] != false || got["commit"] != head {
		t.Errorf("restored file without git: recorded as %v, want commit %s, clean", got, head)
	}
}
