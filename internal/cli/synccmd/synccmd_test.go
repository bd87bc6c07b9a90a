package synccmd

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/pkg/observer/queue"

	_ "github.com/sacred-go/sacred/pkg/observer/file"
	_ "github.com/sacred-go/sacred/pkg/observer/sqlstore"
)

func parse(t *testing.T, env []string, args ...string) (*SyncOptions, error) {
	t.Helper()
	return parseIn(t, t.TempDir(), env, args...)
}

func parseIn(t *testing.T, dir string, env []string, args ...string) (*SyncOptions, error) {
	t.Helper()
	f := cmdutil.NewTest(append([]string{"XDG_CONFIG_HOME=" + dir, "HOME=" + dir}, env...), dir)
	var got *SyncOptions
	cmd := NewCmdSync(f, func(o *SyncOptions) error { got = o; return nil })
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SilenceErrors, cmd.SilenceUsage = true, true
	err := cmd.Execute()
	return got, err
}

// TestParseForms: flags before the arguments name the store to copy from,
// flags after them the stores to replay or copy into.
func TestParseForms(t *testing.T) {
	o, err := parse(t, nil, "a.journal", "dir", "-F", "backup", "--timeout", "5s")
	if err != nil || o.From != nil || len(o.To) != 1 || o.To[0].value != "backup" || strings.Join(o.Args, ",") != "a.journal,dir" || o.Timeout.String() != "5s" {
		t.Fatalf("replay form: %+v %v", o, err)
	}
	o, err = parse(t, nil, "-F", "runs", "7", "8", "--sql", "sqlite:///x.db")
	if err != nil || o.From == nil || o.From.value != "runs" || len(o.To) != 1 || o.To[0].kind.Option != "sql" || strings.Join(o.Args, ",") != "7,8" {
		t.Fatalf("copy form: %+v %v", o, err)
	}
	o, err = parse(t, nil, "--file_storage", "backup")
	if err != nil || o.From != nil || len(o.To) != 1 || len(o.Args) != 0 {
		t.Fatalf("replay of the journal directory into a store: %+v %v", o, err)
	}
	if _, err := parse(t, nil, "-F", "runs", "7"); err == nil || !strings.Contains(err.Error(), "no store to copy run 7 into") {
		t.Errorf("copy without a target: %v", err)
	}
}

// TestTargetPasswordFromTheEnvironment: a journal's value without its
// password gets it from the kind's variable when that is the same store,
// and a clear error otherwise; the journal's value never had it.
func TestTargetPasswordFromTheEnvironment(t *testing.T) {
	full := "postgresql://u:hunter2@db.example.com/runs"
	o, err := parse(t, []string{"SACRED_SQL=" + full}, "x.journal")
	if err != nil {
		t.Fatal(err)
	}
	k, _ := lookup(o.kinds, "sql")
	h := &queue.Header{Option: "sql", Title: k.Title, Value: k.RedactValue(full), Secret: true}
	if strings.Contains(h.Value, "hunter2") {
		t.Fatalf("redacted value %q", h.Value)
	}
	ts, err := o.targets(h)
	if err != nil || len(ts) != 1 || ts[0].Value != h.Value {
		t.Fatalf("targets %+v %v", ts, err)
	}
	o, err = parse(t, []string{"SACRED_SQL=postgresql://u:hunter2@other.example.com/runs"}, "x.journal")
	if err != nil {
		t.Fatal(err)
	}
	_, err = o.targets(h)
	if err == nil || !strings.Contains(err.Error(), "needs the password") || !strings.Contains(err.Error(), "SACRED_SQL") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("another store's password: %v", err)
	}
}

// TestTargetPasswordFromSacredYAML: or from sacred.yaml, read as sacred
// run reads it.
func TestTargetPasswordFromSacredYAML(t *testing.T) {
	full := "postgresql://u:hunter2@db.example.com/runs"
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sacred.yaml"), []byte("sql: "+full+"\nbeat-interval: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := parseIn(t, dir, nil, "x.journal")
	if err != nil {
		t.Fatal(err)
	}
	k, _ := lookup(o.kinds, "sql")
	ts, err := o.targets(&queue.Header{Option: "sql", Title: k.Title, Value: k.RedactValue(full), Secret: true})
	if err != nil || len(ts) != 1 {
		t.Fatalf("targets %+v %v", ts, err)
	}
}
