package collect

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sacred-go/sacred/pkg/observer"
)

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

func sourceNames(ss []observer.Source) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name)
	}
	return out
}

func TestExperimentPythonScript(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "train.py"), "print('train')\n")
	writeFile(t, filepath.Join(dir, "conf", "model.yaml"), "a: 1\n")
	writeFile(t, filepath.Join(dir, "lib", "util.py"), "U = 1\n")
	writeFile(t, filepath.Join(dir, "lib", "deep", "more.py"), "M = 1\n")
	writeFile(t, filepath.Join(dir, "lib", "notes.txt"), "n\n")
	outside := writeFile(t, filepath.Join(t.TempDir(), "other.py"), "o\n")
	big := filepath.Join(dir, "data.bin")
	if err := os.WriteFile(big, make([]byte, MaxArgSourceSize+1), 0o644); err != nil {
		t.Fatal(err)
	}

	argv := []string{"python3", "train.py", "--config", "conf/model.yaml", "conf/model.yaml", outside, big, "--lr", "0.1", "missing.py", "lib"}
	ex, err := Experiment(argv, dir, "", []string{"lib/**/*.py"}, ExperimentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ex.Name != "train" || ex.MainFile != "train.py" || ex.BaseDir != dir {
		t.Errorf("name %q mainfile %q base %q", ex.Name, ex.MainFile, ex.BaseDir)
	}
	wantNames := []string{"conf/model.yaml", "lib/deep/more.py", "lib/util.py", "train.py"}
	if got := sourceNames(ex.Sources); !reflect.DeepEqual(got, wantNames) {
		t.Errorf("sources = %v, want %v", got, wantNames)
	}
	for _, s := range ex.Sources {
		data, err := os.ReadFile(s.Path)
		if err != nil || !filepath.IsAbs(s.Path) || s.Path != filepath.Join(dir, s.Name) {
			t.Errorf("source %+v: path wrong (%v)", s, err)
		}
		if s.MD5 != md5hex(string(data)) {
			t.Errorf("source %s: md5 %s", s.Name, s.MD5)
		}
	}
	if ex.Dependencies == nil || len(ex.Dependencies) != 0 {
		t.Errorf("dependencies = %#v, want an empty list", ex.Dependencies)
	}
	if ex.Repositories == nil || len(ex.Repositories) != 0 {
		t.Errorf("repositories outside git = %#v, want an empty list", ex.Repositories)
	}
}

func TestExperimentScriptAsProgram(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "run.sh"), "#!/bin/sh\necho hi\n")
	ex, err := Experiment([]string{"./run.sh", "x"}, dir, "", nil, ExperimentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ex.Name != "run" || ex.MainFile != "run.sh" || len(ex.Sources) != 1 || ex.Sources[0].MD5 != md5hex("#!/bin/sh\necho hi\n") {
		t.Fatalf("got %+v", ex)
	}
	// An absolute path to the same file is the same source.
	ex, err = Experiment([]string{filepath.Join(dir, "run.sh"), "./run.sh"}, dir, "custom", nil, ExperimentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ex.Name != "custom" || ex.MainFile != "run.sh" || len(ex.Sources) != 1 {
		t.Fatalf("got %+v", ex)
	}
}

func TestExperimentNoFile(t *testing.T) {
	dir := t.TempDir()
	ex, err := Experiment([]string{"/bin/echo", "hello"}, dir, "", nil, ExperimentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ex.Name != "echo" || ex.MainFile != "" || ex.Sources == nil || len(ex.Sources) != 0 {
		t.Fatalf("got %+v", ex)
	}
	if _, err := Experiment(nil, dir, "", nil, ExperimentOptions{}); err == nil {
		t.Error("empty argv: no error")
	}
	_, err = Experiment([]string{"echo"}, dir, "", []string{"src/*.py"}, ExperimentOptions{})
	if err == nil || !strings.Contains(err.Error(), `"src/*.py"`) {
		t.Errorf("glob without match: %v", err)
	}
	_, err = Experiment([]string{"echo"}, dir, "", []string{"[bad"}, ExperimentOptions{})
	if err == nil || !strings.Contains(err.Error(), `"[bad"`) {
		t.Errorf("bad glob: %v", err)
	}
}

func TestExperimentGit(t *testing.T) {
	needGit(t)
	dir := newRepo(t)
	gitCmd(t, dir, "remote", "add", "origin", "https://me:tok@example.com/r.git")
	sub := filepath.Join(dir, "pkg")
	ex, err := Experiment([]string{"python3", "helpers.py"}, sub, "", []string{"../train.py"}, ExperimentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ex.MainFile != "helpers.py" || !reflect.DeepEqual(sourceNames(ex.Sources), []string{"../train.py", "helpers.py"}) {
		t.Errorf("got mainfile %q sources %v", ex.MainFile, sourceNames(ex.Sources))
	}
	want := []observer.Repository{{URL: "https://example.com/r.git", Commit: strings.TrimSpace(gitCmd(t, dir, "rev-parse", "HEAD"))}}
	if !reflect.DeepEqual(ex.Repositories, want) {
		t.Errorf("repositories = %+v, want %+v", ex.Repositories, want)
	}

	// A command without sources still records the repository of cwd.
	ex, err = Experiment([]string{"make"}, sub, "", nil, ExperimentOptions{})
	if err != nil || len(ex.Repositories) != 1 {
		t.Errorf("no sources: %+v, %v", ex.Repositories, err)
	}

	// A broken repository: the rest of the experiment is still there.
	if err := os.WriteFile(filepath.Join(dir, ".git", "index"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	ex, err = Experiment([]string{"python3", "helpers.py"}, sub, "", nil, ExperimentOptions{})
	var ge *GitError
	if !errors.As(err, &ge) {
		t.Fatalf("broken index: err = %v, want a *GitError", err)
	}
	if ex.Name != "helpers" || len(ex.Sources) != 1 {
		t.Errorf("broken index: experiment lost: %+v", ex)
	}
}

func TestMatchSegs(t *testing.T) {
	for _, tt := range []struct {
		pat, name string
		want      bool
	}{
		{"**/*.py", "a.py", true},
		{"**/*.py", "x/y/a.py", true},
		{"x/**/a.py", "x/a.py", true},
		{"x/**/a.py", "x/1/2/a.py", true},
		{"x/**/a.py", "y/a.py", false},
		{"**", "anything/at/all", true},
		{"*.py", "x/a.py", false},
	} {
		if got := matchSegs(strings.Split(tt.pat, "/"), strings.Split(tt.name, "/")); got != tt.want {
			t.Errorf("matchSegs(%q, %q) = %v", tt.pat, tt.name, got)
		}
	}
}

// Sources over the size cap are hashed and sized but marked Omitted; the
// cap defaults to DefaultMaxSourceSize, and a negative one omits all.
func TestSourceSizeCap(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "train.py"), "print('train')\n")
	bigData := make([]byte, 100)
	for i := range bigData {
		bigData[i] = byte(i)
	}
	writeFile(t, filepath.Join(dir, "model.py"), string(bigData))
	for _, tc := range []struct {
		limit       int64
		wantOmitted []string
	}{
		{0, nil}, {100, nil}, {99, []string{"model.py"}}, {-1, []string{"model.py", "train.py"}},
	} {
		ex, err := Experiment([]string{"python3", "train.py"}, dir, "", []string{"model.py"}, ExperimentOptions{MaxSourceSize: tc.limit})
		if err != nil {
			t.Fatal(err)
		}
		var omitted []string
		for _, s := range ex.Sources {
			want := map[string]string{"model.py": string(bigData), "train.py": "print('train')\n"}[s.Name]
			if s.MD5 != md5hex(want) || s.Size != int64(len(want)) {
				t.Errorf("limit %d: source %s: md5 %s size %d", tc.limit, s.Name, s.MD5, s.Size)
			}
			if s.Omitted {
				omitted = append(omitted, s.Name)
			}
		}
		if !reflect.DeepEqual(omitted, tc.wantOmitted) {
			t.Errorf("limit %d: omitted %v, want %v", tc.limit, omitted, tc.wantOmitted)
		}
	}
}
