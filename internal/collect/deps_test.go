package collect

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// writeFiles creates files under dir from a map of slash paths to
// contents; a path ending in "/" is a directory.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.Contains("/"+p, "/bin/") || strings.HasPrefix(content, "#!") {
			mode = 0o755
		}
		if err := os.WriteFile(full, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func metadata(name, version string) string {
	return "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\nSummary: x\n\nLong description\nName: not-this\n"
}

// fakeVenv writes a virtual environment with a few distributions whose
// module names differ from their own names, share a namespace package,
// lack top_level.txt, or are old eggs.
func fakeVenv(t testing.TB, root string) {
	sp := "lib/python3.11/site-packages/"
	writeFiles(t, root, map[string]string{
		"pyvenv.cfg":  "home = /nonexistent/bin\ninclude-system-site-packages = false\nversion = 3.11.7\n",
		"bin/python3": "",
		"bin/python":  "",

		sp + "numpy-1.26.4.dist-info/METADATA":      metadata("numpy", "1.26.4"),
		sp + "numpy-1.26.4.dist-info/top_level.txt": "numpy\n",
		// The modules themselves.
		sp + "numpy/__init__.py": "", sp + "yaml/__init__.py": "", sp + "_yaml/__init__.py": "",
		sp + "sklearn/__init__.py": "", sp + "google/protobuf/__init__.py": "", sp + "google/auth/__init__.py": "",
		sp + "requests/__init__.py": "", sp + "dataclasses.py": "", sp + "typing_extensions.py": "",
		sp + "utils/__init__.py": "", sp + "wandb/__init__.py": "", sp + "six.py": "", sp + "nover.py": "",
		sp + "PIL/__init__.py": "", sp + "cv2/__init__.py": "", sp + "msgpack/__init__.py": "",
		sp + "_cffi_backend.cpython-311-x86_64-linux-gnu.so": "", sp + "cffi/__init__.py": "",

		sp + "PyYAML-6.0.1.dist-info/METADATA":      metadata("PyYAML", "6.0.1"),
		sp + "PyYAML-6.0.1.dist-info/top_level.txt": "_yaml\nyaml\n",

		// meson-python and hatchling write no top_level.txt: RECORD tells.
		sp + "scikit_learn-1.4.0.dist-info/METADATA": metadata("scikit-learn", "1.4.0"),
		sp + "scikit_learn-1.4.0.dist-info/RECORD": "scikit_learn-1.4.0.dist-info/METADATA,sha256=x,10\n" +
			"sklearn/__init__.py,sha256=x,10\nsklearn/linear_model/__init__.py,sha256=x,10\n../../../bin/sk,sha256=x,1\n",

		// Two distributions share the namespace package google.
		sp + "protobuf-4.25.0.dist-info/METADATA":        metadata("protobuf", "4.25.0"),
		sp + "protobuf-4.25.0.dist-info/top_level.txt":   "google\n",
		sp + "protobuf-4.25.0.dist-info/RECORD":          "google/protobuf/__init__.py,,\ngoogle/protobuf/message.py,,\n",
		sp + "google_auth-2.0.0.dist-info/METADATA":      metadata("google-auth", "2.0.0"),
		sp + "google_auth-2.0.0.dist-info/top_level.txt": "google\n",
		sp + "google_auth-2.0.0.dist-info/RECORD":        "google/auth/__init__.py,,\n",

		sp + "requests-2.31.0.dist-info/METADATA":         metadata("requests", "2.31.0"),
		sp + "dataclasses-0.8.dist-info/METADATA":         metadata("dataclasses", "0.8"),
		sp + "dataclasses-0.8.dist-info/top_level.txt":    "dataclasses\n",
		sp + "typing_extensions-4.9.0.dist-info/METADATA": metadata("typing_extensions", "4.9.0"),
		sp + "mylocal-1.0.dist-info/METADATA":             metadata("mylocal", "1.0"),
		sp + "mylocal-1.0.dist-info/top_level.txt":        "utils\n",
		sp + "wandb-0.16.0.dist-info/METADATA":            metadata("wandb", "0.16.0"),
		sp + "six-1.16.0-py3.11.egg-info":                 "Metadata-Version: 1.1\nName: six\nVersion: 1.16.0\n",
		sp + "nover.egg-info/PKG-INFO":                    "Metadata-Version: 1.1\nName: nover\n\n", // an old develop install
		sp + "Pillow-10.0.0.dist-info/METADATA":           metadata("Pillow", "10.0.0"),
		sp + "Pillow-10.0.0.dist-info/top_level.txt":      "PIL\n",
		sp + "opencv_python-4.8.0.dist-info/METADATA":     metadata("opencv-python", "4.8.0"),
		sp + "opencv_python-4.8.0.dist-info/RECORD":       "cv2/__init__.py,,\ncv2/cv2.abi3.so,,\n",
		sp + "msgpack-1.0.0.dist-info/METADATA":           metadata("msgpack", "1.0.0"),
		sp + "cffi-1.16.0.dist-info/METADATA":             metadata("cffi", "1.16.0"),
		sp + "cffi-1.16.0.dist-info/RECORD":               "_cffi_backend.cpython-311-x86_64-linux-gnu.so,,\ncffi/__init__.py,,\n",
	})
}

const script = `#!/usr/bin/env python3
"""Trains.

import requests
"""
import os, sys
import numpy as np
from sklearn.linear_model import LinearRegression
import yaml  # import requests
try: import google.protobuf.message
except ImportError: pass
from . import sibling
import dataclasses
import utils, wandb
def f():
    import typing_extensions as te; import nover
x = "import requests"
y = '''
from requests import get
'''
from six import (
    moves,
)
import \
    PIL.Image
if True: import cv2
import _cffi_backend
`

// The imports of the script and the distributions that provide them:
// names unlike the module's, namespace packages, eggs; not the stdlib's
// backport, not a local module's distribution, not imports in strings.
var wantDeps = []string{
	"cffi==1.16.0", "nover==<unknown>", "numpy==1.26.4", "opencv-python==4.8.0", "Pillow==10.0.0",
	"protobuf==4.25.0", "PyYAML==6.0.1", "scikit-learn==1.4.0", "six==1.16.0",
	"typing-extensions==4.9.0", "wandb==0.16.0",
}

// project writes a project directory with the script, a local module
// utils.py and a wandb/ run directory (no package), and a venv.
func project(t testing.TB) (dir string) {
	dir = t.TempDir()
	writeFiles(t, dir, map[string]string{
		"train.py":      script,
		"utils.py":      "",
		"wandb/run-1/x": "",
	})
	fakeVenv(t, filepath.Join(dir, "venv"))
	return dir
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestDependenciesOfAPythonScript(t *testing.T) {
	dir := project(t)
	venvBin := filepath.Join(dir, "venv", "bin")
	for _, tc := range []struct {
		name string
		argv []string
		env  map[string]string
	}{
		{"relative interpreter", []string{"venv/bin/python3", "-u", "train.py"}, nil},
		{"interpreter on PATH", []string{"python3", "train.py"}, map[string]string{"PATH": "/nonexistent:" + venvBin}},
		{"launcher", []string{"nice", "-n", "5", "python", "train.py"}, map[string]string{"PATH": venvBin}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex, err := Experiment(tc.argv, dir, "", nil, ExperimentOptions{Getenv: env(tc.env)})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ex.Dependencies, wantDeps) {
				t.Errorf("dependencies:\n got %q\nwant %q", ex.Dependencies, wantDeps)
			}
		})
	}
}

func TestDependenciesThroughShebang(t *testing.T) {
	dir := project(t)
	venvPython := filepath.Join(dir, "venv", "bin", "python3")
	writeFiles(t, dir, map[string]string{
		"train":  "#!" + venvPython + "\n" + script,
		"run.py": "#!/usr/bin/env python3\nimport yaml\n",
	})
	ex, err := Experiment([]string{"./train", "--epochs", "3"}, dir, "", nil, ExperimentOptions{Getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ex.Dependencies, wantDeps) {
		t.Errorf("dependencies of a script run by its #! line:\n got %q\nwant %q", ex.Dependencies, wantDeps)
	}
	ex, err = Experiment([]string{"./run.py"}, dir, "", nil, ExperimentOptions{Getenv: env(map[string]string{"PATH": filepath.Dir(venvPython)})})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"numpy==1.26.4", "PyYAML==6.0.1"}; !reflect.DeepEqual(ex.Dependencies, want) {
		t.Errorf("dependencies of #!/usr/bin/env python3: got %q, want %q", ex.Dependencies, want)
	}
}

func TestDependenciesOfUvRun(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"train.py": "import yaml\n", "uv.lock": "version = 1\n"})
	fakeVenv(t, filepath.Join(dir, ".venv"))
	ex, err := Experiment([]string{"uv", "run", "train.py"}, dir, "", nil, ExperimentOptions{Getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"numpy==1.26.4", "PyYAML==6.0.1"}; !reflect.DeepEqual(ex.Dependencies, want) {
		t.Errorf("dependencies of uv run: got %q, want %q", ex.Dependencies, want)
	}
	if names := sourceNames(ex.Sources); !reflect.DeepEqual(names, []string{"train.py", "uv.lock"}) {
		t.Errorf("sources = %q, want train.py and uv.lock", names)
	}
}

func TestDependenciesThroughPyenvShim(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "pyenv")
	writeFiles(t, dir, map[string]string{
		"pyenv/shims/python3":  "#!/usr/bin/env bash\nexec pyenv exec python3 \"$@\"\n",
		"pyenv/version":        "system\n",
		"proj/.python-version": "3.11.7\n",
		"proj/train.py":        "import yaml\n",
		"home/.local/lib/python3.11/site-packages/PyYAML-5.0.dist-info/METADATA":      metadata("PyYAML", "5.0"),
		"home/.local/lib/python3.11/site-packages/PyYAML-5.0.dist-info/top_level.txt": "yaml\n",
		"home/.local/lib/python3.11/site-packages/yaml/__init__.py":                   "",
	})
	// pyenv's layout: versions/V/bin/python3 -> python3.11, site-packages
	// under lib/python3.11.
	fakeVenv(t, filepath.Join(root, "versions", "3.11.7"))
	if err := os.Remove(filepath.Join(root, "versions", "3.11.7", "pyvenv.cfg")); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "versions", "3.11.7", "bin")
	writeFiles(t, bin, map[string]string{"python3.11": ""})
	os.Remove(filepath.Join(bin, "python3"))
	if err := os.Symlink("python3.11", filepath.Join(bin, "python3")); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"PATH": filepath.Join(root, "shims"), "HOME": filepath.Join(dir, "home")}
	ex, err := Experiment([]string{"python3", "train.py"}, filepath.Join(dir, "proj"), "", nil, ExperimentOptions{Getenv: env(vars)})
	if err != nil {
		t.Fatal(err)
	}
	// The user site comes before the interpreter's own.
	if want := []string{"numpy==1.26.4", "PyYAML==5.0"}; !reflect.DeepEqual(ex.Dependencies, want) {
		t.Errorf("dependencies through a pyenv shim: got %q, want %q", ex.Dependencies, want)
	}
	vars["PYTHONNOUSERSITE"] = "1"
	ex, _ = Experiment([]string{"python3", "train.py"}, filepath.Join(dir, "proj"), "", nil, ExperimentOptions{Getenv: env(vars)})
	if want := []string{"numpy==1.26.4", "PyYAML==6.0.1"}; !reflect.DeepEqual(ex.Dependencies, want) {
		t.Errorf("dependencies with PYTHONNOUSERSITE: got %q, want %q", ex.Dependencies, want)
	}
}

func TestDependenciesWithSystemSitePackages(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base")
	fakeVenv(t, base) // used as a plain installation: its pyvenv.cfg goes
	os.Remove(filepath.Join(base, "pyvenv.cfg"))
	writeFiles(t, dir, map[string]string{
		"venv/pyvenv.cfg":  "home = " + filepath.Join(base, "bin") + "\ninclude-system-site-packages = true\nversion_info = 3.11.7.final.0\n",
		"venv/bin/python3": "",
		"venv/lib/python3.11/site-packages/PyYAML-7.0.dist-info/METADATA": metadata("PyYAML", "7.0"),
		"venv/lib/python3.11/site-packages/PyYAML-7.0.dist-info/RECORD":   "yaml/__init__.py,,\n",
		"venv/lib/python3.11/site-packages/yaml/__init__.py":              "",
		"train.py": "import yaml, sklearn\n",
	})
	ex, err := Experiment([]string{"venv/bin/python3", "train.py"}, dir, "", nil, ExperimentOptions{Getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"numpy==1.26.4", "PyYAML==7.0", "scikit-learn==1.4.0"}; !reflect.DeepEqual(ex.Dependencies, want) {
		t.Errorf("dependencies: got %q, want %q", ex.Dependencies, want)
	}
}

func TestDependenciesModes(t *testing.T) {
	dir := project(t)
	writeFiles(t, dir, map[string]string{
		"requirements.txt": "numpy\n", "requirements-dev.txt": "pytest\n", "go.mod": "module x\n",
		"Cargo.lock": "", "notes.txt": "",
	})
	argv := []string{"venv/bin/python3", "train.py"}
	all, err := Experiment(argv, dir, "", nil, ExperimentOptions{Deps: DepsAll, Getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Dependencies) != 16 || !contains(all.Dependencies, "requests==2.31.0") {
		t.Errorf("--deps all: %d dependencies %q, want all 16 distributions", len(all.Dependencies), all.Dependencies)
	}
	wantSources := []string{"Cargo.lock", "go.mod", "requirements-dev.txt", "requirements.txt", "train.py"}
	if names := sourceNames(all.Sources); !reflect.DeepEqual(names, wantSources) {
		t.Errorf("sources = %q, want %q", names, wantSources)
	}
	none, err := Experiment(argv, dir, "", nil, ExperimentOptions{Deps: DepsNone, Getenv: env(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if len(none.Dependencies) != 0 || !reflect.DeepEqual(sourceNames(none.Sources), []string{"train.py"}) {
		t.Errorf("--deps none: dependencies %q, sources %q; want none and only train.py", none.Dependencies, sourceNames(none.Sources))
	}
	if _, err := Experiment(argv, dir, "", nil, ExperimentOptions{Deps: "pip"}); err == nil || !strings.Contains(err.Error(), "want imported, all or none") {
		t.Errorf("--deps pip: err = %v", err)
	}
	// Not Python: lock files only.
	other, err := Experiment([]string{"go", "run", "."}, dir, "", nil, ExperimentOptions{Getenv: env(map[string]string{"PATH": "/usr/bin:/bin"})})
	if err != nil {
		t.Fatal(err)
	}
	if len(other.Dependencies) != 0 || !contains(sourceNames(other.Sources), "go.mod") {
		t.Errorf("go run: dependencies %q, sources %q", other.Dependencies, sourceNames(other.Sources))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestPythonImports(t *testing.T) {
	var got []string
	pythonImports(script, func(m string) { got = append(got, m) })
	want := []string{"os", "sys", "numpy", "sklearn.linear_model", "yaml", "google.protobuf.message",
		"dataclasses", "utils", "wandb", "typing_extensions", "nover", "six", "PIL.Image", "cv2", "_cffi_backend"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("imports:\n got %q\nwant %q", got, want)
	}
}

func TestSafeNameAndNormalize(t *testing.T) {
	for in, want := range map[string]string{"typing_extensions": "typing-extensions", "PyYAML": "PyYAML", "zope.interface": "zope.interface", "a__b--c": "a-b-c"} {
		if got := safeName(in); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"Typing_Extensions": "typing-extensions", "zope.interface": "zope-interface", "a__b--c": "a-b-c"} {
		if got := normalizeDist(in); got != want {
			t.Errorf("normalizeDist(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkDependencies300 discovers the dependencies of a script that
// imports 20 distributions from an environment of 300: half of them
// without top_level.txt (read from RECORD), five imported under a module
// name unlike their own. The budget is 20 ms.
func BenchmarkDependencies300(b *testing.B) {
	dir := b.TempDir()
	sp := "venv/lib/python3.11/site-packages/"
	files := map[string]string{
		"venv/pyvenv.cfg":  "home = /nonexistent\nversion = 3.11.7\n",
		"venv/bin/python3": "",
	}
	var imports strings.Builder
	for i := 0; i < 300; i++ {
		name := fmt.Sprintf("Dist_%03d", i)
		mod := fmt.Sprintf("dist_%03d", i)
		if i%60 == 0 {
			mod = fmt.Sprintf("mod%03d", i) // a module named unlike its distribution
		}
		di := sp + name + "-1.0." + fmt.Sprint(i) + ".dist-info/"
		files[di+"METADATA"] = metadata(name, "1.0."+fmt.Sprint(i)) + strings.Repeat("long description\n", 100)
		var rec strings.Builder
		for j := 0; j < 40; j++ {
			fmt.Fprintf(&rec, "%s/sub%02d.py,sha256=abcdefabcdefabcdefabcdefabcdefabcdefabcdefa,1234\n", mod, j)
		}
		files[di+"RECORD"] = rec.String()
		files[sp+mod+"/__init__.py"] = ""
		if i%2 == 0 {
			files[di+"top_level.txt"] = mod + "\n"
		}
		if i%15 == 0 {
			fmt.Fprintf(&imports, "import %s\n", mod)
		}
	}
	imports.WriteString("import os, sys, json\nfrom collections import OrderedDict\n")
	files["train.py"] = imports.String() + strings.Repeat("x = compute(1, 2)  # a line of code\n", 2000)
	writeFiles(b, dir, files)
	argv := []string{"venv/bin/python3", "train.py"}
	main := filepath.Join(dir, "train.py")
	deps := pythonDependencies(argv, dir, main, []string{main}, DepsImported, env(nil))
	if len(deps) != 20 {
		b.Fatalf("found %d dependencies, want 20: %q", len(deps), deps)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pythonDependencies(argv, dir, main, []string{main}, DepsImported, env(nil))
	}
}

// isPythonName is the regular expression it documents, written out.
func FuzzIsPythonName(f *testing.F) {
	re := regexp.MustCompile(`^python(\d+(\.\d+)?[td]?)?w?(\.exe)?$`)
	for _, s := range []string{"python", "python3", "python3.11", "pythonw", "python3.11t", "python3.13td",
		"python3.11tw.exe", "python.exe", "python3.", "python.3", "pythont", "pythonww", "python3w", "python3.11d",
		"python3.x", "ipython", "python2.7.exe", "python-config", "python3.11w.exe.exe", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isPythonName(s), re.MatchString(s); got != want {
			t.Errorf("isPythonName(%q) = %v, the expression says %v", s, got, want)
		}
	})
}
