package collect

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// Finding a Python command's interpreter and its site directories from the
// file system alone: running `python -c 'import sys; print(sys.path)'`
// costs 20-40 ms, the whole budget of dependency discovery, so the layout
// is read instead (pyvenv.cfg, lib/pythonX.Y/site-packages, pyenv's
// shims).

// isPythonName reports whether name is one an interpreter goes by:
// python, python3, python3.11, pythonw, python3.11t (free-threaded) and
// the like; as the regular expression
// ^python(\d+(\.\d+)?[td]?)?w?(\.exe)?$ (written out: it is asked for
// every argument of every run, and a compiled expression would cost each
// process its compilation).
func isPythonName(name string) bool {
	s, ok := strings.CutPrefix(name, "python")
	if !ok {
		return false
	}
	s = strings.TrimSuffix(s, ".exe")
	s = strings.TrimSuffix(s, "w")
	if s == "" {
		return true
	}
	digits := func() bool {
		n := 0
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		s = s[n:]
		return n > 0
	}
	if !digits() {
		return false
	}
	if rest, ok := strings.CutPrefix(s, "."); ok {
		s = rest
		if !digits() {
			return false
		}
	}
	return s == "" || s == "t" || s == "d"
}

// pythonEnv is what an interpreter's sys.path holds beyond the standard
// library, in sys.path order.
type pythonEnv struct {
	interp string   // the interpreter as the command names it, absolute
	sites  []string // PYTHONPATH, the user site, the site directories
}

// findPythonEnv returns the environment of the Python interpreter argv
// runs, or nil when the command does not run Python as far as can be told
// without running it: argv[0] is an interpreter, or a script whose "#!"
// line names one, or a launcher (uv run, poetry run, conda run, env, time,
// nice, ...) followed by one.
func findPythonEnv(argv []string, cwd string, getenv func(string) string) *pythonEnv {
	interp := findInterpreter(argv, cwd, getenv)
	if interp == "" {
		return nil
	}
	env := &pythonEnv{interp: interp}
	for _, p := range filepath.SplitList(getenv("PYTHONPATH")) {
		if p != "" {
			env.sites = append(env.sites, resolvePath(cwd, p))
		}
	}
	env.sites = append(env.sites, siteDirs(interp, getenv)...)
	return env
}

func resolvePath(cwd, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(cwd, p)
}

// launchers run the command that follows them.
var launchers = map[string]bool{
	"uv": true, "uvx": true, "poetry": true, "pipenv": true, "pdm": true, "hatch": true, "rye": true,
	"conda": true, "mamba": true, "micromamba": true, "pixi": true,
	"env": true, "time": true, "nice": true, "nohup": true, "ionice": true, "taskset": true,
	"numactl": true, "chrt": true, "stdbuf": true, "timeout": true, "srun": true, "mpirun": true, "mpiexec": true,
}

// projectLaunchers run commands in the project's virtual environment, by
// convention .venv next to pyproject.toml.
var projectLaunchers = map[string]bool{"uv": true, "poetry": true, "pipenv": true, "pdm": true, "hatch": true, "rye": true}

// findInterpreter returns the absolute path of the interpreter argv runs,
// or "".
func findInterpreter(argv []string, cwd string, getenv func(string) string) string {
	if len(argv) == 0 {
		return ""
	}
	first := filepath.Base(argv[0])
	if !launchers[first] {
		if isPythonName(first) {
			return lookCommand(argv[0], cwd, getenv)
		}
		if p := lookCommand(argv[0], cwd, getenv); p != "" {
			return shebangPython(p, cwd, getenv)
		}
		return ""
	}
	if projectLaunchers[first] {
		if v := projectVenv(cwd); v != "" {
			return v
		}
	}
	for _, a := range argv[1:] {
		base := filepath.Base(a)
		if isPythonName(base) {
			return lookCommand(a, cwd, getenv)
		}
		if strings.HasSuffix(base, ".py") {
			break // a script run some other way: what follows are its arguments
		}
	}
	return ""
}

// lookCommand resolves a command name as the shell would: a name with a
// slash relative to cwd, else along PATH; pyenv's shims are followed to
// the interpreter they would run.
func lookCommand(name, cwd string, getenv func(string) string) string {
	var p string
	switch {
	case strings.ContainsRune(name, filepath.Separator) || strings.ContainsRune(name, '/'):
		p = resolvePath(cwd, name)
		if fi, err := os.Stat(p); err != nil || fi.IsDir() {
			return ""
		}
	case runtime.GOOS == "windows":
		lp, err := exec.LookPath(name)
		if err != nil {
			return ""
		}
		p = lp
	default:
		for _, dir := range filepath.SplitList(getenv("PATH")) {
			if dir == "" {
				dir = "."
			}
			cand := resolvePath(cwd, filepath.Join(dir, name))
			if fi, err := os.Stat(cand); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
				p = cand
				break
			}
		}
		if p == "" {
			return ""
		}
	}
	if real := pyenvShim(p, cwd, getenv); real != "" {
		return real
	}
	return p
}

// pyenvShim returns the interpreter a pyenv shim runs: the command in the
// first version of PYENV_VERSION, .python-version (from cwd upwards) or
// $PYENV_ROOT/version that has it. "" when p is no shim or the version is
// "system".
func pyenvShim(p, cwd string, getenv func(string) string) string {
	dir := filepath.Dir(p)
	if filepath.Base(dir) != "shims" {
		return ""
	}
	root := filepath.Dir(dir)
	if _, err := os.Stat(filepath.Join(root, "versions")); err != nil {
		return ""
	}
	versions := getenv("PYENV_VERSION")
	if versions == "" {
		for d := cwd; ; {
			if b, err := os.ReadFile(filepath.Join(d, ".python-version")); err == nil {
				versions = string(b)
				break
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	if versions == "" {
		b, _ := os.ReadFile(filepath.Join(root, "version"))
		versions = string(b)
	}
	for _, v := range strings.FieldsFunc(versions, func(r rune) bool { return r == ':' || r == '\n' || r == ' ' || r == '\r' }) {
		if strings.HasPrefix(v, "#") || v == "system" {
			continue
		}
		cand := filepath.Join(root, "versions", v, "bin", filepath.Base(p))
		if _, err := os.Stat(cand); err == nil {
			return cand
		}
	}
	return ""
}

// shebangPython returns the interpreter named by the "#!" line of the
// script at p when it is Python ("#!/usr/bin/env python3",
// "#!/opt/venv/bin/python -u").
func shebangPython(p, cwd string, getenv func(string) string) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	line, err := bufio.NewReaderSize(f, 256).ReadSlice('\n')
	if err != nil && len(line) == 0 {
		return ""
	}
	if !bytes.HasPrefix(line, []byte("#!")) {
		return ""
	}
	fields := strings.Fields(string(line[2:]))
	if len(fields) == 0 {
		return ""
	}
	if filepath.Base(fields[0]) == "env" {
		fields = fields[1:]
		for len(fields) > 0 && strings.HasPrefix(fields[0], "-") {
			fields = fields[1:] // env -S, -i
		}
	}
	if len(fields) == 0 || !isPythonName(filepath.Base(fields[0])) {
		return ""
	}
	return lookCommand(fields[0], cwd, getenv)
}

// projectVenv finds .venv/ with a pyvenv.cfg in cwd or above and returns
// its interpreter.
func projectVenv(cwd string) string {
	for d := cwd; ; {
		v := filepath.Join(d, ".venv")
		if _, err := os.Stat(filepath.Join(v, "pyvenv.cfg")); err == nil {
			for _, name := range []string{"bin/python3", "bin/python", "Scripts/python.exe"} {
				if p := filepath.Join(v, filepath.FromSlash(name)); fileExists(p) {
					return p
				}
			}
		}
		parent := filepath.Dir(d)
		if parent == d {
			return ""
		}
		d = parent
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// siteDirs returns the site directories of the interpreter at interp, in
// sys.path order.
func siteDirs(interp string, getenv func(string) string) []string {
	bin := filepath.Dir(interp)
	for _, root := range []string{filepath.Dir(bin), bin} {
		cfg, err := os.ReadFile(filepath.Join(root, "pyvenv.cfg"))
		if err != nil {
			continue
		}
		// A virtual environment: its own site-packages, and the base's
		// when include-system-site-packages is true.
		vals := parseVenvCfg(cfg)
		ver := majorMinor(vals["version_info"])
		if ver == "" {
			ver = majorMinor(vals["version"])
		}
		sites := prefixSites(root, ver, false)
		if strings.EqualFold(vals["include-system-site-packages"], "true") {
			if home := vals["home"]; home != "" {
				base := filepath.Join(home, filepath.Base(interp))
				if !fileExists(base) && ver != "" {
					base = filepath.Join(home, "python"+ver)
				}
				sites = append(sites, baseSites(base, ver, getenv)...)
			}
		}
		return sites
	}
	return baseSites(interp, "", getenv)
}

// baseSites are the site directories of an interpreter outside a virtual
// environment: the user site, then the prefix's.
func baseSites(interp, ver string, getenv func(string) string) []string {
	real, err := filepath.EvalSymlinks(interp)
	if err != nil {
		real = interp
	}
	if ver == "" {
		ver = majorMinor(strings.TrimPrefix(filepath.Base(real), "python"))
	}
	if ver == "" {
		ver = majorMinor(strings.TrimPrefix(filepath.Base(interp), "python"))
	}
	prefix := filepath.Dir(filepath.Dir(real))
	if runtime.GOOS == "windows" {
		prefix = filepath.Dir(real)
	}
	if ver == "" {
		ver = guessVersion(prefix)
	}
	var sites []string
	if getenv("PYTHONNOUSERSITE") == "" && ver != "" {
		if home := getenv("HOME"); home != "" {
			sites = append(sites, filepath.Join(home, ".local", "lib", "python"+ver, "site-packages"))
		}
	}
	return append(sites, prefixSites(prefix, ver, true)...)
}

// prefixSites lists the site directories under an installation prefix
// that exist. Debian's python adds /usr/local/lib/pythonX.Y/dist-packages
// and /usr/lib/python3/dist-packages.
func prefixSites(prefix, ver string, system bool) []string {
	var cands []string
	if runtime.GOOS == "windows" {
		cands = append(cands, filepath.Join(prefix, "Lib", "site-packages"))
	}
	if ver == "" {
		ver = guessVersion(prefix)
	}
	if ver != "" {
		lib := filepath.Join(prefix, "lib", "python"+ver)
		if system && filepath.Clean(prefix) == "/usr" {
			cands = append(cands, filepath.Join("/usr/local/lib", "python"+ver, "dist-packages"))
		}
		cands = append(cands, filepath.Join(lib, "site-packages"), filepath.Join(lib, "dist-packages"))
		if system {
			cands = append(cands, filepath.Join(prefix, "lib", "python3", "dist-packages"))
		}
	}
	var out []string
	for _, c := range cands {
		if dirExists(c) {
			out = append(out, c)
		}
	}
	return out
}

// guessVersion returns X.Y of the only lib/pythonX.Y under prefix with a
// site directory, or of the highest when there are several.
func guessVersion(prefix string) string {
	ms, _ := filepath.Glob(filepath.Join(prefix, "lib", "python3.*"))
	var vers []string
	for _, m := range ms {
		if v := majorMinor(strings.TrimPrefix(filepath.Base(m), "python")); v != "" &&
			(dirExists(filepath.Join(m, "site-packages")) || dirExists(filepath.Join(m, "dist-packages"))) {
			vers = append(vers, v)
		}
	}
	if len(vers) == 0 {
		return ""
	}
	sort.Slice(vers, func(i, j int) bool { return versionLess(vers[i], vers[j]) })
	return vers[len(vers)-1]
}

func versionLess(a, b string) bool {
	am, an, _ := strings.Cut(a, ".")
	bm, bn, _ := strings.Cut(b, ".")
	if am != bm {
		return len(am) < len(bm) || len(am) == len(bm) && am < bm
	}
	return len(an) < len(bn) || len(an) == len(bn) && an < bn
}

// majorMinor returns "3.11" of "3.11.7", "3.11.7.final.0" or "3.11t".
func majorMinor(v string) string {
	v = strings.TrimSpace(v)
	major, rest, ok := strings.Cut(v, ".")
	if !ok || major == "" || strings.Trim(major, "0123456789") != "" {
		return ""
	}
	minor := rest
	if i := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minor = rest[:i]
	}
	if minor == "" {
		return ""
	}
	return major + "." + minor
}

// parseVenvCfg reads pyvenv.cfg's "key = value" lines.
func parseVenvCfg(b []byte) map[string]string {
	vals := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok {
			vals[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	return vals
}
