package collect

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The built-in reader of .git against real git: packs with both kinds of
// delta, an index without a usable cache-tree, index versions 3 and 4,
// SHA-256 repositories, refs in packed-refs, alternates, and the formats
// it leaves to the git command.

// deepRepo makes a repository of 40 files in nested directories and 60
// in one wide directory, then commits that change one file of each, so
// that packed trees are stored as deltas of one another.
func deepRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	gitCmd(t, dir, "init", "-q", "-b", "main")
	for i := 0; i < 40; i++ {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("a%d", i%3), fmt.Sprintf("b%d", i%4), fmt.Sprintf("f%02d.py", i)), fmt.Sprintf("x = %d\n", i))
	}
	for i := 0; i < 60; i++ {
		writeFile(t, filepath.Join(dir, "wide", fmt.Sprintf("w%02d.py", i)), fmt.Sprintf("w = %d\n", i))
	}
	gitCmd(t, dir, "add", ".")
	gitCmd(t, dir, "commit", "-q", "-m", "c0")
	for c := 1; c < 6; c++ {
		writeFile(t, filepath.Join(dir, "wide", fmt.Sprintf("w%02d.py", c)), fmt.Sprintf("w = %d # commit %d\n", c, c))
		writeFile(t, filepath.Join(dir, fmt.Sprintf("a%d", c%3), fmt.Sprintf("b%d", c%4), fmt.Sprintf("f%02d.py", c)), fmt.Sprintf("x = %d # commit %d\n", c, c))
		gitCmd(t, dir, "commit", "-q", "-am", fmt.Sprint("c", c))
	}
	return dir
}

// checkAgainstGit compares the reader alone (no git command) with git.
func checkAgainstGit(t *testing.T, dir string, wantDirty bool) {
	t.Helper()
	repos, err := gitRepositories([]string{dir}, noGitCommand)
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 1 {
		t.Fatalf("got %+v, want one repository", repos)
	}
	if head := strings.TrimSpace(gitCmd(t, dir, "rev-parse", "HEAD")); repos[0].Commit != head {
		t.Errorf("Commit = %q, git says %q", repos[0].Commit, head)
	}
	if ref := gitDirty(t, dir); ref != wantDirty {
		t.Fatalf("test premise wrong: git says dirty=%v:\n%s", ref, gitCmd(t, dir, "status", "--porcelain", "--untracked-files=no"))
	}
	if repos[0].Dirty != wantDirty {
		t.Errorf("Dirty = %v, git says %v", repos[0].Dirty, wantDirty)
	}
}

// restage makes the index equal to HEAD again while leaving no valid
// cache-tree, so that HEAD's trees must be read and compared entry by
// entry.
func restage(t *testing.T, dir string) {
	t.Helper()
	gitCmd(t, dir, "rm", "-r", "-q", "-f", "--cached", ".")
	gitCmd(t, dir, "add", ".")
}

func TestGitReaderPacks(t *testing.T) {
	needGit(t)
	for _, tc := range []struct {
		name   string
		repack []string
	}{
		{"loose objects", nil},
		{"ofs deltas", []string{"-c", "pack.window=50", "repack", "-adfq", "--depth=50"}},
		{"ref deltas", []string{"-c", "repack.useDeltaBaseOffset=false", "-c", "pack.window=50", "repack", "-adfq", "--depth=50"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := deepRepo(t)
			if tc.repack != nil {
				gitCmd(t, dir, tc.repack...)
				gitCmd(t, dir, "prune-packed")
				if loose := strings.TrimSpace(gitCmd(t, dir, "count-objects")); !strings.HasPrefix(loose, "0 objects") {
					t.Fatalf("objects left loose: %s", loose)
				}
			}
			checkAgainstGit(t, dir, false)

			restage(t, dir)
			checkAgainstGit(t, dir, false)

			// A staged change deep down, found by the walk.
			writeFile(t, filepath.Join(dir, "a0", "b3", "f39.py"), "changed\n")
			gitCmd(t, dir, "add", ".")
			writeFile(t, filepath.Join(dir, "a0", "b3", "f39.py"), "x = 39\n")
			checkAgainstGit(t, dir, true)

			// A staged mode change only.
			restage(t, dir)
			gitCmd(t, dir, "update-index", "--chmod=+x", "a0/b0/f00.py")
			checkAgainstGit(t, dir, true)
			gitCmd(t, dir, "update-index", "--chmod=-x", "a0/b0/f00.py")
			checkAgainstGit(t, dir, false)

			// A file staged for removal, the last in the tree.
			gitCmd(t, dir, "rm", "-q", "--cached", "a0/b3/f39.py")
			checkAgainstGit(t, dir, true)

			// An old commit: a pack keeps the newest trees whole and the
			// older ones as deltas against them.
			gitCmd(t, dir, "reset", "-q", "--hard")
			gitCmd(t, dir, "checkout", "-q", "--detach", "HEAD~4")
			restage(t, dir)
			checkAgainstGit(t, dir, false)
			if tc.repack != nil {
				deltas := 0
				for _, l := range strings.Split(gitCmd(t, dir, "verify-pack", "-v", packIndex(t, dir)), "\n") {
					if f := strings.Fields(l); len(f) == 7 && f[1] == "tree" {
						deltas++
					}
				}
				if deltas == 0 {
					t.Fatal("premise: no tree is stored as a delta")
				}
			}
		})
	}
}

func packIndex(t *testing.T, dir string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, ".git", "objects", "pack", "*.idx"))
	if err != nil || len(m) != 1 {
		t.Fatalf("want one pack: %v %v", m, err)
	}
	return m[0]
}

func TestGitReaderIndexVersions(t *testing.T) {
	needGit(t)
	for _, v := range []string{"2", "3", "4"} {
		t.Run("v"+v, func(t *testing.T) {
			dir := deepRepo(t)
			gitCmd(t, dir, "update-index", "--index-version", v)
			checkAgainstGit(t, dir, false)
			restage(t, dir)
			gitCmd(t, dir, "update-index", "--index-version", v)
			checkAgainstGit(t, dir, false)
			if err := os.Remove(filepath.Join(dir, "a1", "b1", "f13.py")); err != nil {
				t.Fatal(err)
			}
			checkAgainstGit(t, dir, true)
		})
	}
}

// A skip-worktree entry (sparse checkout) is not looked for on disk:
// this needs the extended flags of index version 3.
func TestGitReaderSkipWorktree(t *testing.T) {
	needGit(t)
	dir := newRepo(t)
	gitCmd(t, dir, "update-index", "--skip-worktree", "train.py")
	if err := os.Remove(filepath.Join(dir, "train.py")); err != nil {
		t.Fatal(err)
	}
	checkAgainstGit(t, dir, false)
}

func TestGitReaderSHA256(t *testing.T) {
	needGit(t)
	dir := t.TempDir()
	cmd := []string{"init", "-q", "--object-format=sha256"}
	if out, err := tryGit(dir, cmd...); err != nil {
		t.Skipf("this git makes no SHA-256 repositories: %v %s", err, out)
	}
	writeFile(t, filepath.Join(dir, "d", "a.py"), "1\n")
	writeFile(t, filepath.Join(dir, "b.py"), "2\n")
	gitCmd(t, dir, "add", ".")
	gitCmd(t, dir, "commit", "-q", "-m", "one")
	checkAgainstGit(t, dir, false)
	gitCmd(t, dir, "repack", "-adq")
	restage(t, dir)
	checkAgainstGit(t, dir, false)
	writeFile(t, filepath.Join(dir, "d", "a.py"), "1\n") // same bytes, new mtime: hashed
	checkAgainstGit(t, dir, false)
	writeFile(t, filepath.Join(dir, "d", "a.py"), "3\n")
	gitCmd(t, dir, "add", ".")
	checkAgainstGit(t, dir, true)
}

func tryGit(dir string, args ...string) (string, error) {
	cmd := newGitTestCmd(dir, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestGitReaderRefs(t *testing.T) {
	needGit(t)
	dir := newRepo(t)
	first := strings.TrimSpace(gitCmd(t, dir, "rev-parse", "HEAD"))
	writeFile(t, filepath.Join(dir, "train.py"), "print('v2')\n")
	gitCmd(t, dir, "commit", "-q", "-am", "second")

	// The branch only in packed-refs.
	gitCmd(t, dir, "pack-refs", "--all", "--prune")
	if _, err := os.Stat(filepath.Join(dir, ".git", "refs", "heads", "main")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("premise: the loose ref is still there: %v", err)
	}
	checkAgainstGit(t, dir, false)

	// A detached HEAD.
	gitCmd(t, dir, "checkout", "-q", "--detach", first)
	checkAgainstGit(t, dir, false)

	// A symbolic ref to a symbolic ref.
	gitCmd(t, dir, "checkout", "-q", "main")
	gitCmd(t, dir, "symbolic-ref", "refs/heads/alias", "refs/heads/main")
	gitCmd(t, dir, "symbolic-ref", "HEAD", "refs/heads/alias")
	checkAgainstGit(t, dir, false)

	// A branch with no commit yet, in a repository that has commits.
	gitCmd(t, dir, "checkout", "-q", "--orphan", "fresh")
	repos, err := gitRepositories([]string{dir}, noGitCommand)
	if err != nil || len(repos) != 1 || repos[0].Commit != "" || !repos[0].Dirty {
		t.Fatalf("orphan branch with staged files: %+v, %v", repos, err)
	}
}

// A clone that borrows its objects from another repository.
func TestGitReaderAlternates(t *testing.T) {
	needGit(t)
	src := deepRepo(t)
	gitCmd(t, src, "repack", "-adq")
	dst := filepath.Join(t.TempDir(), "clone")
	gitCmd(t, src, "clone", "-q", "--shared", src, dst)
	restage(t, dst)
	checkAgainstGit(t, dst, false)
}

// Formats the reader does not read are left to git, whose answer is the
// record's; without git they are an error (the run warns and records no
// repository) rather than a guess.
func TestGitReaderUnsupportedFormat(t *testing.T) {
	needGit(t)
	dir := newRepo(t)
	gitCmd(t, dir, "update-index", "--split-index")
	if _, err := gitRepositories([]string{dir}, noGitCommand); err == nil || !errors.Is(err, errGitUnsupported) {
		t.Fatalf("split index without git: %v, want an error naming the format", err)
	}
	gitCmd(t, dir, "remote", "add", "origin", "https://u:tok@example.com/r.git")
	repos, err := Git([]string{dir})
	if err != nil || len(repos) != 1 || repos[0].Dirty || repos[0].URL != "https://example.com/r.git" ||
		repos[0].Commit != strings.TrimSpace(gitCmd(t, dir, "rev-parse", "HEAD")) {
		t.Fatalf("split index through git: %+v, %v", repos, err)
	}
	writeFile(t, filepath.Join(dir, "train.py"), "changed\n")
	if repos, err := Git([]string{dir}); err != nil || len(repos) != 1 || !repos[0].Dirty {
		t.Fatalf("split index, dirty, through git: %+v, %v", repos, err)
	}
}

// A bare repository, or a .git that is not a repository, is not described.
func TestGitReaderNotARepository(t *testing.T) {
	needGit(t)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	if repos, err := gitRepositories([]string{dir}, noGitCommand); err != nil || len(repos) != 0 {
		t.Fatalf("empty .git: %+v, %v", repos, err)
	}
	writeFile(t, filepath.Join(dir, "sub", ".git"), "not a gitdir line\n")
	if repos, err := gitRepositories([]string{filepath.Join(dir, "sub")}, noGitCommand); err != nil || len(repos) != 0 {
		t.Fatalf(".git file without gitdir: %+v, %v", repos, err)
	}
	bare := filepath.Join(t.TempDir(), "b")
	gitCmd(t, filepath.Dir(bare), "init", "-q", "--bare", bare)
	if err := os.Rename(bare, filepath.Join(dir, "x", ".git")); err != nil {
		if err := os.MkdirAll(filepath.Join(dir, "x"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(bare, filepath.Join(dir, "x", ".git")); err != nil {
			t.Fatal(err)
		}
	}
	if repos, err := gitRepositories([]string{filepath.Join(dir, "x")}, noGitCommand); err != nil || len(repos) != 0 {
		t.Fatalf("bare repository as .git: %+v, %v", repos, err)
	}
}

func TestParseGitConfig(t *testing.T) {
	c := parseGitConfig([]byte(`# comment
[core]
	repositoryformatversion = 0
	FileMode = false ; trailing comment
	bare
[remote "origin"]
	url = "https://example.com/a b.git" # quoted
	fetch = +refs/heads/*:refs/remotes/origin/*
[Remote "Up\"stream"] url = git@host:x.git
[remote.legacy]
	url = /srv/a\
b
[broken
[section]
	key = "unterminated
	tabs = a\tb  c	 d  
	url = first
	url = second
[remote "origin"]
	url = ignored-second-url
`))
	for name, want := range map[string]string{
		"core.repositoryformatversion": "0",
		"core.filemode":                "false",
		"core.bare":                    "true",
		"remote.origin.url":            "ignored-second-url", // get: the last
		`remote.Up"stream.url`:         "git@host:x.git",
		"remote.legacy.url":            "/srv/ab",
		"section.tabs":                 "a\tb  c  d", // each blank a space, as git
		"section.url":                  "second",
	} {
		if got, ok := c.get(name); !ok || got != want {
			t.Errorf("%s = %q (%v), want %q", name, got, ok, want)
		}
	}
	if v := c.values["remote.origin.url"]; len(v) != 2 || v[0] != "https://example.com/a b.git" {
		t.Errorf("remote.origin.url values %q", v)
	}
	if _, ok := c.get("section.key"); ok {
		t.Error("an unterminated quote was taken")
	}
	if c.bool("core.filemode", true) || !c.bool("core.bare", false) || !c.bool("core.missing", true) {
		t.Error("bool values")
	}
}

func FuzzParseGitIndex(f *testing.F) {
	f.Add([]byte("DIRC\x00\x00\x00\x02\x00\x00\x00\x00"+strings.Repeat("\x00", 20)), 20)
	if _, err := tryGit(".", "--version"); err == nil {
		dir := f.TempDir()
		for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"commit", "-q", "-m", "x"}, {"update-index", "--index-version", "4"}} {
			if args[0] == "add" {
				os.MkdirAll(filepath.Join(dir, "d"), 0o755)
				os.WriteFile(filepath.Join(dir, "d", "a"), []byte("a"), 0o644)
				os.WriteFile(filepath.Join(dir, "b"), []byte("b"), 0o644)
			}
			if out, err := tryGit(dir, args...); err != nil {
				f.Fatalf("git %v: %v %s", args, err, out)
			}
		}
		data, err := os.ReadFile(filepath.Join(dir, ".git", "index"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, 20)
	}
	f.Fuzz(func(t *testing.T, data []byte, hashSize int) {
		if hashSize != 20 && hashSize != 32 {
			return
		}
		// Skip the checksum so that the fuzzer reaches the entries.
		if len(data) >= hashSize {
			copy(data[len(data)-hashSize:], make([]byte, hashSize))
		}
		parseGitIndex(data, hashSize) // must not panic
	})
}

// A changed file that git may convert (core.autocrlf, attributes) is
// decided by git, which may find it equal to the index; any other changed
// file is a change without asking.
func TestGitConversionAsksGit(t *testing.T) {
	needGit(t)
	noUserGitConfig(t)

	// core.autocrlf: git decides (it calls a CRLF copy of a file of
	// another size modified, as its status does for any size change).
	dir := newRepo(t)
	gitCmd(t, dir, "config", "core.autocrlf", "true")
	writeFile(t, filepath.Join(dir, "train.py"), "print('hi')\r\n")
	if _, err := gitRepositories([]string{dir}, brokenGitCommand); err == nil {
		t.Error("core.autocrlf: git was not asked")
	}
	if repos, err := Git([]string{dir}); err != nil || len(repos) != 1 || repos[0].Dirty != gitDirty(t, dir) {
		t.Errorf("core.autocrlf, CRLF copy: %+v, %v; want what git says", repos, err)
	}

	// A clean filter makes other bytes equal to the index for git.
	dir = newRepo(t)
	gitCmd(t, dir, "config", "filter.upper.clean", "tr a-z A-Z")
	writeFile(t, filepath.Join(dir, "pkg", ".gitattributes"), "*.py filter=upper\n")
	gitCmd(t, dir, "add", "pkg/.gitattributes")
	gitCmd(t, dir, "add", "--renormalize", ".")
	gitCmd(t, dir, "commit", "-q", "-m", "filter")
	writeFile(t, filepath.Join(dir, "pkg", "helpers.py"), "x = 1\n") // the index holds "X = 1"
	if ref := gitDirty(t, dir); ref {
		t.Fatal("premise: git says the filtered file changed")
	}
	writeFile(t, filepath.Join(dir, "pkg", "helpers.py"), "x = 1\n") // stat-dirty again
	if _, err := gitRepositories([]string{dir}, brokenGitCommand); err == nil {
		t.Error("a change under .gitattributes: git was not asked")
	}
	if repos, err := Git([]string{dir}); err != nil || len(repos) != 1 || repos[0].Dirty {
		t.Errorf("filtered file equal for git: %+v, %v; want clean", repos, err)
	}
	writeFile(t, filepath.Join(dir, "pkg", "helpers.py"), "x = 1\n")
	if repos, err := gitRepositories([]string{dir}, noGitCommand); err != nil || len(repos) != 1 || !repos[0].Dirty {
		t.Errorf("filtered file without git: %+v, %v; want a change (the documented limit)", repos, err)
	}

	// Attributes apply below their directory only.
	writeFile(t, filepath.Join(dir, "pkg", "helpers.py"), "X = 1\n")
	writeFile(t, filepath.Join(dir, "train.py"), "print('changed')\n")
	if repos, err := gitRepositories([]string{dir}, brokenGitCommand); err != nil || len(repos) != 1 || !repos[0].Dirty {
		t.Errorf("a change outside the attributes' directory: %+v, %v; want dirty without git", repos, err)
	}
}
