package collect

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sacred-go/sacred/pkg/observer"
)

// MaxArgSourceSize is the largest file that is taken as a source only
// because it is named in argv. Arguments are often data files (`train.py
// data.npy`); hashing and copying gigabytes into every run's sources would
// delay the start and fill the store. The main file and files given with
// --source globs are always taken, whatever their size.
const MaxArgSourceSize = 8 << 20

// DefaultMaxSourceSize is the source size cap when ExperimentOptions
// leaves it 0: a source larger than this is recorded by name, md5 and size,
// without its content (observer.Source.Omitted). Stores have limits of
// their own (MongoDB's 16 MiB document, MariaDB's max_allowed_packet of
// 16 MiB by default), and a source that large is data, not code.
const DefaultMaxSourceSize = 10 << 20

// ExperimentOptions are the settings of Experiment beyond the command.
type ExperimentOptions struct {
	// MaxSourceSize is the source size cap in bytes (--max-source-size):
	// larger sources are hashed but their content is not recorded. 0
	// means DefaultMaxSourceSize; a negative value records the content of
	// no source.
	MaxSourceSize int64
	// Deps is the mode of dependency discovery (--deps): DepsImported
	// (also when empty), DepsAll or DepsNone.
	Deps string
	// Getenv reads the environment the command runs in (PATH,
	// PYTHONPATH, HOME, PYENV_VERSION); nil means os.Getenv.
	Getenv func(string) string
}

func (o ExperimentOptions) maxSourceSize() int64 {
	if o.MaxSourceSize == 0 {
		return DefaultMaxSourceSize
	}
	return max(o.MaxSourceSize, -1)
}

// GitError wraps a failure to describe the git repositories. Experiment
// returns it with an Experiment that is complete except for Repositories,
// so a caller may warn and go on (unless it enforces a clean repository).
type GitError struct{ Err error }

func (e *GitError) Error() string { return "git info: " + e.Err.Error() }
func (e *GitError) Unwrap() error { return e.Err }

// Experiment builds Sacred's ex_info for the child's argv, run in cwd.
//
//   - Name: nameOverride if set, else the base name without extension of
//     the main file, else of the program (argv[0]).
//   - BaseDir: cwd, absolute.
//   - MainFile: the first argv element (program or argument) that is an
//     existing regular file under cwd and not a Python interpreter
//     (.venv/bin/python), relative to cwd.
//   - Sources: every argv element that names an existing regular file under
//     cwd (arguments over MaxArgSourceSize are skipped, except the main
//     file), plus the files matching sourceGlobs (relative to cwd; "**"
//     matches any number of directories; a glob matching no file is an
//     error). Deduplicated, sorted by Name, each with its md5 and size;
//     a source larger than opts.MaxSourceSize is Omitted: hashed, but its
//     content is not to be recorded.
//   - Dependencies: for a command that runs Python, the distributions
//     of the interpreter's environment that the Python sources import, as
//     Sacred's "name==version" list (opts.Deps, see pythonDependencies);
//     else empty. Lock files in cwd (go.mod, package-lock.json,
//     Cargo.lock, requirements*.txt, uv.lock, ...) are added to Sources,
//     unless opts.Deps is DepsNone.
//   - Repositories: Git of the sources, or of cwd when there is none.
//
// A git failure is returned as a *GitError together with the rest of the
// Experiment; any other error means the Experiment is unusable.
func Experiment(argv []string, cwd, nameOverride string, sourceGlobs []string, opts ExperimentOptions) (observer.Experiment, error) {
	var ex observer.Experiment
	if len(argv) == 0 {
		return ex, errors.New("experiment: no command to run")
	}
	base, err := filepath.Abs(cwd)
	if err != nil {
		return ex, fmt.Errorf("experiment: resolve working directory: %w", err)
	}
	ex.BaseDir = base
	ex.Dependencies = []string{}
	ex.Repositories = []observer.Repository{}

	seen := map[string]bool{}
	var paths []string // absolute, in discovery order
	add := func(abs string) {
		if !seen[abs] {
			seen[abs] = true
			paths = append(paths, abs)
		}
	}
	for _, a := range argv {
		abs, fi, ok := argFile(base, a)
		if !ok || isPythonName(filepath.Base(a)) {
			// An interpreter in the project (.venv/bin/python) is
			// not the experiment's main file: the script it runs is.
			continue
		}
		if ex.MainFile == "" {
			ex.MainFile = relName(base, abs)
			add(abs)
			continue
		}
		if fi.Size() <= MaxArgSourceSize {
			add(abs)
		}
	}
	for _, g := range sourceGlobs {
		matches, err := globFiles(base, g)
		if err != nil {
			return ex, fmt.Errorf("experiment: --source %q: %w", g, err)
		}
		if len(matches) == 0 {
			return ex, fmt.Errorf("experiment: --source %q matches no file under %s: check the pattern", g, base)
		}
		for _, m := range matches {
			add(m)
		}
	}

	deps := opts.Deps
	if deps == "" {
		deps = DepsImported
	}
	if err := CheckDepsMode(deps); err != nil {
		return ex, fmt.Errorf("experiment: --deps %q: %w", deps, err)
	}
	if deps != DepsNone {
		for _, p := range lockFiles(base) {
			add(p)
		}
	}

	switch {
	case nameOverride != "":
		ex.Name = nameOverride
	case ex.MainFile != "":
		ex.Name = stem(ex.MainFile)
	default:
		ex.Name = stem(argv[0])
	}

	// Git runs while the sources are hashed: both mostly wait on the disk.
	gitPaths := paths
	if len(gitPaths) == 0 {
		gitPaths = []string{base}
	}
	type gitResult struct {
		repos []observer.Repository
		err   error
	}
	gitDone := make(chan gitResult, 1)
	go func() {
		r, err := Git(gitPaths)
		gitDone <- gitResult{r, err}
	}()

	// Dependencies are read while the sources are hashed, too.
	depsDone := make(chan []string, 1)
	go func() {
		if deps == DepsNone {
			depsDone <- nil
			return
		}
		getenv := opts.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		main := ""
		if ex.MainFile != "" {
			main = filepath.Join(base, filepath.FromSlash(ex.MainFile))
		}
		depsDone <- pythonDependencies(argv, base, main, paths, deps, getenv)
	}()

	ex.Sources = make([]observer.Source, 0, len(paths))
	limit := opts.maxSourceSize()
	var hashErr error
	for _, p := range paths {
		sum, size, err := fileMD5(p)
		if err != nil {
			hashErr = fmt.Errorf("experiment: read source: %w", err)
			break
		}
		ex.Sources = append(ex.Sources, observer.Source{
			Name: relName(base, p), Path: p, MD5: sum, Size: size, Omitted: size > limit,
		})
	}
	gr := <-gitDone
	if d := <-depsDone; d != nil {
		ex.Dependencies = d
	}
	if hashErr != nil {
		return ex, hashErr
	}
	sort.Slice(ex.Sources, func(i, j int) bool { return ex.Sources[i].Name < ex.Sources[j].Name })
	if gr.err != nil {
		return ex, &GitError{Err: gr.err}
	}
	ex.Repositories = gr.repos
	return ex, nil
}

// argFile reports whether argv element a names an existing regular file
// under base, and returns its absolute path.
func argFile(base, a string) (string, fs.FileInfo, bool) {
	if a == "" || strings.ContainsRune(a, 0) {
		return "", nil, false
	}
	abs := a
	if !filepath.IsAbs(abs) {
		abs = filepath.Join(base, a)
	}
	abs = filepath.Clean(abs)
	if !under(base, abs) {
		return "", nil, false
	}
	fi, err := os.Stat(abs)
	if err != nil || !fi.Mode().IsRegular() {
		return "", nil, false
	}
	return abs, fi, true
}

func under(base, abs string) bool {
	rel, err := filepath.Rel(base, abs)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

func relName(base, abs string) string {
	rel, err := filepath.Rel(base, abs)
	if err != nil {
		return filepath.ToSlash(abs)
	}
	return filepath.ToSlash(rel)
}

func stem(p string) string {
	b := filepath.Base(p)
	if i := strings.LastIndexByte(b, '.'); i > 0 {
		return b[:i]
	}
	return b
}

// fileMD5 hashes a file and returns the md5 and the number of bytes hashed.
func fileMD5(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := md5.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// globFiles returns the regular files matching pattern (relative to base
// unless absolute), sorted. Besides filepath.Match syntax, a "**" path
// element matches zero or more directories.
func globFiles(base, pattern string) ([]string, error) {
	pat := filepath.FromSlash(pattern)
	if !filepath.IsAbs(pat) {
		pat = filepath.Join(base, pat)
	}
	pat = filepath.Clean(pat)
	var out []string
	if !strings.Contains(pat, "**") {
		ms, err := filepath.Glob(pat)
		if err != nil {
			return nil, fmt.Errorf("bad pattern: %w", err)
		}
		for _, m := range ms {
			if fi, err := os.Stat(m); err == nil && fi.Mode().IsRegular() {
				out = append(out, m)
			}
		}
		return out, nil
	}
	// Walk from the longest directory prefix free of wildcards.
	segs := strings.Split(pat, string(filepath.Separator))
	root := string(filepath.Separator)
	i := 0
	if segs[0] != "" { // a volume such as C: on Windows
		root = segs[0] + string(filepath.Separator)
	}
	i = 1
	for ; i < len(segs)-1 && !strings.ContainsAny(segs[i], `*?[\`); i++ {
		root = filepath.Join(root, segs[i])
	}
	rest := segs[i:]
	for _, s := range rest {
		if s != "**" {
			if _, err := filepath.Match(s, ""); err != nil {
				return nil, fmt.Errorf("bad pattern: %w", err)
			}
		}
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return nil // unreadable subdirectory: skip it as git would
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return nil
		}
		if matchSegs(rest, strings.Split(rel, string(filepath.Separator))) {
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				out = append(out, p)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("walk %s: %w", root, err)
	}
	sort.Strings(out)
	return out, nil
}

// matchSegs matches path segments against pattern segments where "**"
// stands for any number of segments.
func matchSegs(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			for k := 0; k <= len(name); k++ {
				if matchSegs(pat[1:], name[k:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 {
			return false
		}
		if ok, _ := filepath.Match(pat[0], name[0]); !ok {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}
