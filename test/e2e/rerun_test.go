package e2e

// sacred rerun through the binary: the command of a recorded run runs
// again where it ran, with the same config, seed and command line, as a
// new run that names the original.

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sacred-go/sacred/internal/testserver"
	"github.com/sacred-go/sacred/pkg/observer"
)

// rerunScript prints what it was given, so that two runs that got the
// same print the same.
const rerunScript = `echo "config: $SACRED_CONFIG"
echo "seed: $SACRED_SEED"
echo "args: $*"
echo "in: $(pwd)"
sacred log metric loss 0.5
exit 3
`

func rerunOf(t *testing.T, flag, value, option string) {
	work := t.TempDir()
	elsewhere := t.TempDir()
	script := filepath.Join(work, "job.sh")
	if err := os.WriteFile(script, []byte(rerunScript), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{pathWithSacred()}
	first := sacred(t, work, env, "run", flag, value, "with", "lr=0.1", "net.depth=3", "--", "sh", "job.sh", "a b", "c")
	if first.code != 3 {
		t.Fatalf("sacred run: exit %d, want 3\n%s", first.code, first.stderr)
	}
	ids := runIDs(t, option, value)
	if len(ids) != 1 {
		t.Fatalf("runs %v", ids)
	}
	origID := ids[0]
	orig := readRun(t, option, value, origID)

	// From another directory: the command runs where it ran first.
	r := sacred(t, elsewhere, env, "rerun", flag, value, origID)
	if r.code != 3 {
		t.Fatalf("sacred rerun: exit %d, want the command's 3\n%s", r.code, r.stderr)
	}
	if r.stdout != first.stdout {
		t.Errorf("the rerun printed\n%s\nthe original\n%s", r.stdout, first.stdout)
	}
	if !strings.Contains(r.stderr, "running run "+origID+" of ") || strings.Contains(r.stderr, "has changed since") {
		t.Errorf("stderr: %s", r.stderr)
	}
	ids = runIDs(t, option, value)
	if len(ids) != 2 {
		t.Fatalf("runs %v after the rerun, want two", ids)
	}
	again := readRun(t, option, value, ids[1])
	if !observertestEqual(again.Config, orig.Config) || again.Config["seed"] == nil {
		t.Errorf("config %v, want the original's %v", again.Config, orig.Config)
	}
	if !reflect.DeepEqual(again.Meta.Argv, orig.Meta.Argv) || again.Meta.Cwd != work || again.Command != orig.Command {
		t.Errorf("command %q %q in %s, want %q %q in %s", again.Command, again.Meta.Argv, again.Meta.Cwd, orig.Command, orig.Meta.Argv, work)
	}
	want := observer.RunRef{Kind: option, Store: value, ID: origID}
	if again.Meta.RerunOf == nil || *again.Meta.RerunOf != want {
		t.Errorf("meta.rerun_of %+v, want %+v", again.Meta.RerunOf, want)
	}
	if orig.Meta.RerunOf != nil {
		t.Errorf("the original has meta.rerun_of %+v", orig.Meta.RerunOf)
	}
	if again.Status != observer.StatusFailed || string(again.Output) != first.stdout {
		t.Errorf("status %s, output %q", again.Status, again.Output)
	}

	// Updates win over the recorded config; the seed stays; new words go
	// to the end of the command; a changed source is said.
	if err := os.WriteFile(script, []byte(rerunScript+"# changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = sacred(t, elsewhere, env, "rerun", flag, value, origID, "with", "lr=0.2", "--", "d")
	if r.code != 3 || !strings.Contains(r.stderr, "job.sh has changed since") {
		t.Fatalf("rerun with updates: exit %d\n%s", r.code, r.stderr)
	}
	ids = runIDs(t, option, value)
	third := readRun(t, option, value, ids[len(ids)-1])
	if !observertestEqual(third.Config["lr"], 0.2) || !observertestEqual(third.Config["seed"], orig.Config["seed"]) || !observertestEqual(third.Config["net"], orig.Config["net"]) {
		t.Errorf("config %v, want lr 0.2 and the rest of %v", third.Config, orig.Config)
	}
	if want := append(append([]string{}, orig.Meta.Argv...), "d"); !reflect.DeepEqual(third.Meta.Argv, want) {
		t.Errorf("argv %q, want %q", third.Meta.Argv, want)
	}
	if !strings.Contains(string(third.Output), "args: a b c d\n") {
		t.Errorf("output %q", third.Output)
	}

	r = sacred(t, elsewhere, env, "rerun", flag, value, "4711")
	if r.code != 1 || !strings.Contains(r.stderr, `no run "4711" in `) || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("rerun of a missing run: exit %d, stderr %q", r.code, r.stderr)
	}
}

// observertestEqual compares decoded values as numbers and trees, whatever
// the store's number types.
func observertestEqual(a, b any) bool {
	return reflect.DeepEqual(normalize(a), normalize(b))
}

func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = normalize(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = normalize(e)
		}
		return s
	case int:
		return float64(x)
	case int32:
		return float64(x)
	case int64:
		return float64(x)
	}
	return v
}

func TestRerun(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		rerunOf(t, "-F", filepath.Join(t.TempDir(), "runs"), "file_storage")
	})
	t.Run("sqlite", func(t *testing.T) {
		rerunOf(t, "-s", "sqlite:///"+filepath.Join(t.TempDir(), "runs.db"), "sql")
	})
	t.Run("tinydb", func(t *testing.T) {
		rerunOf(t, "-t", filepath.Join(t.TempDir(), "tiny"), "tiny_db")
	})
	t.Run("mongo", func(t *testing.T) {
		m := testserver.FerretDB(t)
		rerunOf(t, "-m", mongoSpec(t, m.URI()), "mongo_db")
	})
}
