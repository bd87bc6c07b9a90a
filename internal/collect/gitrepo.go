package collect

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// A small reader of a repository's .git: where its files are, its config,
// and its references. It reads the formats git writes (a .git directory or
// a "gitdir:" file, linked worktrees' commondir, loose refs, packed-refs);
// what it does not know (reftable, a newer repository format) is
// errGitUnsupported, and the caller asks the git command instead.

// errGitUnsupported marks a repository this reader cannot read exactly.
var errGitUnsupported = errors.New("repository format not supported by the built-in reader")

// errNotARepository: the .git found is not a repository (no HEAD).
var errNotARepository = errors.New("not a git repository")

type gitRepo struct {
	worktree  string // the directory holding .git
	gitDir    string // per-worktree files: HEAD, index
	commonDir string // shared files: config, refs, packed-refs, objects
	config    *gitConfig
	hashSize  int // 20 (SHA-1) or 32 (SHA-256)

	convertGlobal *bool // see mayConvert
}

// openGitRepo opens the repository whose worktree is root. A bare
// repository (core.bare) is returned with errNotARepository: it has no
// worktree to describe.
func openGitRepo(root string) (*gitRepo, error) {
	r := &gitRepo{worktree: root, gitDir: filepath.Join(root, ".git"), hashSize: 20}
	fi, err := os.Stat(r.gitDir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errNotARepository
		}
		return nil, err
	}
	if !fi.IsDir() {
		// A linked worktree or a submodule: "gitdir: <path>".
		data, err := os.ReadFile(r.gitDir)
		if err != nil {
			return nil, err
		}
		line, _, _ := bytes.Cut(data, []byte("\n"))
		p, ok := strings.CutPrefix(strings.TrimRight(string(line), "\r"), "gitdir: ")
		if !ok {
			return nil, errNotARepository
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(root, p)
		}
		r.gitDir = filepath.Clean(p)
	}
	if _, err := os.Lstat(filepath.Join(r.gitDir, "HEAD")); err != nil {
		return nil, errNotARepository
	}
	r.commonDir = r.gitDir
	if data, err := os.ReadFile(filepath.Join(r.gitDir, "commondir")); err == nil {
		p := strings.TrimSpace(string(data))
		if !filepath.IsAbs(p) {
			p = filepath.Join(r.gitDir, p)
		}
		r.commonDir = filepath.Clean(p)
	}
	data, err := os.ReadFile(filepath.Join(r.commonDir, "config"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read config: %w", err)
	}
	r.config = parseGitConfig(data)
	if r.config.bool("core.bare", false) {
		return nil, errNotARepository
	}
	switch v, _ := r.config.get("core.repositoryformatversion"); v {
	case "", "0", "1":
	default:
		return nil, fmt.Errorf("%w: core.repositoryformatversion %s", errGitUnsupported, v)
	}
	if f, ok := r.config.get("extensions.objectformat"); ok {
		switch strings.ToLower(f) {
		case "sha1":
		case "sha256":
			r.hashSize = 32
		default:
			return nil, fmt.Errorf("%w: object format %s", errGitUnsupported, f)
		}
	}
	if s, ok := r.config.get("extensions.refstorage"); ok && !strings.EqualFold(s, "files") {
		return nil, fmt.Errorf("%w: ref storage %s", errGitUnsupported, s)
	}
	return r, nil
}

// errNoCommit: HEAD names a branch that has no commit yet.
var errNoCommit = errors.New("no commit yet")

// head returns the hex id of the commit HEAD points at, or errNoCommit.
func (r *gitRepo) head() (string, error) {
	name := "HEAD"
	for range 10 { // symbolic refs may chain; git stops at 5
		target, err := r.readRef(name)
		if err != nil {
			return "", err
		}
		if next, ok := strings.CutPrefix(target, "ref: "); ok {
			name = strings.TrimSpace(next)
			continue
		}
		if !isHex(target, r.hashSize*2) {
			return "", fmt.Errorf("ref %s: not an object id: %q", name, target)
		}
		return strings.ToLower(target), nil
	}
	return "", fmt.Errorf("ref %s: too many levels of symbolic refs", name)
}

// perWorktreeRef reports whether git keeps a ref in each worktree's own
// directory rather than in the common one.
func perWorktreeRef(name string) bool {
	return !strings.HasPrefix(name, "refs/") || strings.HasPrefix(name, "refs/bisect/") ||
		strings.HasPrefix(name, "refs/worktree/") || strings.HasPrefix(name, "refs/rewritten/")
}

// readRef returns a ref's content: "ref: <name>" or an object id. A ref
// that exists nowhere is errNoCommit (an unborn branch).
func (r *gitRepo) readRef(name string) (string, error) {
	if strings.Contains(name, "..") || strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("ref %q: bad name", name)
	}
	dir := r.commonDir
	if perWorktreeRef(name) {
		dir = r.gitDir
	}
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err == nil {
		return strings.TrimSpace(string(data)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, notADirectory) && !isDirErr(err) {
		return "", fmt.Errorf("read ref %s: %w", name, err)
	}
	if perWorktreeRef(name) {
		if name == "HEAD" {
			return "", fmt.Errorf("read ref HEAD: %w", err)
		}
		return "", errNoCommit
	}
	id, err := r.packedRef(name)
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", errNoCommit
	}
	return id, nil
}

// isDirErr: a ref path that is a directory (refs/heads/a when a/b exists).
func isDirErr(err error) bool {
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		return false
	}
	fi, serr := os.Stat(pe.Path)
	return serr == nil && fi.IsDir()
}

// packedRef looks name up in packed-refs; "" when it is not there.
func (r *gitRepo) packedRef(name string) (string, error) {
	f, err := os.Open(filepath.Join(r.commonDir, "packed-refs"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read packed-refs: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || line[0] == '^' {
			continue
		}
		id, ref, ok := strings.Cut(line, " ")
		if ok && strings.TrimRight(ref, "\r") == name {
			return id, nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read packed-refs: %w", err)
	}
	return "", nil
}

// remoteURL is the URL of remote "origin", else of the first remote by
// name, else "git:/" + the worktree as Sacred writes it; credentials are
// removed.
func (r *gitRepo) remoteURL() string {
	var names []string
	for _, k := range r.config.order {
		if rest, ok := strings.CutPrefix(k, "remote."); ok {
			if name, ok := strings.CutSuffix(rest, ".url"); ok {
				names = append(names, name)
			}
		}
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := names[i], names[j]
		if (a == "origin") != (b == "origin") {
			return a == "origin"
		}
		return a < b
	})
	if len(names) > 0 {
		return StripURLCredentials(r.config.values["remote."+names[0]+".url"][0])
	}
	// Sacred writes "git:/" + working_dir, e.g. git://home/user/exp.
	return "git:/" + filepath.ToSlash(r.worktree)
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
