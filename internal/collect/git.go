package collect

import (
	"bytes"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"

	"github.com/go-git/go-billy/v5"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/plumbing/object"

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
func Git(paths []string) ([]observer.Repository, error) {
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
		r, err := describeRepo(root)
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
func describeRepo(root string) (*observer.Repository, error) {
	repo, err := git.PlainOpenWithOptions(root, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		if errors.Is(err, git.ErrRepositoryNotExists) {
			return nil, nil
		}
		return nil, fmt.Errorf("open: %w", err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		if errors.Is(err, git.ErrIsBareRepository) {
			return nil, nil
		}
		return nil, fmt.Errorf("worktree: %w", err)
	}
	wtRoot := wt.Filesystem.Root()

	out := &observer.Repository{URL: remoteURL(repo, wtRoot)}
	var headTree *object.Tree
	head, err := repo.Head()
	switch {
	case errors.Is(err, plumbing.ErrReferenceNotFound):
		// No commit yet: Commit stays "".
	case err != nil:
		return nil, fmt.Errorf("read HEAD: %w", err)
	default:
		out.Commit = head.Hash().String()
		c, err := repo.CommitObject(head.Hash())
		if err != nil {
			return nil, fmt.Errorf("read HEAD commit: %w", err)
		}
		if headTree, err = c.Tree(); err != nil {
			return nil, fmt.Errorf("read HEAD tree: %w", err)
		}
	}

	idx, err := readIndex(repo)
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	// core.filemode and core.trustctime as git reads them (defaults true;
	// git init writes filemode=false on Windows).
	fileMode, trustCtime := runtime.GOOS != "windows", true
	if cfg, err := repo.Config(); err == nil {
		core := cfg.Raw.Section("core").Options
		fileMode = parseGitBool(core.Get("filemode"), fileMode)
		trustCtime = parseGitBool(core.Get("trustctime"), trustCtime)
	}
	out.Dirty, err = dirty(wtRoot, idx, headTree, fileMode, trustCtime)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// readIndex reads the index through go-git, and copes with an index
// written with index.skipHash (git 2.40+, implied by feature.manyFiles):
// its trailing checksum is all zeros, which go-git rejects.
func readIndex(repo *git.Repository) (*index.Index, error) {
	idx, err := repo.Storer.Index()
	if err == nil || !errors.Is(err, index.ErrInvalidChecksum) {
		return idx, err
	}
	st, ok := repo.Storer.(interface{ Filesystem() billy.Filesystem })
	if !ok {
		return nil, err
	}
	fsys := st.Filesystem()
	f, ferr := fsys.Open("index")
	if ferr != nil {
		return nil, err
	}
	defer f.Close()
	data, ferr := io.ReadAll(f)
	if ferr != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), ferr)
	}
	n := len(data) - sha1.Size
	if n < 0 || !bytes.Equal(data[n:], make([]byte, sha1.Size)) {
		return nil, err // a real checksum mismatch: the index is corrupt
	}
	sum := sha1.Sum(data[:n])
	copy(data[n:], sum[:])
	idx = &index.Index{}
	if derr := index.NewDecoder(bytes.NewReader(data)).Decode(idx); derr != nil {
		return nil, derr
	}
	if fi, serr := fsys.Stat("index"); serr == nil {
		idx.ModTime = fi.ModTime()
	}
	return idx, nil
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

func remoteURL(repo *git.Repository, wtRoot string) string {
	remotes, err := repo.Remotes()
	if err == nil && len(remotes) > 0 {
		sort.Slice(remotes, func(i, j int) bool {
			a, b := remotes[i].Config().Name, remotes[j].Config().Name
			if (a == "origin") != (b == "origin") {
				return a == "origin"
			}
			return a < b
		})
		if urls := remotes[0].Config().URLs; len(urls) > 0 {
			return StripURLCredentials(urls[0])
		}
	}
	// Sacred writes "git:/" + working_dir, e.g. git://home/user/exp.
	return "git:/" + filepath.ToSlash(wtRoot)
}

// dirty compares HEAD with the index, then the index with the working tree,
// and stops at the first difference.
func dirty(root string, idx *index.Index, head *object.Tree, fileMode, trustCtime bool) (bool, error) {
	d, err := indexDiffersFromHead(idx, head)
	if err != nil || d {
		return d, err
	}
	return worktreeDiffersFromIndex(root, idx, fileMode, trustCtime)
}

func indexDiffersFromHead(idx *index.Index, head *object.Tree) (bool, error) {
	if head == nil {
		return len(idx.Entries) > 0, nil
	}
	for _, e := range idx.Entries {
		if e.Stage != 0 || e.IntentToAdd {
			return true, nil // a conflict or `git add -N` shows up in git diff
		}
	}
	// Fast path: git keeps a valid cache-tree after a commit; its root hash
	// equal to HEAD's tree means the index holds exactly HEAD's content.
	if idx.Cache != nil {
		for _, t := range idx.Cache.Entries {
			if t.Path == "" && t.Entries == len(idx.Entries) {
				if t.Hash == head.Hash {
					return false, nil
				}
				break
			}
		}
	}
	type blob struct {
		hash plumbing.Hash
		mode filemode.FileMode
	}
	inHead := make(map[string]blob, len(idx.Entries))
	w := object.NewTreeWalker(head, true, nil)
	defer w.Close()
	for {
		name, e, err := w.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return false, fmt.Errorf("walk HEAD tree: %w", err)
		}
		if e.Mode == filemode.Dir {
			continue
		}
		inHead[name] = blob{e.Hash, e.Mode}
	}
	if len(inHead) != len(idx.Entries) {
		return true, nil
	}
	for _, e := range idx.Entries {
		b, ok := inHead[e.Name]
		if !ok || b.hash != e.Hash || normMode(b.mode) != normMode(e.Mode) {
			return true, nil
		}
	}
	return false, nil
}

// normMode folds the old 100664 mode into 100644 as git does.
func normMode(m filemode.FileMode) filemode.FileMode {
	if m == filemode.Deprecated {
		return filemode.Regular
	}
	return m
}

// worktreeDiffersFromIndex does what `git diff` does for each entry: equal
// stat data (size, mtime, mode) means unchanged, unless the file may have
// changed in the same instant the index was written ("racily clean"), in
// which case, as for any stat difference, the content is hashed.
func worktreeDiffersFromIndex(root string, idx *index.Index, fileMode, trustCtime bool) (bool, error) {
	for _, e := range idx.Entries {
		if e.SkipWorktree {
			continue
		}
		p := filepath.Join(root, filepath.FromSlash(e.Name))
		fi, err := os.Lstat(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, notADirectory) {
				return true, nil // deleted
			}
			return false, fmt.Errorf("stat %s: %w", e.Name, err)
		}
		changed, err := entryChanged(p, e, fi, idx, fileMode, trustCtime)
		if err != nil || changed {
			return changed, err
		}
	}
	return false, nil
}

func entryChanged(p string, e *index.Entry, fi fs.FileInfo, idx *index.Index, fileMode, trustCtime bool) (bool, error) {
	switch e.Mode {
	case filemode.Submodule:
		if !fi.IsDir() {
			return true, nil
		}
		return submoduleMoved(p, e.Hash), nil
	case filemode.Symlink:
		if fi.Mode()&fs.ModeSymlink == 0 {
			return true, nil
		}
	default: // regular or executable file
		if !fi.Mode().IsRegular() {
			return true, nil
		}
		if fileMode && (fi.Mode()&0o100 != 0) != (e.Mode == filemode.Executable) {
			return true, nil
		}
	}
	sameStat := uint32(fi.Size()) == e.Size && fi.ModTime().Equal(e.ModifiedAt)
	if ct, ok := statCtime(fi); sameStat && ok && trustCtime {
		sameStat = ct.Equal(e.CreatedAt)
	}
	if sameStat && (idx.ModTime.IsZero() || fi.ModTime().Before(idx.ModTime)) {
		return false, nil
	}
	if e.Mode != filemode.Symlink && uint64(fi.Size())&0xffffffff != uint64(e.Size) {
		return true, nil // sizes differ: no need to read the file
	}
	h, err := blobHash(p, fi)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return true, nil // removed while we looked
		}
		return false, fmt.Errorf("hash %s: %w", e.Name, err)
	}
	return h != e.Hash, nil
}

// blobHash is the object id git gives the file's content (or the link's
// target for a symlink). Filters such as core.autocrlf are not applied.
func blobHash(p string, fi fs.FileInfo) (plumbing.Hash, error) {
	if fi.Mode()&fs.ModeSymlink != 0 {
		t, err := os.Readlink(p)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		h := plumbing.NewHasher(plumbing.BlobObject, int64(len(t)))
		h.Write([]byte(filepath.ToSlash(t)))
		return h.Sum(), nil
	}
	f, err := os.Open(p)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	defer f.Close()
	st, err := f.Stat() // the size of what we read, not of what we saw
	if err != nil {
		return plumbing.ZeroHash, err
	}
	h := plumbing.NewHasher(plumbing.BlobObject, st.Size())
	if n, err := io.Copy(h, f); err != nil {
		return plumbing.ZeroHash, err
	} else if n != st.Size() {
		return plumbing.ZeroHash, fmt.Errorf("file changed while reading (%d of %d bytes)", n, st.Size())
	}
	return h.Sum(), nil
}

// submoduleMoved reports whether a checked-out submodule's HEAD differs
// from the commit recorded in the index. An unpopulated submodule counts
// as unchanged, as in git. Changes inside the submodule are not examined.
func submoduleMoved(dir string, want plumbing.Hash) bool {
	if _, err := os.Lstat(filepath.Join(dir, ".git")); err != nil {
		return false
	}
	r, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{EnableDotGitCommonDir: true})
	if err != nil {
		return false
	}
	h, err := r.Head()
	if err != nil {
		return false
	}
	return h.Hash() != want
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
