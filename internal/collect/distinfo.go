package collect

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// The installed distributions of a Python environment, read from the
// *.dist-info (and legacy *.egg-info) entries of its site directories. A
// directory is listed once; a distribution's files are read only when it
// is needed: top_level.txt or RECORD to learn which modules it provides
// (only for imports whose name is not the distribution's), METADATA for
// its name and version (only for the distributions reported).

// dist is one installed distribution.
type dist struct {
	path string // the .dist-info or .egg-info directory (or file)
	key  string // normalized name from the entry's name
	egg  bool

	topsRead bool
	tops     []string // top-level modules and packages it installs
}

// distIndex holds the distributions of the site directories, the first
// of a name winning, as on sys.path.
type distIndex struct {
	dists []*dist
	byKey map[string]*dist
	// tops maps a top-level module to the distributions that install
	// it; built on first need.
	tops map[string][]*dist
	// entries are the names of the modules and packages directly in the
	// site directories; editable tells whether an editable install may
	// put modules elsewhere (a .pth file other than the known ones).
	entries  map[string]bool
	editable bool
}

func newDistIndex(sites []string) *distIndex {
	x := &distIndex{byKey: map[string]*dist{}, entries: map[string]bool{}}
	for _, site := range sites {
		f, err := os.Open(site)
		if err != nil {
			continue
		}
		names, _ := f.Readdirnames(-1)
		f.Close()
		for _, n := range names {
			var stem string
			var egg bool
			switch {
			case strings.HasSuffix(n, ".dist-info"):
				stem = strings.TrimSuffix(n, ".dist-info")
			case strings.HasSuffix(n, ".egg-info"):
				stem, egg = strings.TrimSuffix(n, ".egg-info"), true
			default:
				x.addEntry(n)
				continue
			}
			name, _, _ := strings.Cut(stem, "-")
			key := normalizeDist(name)
			if key == "" || x.byKey[key] != nil {
				continue
			}
			d := &dist{path: filepath.Join(site, n), key: key, egg: egg}
			x.byKey[key] = d
			x.dists = append(x.dists, d)
		}
	}
	return x
}

// addEntry notes a site directory entry: a module (name.py,
// name.cpython-311-x86_64-linux-gnu.so), a package directory, or a .pth
// file that may add directories of its own.
func (x *distIndex) addEntry(n string) {
	if strings.HasSuffix(n, ".pth") || strings.HasSuffix(n, ".egg-link") {
		switch n {
		case "distutils-precedence.pth", "_virtualenv.pth":
		default:
			x.editable = true
		}
		return
	}
	name, _, _ := strings.Cut(n, ".")
	x.entries[name] = true
}

// normalizeDist is PEP 503's normalized name: lower case, runs of "-",
// "_" and "." as one "-".
func normalizeDist(name string) string {
	var b strings.Builder
	sep := false
	for _, r := range strings.ToLower(strings.TrimSpace(name)) {
		if r == '-' || r == '_' || r == '.' {
			sep = true
			continue
		}
		if sep && b.Len() > 0 {
			b.WriteByte('-')
		}
		sep = false
		b.WriteRune(r)
	}
	return b.String()
}

// providers returns the distributions that provide the module named by
// the dotted name mod: the one named like its top-level package, else
// those whose top_level.txt or RECORD lists it (narrowed by the
// subpackage when several share a namespace package such as google).
func (x *distIndex) providers(mod string) []*dist {
	top, rest, _ := strings.Cut(mod, ".")
	if d := x.byKey[normalizeDist(top)]; d != nil {
		return []*dist{d}
	}
	if !x.entries[top] && !x.editable {
		return nil // not installed here: no distribution's files need reading
	}
	if x.tops == nil {
		x.tops = map[string][]*dist{}
		for _, d := range x.dists {
			for _, t := range d.topLevel() {
				x.tops[t] = append(x.tops[t], d)
			}
		}
	}
	ds := x.tops[top]
	if len(ds) > 1 && rest != "" {
		sub, _, _ := strings.Cut(rest, ".")
		var narrowed []*dist
		for _, d := range ds {
			if d.recordHas(top + "/" + sub) {
				narrowed = append(narrowed, d)
			}
		}
		if len(narrowed) > 0 {
			return narrowed
		}
	}
	return ds
}

// topLevel reads top_level.txt, or derives the names from RECORD when
// there is none (wheels built by hatchling, flit, poetry or maturin).
func (d *dist) topLevel() []string {
	if d.topsRead {
		return d.tops
	}
	d.topsRead = true
	if b, err := os.ReadFile(filepath.Join(d.path, "top_level.txt")); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				l, _, _ = strings.Cut(l, "/") // "pkg/sub" in a few old eggs
				d.tops = append(d.tops, l)
			}
		}
		return d.tops
	}
	seen := map[string]bool{}
	d.eachRecord(func(p string) bool {
		if t := recordTop(p); t != "" && !seen[t] {
			seen[t] = true
			d.tops = append(d.tops, t)
		}
		return true
	})
	return d.tops
}

// recordTop is the top-level module a RECORD path installs, or "".
func recordTop(p string) string {
	first, rest, nested := strings.Cut(p, "/")
	switch {
	case first == "" || first == ".." || first == "__pycache__" || first == "__init__.py":
		return ""
	case strings.HasSuffix(first, ".dist-info") || strings.HasSuffix(first, ".egg-info") || strings.HasSuffix(first, ".data"):
		return ""
	case nested:
		if rest == "" || !isDottedName(first) {
			return ""
		}
		return first
	}
	// A module file: name.py, name.cpython-311-x86_64-linux-gnu.so,
	// name.pyd; .pth files and the like install no module.
	name, ext, ok := strings.Cut(first, ".")
	if !ok || !isDottedName(name) {
		return ""
	}
	switch {
	case ext == "py", ext == "pyc", ext == "pyd", ext == "so", strings.HasSuffix(ext, ".so"), strings.HasSuffix(ext, ".pyd"):
		return name
	}
	return ""
}

// recordHas reports whether RECORD lists a path under prefix (a package
// directory or module file).
func (d *dist) recordHas(prefix string) bool {
	found := false
	d.eachRecord(func(p string) bool {
		if strings.HasPrefix(p, prefix) && len(p) > len(prefix) && (p[len(prefix)] == '/' || p[len(prefix)] == '.') {
			found = true
			return false
		}
		return true
	})
	return found
}

// eachRecord calls fn with the path of each RECORD line (installed-files.txt
// of an egg-info) until fn returns false.
func (d *dist) eachRecord(fn func(string) bool) {
	name := "RECORD"
	if d.egg {
		name = "installed-files.txt"
	}
	f, err := os.Open(filepath.Join(d.path, name))
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var p string
		if strings.HasPrefix(line, `"`) { // a CSV-quoted path holding a comma
			if end := strings.Index(line[1:], `"`); end >= 0 {
				p = line[1 : 1+end]
			}
		} else {
			p, _, _ = strings.Cut(line, ",")
		}
		if !fn(filepath.ToSlash(p)) {
			return
		}
	}
}

// nameVersion reads Name and Version from METADATA (PKG-INFO of an
// egg-info), which come first among its headers.
func (d *dist) nameVersion() (name, version string) {
	p := filepath.Join(d.path, "METADATA")
	if d.egg {
		p = filepath.Join(d.path, "PKG-INFO")
		if fi, err := os.Stat(d.path); err == nil && !fi.IsDir() {
			p = d.path // an egg-info file is the PKG-INFO itself
		}
	}
	f, err := os.Open(p)
	if err == nil {
		defer f.Close()
		r := bufio.NewReaderSize(io.LimitReader(f, 64<<10), 4096)
		for name == "" || version == "" {
			line, err := r.ReadSlice('\n')
			line = bytes.TrimRight(line, "\r\n")
			if len(line) == 0 {
				break // the end of the headers
			}
			if k, v, ok := bytes.Cut(line, []byte(":")); ok {
				switch string(bytes.ToLower(k)) {
				case "name":
					name = string(bytes.TrimSpace(v))
				case "version":
					version = string(bytes.TrimSpace(v))
				}
			}
			if err != nil {
				break
			}
		}
	}
	if name == "" || version == "" {
		// The entry's own name: name-version.dist-info.
		stem := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(d.path), ".dist-info"), ".egg-info")
		n, v, _ := strings.Cut(stem, "-")
		v, _, _ = strings.Cut(v, "-py") // name-1.0-py3.11.egg-info
		if name == "" {
			name = n
		}
		if version == "" {
			version = v
		}
	}
	return name, version
}

// safeName is pkg_resources.safe_name, which Sacred's names go through:
// runs of characters other than letters, digits and "." become "-".
func safeName(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range name {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' {
			if dash {
				b.WriteByte('-')
				dash = false
			}
			b.WriteRune(r)
		} else {
			dash = true
		}
	}
	if dash {
		b.WriteByte('-')
	}
	return b.String()
}
