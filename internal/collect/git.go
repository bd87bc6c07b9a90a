package collect

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sacred-go/sacred/pkg/observer"
)

// notADirectory is what lstat returns when a parent of a tracked path has
// become a file: the tracked path is gone.
var notADirectory = syscall.ENOTDIR

// Git describes the git repositories the given paths (files or
// directories) lie in, one entry per repository in the order first seen:
//   - URL: remote "origin", else the first remote by name, else "git:/" +
//     the worktree directory as Sacred writes it; credentials removed.
//   - Commit: the HEAD commit hex, "" when the repository has no commit.
//   - Dirty: what GitPython's is_dirty() means: tracked content differs
//     between HEAD and the index, or between the index and the working
//     tree. Untracked files do not count.
//
// Paths outside any repository are skipped, so outside git the result is
// an empty list and no error. It is safe to call from several goroutines.
//
// The repository is read directly (gitrepo.go, gitindex.go,
// gitobjects.go): no process is started for a clean repository, nor for
// one whose index differs from HEAD, that lost a file or whose files
// changed. The git command is asked only when a changed file is one git
// may convert (core.autocrlf, attributes: gitfilters.go), which may make
// it equal for git, or when the repository's format is one the reader
// does not know; without git such a file counts as a change.
func Git(paths []string) ([]observer.Repository, error) {
	return gitRepositories(paths, lookGitCommand)
}

// lookGitCommand finds the git command once per process.
var lookGitCommand = sync.OnceValues(func() (string, error) { return exec.LookPath("git") })

func gitRepositories(paths []string, lookGit func() (string, error)) ([]observer.Repository, error) {
	repos := []observer.Repository{}
	rootOf := map[string]string{} // directory → worktree root ("" = none)
	done := map[string]bool{}
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return repos, fmt.Errorf("resolve %s: %w", p, err)
		}
		dir := abs
		if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
			dir = filepath.Dir(abs)
		}
		root := findRoot(dir, rootOf)
		if root == "" || done[root] {
			continue
		}
		done[root] = true
		r, err := describeRepo(root, lookGit)
		if err != nil {
			return repos, fmt.Errorf("repository %s: %w", root, err)
		}
		if r != nil {
			repos = append(repos, *r)
		}
	}
	return repos, nil
}

// findRoot walks up from dir to the first directory holding a .git entry
// (a directory, or a file as in linked worktrees and submodules), caching
// what it learns on the way.
func findRoot(dir string, cache map[string]string) string {
	var visited []string
	root := ""
	for d := dir; ; {
		if r, ok := cache[d]; ok {
			root = r
			break
		}
		visited = append(visited, d)
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			root = d
			break
		}
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	for _, v := range visited {
		cache[v] = root
	}
	return root
}

// describeRepo returns nil for a bare repository or a .git that is not one.
// The built-in reader answers alone whenever it can be exact (see dirty);
// otherwise git, found by lookGit, decides, as git status would.
func describeRepo(root string, lookGit func() (string, error)) (*observer.Repository, error) {
	repo, err := openGitRepo(root)
	unsupported := errors.Is(err, errGitUnsupported)
	switch {
	case errors.Is(err, errNotARepository):
		return nil, nil
	case err != nil && !unsupported:
		return nil, fmt.Errorf("open: %w", err)
	}
	if unsupported {
		return describeWithGit(root, lookGit, err)
	}
	out := &observer.Repository{URL: repo.remoteURL()}
	commit, err := repo.head()
	switch {
	case errors.Is(err, errNoCommit):
		// No commit yet: Commit stays "".
	case err != nil:
		return nil, fmt.Errorf("read HEAD: %w", err)
	default:
		out.Commit = commit
	}
	d, err := repo.dirty(commit)
	switch {
	case errors.Is(err, errGitUnsupported):
		return describeWithGit(root, lookGit, err)
	case err != nil:
		return nil, err
	case d == maybeDirty:
		// Content differs from the index, which conversions (core.autocrlf,
		// .gitattributes) may explain: only git knows.
		bin, lerr := lookGit()
		if lerr != nil {
			out.Dirty = true
			return out, nil
		}
		if out.Dirty, err = gitStatusDirty(bin, root); err != nil {
			return nil, err
		}
	default:
		out.Dirty = d == isDirty
	}
	return out, nil
}

// describeWithGit asks the git command about a repository the built-in
// reader cannot read (why says what it met).
func describeWithGit(root string, lookGit func() (string, error), why error) (*observer.Repository, error) {
	bin, err := lookGit()
	if err != nil {
		return nil, fmt.Errorf("%w, and the git command is not installed", why)
	}
	out := &observer.Repository{}
	g := gitRunner{bin: bin, root: root}
	ctx, cancel := context.WithTimeout(context.Background(), gitStatusTimeout)
	defer cancel()
	if u, err := g.output(ctx, "config", "--local", "--get", "remote.origin.url"); err == nil && u != "" {
		out.URL = StripURLCredentials(u)
	} else {
		out.URL = "git:/" + filepath.ToSlash(root)
		// Else the first remote by name.
		if names, err := g.output(ctx, "remote"); err == nil && names != "" {
			list := strings.Fields(names)
			sort.Strings(list)
			if u, err := g.output(ctx, "config", "--local", "--get", "remote."+list[0]+".url"); err == nil && u != "" {
				out.URL = StripURLCredentials(u)
			}
		}
	}
	if h, err := g.output(ctx, "rev-parse", "--verify", "-q", "HEAD^{commit}"); err == nil {
		out.Commit = h
	}
	if out.Dirty, err = gitStatusDirty(bin, root); err != nil {
		return nil, err
	}
	return out, nil
}

// gitStatusTimeout bounds a git command run before the child starts.
const gitStatusTimeout = 10 * time.Second

// gitStatusDirty is git's own answer: a tracked file differs between HEAD,
// the index and the working tree. Submodules count when their commit
// moved, not for changes inside them (as the built-in reader). git takes
// no lock and fetches nothing (a partial clone's missing objects fail).
func gitStatusDirty(bin, root string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), gitStatusTimeout)
	defer cancel()
	g := gitRunner{bin: bin, root: root}
	cmd := g.cmd(ctx, "status", "--porcelain", "--untracked-files=no", "--ignore-submodules=dirty")
	cmd.Env = append(cmd.Env, "GIT_NO_LAZY_FETCH=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return false, gitError([]string{"status"}, err, stderr.String())
	}
	return len(bytes.TrimSpace(out)) > 0, nil
}

type dirtiness int

const (
	isClean    dirtiness = iota
	isDirty              // certain: git would say so whatever its filters
	maybeDirty           // a file's bytes differ from the index's blob
)

// dirty compares HEAD with the index, then the index with the working
// tree, and stops at the first difference.
func (r *gitRepo) dirty(commit string) (dirtiness, error) {
	idx, err := readGitIndex(r)
	if err != nil {
		return isClean, fmt.Errorf("read index: %w", err)
	}
	for _, e := range idx.entries {
		if e.stage != 0 || e.intentToAdd {
			return isDirty, nil // a conflict or `git add -N` shows up in git diff
		}
	}
	if commit == "" {
		if len(idx.entries) > 0 {
			return isDirty, nil
		}
	} else {
		s := newObjectStore(r)
		defer s.close()
		same, err := indexMatchesCommit(s, idx, commit)
		if err != nil {
			return isClean, err
		}
		if !same {
			return isDirty, nil
		}
	}
	// core.filemode and core.trustctime as git reads them (defaults true;
	// git init writes filemode=false on Windows).
	fileMode := r.config.bool("core.filemode", runtime.GOOS != "windows")
	trustCtime := r.config.bool("core.trustctime", true)
	return worktreeDiffersFromIndex(r, idx, fileMode, trustCtime)
}

// indexMatchesCommit reports whether the index holds exactly the commit's
// tree. Directories whose cache-tree entry (valid since git last wrote
// the tree) equals the commit's subtree are not read: after a commit
// that is the whole tree, and one commit object is all that is read.
func indexMatchesCommit(s *objectStore, idx *gitIndex, commit string) (bool, error) {
	tree, err := s.commitTree(hexToRaw(commit))
	if err != nil {
		return false, fmt.Errorf("read HEAD commit: %w", err)
	}
	c := treeComparer{s: s, idx: idx}
	same, err := c.tree("", tree)
	if err != nil {
		return false, fmt.Errorf("read HEAD tree: %w", err)
	}
	return same && c.next == len(idx.entries), nil
}

// treeComparer walks a tree in git's order, which is the index's order,
// matching entries one by one.
type treeComparer struct {
	s    *objectStore
	idx  *gitIndex
	next int // the first index entry not yet matched
}

func (c *treeComparer) tree(dir, id string) (bool, error) {
	if ct, ok := c.idx.trees[dir]; ok && ct.id == id && c.next+ct.count <= len(c.idx.entries) {
		c.next += ct.count
		return true, nil
	}
	data, err := c.s.readAs(id, objTree)
	if err != nil {
		return false, err
	}
	entries, err := parseTree(data, c.s.hashSize)
	if err != nil {
		return false, fmt.Errorf("tree %x: %w", id, err)
	}
	for _, te := range entries {
		p := te.name
		if dir != "" {
			p = dir + "/" + te.name
		}
		if te.mode == modeTree {
			same, err := c.tree(p, te.id)
			if err != nil || !same {
				return false, err
			}
			continue
		}
		if c.next >= len(c.idx.entries) {
			return false, nil
		}
		e := c.idx.entries[c.next]
		if e.name != p || e.id != te.id || normMode(e.mode) != normMode(te.mode) {
			return false, nil
		}
		c.next++
	}
	return true, nil
}

// normMode folds the old 100664 mode into 100644 as git does.
func normMode(m uint32) uint32 {
	if m == modeDeprecated {
		return modeRegular
	}
	return m
}

func parseGitBool(v string, def bool) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "yes", "on", "1":
		return true
	case "false", "no", "off", "0":
		return false
	}
	return def
}

// worktreeDiffersFromIndex does what `git diff` does for each entry: equal
// stat data (size, mtime, mode) means unchanged, unless the file may have
// changed in the same instant the index was written ("racily clean"), in
// which case, as for any stat difference, the content is hashed.
func worktreeDiffersFromIndex(r *gitRepo, idx *gitIndex, fileMode, trustCtime bool) (dirtiness, error) {
	for i := range idx.entries {
		e := &idx.entries[i]
		if e.skipWorktree {
			continue
		}
		p := filepath.Join(r.worktree, filepath.FromSlash(e.name))
		fi, err := os.Lstat(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, notADirectory) {
				return isDirty, nil // deleted
			}
			return isClean, fmt.Errorf("stat %s: %w", e.name, err)
		}
		d, err := entryChanged(r, p, e, fi, idx.mtime, fileMode, trustCtime)
		if err != nil || d != isClean {
			return d, err
		}
	}
	return isClean, nil
}

func entryChanged(r *gitRepo, p string, e *indexEntry, fi fs.FileInfo, indexTime time.Time, fileMode, trustCtime bool) (dirtiness, error) {
	switch e.mode {
	case modeGitlink:
		if !fi.IsDir() {
			return isDirty, nil
		}
		if submoduleMoved(p, e.id) {
			return isDirty, nil
		}
		return isClean, nil
	case modeSymlink:
		if fi.Mode()&fs.ModeSymlink == 0 {
			return isDirty, nil
		}
	default: // regular or executable file
		if !fi.Mode().IsRegular() {
			return isDirty, nil
		}
		if fileMode && (fi.Mode()&0o100 != 0) != (e.mode == modeExecutable) {
			return isDirty, nil
		}
	}
	mt := fi.ModTime()
	sameStat := uint32(fi.Size()) == e.size && uint32(mt.Unix()) == e.mtimeSec && uint32(mt.Nanosecond()) == e.mtimeNsec
	if ct, ok := statCtime(fi); sameStat && ok && trustCtime {
		sameStat = uint32(ct.Unix()) == e.ctimeSec && uint32(ct.Nanosecond()) == e.ctimeNsec
	}
	if sameStat && (indexTime.IsZero() || mt.Before(indexTime)) {
		return isClean, nil
	}
	// A different content: certain for a link (no filter applies to it),
	// only likely for a file that git may convert.
	differs := isDirty
	if e.mode != modeSymlink && r.mayConvert(e.name) {
		differs = maybeDirty
		if uint32(fi.Size()) != e.size {
			return differs, nil // no need to read the file
		}
	}
	h, err := blobHash(p, fi, r.hashSize)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return isDirty, nil // removed while we looked
		}
		return isClean, fmt.Errorf("hash %s: %w", e.name, err)
	}
	if h != e.id {
		return differs, nil
	}
	return isClean, nil
}

// blobHash is the raw object id git gives the file's content (or the
// link's target for a symlink). Filters such as core.autocrlf are not
// applied.
func blobHash(p string, fi fs.FileInfo, hashSize int) (string, error) {
	newHash := sha1.New
	if hashSize == 32 {
		newHash = sha256.New
	}
	h := newHash()
	if fi.Mode()&fs.ModeSymlink != 0 {
		t, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		t = filepath.ToSlash(t)
		fmt.Fprintf(h, "blob %d\x00%s", len(t), t)
		return string(h.Sum(nil)), nil
	}
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat() // the size of what we read, not of what we saw
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "blob %d\x00", st.Size())
	if n, err := io.Copy(h, f); err != nil {
		return "", err
	} else if n != st.Size() {
		return "", fmt.Errorf("file changed while reading (%d of %d bytes)", n, st.Size())
	}
	return string(h.Sum(nil)), nil
}

// submoduleMoved reports whether a checked-out submodule's HEAD differs
// from the commit recorded in the index. An unpopulated submodule counts
// as unchanged, as in git. Changes inside the submodule are not examined.
func submoduleMoved(dir string, want string) bool {
	r, err := openGitRepo(dir)
	if err != nil {
		return false
	}
	h, err := r.head()
	if err != nil {
		return false
	}
	return hexToRaw(h) != want
}

// hexToRaw turns a hex object id into its raw bytes ("" for bad hex).
func hexToRaw(h string) string {
	b, err := hex.DecodeString(h)
	if err != nil {
		return ""
	}
	return string(b)
}

// StripURLCredentials removes secrets from a remote URL. For http(s) and
// other schemes the whole user-info goes (a bare token is often given as
// the user name: https://TOKEN@host/x); for ssh-like schemes only the
// password goes, the user name being part of the address. The query and
// the fragment go too (https://host/x.git?access_token=TOKEN): git sends
// them to the server, so a token can hide there, and a repository is named
// without them. scp-like addresses (git@host:x), local paths and file://
// URLs carry no secret and stay as they are.
func StripURLCredentials(u string) string {
	i := strings.Index(u, "://")
	if i < 0 {
		return u
	}
	scheme := strings.ToLower(u[:i])
	if scheme == "file" {
		return u
	}
	start := i + 3
	if j := strings.IndexAny(u[start:], "?#"); j >= 0 {
		u = u[:start+j]
	}
	end := len(u)
	if j := strings.IndexByte(u[start:], '/'); j >= 0 {
		end = start + j
	}
	at := strings.LastIndexByte(u[start:end], '@')
	if at < 0 {
		return u
	}
	userinfo := u[start : start+at]
	rest := u[start+at+1:]
	if scheme == "ssh" || scheme == "git+ssh" || scheme == "ssh+git" {
		user, _, _ := strings.Cut(userinfo, ":")
		if user == "" {
			return u[:start] + rest
		}
		return u[:start] + user + "@" + rest
	}
	return u[:start] + rest
}

// EnforceClean is --enforce_clean: it fails when the run is outside git or
// any repository is dirty.
func EnforceClean(repos []observer.Repository) error {
	if len(repos) == 0 {
		return errors.New("not in a git repository")
	}
	for _, r := range repos {
		if r.Dirty {
			return fmt.Errorf("repository %s is dirty: commit or stash your changes (or drop -e)", r.URL)
		}
	}
	return nil
}
