package runner

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sacred-go/sacred/pkg/observer"
)

func TestTakeLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "job.lock")
	first, err := TakeLock(path, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TakeLock(path, 0, func() { t.Error("waiting called without a wait") }); !errors.Is(err, ErrLocked) || err.Error() != "held by another run" {
		t.Errorf("second lock: %v, want ErrLocked", err)
	}
	waited := false
	if _, err := TakeLock(path, lockPoll, func() { waited = true }); !errors.Is(err, ErrLocked) || !strings.HasPrefix(err.Error(), "still held by another run after ") || !waited {
		t.Errorf("lock with a wait: %v (waiting called: %v)", err, waited)
	}
	first.Release()
	again, err := TakeLock(path, 0, nil)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again.Release()
	if _, err := TakeLock(filepath.Join(path, "x"), 0, nil); err == nil || errors.Is(err, ErrLocked) {
		t.Errorf("lock under a file: %v, want the open error", err)
	}
}

// bytesOutput is an observer.Output over a byte slice.
type bytesOutput []byte

func (b bytesOutput) Size() int64 { return int64(len(b)) }
func (b bytesOutput) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(b).ReadAt(p, off)
}

var _ observer.Output = bytesOutput(nil)

func quietFiles(t *testing.T) (q *Quiet, out, errOut func() string) {
	t.Helper()
	dir := t.TempDir()
	o, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close(); e.Close() })
	read := func(f *os.File) func() string {
		return func() string {
			b, err := os.ReadFile(f.Name())
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
	return NewQuiet(o, e), read(o), read(e)
}

func TestQuietSuccessShowsNothing(t *testing.T) {
	q, out, errOut := quietFiles(t)
	q.Write([]byte("sacred: started run 1\n"))
	q.commandStarted()
	q.Write([]byte("sacred: a warning\n"))
	q.End(false)
	if out() != "" || errOut() != "" {
		t.Errorf("stdout %q, stderr %q", out(), errOut())
	}
}

func TestQuietFailureShowsInOrder(t *testing.T) {
	q, out, errOut := quietFiles(t)
	q.Write([]byte("before\n"))
	q.commandStarted()
	q.Write([]byte("after\n"))
	q.show(bytesOutput("the output\n"))
	q.Write([]byte("later\n"))
	q.End(false) // shown already: the rest follows
	if out() != "the output\n" || errOut() != "before\nafter\nlater\n" {
		t.Errorf("stdout %q, stderr %q", out(), errOut())
	}
}

func TestQuietFailureBeforeTheCommand(t *testing.T) {
	q, out, errOut := quietFiles(t)
	q.Write([]byte("sacred: cannot open the store\n"))
	q.End(true)
	if out() != "" || errOut() != "sacred: cannot open the store\n" {
		t.Errorf("stdout %q, stderr %q", out(), errOut())
	}
}

func TestQuietBoundsMessages(t *testing.T) {
	q, _, errOut := quietFiles(t)
	line := strings.Repeat("x", 1023) + "\n"
	for range quietMessageCap/len(line) + 3 {
		q.Write([]byte(line))
	}
	q.End(true)
	got := errOut()
	if want := strings.Repeat(line, quietMessageCap/len(line)); !strings.HasPrefix(got, want) {
		t.Fatalf("the first %d lines are not all there", quietMessageCap/len(line))
	}
	if !strings.HasSuffix(got, "sacred: 3 more lines of sacred's messages were left out (--quiet-unless-fail holds 256 KiB of them)\n") {
		t.Errorf("no count of the lines left out: %q", got[len(got)-200:])
	}
}

func TestEndPath(t *testing.T) {
	for _, c := range []struct {
		status string
		code   int
		want   string
	}{
		{observer.StatusCompleted, 0, ""},
		{observer.StatusFailed, 3, "3"},
		{observer.StatusFailed, 127, "127"},
		{observer.StatusInterrupted, 130, "130"},
		{observer.StatusTimeout, 143, "143"},
		{observer.StatusInterrupted, 0, "fail"}, // the command ignored the signal and exited 0
		{observer.StatusFailed, 300, "fail"},    // Windows exit codes go past 255
		{observer.StatusFailed, -1, "fail"},
	} {
		if got := endPath(c.status, c.code); got != c.want {
			t.Errorf("endPath(%s, %d) = %q, want %q", c.status, c.code, got, c.want)
		}
	}
}

func TestOutputTail(t *testing.T) {
	if got := outputTail(bytesOutput("short\n")); string(got) != "short\n" {
		t.Errorf("short output: %q", got)
	}
	if got := outputTail(nil); got != nil {
		t.Errorf("no output: %q", got)
	}
	long := strings.Repeat("0123456789abcdefghi\n", 1000) // 20000 bytes
	got := string(outputTail(bytesOutput(long)))
	if len(got) > pingBodyMax || !strings.HasSuffix(long, got) || !strings.HasPrefix(got, "0123456789") {
		t.Errorf("tail of %d bytes, starting %q", len(got), got[:20])
	}
	oneLine := strings.Repeat("x", 3*pingBodyMax)
	if got := outputTail(bytesOutput(oneLine)); len(got) != pingBodyMax {
		t.Errorf("tail of one long line: %d bytes, want %d", len(got), pingBodyMax)
	}
}

func TestPingURLRedacted(t *testing.T) {
	for raw, want := range map[string]string{
		"https://hc-ping.com/5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278":  "https://hc-ping.com/***",
		"https://user:pw@hc.example.org/ping/key/slug?create=1":     "https://hc.example.org/***",
		"hc-ping.com/5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278":          "***",
		"http://[::1]:8000/5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278/":   "http://[::1]:8000/***",
		"https://hc-ping.com/%zz5bf66975-d4c7-4bf5-bcc8-b8d8a82ea2": "***",
	} {
		if got := RedactPingURL(raw); got != want {
			t.Errorf("RedactPingURL(%q) = %q, want %q", raw, got, want)
		}
		if _, err := ParsePingURL(raw); err != nil && strings.Contains(err.Error(), "5bf66975") {
			t.Errorf("ParsePingURL(%q) error quotes the secret: %v", raw, err)
		}
	}
}

func TestNoticeAndMarkdownEscaped(t *testing.T) {
	id := "7"
	s := runSummary{ID: &id, Experiment: "a|b\nc", Status: observer.StatusFailed, ExitCode: 3,
		Observers: []string{"file storage 100%\nruns"}, Metrics: map[string]metricSummary{"m|*": {Step: 2}}}
	if got, want := s.notice(), "::notice title=sacred::run 7 FAILED (exit status 3), recorded in file storage 100%25%0Aruns (not completely: see the log)\n"; got != want {
		t.Errorf("notice %q, want %q", got, want)
	}
	md := s.markdown()
	for _, want := range []string{"| a\\|b c | FAILED | 3 | ", "| m\\|\\* | null | 2 |\n"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
