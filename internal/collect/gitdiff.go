package collect

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// The diff of a dirty repository against HEAD, stored with the run as the
// artifact git.diff so that `git apply git.diff` on a clean checkout of
// the recorded commit recreates the tree that ran. It is made with the git
// command (go-git is several times slower and writes no patches of the
// working tree), after the child has started.

// DefaultGitDiffCap bounds the size of a git.diff artifact.
const DefaultGitDiffCap = 1 << 20

// MaxUntrackedDiffFile is the largest untracked file whose content goes
// into git.diff; larger ones, and binary ones, are only named.
const MaxUntrackedDiffFile = 100 << 10

// maxLeftOutNames bounds the list of what was left out in the header.
const maxLeftOutNames = 100

// ErrNoGitCommand is returned when the git command is not installed: the
// repository's diff is then not recorded.
var ErrNoGitCommand = errors.New("the git command is not installed, so the diff of the dirty repository is not recorded")

// GitDiffFile is one diff to store as an artifact.
type GitDiffFile struct {
	Name string // git.diff, then git-2.diff, ... for more repositories
	Path string // the file written
	Root string // the repository's worktree
}

// GitDiffs writes the diff of every dirty repository of ex into dir, one
// file each. Nothing is done when no repository is dirty. since is when
// the run started (see GitDiff).
func GitDiffs(ctx context.Context, ex observer.Experiment, dir string, limit int64, since time.Time) ([]GitDiffFile, error) {
	dirty := false
	for _, r := range ex.Repositories {
		dirty = dirty || r.Dirty
	}
	if !dirty {
		return nil, nil
	}
	var out []GitDiffFile
	var errs []error
	for _, root := range RepositoryRoots(ex) {
		name := "git.diff"
		if len(out) > 0 {
			name = fmt.Sprintf("git-%d.diff", len(out)+1)
		}
		p, err := GitDiff(ctx, root, filepath.Join(dir, name), limit, since)
		if errors.Is(err, ErrNoGitCommand) {
			return out, err
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if p != "" {
			out = append(out, GitDiffFile{Name: name, Path: p, Root: root})
		}
	}
	return out, errors.Join(errs...)
}

// RepositoryRoots returns the worktree roots of the repositories that
// ex's sources lie in (BaseDir's when there is no source), as Experiment
// found them.
func RepositoryRoots(ex observer.Experiment) []string {
	paths := make([]string, 0, len(ex.Sources))
	for _, s := range ex.Sources {
		paths = append(paths, filepath.Dir(s.Path))
	}
	if len(paths) == 0 {
		paths = append(paths, ex.BaseDir)
	}
	cache := map[string]string{}
	seen := map[string]bool{}
	var roots []string
	for _, p := range paths {
		if r := findRoot(p, cache); r != "" && !seen[r] {
			seen[r] = true
			roots = append(roots, r)
		}
	}
	return roots
}

// GitDiff writes to file the diff of the repository at root against HEAD:
// staged and unstaged changes of tracked files (binary ones included, as
// git apply reads them), then the untracked files that are not ignored,
// as new files, when they are text under MaxUntrackedDiffFile. Untracked
// files are the run's inputs, not its outputs: those modified at or after
// since (when not zero; the run's start) and those inside a sacred store
// (a file storage or TinyDB directory kept in the repository without
// being ignored) are left out. Comment lines before the first diff (which
// git apply skips) say what it is, the cap, and what was left out. Whole
// files that would take it past limit bytes are left out and named. It
// returns "" and writes nothing when no tracked file differs from HEAD
// (untracked files alone do not make a repository dirty, as for
// Repository.Dirty).
func GitDiff(ctx context.Context, root, file string, limit int64, since time.Time) (string, error) {
	if limit <= 0 {
		limit = DefaultGitDiffCap
	}
	gitBin, err := exec.LookPath("git")
	if err != nil {
		return "", ErrNoGitCommand
	}
	g := gitRunner{bin: gitBin, root: root}

	base := "HEAD"
	head, err := g.output(ctx, "rev-parse", "--verify", "-q", "HEAD^{commit}")
	if err != nil {
		// No commit yet: the diff is against the empty tree.
		if base, err = g.output(ctx, "hash-object", "-t", "tree", "--stdin"); err != nil {
			return "", err
		}
	}
	b := &diffBuilder{limit: limit}
	err = g.stream(ctx, func(r io.Reader) error { return b.addGitDiff(r) },
		"-c", "core.quotepath=true", "-c", "diff.noprefix=false", "-c", "diff.mnemonicprefix=false",
		"-c", "diff.relative=false", "-c", "diff.external=",
		"diff", "--binary", "--no-color", "--no-ext-diff", "--no-textconv", "--no-relative",
		"--src-prefix=a/", "--dst-prefix=b/", "--ignore-submodules=none", base, "--")
	if err != nil {
		return "", err
	}
	if b.files == 0 && len(b.leftOut) == 0 {
		return "", nil // clean
	}
	var untracked []string
	err = g.stream(ctx, func(r io.Reader) error {
		data, err := io.ReadAll(r)
		for _, p := range bytes.Split(data, []byte{0}) {
			if len(p) > 0 {
				untracked = append(untracked, string(p))
			}
		}
		return err
	}, "ls-files", "--others", "--exclude-standard", "-z", "--full-name")
	if err != nil {
		return "", err
	}
	stores := storeFinder{root: root, known: map[string]bool{}, files: map[string]int{}}
	for i, p := range untracked {
		if stores.inStore(p) {
			continue
		}
		if int64(b.body.Len()) >= limit {
			// Full: the rest are only counted (a directory of outputs
			// not ignored may hold thousands).
			b.leftOut = append(b.leftOut, fmt.Sprintf("%d more untracked files (over the cap)", len(untracked)-i))
			break
		}
		b.addUntracked(root, p, since)
	}
	for _, d := range stores.order {
		b.leftOut = append(b.leftOut, fmt.Sprintf("%s/ (a sacred store: %d untracked files)", d, stores.files[d]))
	}

	var hdr bytes.Buffer
	what := "HEAD " + strings.TrimSpace(head)
	if head == "" {
		what = "the empty tree (no commit yet)"
	}
	fmt.Fprintf(&hdr, "# sacred: git diff of the working tree of %s against %s,\n", root, what)
	fmt.Fprintf(&hdr, "# sacred: staged, unstaged and untracked text files under %d KiB, taken as the run started.\n", MaxUntrackedDiffFile>>10)
	fmt.Fprintf(&hdr, "# sacred: recreate the tree: git apply on a clean checkout of that commit.\n")
	fmt.Fprintf(&hdr, "# sacred: capped at %d bytes of diff", limit)
	if len(b.leftOut) == 0 {
		hdr.WriteString("; nothing was left out.\n")
	} else {
		hdr.WriteString("; left out:\n")
		for i, l := range b.leftOut {
			if i == maxLeftOutNames {
				fmt.Fprintf(&hdr, "# sacred:   and %d more\n", len(b.leftOut)-i)
				break
			}
			fmt.Fprintf(&hdr, "# sacred:   %s\n", l)
		}
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("git diff: %w", err)
	}
	if _, err = f.Write(hdr.Bytes()); err == nil {
		_, err = f.Write(b.body.Bytes())
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(file)
		return "", fmt.Errorf("git diff: write %s: %w", file, err)
	}
	return file, nil
}

// gitRunner runs git in one worktree, away from the variables that would
// point it at another repository, and without taking the index lock (git
// diff would otherwise refresh the index of a repository in use).
type gitRunner struct {
	bin, root string
}

func (g gitRunner) cmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, g.bin, append([]string{"-C", g.root}, args...)...)
	env := make([]string, 0, len(os.Environ())+1)
	for _, e := range os.Environ() {
		switch k, _, _ := strings.Cut(e, "="); k {
		case "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY", "GIT_NAMESPACE", "GIT_EXTERNAL_DIFF", "GIT_DIFF_OPTS":
			continue
		}
		env = append(env, e)
	}
	cmd.Env = append(env, "GIT_OPTIONAL_LOCKS=0")
	cmd.WaitDelay = time.Second
	return cmd
}

func (g gitRunner) output(ctx context.Context, args ...string) (string, error) {
	cmd := g.cmd(ctx, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", gitError(args, err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// stream runs git and hands its output to read, which must read it to the
// end (or fail).
func (g gitRunner) stream(ctx context.Context, read func(io.Reader) error, args ...string) error {
	cmd := g.cmd(ctx, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("git %s: %w", args[0], err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("git %s: %w", args[0], err)
	}
	rerr := read(out)
	if rerr != nil {
		io.Copy(io.Discard, out)
	}
	if err := cmd.Wait(); err != nil {
		return gitError(args, err, stderr.String())
	}
	return rerr
}

func gitError(args []string, err error, stderr string) error {
	i := 0
	for i+2 < len(args) && args[i] == "-c" {
		i += 2 // -c name=value before the subcommand
	}
	sub := args[i]
	msg := strings.TrimSpace(stderr)
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if msg != "" {
		return fmt.Errorf("git %s: %w: %s", sub, err, msg)
	}
	return fmt.Errorf("git %s: %w", sub, err)
}

// diffBuilder collects whole file diffs up to a byte limit.
type diffBuilder struct {
	limit   int64
	body    bytes.Buffer
	files   int
	leftOut []string
}

// add keeps one file's diff when it fits.
func (b *diffBuilder) add(name string, diff []byte, over bool) {
	if over || int64(b.body.Len()+len(diff)) > b.limit {
		b.leftOut = append(b.leftOut, name+" (over the cap)")
		return
	}
	b.body.Write(diff)
	b.files++
}

// addGitDiff splits git diff's output at its "diff --git" lines. A file's
// diff is held in memory only up to the limit.
func (b *diffBuilder) addGitDiff(r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var cur []byte
	name := ""
	over := false
	flush := func() {
		if name != "" {
			b.add(name, cur, over)
		}
		cur, over = cur[:0], false
	}
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A very long line (a binary patch's never are: git
			// wraps them): keep reading it.
			full := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				full = append(full, line...)
			}
			line = full
		}
		if len(line) > 0 {
			if bytes.HasPrefix(line, []byte("diff --git ")) {
				flush()
				name = diffName(line)
			}
			if !over {
				if int64(len(cur)+len(line)) > b.limit {
					over, cur = true, cur[:0]
				} else {
					cur = append(cur, line...)
				}
			}
		}
		if err == io.EOF {
			flush()
			return nil
		}
		if err != nil {
			return fmt.Errorf("read git diff: %w", err)
		}
	}
}

// diffName is the b/ side of a "diff --git a/x b/x" line, for notes.
func diffName(line []byte) string {
	s := strings.TrimSpace(strings.TrimPrefix(string(line), "diff --git "))
	if i := strings.LastIndex(s, " b/"); i >= 0 {
		return s[i+3:]
	}
	if i := strings.LastIndex(s, ` "b/`); i >= 0 {
		return strings.TrimSuffix(s[i+4:], `"`)
	}
	return s
}

// addUntracked adds an untracked file as a new file, or notes why not.
func (b *diffBuilder) addUntracked(root, name string, since time.Time) {
	p := filepath.Join(root, filepath.FromSlash(name))
	fi, err := os.Lstat(p)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			b.leftOut = append(b.leftOut, name+" (untracked, unreadable)")
		}
		return
	}
	if mayHoldSecrets(name) {
		b.leftOut = append(b.leftOut, name+" (untracked, may hold secrets)")
		return
	}
	if !since.IsZero() && !fi.ModTime().Before(since) {
		b.leftOut = append(b.leftOut, name+" (untracked, written during the run)")
		return
	}
	var content []byte
	mode := "100644"
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(p)
		if err != nil {
			b.leftOut = append(b.leftOut, name+" (untracked, unreadable)")
			return
		}
		mode, content = "120000", []byte(filepath.ToSlash(t))
	case !fi.Mode().IsRegular():
		return
	case fi.Size() > MaxUntrackedDiffFile:
		b.leftOut = append(b.leftOut, fmt.Sprintf("%s (untracked, over %d KiB)", name, MaxUntrackedDiffFile>>10))
		return
	default:
		if content, err = readAtMost(p, MaxUntrackedDiffFile); err != nil {
			b.leftOut = append(b.leftOut, name+" (untracked, unreadable)")
			return
		}
		if int64(len(content)) > MaxUntrackedDiffFile {
			b.leftOut = append(b.leftOut, fmt.Sprintf("%s (untracked, over %d KiB)", name, MaxUntrackedDiffFile>>10))
			return
		}
		// git's own test for binary content: a NUL in the first 8000
		// bytes.
		if bytes.IndexByte(content[:min(len(content), 8000)], 0) >= 0 {
			b.leftOut = append(b.leftOut, name+" (untracked, binary)")
			return
		}
		if fi.Mode()&0o100 != 0 {
			mode = "100755"
		}
	}
	b.add(name, newFileDiff(name, mode, content), false)
}

// secretNames are the untracked files kept out of git.diff because they
// usually hold credentials (and are only sometimes ignored).
var secretNames = []string{
	".env", ".env.*", "*.env", ".netrc", ".pgpass", ".npmrc", ".pypirc", ".git-credentials",
	"*.pem", "*.key", "*.p12", "*.pfx", "id_rsa*", "id_ecdsa*", "id_ed25519*", "id_dsa*",
	"credentials*", "secrets*", "*secret*.json", "*secret*.yaml", "*secret*.yml", "*secret*.toml",
	"*.token", "token.json", "*_token", "*_token.txt",
}

func mayHoldSecrets(name string) bool {
	base := strings.ToLower(path.Base(name))
	for _, pat := range secretNames {
		if ok, _ := path.Match(pat, base); ok {
			return true
		}
	}
	return false
}

// storeFinder tells the untracked files that lie in a sacred store: a
// directory holding _sources/ or _resources/ (file storage), hashfs/ and
// metadata.json (TinyDB), or a run directory (run.json with cout.txt).
type storeFinder struct {
	root  string
	known map[string]bool // directory (slash path) → is a store
	files map[string]int  // store → untracked files left out
	order []string
}

// inStore reports whether the untracked file name (a slash path under the
// root) lies in a store, counting it under the outermost one.
func (s *storeFinder) inStore(name string) bool {
	for i := 0; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		dir := name[:i]
		is, ok := s.known[dir]
		if !ok {
			d := filepath.Join(s.root, filepath.FromSlash(dir))
			is = dirExists(filepath.Join(d, "_sources")) || dirExists(filepath.Join(d, "_resources")) ||
				dirExists(filepath.Join(d, "hashfs")) && fileExists(filepath.Join(d, "metadata.json")) ||
				fileExists(filepath.Join(d, "run.json")) && fileExists(filepath.Join(d, "cout.txt"))
			s.known[dir] = is
		}
		if is {
			if s.files[dir] == 0 {
				s.order = append(s.order, dir)
			}
			s.files[dir]++
			return true
		}
	}
	return false
}

func readAtMost(p string, n int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, n+1))
}

// newFileDiff is the diff git writes for a file added with this content.
func newFileDiff(name, mode string, content []byte) []byte {
	var d bytes.Buffer
	a, b := quotePath("a/"+name), quotePath("b/"+name)
	fmt.Fprintf(&d, "diff --git %s %s\nnew file mode %s\n", a, b, mode)
	if len(content) == 0 {
		return d.Bytes()
	}
	lines := bytes.SplitAfter(content, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	if strings.ContainsRune(b, ' ') {
		b += "\t" // as git writes it: the name ends at the tab
	}
	fmt.Fprintf(&d, "--- /dev/null\n+++ %s\n@@ -0,0 +1", b)
	if len(lines) != 1 {
		fmt.Fprintf(&d, ",%d", len(lines))
	}
	d.WriteString(" @@\n")
	for _, l := range lines {
		d.WriteByte('+')
		d.Write(l)
		if !bytes.HasSuffix(l, []byte("\n")) {
			d.WriteString("\n\\ No newline at end of file\n")
		}
	}
	return d.Bytes()
}

// quotePath quotes a path as git does with core.quotepath: in double
// quotes with C escapes when it holds a quote, a backslash, a control
// character or a byte above 0x7f.
func quotePath(p string) string {
	needs := false
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			needs = true
			break
		}
	}
	if !needs {
		return p
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\a':
			b.WriteString(`\a`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\v':
			b.WriteString(`\v`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if c < 0x20 || c >= 0x7f {
				b.WriteByte('\\')
				b.WriteString(strconv.FormatInt(int64(c)|0o1000, 8)[1:])
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}
