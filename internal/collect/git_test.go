package collect

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sacred-go/sacred/pkg/observer"
)

// gitCmd runs the real git in dir, isolated from the user's configuration.
func gitCmd(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := newGitTestCmd(dir, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// noUserGitConfig keeps the machine's own git settings (an autocrlf, an
// attributes file) away from the reader, as gitCmd keeps them from git.
func noUserGitConfig(t *testing.T) {
	t.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
}

// noGitCommand is lookGit on a machine without git.
func noGitCommand() (string, error) { return "", exec.ErrNotFound }

// brokenGitCommand is a git that cannot start: a test sees whether the
// git command was asked.
func brokenGitCommand() (string, error) { return "/nonexistent/git", nil }

func newGitTestCmd(dir string, args ...string) *exec.Cmd {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_GLOBAL="+os.DevNull, "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	return cmd
}

func needGit(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("the git command is not installed: these tests compare with real git")
	}
}

// newRepo makes a repository with two committed files, one in a
// subdirectory.
func newRepo(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	gitCmd(t, dir, "init", "-q", "-b", "main")
	writeFile(t, filepath.Join(dir, "train.py"), "print('hi')\n")
	writeFile(t, filepath.Join(dir, "pkg", "helpers.py"), "X = 1\n")
	gitCmd(t, dir, "add", ".")
	gitCmd(t, dir, "commit", "-q", "-m", "first")
	return dir
}

// gitDirty is the reference: what git itself says.
func gitDirty(t testing.TB, dir string) bool {
	return strings.TrimSpace(gitCmd(t, dir, "status", "--porcelain", "--untracked-files=no")) != ""
}

func TestGitDirtyMatchesGit(t *testing.T) {
	needGit(t)
	tests := []struct {
		name   string
		change func(t *testing.T, dir string)
		dirty  bool
	}{
		{"clean", func(*testing.T, string) {}, false},
		{"modified tracked file", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "train.py"), "print('changed')\n")
		}, true},
		{"same size modification", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "train.py"), "print('HI')\n")
		}, true},
		{"rewritten with the same content", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "train.py"), "print('hi')\n")
		}, false},
		{"staged change", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "pkg", "helpers.py"), "X = 2\n")
			gitCmd(t, dir, "add", "pkg/helpers.py")
		}, true},
		{"staged new file", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "new.py"), "Y = 1\n")
			gitCmd(t, dir, "add", "new.py")
		}, true},
		{"intent to add", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "new.py"), "Y = 1\n")
			gitCmd(t, dir, "add", "-N", "new.py")
		}, true},
		{"deleted tracked file", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "train.py")); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"deleted tracked directory replaced by a file", func(t *testing.T, dir string) {
			if err := os.RemoveAll(filepath.Join(dir, "pkg")); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, "pkg"), "now a file\n")
		}, true},
		{"staged deletion", func(t *testing.T, dir string) {
			gitCmd(t, dir, "rm", "-q", "--cached", "train.py")
		}, true},
		{"untracked file only", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "notes.txt"), "todo\n")
			writeFile(t, filepath.Join(dir, "pkg", "scratch.py"), "pass\n")
		}, false},
		{"executable bit", func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Join(dir, "train.py"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"committed again after change", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "train.py"), "print('v2')\n")
			gitCmd(t, dir, "commit", "-q", "-am", "second")
		}, false},
		{"change reverted in the index", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "train.py"), "print('v2')\n")
			gitCmd(t, dir, "add", "train.py")
			writeFile(t, filepath.Join(dir, "train.py"), "print('hi')\n")
		}, true},
		{"refreshed index after touch", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "train.py"), "print('hi')\n")
			gitCmd(t, dir, "update-index", "--refresh")
		}, false},
		{"racily clean: same size and mtime as the index", func(t *testing.T, dir string) {
			// The file changes within the index's own timestamp, so its
			// stat data still matches: only hashing can tell.
			p := filepath.Join(dir, "train.py")
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, p, "print('HI')\n")
			for _, f := range []string{p, filepath.Join(dir, ".git", "index")} {
				if err := os.Chtimes(f, fi.ModTime(), fi.ModTime()); err != nil {
					t.Fatal(err)
				}
			}
		}, true},
		{"symlink retargeted", func(t *testing.T, dir string) {
			if err := os.Symlink("train.py", filepath.Join(dir, "link")); err != nil {
				t.Skipf("symlinks unavailable: %v", err)
			}
			gitCmd(t, dir, "add", "link")
			gitCmd(t, dir, "commit", "-q", "-m", "link")
			os.Remove(filepath.Join(dir, "link"))
			if err := os.Symlink("pkg/helpers.py", filepath.Join(dir, "link")); err != nil {
				t.Fatal(err)
			}
		}, true},
	}
	// Without core.autocrlf or attributes git converts nothing, so the
	// built-in reader answers every case alone (TestGitConversionAsksGit
	// has those that ask git).
	noUserGitConfig(t)
	asksGit := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newRepo(t)
			tt.change(t, dir)
			// Ours first: git status below may rewrite the index.
			paths := []string{filepath.Join(dir, "train.py")}
			// Without git: the same answer (a differing file is a change).
			repos, err := gitRepositories(paths, noGitCommand)
			if err != nil || len(repos) != 1 || repos[0].Dirty != tt.dirty {
				t.Errorf("without the git command: %+v, %v; want dirty=%v", repos, err, tt.dirty)
			}
			// A git that cannot run fails exactly where git is asked.
			_, err = gitRepositories(paths, brokenGitCommand)
			if asksGit[tt.name] != (err != nil) {
				t.Errorf("asks git: %v (err %v), want %v", err != nil, err, asksGit[tt.name])
			}
			repos, err = Git(paths)
			if err != nil {
				t.Fatal(err)
			}
			if ref := gitDirty(t, dir); ref != tt.dirty {
				t.Fatalf("test premise wrong: git says dirty=%v", ref)
			}
			if len(repos) != 1 {
				t.Fatalf("got %d repositories, want 1: %+v", len(repos), repos)
			}
			if repos[0].Dirty != tt.dirty {
				t.Errorf("Dirty = %v, git status says %v", repos[0].Dirty, tt.dirty)
			}
			head := strings.TrimSpace(gitCmd(t, dir, "rev-parse", "HEAD"))
			if repos[0].Commit != head {
				t.Errorf("Commit = %q, want %q", repos[0].Commit, head)
			}
			// Run the same check through the stat fast path: git status
			// above refreshed the index, so stat data now matches.
			if again, err := Git([]string{dir}); err != nil || again[0].Dirty != tt.dirty {
				t.Errorf("second call: %+v, %v; want dirty=%v", again, err, tt.dirty)
			}
		})
	}
}

func TestGitSkipHashIndex(t *testing.T) {
	needGit(t)
	dir := newRepo(t)
	// index.skipHash (git 2.40+) leaves the trailing checksum zeroed.
	p := filepath.Join(dir, ".git", "index")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	copy(data[len(data)-20:], make([]byte, 20))
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	repos, err := Git([]string{dir})
	if err != nil || len(repos) != 1 || repos[0].Dirty {
		t.Fatalf("clean repository with a skipHash index: %+v, %v", repos, err)
	}
	writeFile(t, filepath.Join(dir, "train.py"), "changed\n")
	repos, err = Git([]string{dir})
	if err != nil || len(repos) != 1 || !repos[0].Dirty {
		t.Fatalf("dirty repository with a skipHash index: %+v, %v", repos, err)
	}
	// A wrong, non-zero checksum is still an error.
	data[len(data)-1] = 1
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Git([]string{dir}); err == nil {
		t.Error("corrupt index accepted")
	}
}

func TestGitSubmodule(t *testing.T) {
	needGit(t)
	lib := newRepo(t)
	dir := newRepo(t)
	gitCmd(t, dir, "-c", "protocol.file.allow=always", "submodule", "add", "-q", lib, "lib")
	gitCmd(t, dir, "commit", "-q", "-m", "submodule")
	repos, err := Git([]string{dir})
	if err != nil || len(repos) != 1 || repos[0].Dirty || gitDirty(t, dir) {
		t.Fatalf("clean with submodule: %+v, %v", repos, err)
	}
	// Moving the submodule's HEAD shows in git diff of the superproject.
	sub := filepath.Join(dir, "lib")
	writeFile(t, filepath.Join(sub, "new.py"), "1\n")
	gitCmd(t, sub, "add", ".")
	gitCmd(t, sub, "commit", "-q", "-m", "moved")
	repos, err = Git([]string{filepath.Join(dir, "train.py")})
	if err != nil || len(repos) != 1 || !repos[0].Dirty || !gitDirty(t, dir) {
		t.Fatalf("moved submodule: %+v, %v", repos, err)
	}
	// A path inside the submodule describes the submodule itself.
	repos, err = Git([]string{filepath.Join(sub, "new.py")})
	if err != nil || len(repos) != 1 || repos[0].Dirty || repos[0].Commit != strings.TrimSpace(gitCmd(t, sub, "rev-parse", "HEAD")) {
		t.Fatalf("inside submodule: %+v, %v", repos, err)
	}
}

func TestGitNoCommits(t *testing.T) {
	needGit(t)
	dir := t.TempDir()
	gitCmd(t, dir, "init", "-q")
	writeFile(t, filepath.Join(dir, "a.py"), "1\n")

	repos, err := Git([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 1 || repos[0].Commit != "" || repos[0].Dirty {
		t.Fatalf("empty index: got %+v, want one clean repository without commit", repos)
	}
	gitCmd(t, dir, "add", "a.py")
	repos, err = Git([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 1 || repos[0].Commit != "" || !repos[0].Dirty {
		t.Fatalf("staged file: got %+v, want one dirty repository without commit", repos)
	}
}

func TestGitURLAndSubdirectories(t *testing.T) {
	needGit(t)
	dir := newRepo(t)
	sub := filepath.Join(dir, "pkg")

	// No remote: Sacred's "git:/" + working dir.
	repos, err := Git([]string{filepath.Join(sub, "helpers.py"), sub, filepath.Join(dir, "train.py")})
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 1 {
		t.Fatalf("one repository expected for three paths in it, got %+v", repos)
	}
	if want := "git:/" + dir; repos[0].URL != want {
		t.Errorf("URL = %q, want %q", repos[0].URL, want)
	}

	// The first remote by name when there is no origin.
	gitCmd(t, dir, "remote", "add", "zeta", "https://example.com/z.git")
	gitCmd(t, dir, "remote", "add", "alpha", "https://user:s3cret@example.com/a.git")
	repos, _ = Git([]string{sub})
	if len(repos) != 1 || repos[0].URL != "https://example.com/a.git" {
		t.Errorf("without origin: %+v, want the alpha remote without credentials", repos)
	}
	gitCmd(t, dir, "remote", "add", "origin", "https://oauth2:ghp_token@github.com/o/r.git")
	repos, _ = Git([]string{sub})
	if len(repos) != 1 || repos[0].URL != "https://github.com/o/r.git" {
		t.Errorf("with origin: %+v", repos)
	}
	if strings.Contains(fmt.Sprint(repos), "ghp_token") {
		t.Error("token leaked")
	}
}

func TestGitOutsideAndNested(t *testing.T) {
	needGit(t)
	plain := t.TempDir()
	writeFile(t, filepath.Join(plain, "x.py"), "1\n")
	repos, err := Git([]string{filepath.Join(plain, "x.py"), filepath.Join(plain, "missing.py")})
	if err != nil || repos == nil || len(repos) != 0 {
		t.Fatalf("outside git: %+v, %v; want an empty list", repos, err)
	}

	// A repository inside another: one entry each, outer first.
	outer := newRepo(t)
	inner := filepath.Join(outer, "vendor", "lib")
	writeFile(t, filepath.Join(inner, "lib.py"), "2\n")
	gitCmd(t, inner, "init", "-q")
	gitCmd(t, inner, "add", ".")
	gitCmd(t, inner, "commit", "-q", "-m", "inner")
	repos, err = Git([]string{filepath.Join(outer, "train.py"), filepath.Join(inner, "lib.py")})
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 2 || repos[0].URL != "git:/"+outer || repos[1].URL != "git:/"+inner {
		t.Fatalf("nested: %+v", repos)
	}
	if repos[1].Dirty {
		t.Error("inner repository is clean")
	}
}

func TestGitLinkedWorktree(t *testing.T) {
	needGit(t)
	dir := newRepo(t)
	wt := filepath.Join(t.TempDir(), "wt")
	gitCmd(t, dir, "worktree", "add", "-q", wt)
	writeFile(t, filepath.Join(wt, "train.py"), "print('in worktree')\n")
	repos, err := Git([]string{filepath.Join(wt, "train.py")})
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 1 || !repos[0].Dirty || repos[0].Commit != strings.TrimSpace(gitCmd(t, dir, "rev-parse", "HEAD")) {
		t.Fatalf("linked worktree: %+v", repos)
	}
	if repos, _ := Git([]string{dir}); len(repos) != 1 || repos[0].Dirty {
		t.Fatalf("main worktree must stay clean: %+v", repos)
	}
}

func TestGitConcurrent(t *testing.T) {
	needGit(t)
	clean := newRepo(t)
	dirty := newRepo(t)
	writeFile(t, filepath.Join(dirty, "train.py"), "changed\n")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			dir, want := clean, false
			if i%2 == 1 {
				dir, want = dirty, true
			}
			repos, err := Git([]string{dir})
			if err != nil {
				errs <- err
				return
			}
			if len(repos) != 1 || repos[0].Dirty != want {
				errs <- fmt.Errorf("%s: %+v, want dirty=%v", dir, repos, want)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestStripURLCredentials(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:token@host/x":                       "https://host/x",
		"https://ghp_abc@github.com/o/r.git":              "https://github.com/o/r.git",
		"http://u:p@host:8080/r?x=1":                      "http://host:8080/r",
		"https://example.com/x.git?access_token=tok#frag": "https://example.com/x.git",
		"https://host/x.git#tok":                          "https://host/x.git",
		"https://host?tok@evil/x":                         "https://host",
		"ssh://git@host/x.git?key=secret":                 "ssh://git@host/x.git",
		"file:///srv/a?b#c":                               "file:///srv/a?b#c",
		"https://host/path@v1":                            "https://host/path@v1",
		"https://u:p%40ss@host/x":                         "https://host/x",
		"https://u:p@ss@host/x":                           "https://host/x",
		"ssh://user:pw@host/x.git":                        "ssh://user@host/x.git",
		"ssh://git@github.com/o/r.git":                    "ssh://git@github.com/o/r.git",
		"ssh://:pw@host/x":                                "ssh://host/x",
		"git+ssh://me:pw@host/x":                          "git+ssh://me@host/x",
		"git@github.com:o/r.git":                          "git@github.com:o/r.git",
		"/srv/git/repo.git":                               "/srv/git/repo.git",
		"git://home/user/x":                               "git://home/user/x",
		"file:///tmp/x":                                   "file:///tmp/x",
		"https://host":                                    "https://host",
		"https://tok@host":                                "https://host",
		"":                                                "",
	} {
		if got := StripURLCredentials(in); got != want {
			t.Errorf("StripURLCredentials(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEnforceClean(t *testing.T) {
	if err := EnforceClean(nil); err == nil || err.Error() != "not in a git repository" {
		t.Errorf("no repositories: %v", err)
	}
	clean := observer.Repository{URL: "https://h/a", Commit: "abc"}
	if err := EnforceClean([]observer.Repository{clean}); err != nil {
		t.Errorf("clean: %v", err)
	}
	err := EnforceClean([]observer.Repository{clean, {URL: "https://h/b", Dirty: true}})
	if err == nil || !strings.Contains(err.Error(), "repository https://h/b is dirty") {
		t.Errorf("dirty: %v", err)
	}
}

// BenchmarkGit measures Git on a clean repository of 3000 files, the case
// every run pays for.
func BenchmarkGit(b *testing.B) {
	needGit(b)
	dir := b.TempDir()
	gitCmd(b, dir, "init", "-q")
	for i := 0; i < 3000; i++ {
		writeFile(b, filepath.Join(dir, fmt.Sprintf("d%02d", i%50), fmt.Sprintf("f%04d.py", i)), fmt.Sprintf("x = %d\n", i))
	}
	gitCmd(b, dir, "add", ".")
	gitCmd(b, dir, "commit", "-q", "-m", "many")
	gitCmd(b, dir, "status", "--porcelain") // let git refresh racy entries, as a real repository is
	b.Run("clean", func(b *testing.B) {
		for b.Loop() {
			repos, err := Git([]string{dir})
			if err != nil || len(repos) != 1 || repos[0].Dirty {
				b.Fatalf("%+v %v", repos, err)
			}
		}
	})
	writeFile(b, filepath.Join(dir, "d49", "f2999.py"), "changed\n")
	gitCmd(b, dir, "add", ".")
	b.Run("staged-last-file", func(b *testing.B) {
		for b.Loop() {
			repos, err := Git([]string{dir})
			if err != nil || len(repos) != 1 || !repos[0].Dirty {
				b.Fatalf("%+v %v", repos, err)
			}
		}
	})
}
