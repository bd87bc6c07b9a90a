package collect

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Modes of dependency discovery (--deps).
const (
	// DepsImported records the distributions the recorded Python sources
	// import, and the lock files of the working directory as sources.
	DepsImported = "imported"
	// DepsAll records every distribution of the interpreter's
	// environment, and the lock files.
	DepsAll = "all"
	// DepsNone records neither.
	DepsNone = "none"
)

// CheckDepsMode reports why s is not a --deps value, or nil.
func CheckDepsMode(s string) error {
	switch s {
	case DepsImported, DepsAll, DepsNone:
		return nil
	}
	return fmt.Errorf("want %s, %s or %s", DepsImported, DepsAll, DepsNone)
}

// lockFileNames are the files that pin a run's inputs, recorded as
// sources when they are in the working directory.
var lockFileNames = []string{
	"go.mod", "go.sum", // Go
	"package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", // JavaScript
	"Cargo.lock",                                                              // Rust
	"renv.lock",                                                               // R
	"requirements*.txt", "poetry.lock", "uv.lock", "Pipfile.lock", "pdm.lock", // Python
}

// lockFiles returns the lock files directly in dir, sorted.
func lockFiles(dir string) []string {
	f, err := os.Open(dir)
	if err != nil {
		return nil
	}
	names, _ := f.Readdirnames(-1)
	f.Close()
	var out []string
	for _, n := range names {
		for _, pat := range lockFileNames {
			if ok, _ := filepath.Match(pat, n); ok {
				p := filepath.Join(dir, n)
				if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
					out = append(out, p)
				}
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

// pythonDependencies returns Sacred's dependencies list ("name==version",
// sorted case-insensitively) for a command that runs Python, or nil for
// one that does not. In DepsImported mode it lists the distributions that
// provide the modules the sources import (and `-m module`), plus numpy when
// installed, as Sacred always adds it; in DepsAll mode every distribution.
// sources are absolute paths; the Python ones (.py, .pyw, or the script
// run by its "#!" line) are read for imports.
func pythonDependencies(argv []string, cwd, mainFile string, sources []string, mode string, getenv func(string) string) []string {
	env := findPythonEnv(argv, cwd, getenv)
	if env == nil {
		return nil
	}
	idx := newDistIndex(env.sites)
	var dists []*dist
	if mode == DepsAll {
		dists = idx.dists
	} else {
		dists = importedDists(idx, argv, cwd, mainFile, sources)
	}
	if numpy := idx.byKey["numpy"]; numpy != nil {
		dists = append(dists, numpy)
	}
	seen := map[*dist]bool{}
	out := []string{}
	for _, d := range dists {
		if seen[d] {
			continue
		}
		seen[d] = true
		name, version := d.nameVersion()
		if version == "" {
			version = "<unknown>"
		}
		out = append(out, safeName(name)+"=="+version)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := strings.ToLower(out[i]), strings.ToLower(out[j])
		if a != b {
			return a < b
		}
		return out[i] < out[j]
	})
	return out
}

// importedDists maps the imports of the Python sources to distributions.
func importedDists(idx *distIndex, argv []string, cwd, mainFile string, sources []string) []*dist {
	mods := map[string]bool{}
	add := func(m string) { mods[m] = true }
	for i, a := range argv {
		if a == "-m" && i+1 < len(argv) && i > 0 && isPythonName(filepath.Base(argv[i-1])) {
			add(argv[i+1])
		}
	}
	for _, p := range sources {
		if !isPythonSource(p, p == mainFile) {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		pythonImports(string(b), add)
	}
	// The script's directory comes first on sys.path (the working
	// directory with -m or -c): a module there shadows any installed one.
	scriptDir := cwd
	if mainFile != "" {
		scriptDir = filepath.Dir(mainFile)
	}
	names := make([]string, 0, len(mods))
	for m := range mods {
		names = append(names, m)
	}
	sort.Strings(names)
	var out []*dist
	for _, m := range names {
		top, _, _ := strings.Cut(m, ".")
		if stdlibModules()[top] || isLocalModule(scriptDir, top) {
			continue
		}
		out = append(out, idx.providers(m)...)
	}
	return out
}

// isPythonSource reports whether the file at p is Python: by its suffix,
// or for the main file by its "#!" line.
func isPythonSource(p string, main bool) bool {
	switch strings.ToLower(filepath.Ext(p)) {
	case ".py", ".pyw":
		return true
	case "":
		return main && hasPythonShebang(p)
	}
	return false
}

// hasPythonShebang reports whether p starts with a "#!" line naming
// Python, wherever that interpreter is.
func hasPythonShebang(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, 256)
	n, _ := f.Read(buf)
	line, _, _ := strings.Cut(string(buf[:n]), "\n")
	if !strings.HasPrefix(line, "#!") {
		return false
	}
	for _, f := range strings.Fields(line[2:]) {
		if isPythonName(filepath.Base(f)) {
			return true
		}
	}
	return false
}

// isLocalModule reports whether dir holds a module or a regular package
// named name. A directory without __init__.py would only be a namespace
// package, which an installed package of the same name wins over (think
// of the ./wandb/ directory wandb writes its runs to).
func isLocalModule(dir, name string) bool {
	if fileExists(filepath.Join(dir, name, "__init__.py")) || fileExists(filepath.Join(dir, name+".py")) {
		return true
	}
	ms, _ := filepath.Glob(filepath.Join(dir, name+".*.so"))
	return len(ms) > 0
}
