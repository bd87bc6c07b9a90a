package collect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// dirtyRepo makes a repository and changes it every way git apply must
// recreate: staged, unstaged and both; deleted; mode changes; binary
// content; new files staged and untracked (empty, executable, without a
// final newline, names needing quotes, a symlink); and files that are left
// out (ignored, binary, too large).
func dirtyRepo(t *testing.T) string {
	dir := t.TempDir()
	gitCmd(t, dir, "init", "-q", "-b", "main")
	writeFiles(t, dir, map[string]string{
		"a.txt":         "one\ntwo\nthree\n",
		"b.txt":         "bee\n",
		"run.sh":        "#!/bin/sh\necho hi\n",
		"gone.txt":      "bye\n",
		"sub/d.txt":     "deep\n",
		"data.bin":      "\x00\x01\x02binary\x00",
		".gitignore":    "*.log\n",
		"sp ace.txt":    "space\n",
		"caf\u00e9.txt": "accent\n",
	})
	gitCmd(t, dir, "add", ".")
	gitCmd(t, dir, "commit", "-q", "-m", "first")

	writeFiles(t, dir, map[string]string{
		"a.txt":         "one\n2\nthree\nfour",            // unstaged, no final newline
		"b.txt":         "bee staged\n",                   // staged, then changed again below
		"data.bin":      "\x00\x09\x02binary\x00\xff",     // binary, tracked
		"staged.txt":    "new and staged\n",               // new, staged
		"sub/e.txt":     "new in sub\n",                   // untracked
		"new.txt":       "no final newline",               // untracked
		"empty.txt":     "",                               // untracked, empty
		"tab\there.txt": "a tab in the name\n",            // untracked, quoted name
		"caf\u00e9.txt": "accent changed\n",               // non-ASCII name
		"sp ace.txt":    "space changed\r\nwith crlf\r\n", // a space in the name, CRLF
		"new space.txt": "a space in an untracked name\n",
		"run.log":       "ignored\n", // ignored
		"blob.bin":      "x\x00y",    // untracked binary: left out
		"big.txt":       strings.Repeat("big line\n", (MaxUntrackedDiffFile/9)+10),
	})
	gitCmd(t, dir, "add", "b.txt", "staged.txt")
	writeFiles(t, dir, map[string]string{"b.txt": "bee staged and unstaged\n"})
	if err := os.Remove(filepath.Join(dir, "gone.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "run.sh"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"tool.sh": "#!/bin/sh\nexit 0\n"}) // untracked, executable
	if err := os.Symlink("sub/d.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// tree reads every file under dir but .git, with its mode bits that git
// keeps (executable, symlink).
func tree(t *testing.T, dir string, skip ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		for _, s := range skip {
			if rel == s {
				return nil
			}
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "symlink to " + target
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = fmt.Sprintf("%v %q", fi.Mode()&0o100 != 0, b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The diff applied to a clean checkout of HEAD gives the tree that ran,
// but for the files it says it left out.
func TestGitDiffApplies(t *testing.T) {
	needGit(t)
	t.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	repo := dirtyRepo(t)
	out := filepath.Join(t.TempDir(), "git.diff")
	p, err := GitDiff(context.Background(), repo, out, 0, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if p != out {
		t.Fatalf("GitDiff returned %q, want %q", p, out)
	}
	diff := readFile(t, p)
	for _, want := range []string{
		"# sacred: capped at 1048576 bytes of diff; left out:",
		"big.txt (untracked, over 100 KiB)",
		"blob.bin (untracked, binary)",
	} {
		if !strings.Contains(diff, want) {
			t.Errorf("git.diff lacks %q:\n%s", want, head(diff))
		}
	}
	if strings.Contains(diff, "run.log") {
		t.Error("git.diff holds an ignored file")
	}

	clone := filepath.Join(t.TempDir(), "clone")
	gitCmd(t, repo, "clone", "-q", repo, clone)
	gitCmd(t, clone, "apply", p)
	want := tree(t, repo, "big.txt", "blob.bin", "run.log")
	got := tree(t, clone)
	for name, w := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("%s: missing after git apply", name)
		} else if g != w {
			t.Errorf("%s after git apply: %s, want %s", name, g, w)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: present after git apply, but not in the tree that ran", name)
		}
	}
}

func head(s string) string {
	if i := strings.Index(s, "diff --git"); i >= 0 {
		return s[:i]
	}
	return s
}

func TestGitDiffCleanWritesNothing(t *testing.T) {
	needGit(t)
	repo := newRepo(t)
	writeFiles(t, repo, map[string]string{"untracked.txt": "only untracked\n"})
	out := filepath.Join(t.TempDir(), "git.diff")
	p, err := GitDiff(context.Background(), repo, out, 0, time.Time{})
	if err != nil || p != "" {
		t.Fatalf("GitDiff of a clean repository = %q, %v; want nothing", p, err)
	}
	if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file was written for a clean repository: %v", err)
	}
}

// Files that would take the diff past the cap are left out whole, and
// named; the others still apply.
func TestGitDiffCap(t *testing.T) {
	needGit(t)
	t.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	repo := newRepo(t)
	writeFiles(t, repo, map[string]string{
		"train.py":       "print('changed')\n",
		"pkg/helpers.py": strings.Repeat("X = 2\n", 100),
		"small.txt":      "small\n",
	})
	const limit = 300
	p, err := GitDiff(context.Background(), repo, filepath.Join(t.TempDir(), "git.diff"), limit, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	diff := readFile(t, p)
	body := diff[len(head(diff)):]
	if len(body) > limit {
		t.Errorf("diff body is %d bytes, over the cap %d", len(body), limit)
	}
	for _, want := range []string{"capped at 300 bytes", "pkg/helpers.py (over the cap)"} {
		if !strings.Contains(head(diff), want) {
			t.Errorf("header lacks %q:\n%s", want, head(diff))
		}
	}
	if !strings.Contains(body, "+print('changed')") || !strings.Contains(body, "+small") {
		t.Errorf("the files under the cap are missing:\n%s", body)
	}
	clone := filepath.Join(t.TempDir(), "clone")
	gitCmd(t, repo, "clone", "-q", repo, clone)
	gitCmd(t, clone, "apply", p)
	if got := readFile(t, filepath.Join(clone, "train.py")); got != "print('changed')\n" {
		t.Errorf("train.py after git apply = %q", got)
	}
}

// A repository without a commit: the diff is against the empty tree and
// applies to an empty directory.
func TestGitDiffNoCommit(t *testing.T) {
	needGit(t)
	repo := t.TempDir()
	gitCmd(t, repo, "init", "-q")
	writeFiles(t, repo, map[string]string{"a.txt": "staged\n", "b.txt": "untracked\n"})
	gitCmd(t, repo, "add", "a.txt")
	p, err := GitDiff(context.Background(), repo, filepath.Join(t.TempDir(), "git.diff"), 0, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(readFile(t, p), "against the empty tree") {
		t.Errorf("header does not say the diff is against the empty tree:\n%s", head(readFile(t, p)))
	}
	empty := t.TempDir()
	gitCmd(t, empty, "init", "-q")
	gitCmd(t, empty, "apply", p)
	if got, want := tree(t, empty), tree(t, repo); !equalMaps(got, want) {
		t.Errorf("after git apply: %v, want %v", got, want)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// GitDiffs finds the repositories of the sources, writes git.diff for the
// dirty one and nothing when the record says every repository is clean.
func TestGitDiffs(t *testing.T) {
	needGit(t)
	repo := newRepo(t)
	ex, err := Experiment([]string{"python3", "train.py"}, repo, "", nil, ExperimentOptions{Deps: DepsNone})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if files, err := GitDiffs(context.Background(), ex, dir, 0, time.Time{}); err != nil || len(files) != 0 {
		t.Fatalf("GitDiffs of a clean run = %v, %v", files, err)
	}
	writeFiles(t, repo, map[string]string{"train.py": "print('changed')\n"})
	ex, err = Experiment([]string{"python3", "train.py"}, repo, "", nil, ExperimentOptions{Deps: DepsNone})
	if err != nil {
		t.Fatal(err)
	}
	files, err := GitDiffs(context.Background(), ex, dir, 0, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || files[0].Name != "git.diff" || files[0].Root != repo {
		t.Fatalf("GitDiffs = %+v, want git.diff of %s", files, repo)
	}
	if !bytes.Contains([]byte(readFile(t, files[0].Path)), []byte("+print('changed')")) {
		t.Errorf("git.diff lacks the change")
	}
	if roots := RepositoryRoots(observer.Experiment{BaseDir: filepath.Join(repo, "pkg")}); len(roots) != 1 || roots[0] != repo {
		t.Errorf("RepositoryRoots of a subdirectory = %q, want %q", roots, repo)
	}
}

func TestGitDiffWithoutGit(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := GitDiff(context.Background(), t.TempDir(), filepath.Join(t.TempDir(), "git.diff"), 0, time.Time{})
	if !errors.Is(err, ErrNoGitCommand) {
		t.Errorf("GitDiff without git: %v, want ErrNoGitCommand", err)
	}
}

func TestQuotePath(t *testing.T) {
	for in, want := range map[string]string{
		"a/plain.txt":   "a/plain.txt",
		"a/sp ace":      "a/sp ace",
		"a/tab\there":   `"a/tab\there"`,
		"a/caf\u00e9":   `"a/caf\303\251"`,
		`a/q"uote\back`: `"a/q\"uote\\back"`,
	} {
		if got := quotePath(in); got != want {
			t.Errorf("quotePath(%q) = %s, want %s", in, got, want)
		}
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Untracked files are the run's inputs: files written since the run
// started, sacred stores kept in the repository, and files that usually
// hold credentials are left out and said to be.
func TestGitDiffLeavesOutTheRunsOutputs(t *testing.T) {
	needGit(t)
	repo := newRepo(t)
	writeFiles(t, repo, map[string]string{
		"train.py":            "print('changed')\n",
		"input.txt":           "an input\n",
		"output.txt":          "written by the run\n",
		"runs/_sources/a.py":  "x\n",
		"runs/1/run.json":     "{}",
		"runs/1/cout.txt":     "out\n",
		"other/runs/note.txt": "not a store\n",
		".env":                "API_TOKEN=hunter2\n",
		"conf/db_secret.yaml": "password: hunter2\n",
		"tokenizer.py":        "def tokenize(s): return s.split()\n",
	})
	since := time.Now()
	if err := os.Chtimes(filepath.Join(repo, "input.txt"), since.Add(-time.Hour), since.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"other/runs/note.txt", "tokenizer.py"} {
		if err := os.Chtimes(filepath.Join(repo, f), since.Add(-time.Hour), since.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(filepath.Join(repo, "output.txt"), since.Add(time.Second), since.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	p, err := GitDiff(context.Background(), repo, filepath.Join(t.TempDir(), "git.diff"), 0, since)
	if err != nil {
		t.Fatal(err)
	}
	diff := readFile(t, p)
	hdr, body := head(diff), diff[len(head(diff)):]
	for _, want := range []string{"b/input.txt", "b/other/runs/note.txt", "+print('changed')", "b/tokenizer.py"} {
		if !strings.Contains(body, want) {
			t.Errorf("diff lacks %q:\n%s", want, body)
		}
	}
	for _, unwanted := range []string{"output.txt", "runs/1", "_sources", "hunter2"} {
		if strings.Contains(body, unwanted) {
			t.Errorf("diff holds %q:\n%s", unwanted, body)
		}
	}
	for _, want := range []string{"output.txt (untracked, written during the run)", "runs/ (a sacred store: 3 untracked files)",
		".env (untracked, may hold secrets)", "conf/db_secret.yaml (untracked, may hold secrets)"} {
		if !strings.Contains(hdr, want) {
			t.Errorf("header lacks %q:\n%s", want, hdr)
		}
	}
}
