package notify

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestTraceTail(t *testing.T) {
	trace := []string{"a\n", "b\n", "c\n"}
	if got := TraceTail(trace, 5, 100); got != "a\nb\nc\n" {
		t.Errorf("whole trace: %q", got)
	}
	if got := TraceTail(trace, 2, 100); got != "…\nb\nc\n" {
		t.Errorf("last lines: %q", got)
	}
	long := []string{strings.Repeat("x", 50) + "\n", "yy\n", "zz\n"}
	if got := TraceTail(long, 5, 10); got != "…\nyy\nzz\n" {
		t.Errorf("last bytes start at a whole line: %q", got)
	}
}

func TestTailBytes(t *testing.T) {
	if got := TailBytes("héllo", 4); got != "…llo" {
		t.Errorf("cut inside é: %q", got)
	}
	if got := TailBytes("abc", 3); got != "abc" {
		t.Errorf("short: %q", got)
	}
}

func TestRunID(t *testing.T) {
	for in, want := range map[string]any{"7": int64(7), "0": int64(0), "007": "007", "a1": "a1", "": nil} {
		if got := RunID(in); got != want {
			t.Errorf("RunID(%q) = %#v, want %#v", in, got, want)
		}
	}
}

func TestScrub(t *testing.T) {
	secret := "p@ss word/1"
	err := Scrub(errors.New("dial http://u:"+url.QueryEscape(secret)+"@h/"+url.PathEscape(secret)+" "+secret), secret)
	if strings.Contains(err.Error(), "word") {
		t.Errorf("scrubbed: %v", err)
	}
	if !errors.Is(Scrub(context.DeadlineExceeded, "x"), context.DeadlineExceeded) {
		t.Error("Scrub hides the cause from errors.Is")
	}
}

func TestCompileAndCheck(t *testing.T) {
	m, err := Compile("k", map[Event]string{Completed: "{result:.2f} {config[a][0]}", Failed: "{backtrace}"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(map[string]any{"config": map[string]any{"a": []any{}}}); err == nil || !strings.Contains(err.Error(), "k: completed_text: {config[a][0]}: config[a] has no item 0 (it has 0)") {
		t.Errorf("Check: %v", err)
	}
	if _, err := Compile("k", map[Event]string{Started: "{result}"}); err == nil || !strings.Contains(err.Error(), "started_text: unknown placeholder {result}") {
		t.Errorf("result at the start: %v", err)
	}
	if _, err := Compile("k", map[Event]string{Completed: "{result:%Y}"}); err == nil {
		t.Error("a strftime spec on result was accepted")
	}
	if _, err := Compile("k", map[Event]string{Completed: "{stop_time:%Y-%m}"}); err != nil {
		t.Errorf("a strftime spec on stop_time: %v", err)
	}
}
