package filescmd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/internal/cli/storeflags"
	"github.com/sacred-go/sacred/internal/readback/readbacktest"
	"github.com/sacred-go/sacred/pkg/observer"
)

func memStore(arts ...string) []storeflags.Store {
	m := &readbacktest.Memory{
		RunList: []*observer.Run{{ID: "1", Artifacts: arts,
			Experiment: observer.Experiment{Sources: []observer.Source{{Name: "lib/util.py", MD5: "m1"}}},
			Resources:  []observer.ResourceEvent{{Path: "/data/in.csv", MD5: "m2"}}}},
		Files: map[string]string{
			readbacktest.Key("source", "1", "lib/util.py"):    "def f(): pass\n",
			readbacktest.Key("resource", "1", "/data/in.csv"): "a,b\n",
		},
	}
	for _, a := range arts {
		m.Files[readbacktest.Key("artifact", "1", a)] = "content of " + a
	}
	return []storeflags.Store{{Label: "mem", Reader: m}}
}

func files(t *testing.T, o *FilesOptions) (string, error) {
	t.Helper()
	ios, _, out, _ := cmdutil.Test()
	o.IO = ios
	if o.Run == "" {
		o.Run = "-1"
	}
	err := Files(context.Background(), o)
	return out.String(), err
}

func TestFilesOut(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	out, err := files(t, &FilesOptions{Stores: memStore("model.pt", "plots/a.png"), Out: dir})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"lib/util.py": "def f(): pass\n", "in.csv": "a,b\n", "model.pt": "content of model.pt", "plots/a.png": "content of plots/a.png"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(b) != want {
			t.Errorf("%s: %q %v", name, b, err)
		}
		if !strings.Contains(out, filepath.Join(dir, name)+"\n") {
			t.Errorf("%s not reported in %q", name, out)
		}
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.Contains(e.Name(), "sacred-tmp") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

func TestFilesOutRefusesEscapes(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "out")
	for _, name := range []string{"../evil", "/etc/evil", "a/../../evil"} {
		_, err := files(t, &FilesOptions{Stores: memStore(name), Out: dir})
		if err == nil || !strings.Contains(err.Error(), "would be written outside") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A symbolic link inside DIR does not lead out of it either.
	os.MkdirAll(dir, 0o755)
	os.Symlink(base, filepath.Join(dir, "link"))
	if _, err := files(t, &FilesOptions{Stores: memStore("link/evil"), Out: dir}); err == nil {
		t.Error("wrote through a symbolic link out of --out")
	}
	if _, err := os.Stat(filepath.Join(base, "evil")); err == nil {
		t.Error("a file was written outside --out")
	}
}

func TestFilesSelection(t *testing.T) {
	st := memStore("in.csv")
	if _, err := files(t, &FilesOptions{Stores: st, Names: []string{"in.csv"}}); err == nil || !strings.Contains(err.Error(), "resource:, or artifact:") && !strings.Contains(err.Error(), "put source:") {
		t.Errorf("ambiguous name: %v", err)
	}
	out, err := files(t, &FilesOptions{Stores: st, Names: []string{"artifact:in.csv"}})
	if err != nil || out != "content of in.csv" {
		t.Errorf("artifact:in.csv: %q %v", out, err)
	}
	out, err = files(t, &FilesOptions{Stores: st, Names: []string{"resource:in.csv"}})
	if err != nil || out != "a,b\n" {
		t.Errorf("resource:in.csv: %q %v", out, err)
	}
	_, err = files(t, &FilesOptions{Stores: st, Out: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "would both be written to") {
		t.Errorf("two files to one target: %v", err)
	}
	out, err = files(t, &FilesOptions{Stores: st})
	if err != nil || out != "kind\tname\tmd5\nsource\tlib/util.py\tm1\nresource\t/data/in.csv\tm2\nartifact\tin.csv\t\n" {
		t.Errorf("list: %q %v", out, err)
	}
}
