package exec

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sacred-go/sacred/internal/testutil"
	"github.com/sacred-go/sacred/pkg/observer"
	"github.com/sacred-go/sacred/pkg/observer/observertest"
)

// The test binary doubles as the observer process: with EXECOBS_MODE set
// it serves events instead of running tests. (SACRED_* variables would be
// taken out of its environment.)
func TestMain(m *testing.M) {
	if mode := os.Getenv("EXECOBS_MODE"); mode != "" {
		serve(mode, os.Getenv("EXECOBS_CTL"))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serve is the observer process of the tests. Modes:
//
//	ok       answers {"ok":true}, echoing run_id as "id" to started
//	choose   answers started and queued with "id": "h-77"
//	refuse   answers {"ok":false,"error":"disk full"}
//	garbage  prints a line that is not JSON
//	hang     reads and never answers, nor exits when its input ends
//	die      writes to stderr and exits 3 at the first event
//	ignore   never reads and never exits (until killed)
//
// In ctl (a directory), a file "broken" makes every answer a refusal and a
// file "stall" holds answers while it exists, as a hung destination would.
// Every event line is appended to ctl/events.
func serve(mode, ctl string) {
	if mode == "ignore" {
		time.Sleep(time.Hour) // killed long before
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	for in.Scan() {
		var ev struct {
			Event string  `json:"event"`
			RunID *string `json:"run_id"`
		}
		if err := json.Unmarshal(in.Bytes(), &ev); err != nil {
			fmt.Fprintln(os.Stderr, "not JSON:", err)
			os.Exit(2)
		}
		if ctl != "" {
			f, _ := os.OpenFile(filepath.Join(ctl, "events"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			f.Write(append(in.Bytes(), '\n'))
			f.Close()
			for exists(filepath.Join(ctl, "stall")) {
				time.Sleep(2 * time.Millisecond) // the destination hangs
			}
			if exists(filepath.Join(ctl, "broken")) {
				mode = "refuse"
			}
		}
		switch mode {
		case "ok":
			if (ev.Event == "started" || ev.Event == "queued") && ev.RunID != nil {
				fmt.Printf("{\"ok\": true, \"id\": %q}\n", *ev.RunID)
			} else {
				fmt.Println(`{"ok": true}`)
			}
		case "choose":
			fmt.Println(`{"ok": true, "id": "h-77"}`)
		case "refuse":
			fmt.Println(`{"ok": false, "error": "disk full"}`)
		case "garbage":
			fmt.Println("hello from the observer")
		case "hang":
		case "die":
			fmt.Fprintln(os.Stderr, "Traceback (most recent call last):")
			fmt.Fprintln(os.Stderr, "KeyError: 'experiment'")
			os.Exit(3)
		}
	}
	if mode == "hang" {
		time.Sleep(time.Hour) // does not exit when its input ends
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// helper returns the command line of the helper process in mode, and its
// control directory.
func helper(t *testing.T, mode string) (cmdline, ctl string) {
	ctl = t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("EXECOBS_MODE=%s EXECOBS_CTL='%s' exec '%s'", mode, ctl, exe), ctl
}

func open(t *testing.T, cmdline string, warn *testutil.SyncBuffer) *Observer {
	t.Helper()
	s := observer.Settings{}
	if warn != nil {
		s.Warn = warn
	}
	o, err := New(context.Background(), Config{Command: cmdline}, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close(context.Background()) })
	return o
}

func within(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// TestChoosesID: the answer to started (and queued) may choose the run's
// id, which later events carry.
func TestChoosesID(t *testing.T) {
	cmd, ctl := helper(t, "choose")
	o := open(t, cmd, nil)
	ctx, cancel := within(10 * time.Second)
	defer cancel()
	ev := observertest.StartEvent()
	id, err := o.Started(ctx, ev)
	if err != nil || id != "h-77" {
		t.Fatalf("Started: %q, %v", id, err)
	}
	if err := o.Completed(ctx, &observer.CompletedEvent{StopTime: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(ctl, "events"))
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"run_id":null`) || !strings.Contains(lines[1], `"run_id":"h-77"`) {
		t.Errorf("events:\n%s", data)
	}

	// A process that chooses another id than the one the run has is
	// told so.
	o = open(t, cmd, nil)
	ev.ID = "5"
	if _, err := o.Started(ctx, ev); err == nil || !strings.Contains(err.Error(), `chose run id "h-77", but the run already has id "5"`) {
		t.Errorf("Started with a given id: %v", err)
	}
}

// TestMisbehaving: a process that refuses, answers garbage, dies or hangs
// gives one clear error, within the call's deadline.
func TestMisbehaving(t *testing.T) {
	for _, c := range []struct {
		mode, want string
	}{
		{"refuse", "observer-exec: the observer process refused the started event: disk full"},
		{"garbage", `observer-exec: the observer process answered the started event with "hello from the observer", which is neither {"ok": true} nor`},
		{"die", "observer-exec: the observer process exited (exit status 3) before answering the started event; its last lines on stderr: Traceback (most recent call last): | KeyError: 'experiment'"},
		{"hang", "observer-exec: the observer process did not answer the started event in time: context deadline exceeded"},
		{"ignore", "observer-exec: the observer process did not"},
	} {
		t.Run(c.mode, func(t *testing.T) {
			cmd, _ := helper(t, c.mode)
			var warn testutil.SyncBuffer
			o := open(t, cmd, &warn)
			ev := observertest.StartEvent()
			if c.mode == "ignore" {
				// Fill the pipe: a process that does not read blocks
				// the writer, which must still return.
				ev.Config["big"] = strings.Repeat("x", 1<<20)
			}
			ctx, cancel := within(500 * time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := o.Started(ctx, ev)
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("Started: %v\nwant %s", err, c.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Started took %v", d)
			}
			// Later calls fail as clearly, or succeed (refuse answers
			// everything); none hangs.
			ctx2, cancel2 := within(300 * time.Millisecond)
			defer cancel2()
			err2 := o.Completed(ctx2, &observer.CompletedEvent{StopTime: time.Now()})
			t.Logf("Completed after: %v", err2)
			if c.mode != "refuse" && err2 == nil {
				t.Error("Completed after the failure succeeded")
			}
			ctx3, cancel3 := within(time.Second)
			defer cancel3()
			closeErr := o.Close(ctx3)
			t.Logf("Close: %v", closeErr)
			if c.mode == "hang" && (closeErr == nil || !strings.Contains(closeErr.Error(), "it was killed")) {
				t.Errorf("Close of a process that does not exit: %v", closeErr)
			}
			if c.mode == "ignore" && (err2 == nil || !strings.Contains(err2.Error(), "was stopped: it stopped reading in the middle of an event")) {
				t.Errorf("a process that stopped reading mid-event: %v", err2)
			}
			if c.mode == "die" && !strings.Contains(warn.String(), "observer-exec: KeyError: 'experiment'\n") {
				t.Errorf("its stderr did not reach the user's: %q", warn.String())
			}
		})
	}
}

// TestLateAnswerSkipped: an answer that comes after its call gave up is
// not taken for the next event's.
func TestLateAnswerSkipped(t *testing.T) {
	cmd, ctl := helper(t, "refuse")
	o := open(t, cmd, nil)
	stall := filepath.Join(ctl, "stall")
	os.WriteFile(stall, nil, 0o644)
	ctx, cancel := within(200 * time.Millisecond)
	_, err := o.Started(ctx, observertest.StartEvent())
	cancel()
	if err == nil || !strings.Contains(err.Error(), "did not answer the started event in time") {
		t.Fatalf("Started: %v", err)
	}
	os.Remove(stall)
	// The late answer to started is read and dropped: each of the next
	// two calls gets its own answer, and none is left over.
	ctx, cancel = within(10 * time.Second)
	defer cancel()
	for i := range 2 {
		if err := o.Completed(ctx, &observer.CompletedEvent{StopTime: time.Now()}); err == nil || !strings.Contains(err.Error(), "refused the completed event") {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if o.proc.late != 0 || len(o.proc.answers) != 0 {
		t.Errorf("late %d, answers left %d", o.proc.late, len(o.proc.answers))
	}
}

// TestEnvironment: the process gets no SACRED_* variable.
func TestEnvironment(t *testing.T) {
	t.Setenv("SACRED_WEBHOOK_SECRET", "s3cret")
	out := filepath.Join(t.TempDir(), "env")
	o := open(t, "env > '"+out+"'; cat >/dev/null", nil)
	ctx, cancel := within(5 * time.Second)
	defer cancel()
	if err := o.Close(ctx); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(out)
	if strings.Contains(string(data), "SACRED_") || len(data) == 0 {
		t.Errorf("environment of the process:\n%s", data)
	}
}

func TestParseAndStartErrors(t *testing.T) {
	if _, err := ParseConfig("  "); err == nil {
		t.Error("empty command accepted")
	}
	if _, err := New(context.Background(), Config{Command: "true"}, observer.Settings{Flags: map[string]string{FlagPriority: "high"}}); err == nil || !strings.Contains(err.Error(), "--observer-exec-priority") {
		t.Errorf("bad priority: %v", err)
	}
	o := open(t, "exit 0", nil)
	ctx, cancel := within(5 * time.Second)
	defer cancel()
	_, err := o.Started(ctx, observertest.StartEvent())
	if err == nil || !strings.Contains(err.Error(), "observer process exited (status 0) before answering the started event") {
		t.Errorf("a process that exits at once: %v", err)
	}
}

// TestConformance runs the sink tier on the kind, through a process that
// can break (refuse) and stall.
func TestConformance(t *testing.T) {
	k, ok := observer.Lookup(Option)
	if !ok {
		t.Fatal("observer_exec is not registered")
	}
	cmd, ctl := helper(t, "ok")
	observertest.RunKind(t, k, cmd,
		observertest.WithBreak(func(t *testing.T) {
			os.WriteFile(filepath.Join(ctl, "broken"), nil, 0o644)
			t.Cleanup(func() { os.Remove(filepath.Join(ctl, "broken")) })
		}),
		observertest.WithStall(func(t *testing.T) func() {
			p := filepath.Join(ctl, "stall")
			os.WriteFile(p, nil, 0o644)
			return func() { os.Remove(p) }
		}))
}
