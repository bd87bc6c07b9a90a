package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sacred-go/sacred/internal/cli"
	"github.com/sacred-go/sacred/internal/cli/cmdutil"
	"github.com/sacred-go/sacred/pkg/observer"
)

// A kind registered by the binary, as pkg/sacredcli registers one.
func init() {
	observer.Register(observer.Kind{
		Option: "probe_sink", Arg: "FILE", Title: "probe sink", Usage: "send events to a probe sink in FILE",
		Parse: func(v string) (any, error) { return v, nil },
		New: func(context.Context, any, observer.Settings) (observer.Observer, error) {
			return nil, errors.New("not used")
		},
	})
}

// The man pages list exactly the registered kinds; every shell gets a
// completion script.
func TestManPagesAndCompletions(t *testing.T) {
	man, compl := t.TempDir(), t.TempDir()
	if code := run([]string{"-man", man, "-completions", compl}, os.Stderr); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, page := range []string{"sacred.1", "sacred-run.1", "sacred-log.1", "sacred-log-metric.1"} {
		if _, err := os.Stat(filepath.Join(man, page)); err != nil {
			t.Errorf("no man page %s: %v", page, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(man, "sacred-run.1"))
	if err != nil {
		t.Fatal(err)
	}
	runPage := string(b)
	b, _ = os.ReadFile(filepath.Join(man, "sacred.1"))
	rootPage := string(b)
	kinds := observer.Kinds()
	if len(kinds) < 4 {
		t.Fatalf("kinds %v: want the built-in ones and the probe", observer.Options())
	}
	for _, k := range kinds {
		if !strings.Contains(runPage, `\fB--`+k.Option+`\fP`) || !strings.Contains(rootPage, "--"+k.Option) {
			t.Errorf("man pages lack --%s", k.Option)
		}
	}
	var absent []string
	for _, o := range append(append([]string{}, observer.SacredOptions...), "gcs") {
		if _, ok := observer.Lookup(o); !ok {
			absent = append(absent, o)
		}
	}
	for _, absent := range absent {
		if strings.Contains(runPage, absent) || strings.Contains(rootPage, absent) {
			t.Errorf("man pages mention %s, which is not built in", absent)
		}
	}
	for _, f := range []string{"sacred.bash", "_sacred", "sacred.fish", "sacred.ps1"} {
		b, err := os.ReadFile(filepath.Join(compl, f))
		if err != nil || !strings.Contains(string(b), "__complete") {
			t.Errorf("completion script %s: %v, %d bytes", f, err, len(b))
		}
	}
}

func TestUsage(t *testing.T) {
	var errOut strings.Builder
	if code := run(nil, &errOut); code != cmdutil.ExitUsage || !strings.Contains(errOut.String(), "-man DIR") {
		t.Errorf("no arguments: exit %d, %q", code, errOut.String())
	}
	_ = cli.Version
}
