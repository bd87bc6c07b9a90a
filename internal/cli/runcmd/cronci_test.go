package runcmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCronFlagsChecked(t *testing.T) {
	_, err := parse(t, nil, "--lock-wait", "5m", "--", "true")
	wantUsageError(t, err, "--lock-wait 5m0s: waits for a --lock; give --lock PATH too")

	_, err = parse(t, nil, "--quiet-unless-fail", "-C", "no", "--", "true")
	wantUsageError(t, err, "--quiet-unless-fail shows the output of a failed run from the capture")

	_, err = parse(t, nil, "--summary-json", "no/such/dir/s.json", "--", "true")
	wantUsageError(t, err, "the directory")

	const secret = "5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278"
	_, err = parse(t, nil, "--ping", "ftp://hc-ping.com/"+secret, "--", "true")
	wantUsageError(t, err, `--ping "ftp://hc-ping.com/***": want an http(s) URL`)
	_, err = parse(t, []string{"SACRED_PING=hc-ping.com/" + secret}, "--", "true")
	wantUsageError(t, err, `SACRED_PING="***": want an http(s) URL`)
	if err != nil && strings.Contains(err.Error(), secret) {
		t.Errorf("the error shows the check's secret: %v", err)
	}
}

func TestCronFlagsCompleted(t *testing.T) {
	dir := t.TempDir()
	yaml := "lock: job.lock\nlock-wait: 2m\nquiet-unless-fail: true\nsummary-json: s.json\nping: https://hc-ping.com/abc\n"
	if err := os.WriteFile(filepath.Join(dir, "sacred.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := parseIn(t, dir, []string{"GITHUB_STEP_SUMMARY=/gh/summary.md"}, "--", "true")
	if err != nil {
		t.Fatal(err)
	}
	if o.Lock != filepath.Join(dir, "job.lock") || o.LockWait != 2*time.Minute || !o.QuietUnlessFail ||
		o.SummaryJSON != filepath.Join(dir, "s.json") || o.Ping != "https://hc-ping.com/abc" || o.StepSummary != "/gh/summary.md" {
		t.Errorf("options %+v", o)
	}
	// Given on the command line, --ping is recorded without its path.
	o, err = parseIn(t, dir, nil, "--ping", "https://hc-ping.com/abc", "--", "true")
	if err != nil {
		t.Fatal(err)
	}
	if got := o.metaOptions()["--ping"]; got != "https://hc-ping.com/***" {
		t.Errorf("meta.options --ping = %v", got)
	}
	if o.StepSummary != "" {
		t.Errorf("step summary %q without GITHUB_STEP_SUMMARY", o.StepSummary)
	}
	env, removed := childEnv([]string{"SACRED_PING=https://hc-ping.com/abc", "SACRED_SEED_X=1"}, nil)
	if len(env) != 1 || len(removed) != 1 || removed[0] != "SACRED_PING" {
		t.Errorf("child env %v, removed %v", env, removed)
	}
}
